"""The README's shell examples run as written.

Every ```sh block runs, in order, as one bash script (``set -euo pipefail``) in one empty directory, so later
blocks see what earlier ones wrote, exactly as a reader following the README would. A block preceded by
``<!-- readme-test: skip (why) -->`` is not run (it installs packages, starts a server or takes minutes);
one preceded by ``<!-- readme-test: verdict ... -->`` may also exit 1 (a gate's verdict), never anything else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> list[tuple[int, str, str]]:
    """(line number, marker, script) of every ```sh block; marker is "", "skip" or "verdict"."""
    lines = README.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            prev = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            m = re.match(r"<!-- readme-test: (skip|verdict)\b", prev)
            body = []
            j = i + 1
            while lines[j].strip() != "```":
                body.append(lines[j])
                j += 1
            out.append((i + 1, m.group(1) if m else "", "\n".join(body)))
            i = j
        i += 1
    return out


def test_the_readme_has_runnable_examples():
    kinds = [k for _, k, _ in blocks()]
    assert kinds.count("") >= 2 and "skip" in kinds


@pytest.mark.slow
def test_readme_shell_examples_run_as_written(tmp_path):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("GREENBENCH_REGION", None)
    ran = 0
    for line, kind, script in blocks():
        if kind == "skip":
            continue
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        allowed = (0, 1) if kind == "verdict" else (0,)
        assert proc.returncode in allowed, (
            f"README.md:{line}: the block exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
            f"--- stderr\n{proc.stderr[-3000:]}"
        )
        assert "Traceback" not in proc.stderr, f"README.md:{line}: {proc.stderr[-3000:]}"
        ran += 1
    assert ran >= 3
