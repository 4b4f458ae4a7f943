"""Ctrl-C during `greenbench run` keeps the measured repeats in a result marked partial (real process, real SIGINT)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

PROFILE = """\
name = "long"
[model]
kind = "synthetic-llama"
layers = 1
hidden = 32
heads = 2
ffn = 64
vocab = 64
[prompt]
length = 4
[generation]
max_new_tokens = 16
[run]
repeats = 1000000
warmup = 0
[carbon]
region = "FRA"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_writes_partial_result(tmp_path):
    prof = tmp_path / "long.toml"
    prof.write_text(PROFILE)
    out = tmp_path / "out"
    env = dict(os.environ, COLUMNS="200", PYTHONFAULTHANDLER="1")  # a hang dumps its threads on SIGABRT
    proc = subprocess.Popen(
        [sys.executable, "-c", "from greenbench.cli import main; main()", "run", str(prof), "--out", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        # Wait for the session to be loaded (status line on stderr), then let a few repeats complete.
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if "ExecutionProvider" in line or not line:
                break
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it was, and leave no process running for the next tests
            proc.send_signal(signal.SIGABRT)
            _, stderr = proc.communicate(timeout=30)
            pytest.fail(f"greenbench run did not stop within 60 s of Ctrl-C; its threads then:\n{stderr[-8000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, seen + stderr
    assert "Traceback" not in stderr
    files = list(out.glob("long-*-partial.json"))
    assert len(files) == 1, stderr
    doc = json.loads(files[0].read_text())
    assert doc["partial"] is True and "Ctrl-C" in doc["partial_reason"]
    done = doc["workload"]["repeats_completed"]
    assert done >= 1
    assert len(doc["metrics"]["decode"]["j_per_token_samples"]) == done
    assert json.loads(stdout) == doc  # --json still printed the partial document
