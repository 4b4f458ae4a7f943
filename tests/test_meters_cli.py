"""`greenbench meters` via CliRunner."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from greenbench.cli import app

from test_meters_rapl import server_tree

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_gpu_libs(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)


def test_meters_json_lists_every_meter(tmp_path):
    server_tree(tmp_path)
    r = runner.invoke(app, ["meters", "--json", "--powercap-root", str(tmp_path)])
    assert r.exit_code == 0 and "Traceback" not in r.output
    docs = {d["name"]: d for d in json.loads(r.stdout)}
    assert list(docs) == ["rapl", "nvml", "amd", "estimate"]
    assert docs["rapl"]["usable"] is True and docs["rapl"]["method"] == "counter"
    assert {d["name"]: d["in_total"] for d in docs["rapl"]["domains"]}["core-0"] is False
    assert docs["nvml"]["usable"] is False and "nvidia-ml-py" in docs["nvml"]["reason"]
    est = docs["estimate"]
    assert est["usable"] and est["method"] == "estimate"
    assert est["detail"]["tdp_w"] > 0 and est["detail"]["tdp_source"]


def test_meters_table(tmp_path):
    r = runner.invoke(app, ["meters", "--powercap-root", str(tmp_path / "none")])
    assert r.exit_code == 0 and "Traceback" not in r.output
    out = " ".join(r.stdout.split())
    for word in ("rapl", "nvml", "amd", "estimate", "TDP", "does not exist"):
        assert word in out
