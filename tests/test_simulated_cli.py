"""`greenbench run --backend neuromorphic-sim / optical-sim` end to end (CliRunner), and [sim] errors."""

import json

import pytest
from typer.testing import CliRunner

from greenbench import profile as profile_mod
from greenbench.backends import BACKENDS
from greenbench.backends.sim import energy as E
from greenbench.backends.sim import params as P
from greenbench.cli import app

runner = CliRunner()

PROFILE = """
name = "sim-tiny"
[model]
kind = "synthetic-llama"
layers = 2
hidden = 64
heads = 4
kv_heads = 2
ffn = 176
vocab = 512
max_seq_len = 64
[prompt]
length = 8
[generation]
max_new_tokens = 6
batch_size = {batch}
[run]
repeats = 2
warmup = 0
{sim}
"""


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture
def shared_cache(_module_cache, monkeypatch):
    """One model build for this module's runs (still an isolated temporary directory)."""
    monkeypatch.setenv("GREENBENCH_CACHE_DIR", str(_module_cache))


def write(tmp_path, sim="", batch=1, name="p.toml"):
    p = tmp_path / name
    p.write_text(PROFILE.format(sim=sim, batch=batch))
    return p


def run_json(*args):
    res = runner.invoke(app, ["run", *map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return json.loads(res.stdout)


def test_backends_are_registered():
    assert {"neuromorphic-sim", "optical-sim"} <= set(BACKENDS)
    assert set(profile_mod.SIMULATED_BACKENDS) <= set(BACKENDS)


def test_neuromorphic_sim_end_to_end(tmp_path, shared_cache):
    prof = write(tmp_path)
    cpu = run_json(prof, "--backend", "cpu", "--out", tmp_path / "cpu")
    doc = run_json(prof, "--backend", "neuromorphic-sim", "--out", tmp_path / "sim")
    assert doc["backend"] == "neuromorphic-sim"
    assert doc["workload"]["generated_token_ids"] == cpu["workload"]["generated_token_ids"]  # the tokens are real
    e = doc["energy"]
    assert e["method"] == "simulated"
    assert {r["method"] for r in e["meters"]} == {"simulated"}
    assert {r["name"] for r in e["meters"]} == {"neuromorphic-sim"}
    assert [r["domain"] for r in e["meters"]] == list(E.NEUROMORPHIC_DOMAINS)
    assert e["total_j"] == pytest.approx(sum(r["joules"] for r in e["meters"]))
    assert doc["carbon"]["energy_method"] == "simulated"
    assert any("SIMULATED" in w for w in doc["warnings"])

    model = doc["workload"]["model"]
    sim = model["simulation"]
    assert "SIMULATED" in sim["statement"] and any("Davies" in c for c in sim["citations"])
    assert sim["parameters"]["chip"] == "loihi" and sim["parameters"]["synaptic_op_pj"] == 23.6
    assert model["accuracy"]["token_agreement"] is None
    assert sim["reference"]["yan2024_break_even_spike_rate"] == 0.064

    # the decode J/token is the hand-assembled model: S=8 prompt, 5 decode steps from 8 cached positions
    g0 = sim["geometry"]
    assert g0["weight_macs_per_token"] == g0["weight_macs_per_token_cost_model"]
    g = E.Geometry(tuple(map(tuple, g0["matmuls"])), g0["attention_macs_per_position"],
                   g0["weight_bytes_per_pass"], g0["kv_bytes_per_position"], g0["kv_element_bytes"])
    assert g.weight_macs_per_token == g0["weight_macs_per_token"] and g0["kv_element_bytes"] == 4
    p = P.neuromorphic_params()
    assert g0["placement"]["chips"] == 1 and g0["placement"]["streamed_params"] == 0
    assert sim["time_model"]["kind"] == "modelled" and 0 < sim["memory_share"] < 0.5
    line = sim["dram_sensitivity"]
    assert line["j_per_token_low"] < line["j_per_token"] < line["j_per_token_high"]
    assert sim["reference"]["digital_memory_share"] > 0.9
    dec = E.decode_work(g, 8, 5)
    want = sum(E.neuromorphic_energy(dec, g, p).values()) / 5
    assert doc["metrics"]["decode"]["j_per_token_samples"] == pytest.approx([want, want])
    pre = E.prefill_work(g, 8)
    assert doc["metrics"]["prefill"]["j_per_token"] == pytest.approx(sum(E.neuromorphic_energy(pre, g, p).values()) / 8)


def test_optical_sim_end_to_end(tmp_path, shared_cache):
    prof = write(tmp_path, sim="[sim]\nenob = 5\n")
    cpu = run_json(prof, "--backend", "cpu", "--out", tmp_path)
    doc = run_json(prof, "--backend", "optical-sim", "--out", tmp_path)
    assert doc["workload"]["generated_token_ids"] == cpu["workload"]["generated_token_ids"]
    assert doc["energy"]["method"] == "simulated"
    assert {r["method"] for r in doc["energy"]["meters"]} == {"simulated"}
    assert [r["domain"] for r in doc["energy"]["meters"]] == list(E.OPTICAL_DOMAINS["physics"])
    acc = doc["workload"]["model"]["accuracy"]
    assert 0.0 <= acc["token_agreement"] <= 1.0 and 0.0 <= acc["free_running_agreement"] <= 1.0
    assert acc["positions"] == 6 and acc["enob"] == 5
    assert len(acc["seeds"]) == 5 and len(set(acc["seeds"])) == 5 and len(acc["per_seed"]) == 5
    for key in ("token_agreement", "free_running_agreement", "kl_divergence"):
        lo, hi = acc[f"{key}_ci95"]
        assert lo <= acc[key] <= hi
    assert acc["token_agreement"] == pytest.approx(sum(r["token_agreement"] for r in acc["per_seed"]) / 5)
    assert acc["kl_divergence"] > 0 and "Student t" in acc["ci_method"]
    sim0 = doc["workload"]["model"]["simulation"]
    assert 0 < sim0["memory_share"] <= 1
    line = sim0["dram_sensitivity"]
    assert line["j_per_token_low"] <= line["j_per_token"] <= line["j_per_token_high"]
    assert "weight matmuls" in acc["method"] and "teacher-forced" in acc["method"]
    sim = doc["workload"]["model"]["simulation"]
    assert sim["parameters"]["enob"] == 5 and sim["parameter_sources"]["enob"] == "profile [sim] enob"
    assert any("Ahmed" in c for c in sim["citations"]) and any("Murmann" in c for c in sim["citations"])
    assert sim["geometry"]["weights_resident"] is False  # 124,928 weights > one 128x128 array
    assert doc["profile"]["resolved"]["sim"]["enob"] == 5


def test_optical_lightmatter_model_and_no_accuracy(tmp_path, shared_cache):
    prof = write(tmp_path, sim='[sim]\noptical_model = "lightmatter"\nmeasure_accuracy = false\n')
    doc = run_json(prof, "--backend", "optical-sim", "--out", tmp_path, "--repeats", "1")
    assert [r["domain"] for r in doc["energy"]["meters"]] == ["optical_system", "attention_digital", "memory"]
    assert doc["workload"]["model"]["accuracy"]["token_agreement"] is None
    assert "physics_decode_j_per_token" in doc["workload"]["model"]["simulation"]["reference"]


def test_optical_batch_amortizes_weight_programming(tmp_path, shared_cache):
    def per_token(batch):
        doc = run_json(write(tmp_path, batch=batch, name=f"b{batch}.toml"), "--backend", "optical-sim",
                       "--out", tmp_path, "--repeats", "1")
        rows = {r["domain"]: r["joules"] for r in doc["energy"]["meters"]}
        tokens = doc["workload"]["new_tokens"] * batch  # energy covers prefill + decode of every row
        return rows["weight_programming"] / tokens

    assert per_token(1) > per_token(4)


def test_builtin_simulated_profiles_run(tmp_path, shared_cache):
    for name, backend in (("llama-tiny-neuromorphic", "neuromorphic-sim"), ("llama-tiny-optical", "optical-sim")):
        prof = profile_mod.load(name)
        assert prof.run.backend == backend and "sim" in prof.resolved()
        doc = run_json(name, "--repeats", "1", "--max-new-tokens", "3", "--out", tmp_path)
        assert doc["backend"] == backend and doc["energy"]["method"] == "simulated"


def test_profiles_without_sim_keep_their_digest():
    p = profile_mod.load("llama-tiny")
    assert "sim" not in p.resolved()
    assert "sim" in p.with_overrides(backend="optical-sim").resolved()


@pytest.mark.parametrize(
    "sim,needle",
    [
        ('chip = "loihi3"', "unknown neuromorphic chip preset 'loihi3'"),
        ("firing_rate = 1.5", "firing_rate must be in (0, 1]"),
        ('enob = "six"', "[sim] enob must be an integer"),
        ("timesteps = 0", "timesteps must be >= 1"),
        ("laser_wall_plug_efficiency = 0", "laser_wall_plug_efficiency must be in (0, 1]"),
        ('optical_model = "quantum"', "unknown optical model"),
        ("fireing_rate = 0.1", "did you mean `firing_rate`"),
        ("dram_pj_per_bit = -1.0", "dram_pj_per_bit must be a finite number >= 0"),
        ('dram = "lpddr9"', "unknown DRAM preset 'lpddr9'"),
        ('digital_precision = "int4"', "unknown digital precision 'int4'"),
        ("weight_bits = 0", "weight_bits must be >= 1"),
        ("process_node_nm = 0.0", "process_node_nm must be a finite number > 0"),
        ("accuracy_seeds = 0", "accuracy_seeds must be >= 1"),
    ],
)
def test_bad_sim_parameters_exit_2_with_line(tmp_path, sim, needle):
    prof = write(tmp_path, sim="[sim]\nnoise_seed = 1\n" + sim)
    line = prof.read_text().splitlines().index(sim) + 1
    res = runner.invoke(app, ["run", str(prof), "--backend", "neuromorphic-sim", "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    flat = " ".join(res.output.split())
    assert needle in flat
    assert f"p.toml:{line}:" in flat.replace(" ", "")  # the message names the file and line


def test_unknown_backend_lists_the_simulated_ones(tmp_path):
    res = runner.invoke(app, ["run", str(write(tmp_path)), "--backend", "optical", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "optical-sim" in res.output
