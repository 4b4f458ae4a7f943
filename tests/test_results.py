"""Result documents: canonical bytes, atomic writes, load + schema rejection."""

import json

import pytest

from greenbench import results
from greenbench.errors import GreenbenchError


def minimal_doc(**over):
    doc = {
        "schema": results.SCHEMA,
        "profile": {"name": "t", "digest": "sha256:" + "0" * 64},
        "backend": "cpu",
        "workload": {"kind": "inference", "prompt_tokens": 3, "new_tokens": 4, "generated_token_ids": [1, 2, 3, 4]},
        "metrics": {
            "ttft_s": 0.01,
            "prefill": {"j_per_token": 0.5},
            "decode": {"j_per_token": 0.25, "tokens_per_s": 100.0, "j_per_token_samples": [0.25],
                       "tokens_per_s_samples": [100.0]},
        },
        "energy": {"method": "estimate", "meters": [{"name": "estimate", "domain": "cpu", "method": "estimate", "joules": 1.0}]},
        "carbon": {"region": "FRA", "intensity_g_per_kwh": 56.0, "g_co2e": 1e-5, "g_co2e_per_1k_tokens": 2e-3},
        "environment": {"greenbench_version": "0.1.0", "cpu_model": "x"},
    }
    doc.update(over)
    return doc


def test_round_trip(tmp_path):
    doc = minimal_doc()
    path = results.write(doc, tmp_path / "out")
    assert path.parent == tmp_path / "out" and path.name.startswith("t-") and path.suffix == ".json"
    assert path.read_bytes() == results.canonical_bytes(doc)
    assert results.load(path) == doc
    # No temp files left behind.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_canonical_bytes_sorted_and_compact():
    data = results.canonical_bytes(minimal_doc())
    assert b" " not in data.replace(b'"0.1.0"', b"")
    assert data.index(b'"backend"') < data.index(b'"carbon"') < data.index(b'"workload"')


def test_nan_rejected_and_sanitized():
    doc = minimal_doc()
    doc["metrics"]["ttft_s"] = float("nan")
    with pytest.raises(ValueError):
        results.canonical_bytes(doc)
    assert results.sanitize(doc)["metrics"]["ttft_s"] is None


def test_validate_missing_paths():
    doc = minimal_doc()
    del doc["metrics"]["decode"]["tokens_per_s"]
    with pytest.raises(ValueError, match="metrics.decode.tokens_per_s"):
        results.validate(doc)


def test_unknown_schema_rejected(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps(minimal_doc(schema="greenbench.result/9")))
    with pytest.raises(GreenbenchError, match="newer than this greenbench") as ei:
        results.load(f)
    assert "upgrade" in ei.value.hint
    f.write_text(json.dumps(minimal_doc(schema="something-else")))
    with pytest.raises(GreenbenchError, match="not a greenbench result"):
        results.load(f)


def test_load_errors(tmp_path):
    with pytest.raises(GreenbenchError, match="not found"):
        results.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GreenbenchError, match="not valid JSON"):
        results.load(bad)
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"payload": "", "payloadType": "x", "signatures": []}))
    with pytest.raises(GreenbenchError, match="signed envelope"):
        results.load(env)


def test_write_to_file_path_is_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(GreenbenchError, match="not a directory"):
        results.write(minimal_doc(), f)


def test_uncreatable_dir(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")  # a file where a parent directory should be: fails even for root
    with pytest.raises(GreenbenchError, match="cannot write"):
        results.write(minimal_doc(), blocker / "sub")


def test_partial_results_are_named_so(tmp_path):
    path = results.write(minimal_doc(partial=True), tmp_path)
    assert path.name.endswith("-partial.json")
