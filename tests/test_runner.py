"""The runner's windows, repeats, statistics and Ctrl-C handling, with fake meters and models."""

import pytest

from greenbench import profile as P
from greenbench import results
from greenbench.runner import MeterSet, run_profile

from fakes import FakeBackend, FakeSession, StepMeter

TOML = """\
name = "fake"
[model]
kind = "synthetic-llama"
[prompt]
token_ids = [1, 2, 3]
[generation]
max_new_tokens = 5
[run]
repeats = 4
warmup = 2
[carbon]
region = "FRA"
"""


@pytest.fixture
def prof(tmp_path):
    f = tmp_path / "fake.toml"
    f.write_text(TOML)
    return P.load(f)


def test_windows_and_per_token_energy(prof):
    meter = StepMeter(steps={"package-0": 1.0, "core-0": 0.5})
    session = FakeSession()
    doc = run_profile(prof, meters=[meter], backend=FakeBackend(session), measure_bandwidth=False)
    results.validate(doc)
    assert meter.opened and meter.closed and session.closed
    # 2 warmup + 4 measured prefills.
    assert session.prefills == 6
    m = doc["metrics"]
    # Each window sees exactly one snapshot step: 1 J + 0.5 J.
    assert m["prefill"]["j_per_token"] == pytest.approx(1.5 / 3)
    assert m["decode"]["j_per_token"] == pytest.approx(1.5 / 4)
    assert len(m["decode"]["j_per_token_samples"]) == 4
    assert len(m["decode"]["tokens_per_s_samples"]) == 4
    assert doc["workload"]["new_tokens"] == 5 and doc["workload"]["prompt_tokens"] == 3
    assert doc["workload"]["generated_token_ids"] == [24, 70, 89, 20, 42]  # t -> (7t + 3) mod 101 from 3
    assert doc["energy"]["method"] == "counter"
    assert doc["energy"]["total_j"] == pytest.approx(4 * 2 * 1.5)
    assert not doc["partial"]


def test_nested_domains_not_double_counted(prof):
    from greenbench.meters.base import Domain

    class Nested(StepMeter):
        def domains(self):
            return (Domain("package-0"), Domain("core-0", in_total=False))

    doc = run_profile(prof, meters=[Nested(steps={"package-0": 1.0, "core-0": 0.5})], backend=FakeBackend(),
                      measure_bandwidth=False)
    assert doc["metrics"]["prefill"]["j_per_token"] == pytest.approx(1.0 / 3)
    rows = {r["domain"]: r for r in doc["energy"]["meters"]}
    assert rows["core-0"]["in_total"] is False and rows["core-0"]["joules"] == pytest.approx(4 * 2 * 0.5)


def test_weakest_method_wins(prof):
    doc = run_profile(prof, meters=[StepMeter("a", "counter"), StepMeter("b", "estimate")],
                      backend=FakeBackend(), measure_bandwidth=False)
    assert doc["energy"]["method"] == "estimate"
    assert {r["method"] for r in doc["energy"]["meters"]} == {"counter", "estimate"}


def test_ctrl_c_keeps_completed_repeats(prof):
    # Interrupt at the 5th prefill: warmups are 1-2, measured repeats 3, 4 complete, 5th is interrupted.
    session = FakeSession(interrupt_at_prefill=5)
    meter = StepMeter()
    doc = run_profile(prof, meters=[meter], backend=FakeBackend(session), measure_bandwidth=False)
    assert doc["partial"] is True
    assert "2 of 4" in doc["partial_reason"]
    assert doc["workload"]["repeats_completed"] == 2
    assert len(doc["metrics"]["decode"]["j_per_token_samples"]) == 2
    assert meter.closed
    results.validate(doc)


def test_idle_baseline_marginal():
    meter = StepMeter(steps={"package-0": 2.0})
    ms = MeterSet([meter])
    idle = ms.measure_idle(0.5, sleep=lambda s: None)
    # The fake meter's clock advances 1 s per snapshot: one 2 J step over 1 s -> 2 W.
    assert idle == {"fake/package-0": pytest.approx(2.0)}
    assert MeterSet([meter]).measure_idle(0) == {}


def test_marginal_arithmetic():
    from greenbench.meters.base import DomainEnergy
    from greenbench.runner import Window

    ms = MeterSet([], idle_power_w={"rapl/package-0": 10.0})
    w = Window(0.5, [DomainEnergy("rapl", "package-0", "counter", 8.0), DomainEnergy("rapl", "core-0", "counter", 3.0, False)])
    assert ms.marginal_j(w) == pytest.approx(8.0 - 5.0)
    w2 = Window(1.0, [DomainEnergy("rapl", "package-0", "counter", 4.0)])
    assert ms.marginal_j(w2) == pytest.approx(-6.0)  # signed: idle exceeded the window, said, not hidden


