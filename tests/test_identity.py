"""workload.digest: the same work gives the same digest however it is run; different work never does."""

from __future__ import annotations

import dataclasses

import pytest

from greenbench import profile as P
from greenbench.workloads.identity import digest, identity, weights_digest


def ident(prof, **kw):
    args = dict(backend="cpu", prompt_ids=[1, 2, 3], model_info={"config": {"layers": 2}, "dtype": "fp32"},
                batch_size=1)
    args.update(kw)
    return digest(identity(prof, **args))


def test_how_it_is_run_does_not_change_the_digest():
    p = P.load("llama-tiny")
    base = ident(p)
    for over in ({"repeats": 9}, {"warmup": 0}, {"threads": 1}, {"idle_s": 2.0}, {"region": "FRA"},
                 {"scope": "machine"}, {"min_window_periods": 40}, {"meters": ["estimate"]}):
        assert ident(p.with_overrides(**over)) == base, over
    assert p.with_overrides(repeats=9).digest != p.digest  # the profile digest does change


def test_what_determines_the_work_changes_the_digest():
    p = P.load("llama-tiny")
    base = ident(p)
    assert ident(p.with_overrides(max_new_tokens=7)) != base
    assert ident(p.with_overrides(batch_size=2), batch_size=2) != base
    assert ident(p, prompt_ids=[1, 2, 4]) != base
    assert ident(p, backend="cuda") != base
    assert ident(p, model_info={"config": {"layers": 3}, "dtype": "fp32"}) != base
    assert ident(p, device="cuda") != base


def test_training_settings_are_in_the_digest():
    p = P.load("llama-tiny-train")
    base = digest(identity(p, backend="cpu", prompt_ids=None, model_info={}, batch_size=4))
    q = dataclasses.replace(p, train=dataclasses.replace(p.train, lr=p.train.lr * 2))
    assert digest(identity(q, backend="cpu", prompt_ids=None, model_info={}, batch_size=4)) != base
    r = p.with_overrides(repeats=11)
    assert digest(identity(r, backend="cpu", prompt_ids=None, model_info={}, batch_size=4)) == base


def test_weights_digest_follows_the_weight_bytes_and_is_cached(tmp_path):
    d = tmp_path / "export"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"graph")
    (d / "model.onnx.data").write_bytes(b"\x00" * 1000)
    (d / "tokenizer.json").write_text("{}")
    cache = tmp_path / "cache"
    a = weights_digest(d, cache)
    assert a.startswith("sha256:") and weights_digest(d, cache) == a
    assert len(list((cache / "weights-digests").iterdir())) == 1
    (d / "tokenizer.json").write_text('{"x": 1}')  # not a weight file
    assert weights_digest(d, cache) == a
    (d / "model.onnx.data").write_bytes(b"\x01" + b"\x00" * 999)
    assert weights_digest(d, cache) != a


def test_a_run_records_its_digest_and_identity(tmp_path):
    from fakes import FakeBackend, StepMeter

    from greenbench.runner import run_profile

    p = P.load("llama-tiny").with_overrides(repeats=1, warmup=0, region="FRA")
    doc = run_profile(p, meters=[StepMeter()], backend=FakeBackend(), measure_bandwidth=False)
    w = doc["workload"]
    assert w["digest"] == digest(w["identity"]) and w["identity"]["prompt_token_ids"] == [1, 2, 3]
