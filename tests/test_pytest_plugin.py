"""The pytest plugin, driven by pytester: the fixture, --greenbench-save and --greenbench-compare."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

TESTS = """
def work(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

def test_loop(greenbench):
    greenbench.run(lambda: work({n}), tokens=10, rounds=5)

def test_block(greenbench):
    for _ in range(3):
        with greenbench.measure(tokens=5):
            work(200000)

def test_without_fixture():
    assert True
"""


@pytest.fixture
def env(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("GREENBENCH_REGION", "FRA")
    return pytester


def test_save_writes_one_gateable_result_per_test(env, tmp_path):
    from greenbench import results

    env.makepyfile(test_work=TESTS.format(n=20000))
    out = tmp_path / "base"
    res = env.runpytest("-p", "no:cacheprovider", f"--greenbench-save={out}")
    res.assert_outcomes(passed=3)
    assert any("greenbench: energy by estimate (estimate)" in line and "ESTIMATED" in line for line in res.outlines)
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 and files[0].startswith("test_work.py_test_block-") and files[1].startswith(
        "test_work.py_test_loop-")
    loop = results.load(out / files[1])
    b = loop["metrics"]["block"]
    assert loop["workload"]["kind"] == "measure" and loop["energy"]["method"] == "estimate"
    assert len(b["duration_s_samples"]) == 5 and len(b["energy_j_samples"]) == 5
    assert b["j_per_token"] == pytest.approx(b["energy_j"] / 10)
    assert min(b["inner_repeats_samples"]) > 1  # a 20k-iteration loop is far shorter than the estimate resolves
    block = results.load(out / files[0])
    assert block["metrics"]["block"]["rounds"] == 3


def test_compare_fails_the_session_on_a_regression(env, tmp_path):
    base = tmp_path / "base"
    env.makepyfile(test_work=TESTS.format(n=20000))
    env.runpytest("-p", "no:cacheprovider", f"--greenbench-save={base}").assert_outcomes(passed=3)
    env.makepyfile(test_work=TESTS.format(n=60000))  # the candidate loop does 3x the work
    junit = tmp_path / "gate.xml"
    res = env.runpytest("-p", "no:cacheprovider", f"--greenbench-compare={base}", f"--greenbench-junit={junit}")
    res.assert_outcomes(passed=3)
    assert res.ret == 1
    text = "\n".join(res.outlines)
    assert "greenbench gate" in text and "test_loop: FAIL" in text and "regression" in text
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites"
    failing = [s.get("name") for s in suites if int(s.get("failures")) > 0]
    assert any("test_loop" in n for n in failing)


def test_compare_passes_unchanged_code_and_notes_missing_baselines(env, tmp_path):
    base = tmp_path / "base"
    env.makepyfile(test_work=TESTS.format(n=20000))
    env.runpytest("-p", "no:cacheprovider", f"--greenbench-save={base}").assert_outcomes(passed=3)
    next(base.glob("test_work.py_test_block-*.json")).unlink()
    res = env.runpytest("-p", "no:cacheprovider", f"--greenbench-compare={base}", "--greenbench-max-regression=200")
    assert res.ret == 0
    text = "\n".join(res.outlines)
    assert "test_loop: PASS" in text and "no baseline" in text


def test_bad_threshold_is_a_usage_error(env, tmp_path):
    env.makepyfile(test_work=TESTS.format(n=10))
    res = env.runpytest("-p", "no:cacheprovider", f"--greenbench-compare={tmp_path}", "--greenbench-max-regression=nan")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--greenbench-max-regression" in "\n".join(res.errlines)


def test_parametrised_ids_that_read_alike_get_their_own_files(env, tmp_path):
    env.makepyfile(test_p="""
import pytest

@pytest.mark.parametrize("x", ["a b", "a_b", "a/b"])
def test_p(greenbench, x):
    greenbench.run(lambda: sum(range(100)), rounds=1, warmup=0)
""")
    out = tmp_path / "base"
    env.runpytest("-p", "no:cacheprovider", f"--greenbench-save={out}").assert_outcomes(passed=3)
    assert len(list(out.glob("*.json"))) == 3
