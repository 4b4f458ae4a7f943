"""greenbench.measure() and `greenbench measure` (CliRunner, plus real subprocesses for stdout and Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import greenbench
from greenbench.cli import app
from greenbench.errors import GreenbenchError, MeterError
from greenbench.meters.base import Domain
from greenbench.meters.replay import ReplayMeter

runner = CliRunner()
PY = sys.executable
J_PER_KWH = 3.6e6


@pytest.fixture(autouse=True)
def no_gpu_libs(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)


def replay(*readings, **kw):
    return ReplayMeter(list(readings), **kw)


# -- the context manager -------------------------------------------------------------------
def test_context_manager_result_shape_and_arithmetic():
    meter = replay(
        {"package-0": 0.0, "core-0": 0.0}, {"package-0": 5.0, "core-0": 3.0}, {"package-0": 25.0, "core-0": 15.0},
        name="rapl", domains=[Domain("package-0"), Domain("core-0", in_total=False)],
    )
    with greenbench.measure(meters=[meter], region="FRA") as m:
        assert m.result is None
        m.tokens = 10
    r = m.result
    assert r["partial"] is False and r["tokens"] == 10
    e = r["energy"]
    assert e["method"] == "counter" and e["total_j"] == pytest.approx(20.0)  # core is nested: not added
    assert {(x["name"], x["domain"], x["method"], x["joules"]) for x in e["meters"]} == {
        ("rapl", "package-0", "counter", 20.0), ("rapl", "core-0", "counter", 12.0)}
    assert r["j_per_token"] == pytest.approx(2.0)
    c = r["carbon"]
    assert c["region"] == "FRA" and c["intensity_g_per_kwh"] > 0
    assert c["g_co2e"] == pytest.approx(20.0 / J_PER_KWH * c["intensity_g_per_kwh"])
    assert c["g_co2e_per_1k_tokens"] == pytest.approx(c["g_co2e"] / 10 * 1000)
    assert r["duration_s"] >= 0 and r["warnings"] == []


def test_exception_in_block_marks_partial_and_propagates():
    meter = replay({"x": 0.0}, {"x": 1.0}, {"x": 4.0}, method="simulated")
    with pytest.raises(KeyboardInterrupt):
        with greenbench.measure(meters=[meter], region="WORLD") as m:
            raise KeyboardInterrupt
    assert m.result["partial"] is True and m.result["energy"]["total_j"] == pytest.approx(3.0)
    assert m.result["energy"]["method"] == "simulated" and m.result["j_per_token"] is None


def test_bad_region_fails_before_the_block_runs():
    ran = []
    with pytest.raises(GreenbenchError) as ei:
        with greenbench.measure(meters=[replay({"x": 0.0})], region="NOT-A-REGION"):
            ran.append(1)
    assert ran == [] and ei.value.exit_code == 2


def test_bad_tokens():
    with pytest.raises(GreenbenchError):
        greenbench.measure(tokens=-1)
    m = greenbench.measure(meters=[replay({"x": 0.0})], region="FRA")
    with pytest.raises(GreenbenchError):
        with m:
            m.tokens = "many"


def test_implicit_meters_record_the_fallback_warning(tmp_path):
    with greenbench.measure(region="FRA", sysfs_root=tmp_path) as m:
        sum(range(200_000))
    r = m.result
    assert r["energy"]["method"] == "estimate"
    assert [x["domain"] for x in r["energy"]["meters"]] == ["cpu", "ram"]
    assert any("ESTIMATED" in w for w in r["warnings"])


def test_explicit_unusable_meter_raises(tmp_path):
    with pytest.raises(MeterError):
        with greenbench.measure(meters=["rapl"], region="FRA", sysfs_root=tmp_path):
            pass


def test_idle_baseline_gives_marginal_energy():
    # open, idle start, idle end, window start, window end
    meter = replay((0.0, {"p": 0.0}), (1.0, {"p": 10.0}), (3.0, {"p": 30.0}), (5.0, {"p": 80.0}), (7.0, {"p": 130.0}))
    with greenbench.measure(meters=[meter], region="FRA", idle_s=0.01, tokens=5) as m:
        pass
    e = m.result["energy"]
    # idle: 20 J over 2 s = 10 W; window: 50 J over the real (tiny) duration, minus 10 W x that
    assert e["idle_power_w"] == [{"domain_key": "replay/p", "power_w": pytest.approx(10.0), "basis": "measured"}]
    assert e["total_j"] == pytest.approx(50.0)
    assert e["marginal_j"] == pytest.approx(50.0 - 10.0 * e["window_s"])
    assert e["window_s"] >= m.result["duration_s"] > 0
    assert m.result["carbon"]["idle_subtracted_energy_j"] == pytest.approx(e["marginal_j"])


# -- the command ---------------------------------------------------------------------------
def invoke(*args):
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output, r.output
    return r


def test_cli_exit_code_propagates(tmp_path):
    r = invoke("measure", "--powercap-root", str(tmp_path), "--region", "FRA", "--", PY, "-c", "import sys; sys.exit(3)")
    assert r.exit_code == 3
    assert "total energy" in r.stdout and "estimate" in r.stdout
    r = invoke("measure", "--powercap-root", str(tmp_path), "--region", "FRA", "--", PY, "-c", "pass")
    assert r.exit_code == 0


def test_cli_json_tokens(tmp_path):
    r = invoke("measure", "--json", "--tokens", "100", "--region", "FRA", "--powercap-root", str(tmp_path),
               "--", PY, "-c", "sum(range(300000))")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 0 and doc["command"][1:] == ["-c", "sum(range(300000))"]
    assert doc["tokens"] == 100 and doc["energy"]["total_j"] > 0
    assert doc["j_per_token"] == pytest.approx(doc["energy"]["total_j"] / 100)
    assert doc["carbon"]["region"] == "FRA" and doc["energy"]["method"] == "estimate"


def test_cli_missing_command_exits_2(tmp_path):
    r = invoke("measure", "--region", "FRA", "--", "no-such-command-greenbench")
    assert r.exit_code == 2 and "command not found" in r.stderr
    r = invoke("measure", "--region", "FRA", "--", str(tmp_path / "nope"))
    assert r.exit_code == 2
    r = invoke("measure")
    assert r.exit_code == 2


def test_cli_bad_meter_and_region_exit_2_without_running(tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", PY, "-c", f"open({str(marker)!r}, 'w').close()"]
    r = invoke("measure", "--meter", "rapl", "--powercap-root", str(tmp_path / "none"), "--region", "FRA", *cmd)
    assert r.exit_code == 2 and "rapl" in r.stderr and "hint" in r.stderr
    r = invoke("measure", "--meter", "bogus", "--region", "FRA", *cmd)
    assert r.exit_code == 2 and "estimate" in r.stderr
    r = invoke("measure", "--region", "NOT-A-REGION", *cmd)
    assert r.exit_code == 2
    assert not marker.exists()


def _cli(*args, **kw):
    return [PY, "-c", "from greenbench.cli import main; main()", *args]


def test_json_mode_child_stdout_goes_to_stderr(tmp_path):
    p = subprocess.run(
        _cli("measure", "--json", "--region", "FRA", "--powercap-root", str(tmp_path), "--", PY, "-c", "print('child says hi')"),
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # nothing but JSON on stdout
    assert doc["exit_code"] == 0
    assert "child says hi" in p.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_is_forwarded_and_partial_is_reported(tmp_path):
    child = "import time, sys\nprint('ready', flush=True)\ntime.sleep(30)\n"
    p = subprocess.Popen(
        _cli("measure", "--json", "--region", "FRA", "--powercap-root", str(tmp_path), "--", PY, "-c", child),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        line = p.stderr.readline()  # the child's stdout, redirected to our stderr by --json
        assert line.strip() == "ready"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)  # not from a terminal: greenbench must forward it
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.monotonic() - t0 < 10
    doc = json.loads(out)
    assert doc["partial"] is True
    assert doc["exit_code"] == 130 == p.returncode  # the child died of SIGINT: 128 + 2
    assert "greenbench/" not in err  # the child may print its own KeyboardInterrupt traceback; greenbench none


def test_measure_stays_the_function_after_the_cli_is_imported():
    import greenbench.cli  # noqa: F401  (imports greenbench.measurement through the measure command)
    import greenbench.measurement

    assert greenbench.measure is greenbench.measurement.measure