def test_training_workload_measures_trained_tokens(tmp_path):
    pytest.importorskip("torch")
    f = tmp_path / "t.toml"
    f.write_text(
        'name = "tt"\n[model]\nkind = "synthetic-llama"\nlayers = 1\nhidden = 32\nheads = 2\nffn = 64\nvocab = 64\n'
        '[train]\nsteps = 6\nseq_len = 16\nbatch_size = 2\nlr = 0.01\n'
        '[run]\nworkload = "training"\nrepeats = 2\nwarmup = 1\n[carbon]\nregion = "FRA"\n'
    )
    prof = P.load(f)
    meter = StepMeter(steps={"package-0": 3.0})
    doc = run_profile(prof, meters=[meter], measure_bandwidth=False)
    results.validate(doc)
    t = doc["metrics"]["train"]
    assert doc["workload"]["kind"] == "training"
    # one snapshot step (3 J) per window of 6 steps x 2 x 16 tokens
    assert t["j_per_token"] == pytest.approx(3.0 / (6 * 2 * 16))
    assert len(t["tokens_per_s_samples"]) == 2 and t["tokens_per_s"] > 0
    # The model really trains: the loss falls on the memorised pool.
    assert t["loss_last"] < t["loss_first"]
    assert doc["metrics"]["decode"]["j_per_token"] is None
    assert doc["carbon"]["tokens_basis"] == "trained"


def test_roofline_only_when_weights_exceed_cache(prof, monkeypatch):
    import greenbench.models as models  # the runner calls through the package (whose lazy attributes are cached)

    monkeypatch.setattr(models, "last_level_cache_bytes", lambda: 32 << 20, raising=False)
    monkeypatch.setattr(models, "memory_bandwidth_bytes_per_s", lambda *a, **k: 2e10, raising=False)
    small = run_profile(prof, meters=[StepMeter()], backend=FakeBackend())
    assert small["metrics"]["decode"]["roofline_fraction"] is None
    assert "last-level cache" in small["metrics"]["decode"]["roofline_note"]

    big_session = FakeSession()
    big_session.cost = lambda: {"params": 1, "macs_per_token": 1.0, "bytes_per_token": 64 << 20}
    big = run_profile(prof, meters=[StepMeter()], backend=FakeBackend(big_session))
    d = big["metrics"]["decode"]
    # the fake decodes far faster than 2e10 B/s / 64 MiB per token allows: flagged, not reported
    assert d["roofline_fraction"] is None and d["roofline_fraction_raw"] > 1 and "ceiling" in d["roofline_flag"]
    assert d["memory_bandwidth_bytes_per_s"] == 2e10


def test_roofline_reports_both_ceilings_and_the_bound(prof):
    session = FakeSession()
    session.cost = lambda: {"params": 1, "macs_per_token": 1e12, "bytes_per_token": 1e6}
    session.ceilings = lambda: {"memory_bytes_per_s": 1e16, "peak_macs_per_s": 1e21}
    d = run_profile(prof, meters=[StepMeter()], backend=FakeBackend(session))["metrics"]["decode"]
    # memory: 1e16 / 1e6 = 1e10 tok/s; compute: 1e21 / 1e12 = 1e9 tok/s -> compute-bound
    assert d["memory_ceiling_tokens_per_s"] == pytest.approx(1e10)
    assert d["compute_ceiling_tokens_per_s"] == pytest.approx(1e9)
    assert d["bound"] == "compute" and d["roofline_fraction"] == pytest.approx(d["tokens_per_s"] / 1e9)


def test_simulated_session_meters_replace_host_meters(prof):
    host = StepMeter("host", "counter")
    sim = StepMeter("sim", "simulated", steps={"array": 0.25})
    session = FakeSession()
    session.energy_meters = lambda: [sim]
    doc = run_profile(prof, meters=[host], backend=FakeBackend(session), measure_bandwidth=False)
    assert doc["energy"]["method"] == "simulated"
    assert {r["name"] for r in doc["energy"]["meters"]} == {"sim"}
    assert doc["metrics"]["decode"]["j_per_token"] == pytest.approx(0.25 / 4)
    assert not host.opened
    assert any("SIMULATED" in w for w in doc["warnings"])


def test_session_closed_when_measuring_fails(prof):
    class Broken(StepMeter):
        def snapshot(self):
            raise RuntimeError("meter died")

    session = FakeSession()
    with pytest.raises(RuntimeError, match="meter died"):
        run_profile(prof, meters=[Broken()], backend=FakeBackend(session), measure_bandwidth=False)
    assert session.closed


def test_ctrl_c_during_the_roofline_keeps_the_complete_result(prof, monkeypatch):
    import greenbench.models as models

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "last_level_cache_bytes", lambda: 1, raising=False)
    monkeypatch.setattr(models, "memory_bandwidth_bytes_per_s", interrupted, raising=False)
    doc = run_profile(prof, meters=[StepMeter()], backend=FakeBackend())
    assert doc["partial"] is False and doc["workload"]["repeats_completed"] == 4
    assert doc["metrics"]["decode"]["roofline_fraction"] is None
    assert "interrupted" in doc["metrics"]["decode"]["roofline_note"]
