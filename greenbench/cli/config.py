"""`greenbench config show|path`: the effective settings and where each came from."""

from __future__ import annotations

import typer

app = typer.Typer(help="The user configuration (config.toml) and the effective settings.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")


@app.command("show")
def show(json_out: bool = typer.Option(False, "--json", help="Print the settings as JSON.")) -> None:
    """Print every setting, its effective value and where it came from (environment, config file, default)."""
    from greenbench import config
    from greenbench.cli import render

    rows = config.effective()
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(rows))
        return
    render.table(
        "Effective settings",
        [("setting", "left", "keep"), "value", "from"],
        [[r["key"], "-" if r["value"] is None else r["value"], r["origin"]] for r in rows],
        caption="keys of config.toml: " + ", ".join(config.KEYS) + " (a command-line option wins over all of these)",
        overflow="fold",
    )


@app.command("path")
def path() -> None:
    """Print the config file's path (it may not exist yet)."""
    from greenbench import config

    typer.echo(str(config.path()))
