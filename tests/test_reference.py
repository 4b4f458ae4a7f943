"""docs/reference.md stays exact: every command, option, profile field and required result path is in it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import typer.main

from greenbench import profile as P
from greenbench import results
from greenbench.cli import app

DOC = (Path(__file__).resolve().parents[1] / "docs" / "reference.md").read_text()


def _commands(cmd, prefix):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, prefix + [name])
    else:
        yield prefix, cmd


def test_every_command_and_option_is_documented():
    missing = []
    for path, cmd in _commands(typer.main.get_command(app), []):
        name = " ".join(path)
        if f"greenbench {name}" not in DOC and f"`{name}" not in DOC:
            missing.append(f"command: greenbench {name}")
        for p in cmd.params:
            if p.param_type_name != "option" or getattr(p, "hidden", False):
                continue
            for opt in p.opts:
                if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", DOC):
                    missing.append(f"greenbench {name} {opt}")
    assert not missing, "document these in docs/reference.md: " + ", ".join(missing)


def test_every_profile_field_is_documented():
    missing = []
    for section, cls in P._SECTIONS.items():
        if f"[{section}]" not in DOC:
            missing.append(f"[{section}]")
        for f in dataclasses.fields(cls):
            if f"`{f.name}`" not in DOC:
                missing.append(f"[{section}] {f.name}")
    for section in P._FREE_SECTIONS:
        if f"[{section}]" not in DOC:
            missing.append(f"[{section}]")
    assert not missing, "document these in docs/reference.md: " + ", ".join(missing)


def test_every_required_result_path_is_documented():
    paths = set(results.REQUIRED_PATHS) | set(results.TRAINING_PATHS) | set(results.MEASURE_PATHS)
    missing = [p for p in sorted(paths) if p not in DOC]
    assert not missing, "document these in docs/reference.md: " + ", ".join(missing)
