"""The ``greenbench`` command line: a thin Typer layer over the library.

Each command group lives in its own module with a ``register(app)`` function. Modules keep their
top-level imports light (typer and greenbench.errors only); heavy libraries (onnxruntime,
codecarbon, torch, cryptography) are imported inside the command that needs them, so that
``greenbench --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import Optional

import typer
from typer.core import TyperGroup

from greenbench import __version__
from greenbench.errors import GreenbenchError

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (
    "run",
    "show",
    "measure",
    "meters",
    "carbon",
    "keys",
    "sign",
    "store",
    "publish",
    "gate",
    "leaderboard",
    "serve",
    "config",
)


class GreenbenchGroup(TyperGroup):
    """Turns a :class:`GreenbenchError` raised anywhere below into a clean message and exit code."""

    def invoke(self, ctx: typer.Context):
        import sys

        render = sys.modules.get("greenbench.cli.render")
        if render is not None:  # a new command (tests invoke many in one process): warnings once per command
            render.reset()
        try:
            return super().invoke(ctx)
        except GreenbenchError as err:
            from greenbench.cli import render

            render.print_error(err)
            ctx.exit(err.exit_code)

    def list_commands(self, ctx: typer.Context):  # keep registration order, not alphabetical
        return list(self.commands)


app = typer.Typer(
    cls=GreenbenchGroup,
    name="greenbench",
    help="Energy benchmarks for LLM inference and training: joules per token, carbon, signed results.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain click help: keeps `--help` fast (rich help costs ~130 ms of imports)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"greenbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Energy benchmarks for LLM inference and training: joules per token, carbon, signed results."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"greenbench.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
