"""Batch sweeps: the profile key and --batch, one result per batch size, the sweep block and table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from greenbench import profile as P
from greenbench.cli import app
from greenbench.errors import ProfileError
from greenbench.sweep import curve, run_sweep

runner = CliRunner()
BASE = ('name = "s"\n[model]\nkind = "synthetic-llama"\n[prompt]\ntoken_ids = [1, 2, 3]\n'
        '[generation]\nmax_new_tokens = 4\n{gen}[run]\nrepeats = 1\nwarmup = 0\n[carbon]\nregion = "FRA"\n')


def test_a_batch_list_makes_one_profile_per_size():
    p = P.loads(BASE.format(gen="batch = [1, 4, 16]\n"))
    points = p.sweep()
    assert [q.generation.batch_size for q in points] == [1, 4, 16]
    assert all(q.generation.batch is None for q in points)
    assert len({q.digest for q in points} | {p.digest}) == 4
    assert P.loads(BASE.format(gen="")).sweep() == [P.loads(BASE.format(gen=""))]


def test_profiles_without_the_new_keys_keep_their_digest():
    r = P.load("llama-tiny").resolved()
    assert "batch" not in r["generation"] and "device" not in r["run"]


@pytest.mark.parametrize("gen, needle", [
    ("batch = []\n", "empty"), ("batch = [0, 4]\n", ">= 1"), ("batch = [4, 4]\n", "twice"),
    ('batch = ["a"]\n', "list of integers"),
])
def test_bad_batch_lists(gen, needle):
    with pytest.raises(ProfileError, match=needle):
        P.loads(BASE.format(gen=gen))


def test_training_profiles_take_no_batch_list():
    with pytest.raises(ProfileError, match="training run has one"):
        P.loads(BASE.format(gen="batch = [1, 2]\n").replace("[run]\n", '[run]\nworkload = "training"\n'))


def test_batch_override():
    p = P.loads(BASE.format(gen=""))
    assert p.with_overrides(batch=[4]).generation.batch_size == 4 and len(p.with_overrides(batch=[4]).sweep()) == 1
    assert [q.generation.batch_size for q in p.with_overrides(batch=[2, 8]).sweep()] == [2, 8]


def test_run_sweep_tags_each_result_and_stops_after_a_partial_one():
    p = P.loads(BASE.format(gen="batch = [1, 2, 3]\n"))
    calls = []

    def run_one(point):
        calls.append(point.generation.batch_size)
        return {"workload": {"batch_size": point.generation.batch_size}, "partial": len(calls) == 2}

    docs = list(run_sweep(p, run_one))
    assert calls == [1, 2] and len(docs) == 2
    assert [d["workload"]["sweep"]["index"] for d in docs] == [0, 1]
    assert docs[0]["workload"]["sweep"] == {"of": "batch_size", "values": [1, 2, 3], "index": 0, "digest": p.digest}


def test_cli_sweep_writes_one_result_per_batch_size(tmp_path):
    out = tmp_path / "out"
    args = ["run", "llama-tiny", "--batch", "1", "--batch", "3", "--repeats", "1", "--warmup", "0",
            "--max-new-tokens", "4", "--region", "FRA", "--out", str(out)]
    r = runner.invoke(app, args + ["--json"])
    assert r.exit_code == 0, r.output
    docs = json.loads(r.stdout)
    assert [d["workload"]["batch_size"] for d in docs] == [1, 3]
    assert docs[0]["workload"]["digest"] != docs[1]["workload"]["digest"]
    assert docs[0]["workload"]["sweep"]["digest"] == docs[1]["workload"]["sweep"]["digest"]
    assert docs[0]["workload"]["generated_token_ids"] == docs[1]["workload"]["generated_token_ids"]
    assert len(list(out.glob("*.json"))) == 2
    assert [p["batch_size"] for p in curve(docs)] == [1, 3]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "batch sweep" in r.output and len(list(out.glob("*.json"))) == 4
