"""Simulated backends: the energy models by hand, parameter resolution, the meter and session wrapper."""

import dataclasses
import math

import pytest

from greenbench import profile as profile_mod
from greenbench.backends.sim import energy as E
from greenbench.backends.sim import params as P
from greenbench.backends.simulated import SimulatedMeter, SimulatedSession
from greenbench.meters.base import Meter, window
from greenbench.models.config import LlamaConfig
from greenbench.models.cost import decode_cost
from greenbench.profile import SimSpec

# A toy model: two weight matmuls (4x8 and 8x2), 6 attention MACs and 10 KV bytes per cached position,
# 100 weight bytes per pass.
G = E.Geometry(((4, 8), (8, 2)), attention_macs_per_position=6.0, weight_bytes_per_pass=100.0,
               kv_bytes_per_position=10.0)
# weight MACs/token = 32 + 16 = 48; inputs/token = 12


def nparams(**over):
    return P.neuromorphic_params(SimSpec(**over))


def oparams(**over):
    return P.optical_params(SimSpec(**over))


# ---- work counting --------------------------------------------------------------------------------

def test_geometry_derived_counts():
    assert G.weight_macs_per_token == 48 and G.weight_params == 48 and G.inputs_per_token == 12
    # array 4: matmul 4x8 -> ceil(8/4)*4 DAC + ceil(4/4)*8 ADC = 16; 8x2 -> ceil(2/4)*8 + ceil(8/4)*2 = 12
    assert G.conversions_per_token(4) == 28
    # array 128: every matmul is one tile -> K + N conversions
    assert G.conversions_per_token(128) == (4 + 8) + (8 + 2)


def test_prefill_and_decode_work_by_hand():
    w = E.prefill_work(G, prompt_len=3, batch=2)
    # positions 0,1,2 attend to 0+1+2 = 3 cached positions per row
    assert w == E.Work(passes=1, tokens=6, attention_macs=2 * 6 * 3, kv_bytes=2 * 3 * 10)
    d = E.decode_work(G, past_len=3, steps=2, batch=2)
    # steps with 3 and 4 cached positions; each reads them and writes one
    assert d == E.Work(passes=2, tokens=4, attention_macs=2 * 6 * (3 + 4), kv_bytes=2 * 10 * (4 + 5))


def test_decode_work_is_additive_over_steps():
    whole = E.decode_work(G, 5, 7, batch=3)
    parts = E.Work(0, 0, 0.0, 0.0)
    for k in range(7):
        parts = parts + E.decode_work(G, 5 + k, 1, batch=3)
    assert whole == parts


@pytest.mark.parametrize("batch", [1, 4])
def test_geometry_agrees_with_the_cost_model(batch):
    cfg = LlamaConfig(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512)
    H, hd, F, V = 64, 16, 176, 512
    mats = []
    for _ in range(2):
        mats += [(H, (4 + 2 * 2) * hd), (4 * hd, H), (H, F), (H, F), (F, H)]
    mats.append((H, V))
    c0 = decode_cost(cfg, 0, batch)
    g = E.Geometry(tuple(mats), 2 * 2 * 4 * hd, c0["weight_bytes_per_step"], c0["kv_bytes_per_token"])
    for T in (0, 7, 40):
        c = decode_cost(cfg, T, batch)
        w = E.decode_work(g, T, 1, batch)
        assert (w.tokens * g.weight_macs_per_token + w.attention_macs) / w.tokens == c["macs_per_token"]
        assert (w.passes * g.weight_bytes_per_pass + w.kv_bytes) / w.tokens == pytest.approx(c["bytes_per_token"])


# ---- neuromorphic ---------------------------------------------------------------------------------

def test_neuromorphic_energy_by_hand_loihi():
    p = nparams(chip="loihi", firing_rate=0.25, timesteps=2)
    w = E.Work(passes=1, tokens=2, attention_macs=10.0, kv_bytes=40.0)
    e = E.neuromorphic_energy(w, G, p)
    macs = 2 * 48 + 10  # 106
    sops = macs * 0.25 * 2  # 53
    spikes = 2 * 12 * 0.25 * 2  # 12
    assert e["synaptic_ops"] == pytest.approx(sops * 23.6e-12)
    assert e["spikes"] == pytest.approx(spikes * 1.7e-12)
    assert e["routing"] == pytest.approx(spikes * 1.0 * 3.5e-12)
    assert e["memory"] == pytest.approx((100 + 40) * 8 * (1300 / 64) * 1e-12)
    assert set(e) == set(E.NEUROMORPHIC_DOMAINS)


def test_neuromorphic_refetch_multiplies_weight_traffic_only():
    w = E.Work(passes=3, tokens=3, attention_macs=0.0, kv_bytes=30.0)
    once = E.neuromorphic_energy(w, G, nparams(timesteps=4))["memory"]
    every = E.neuromorphic_energy(w, G, nparams(timesteps=4, refetch_weights_per_timestep=True))["memory"]
    bit = 8 * (1300 / 64) * 1e-12
    assert once == pytest.approx((300 + 30) * bit) and every == pytest.approx((1200 + 30) * bit)


@pytest.mark.parametrize("chip,sop,spike",
                         [("truenorth", 26.0, 0.0), ("spinnaker", 5.9e6, 0.0), ("ideal-ac", 0.9, 0.0)])
def test_chip_presets(chip, sop, spike):
    p = nparams(chip=chip)
    assert (p.synaptic_op_pj, p.spike_pj, p.hop_pj) == (sop, spike, 0.0)
    e = E.neuromorphic_energy(E.Work(1, 1, 0.0, 0.0), G, p)
    assert e["synaptic_ops"] == pytest.approx(48 * 0.1 * 4 * sop * 1e-12)
    assert e["spikes"] == e["routing"] == 0.0


def test_more_timesteps_or_firing_rate_cost_more():
    w = E.decode_work(G, 10, 5)

    def total(**kw):
        return sum(E.neuromorphic_energy(w, G, nparams(**kw)).values())

    assert total(timesteps=1) < total(timesteps=2) < total(timesteps=8)
    assert total(firing_rate=0.01) < total(firing_rate=0.1) < total(firing_rate=0.5)


def test_break_even_firing_rate():
    p = nparams(chip="ideal-ac", timesteps=1)
    # compute only: rate* x 1 x macs x 0.9 pJ = macs x 4.6 pJ -> above 1: ideal ACs always beat fp32 MACs
    assert E.break_even_firing_rate(G, p, 0) == pytest.approx(4.6 / 0.9)
    loihi = nparams(timesteps=4)
    r = E.break_even_firing_rate(G, loihi, 0)
    # at r, synaptic ops + spikes + routing == digital MACs
    snn = 4 * r * (48 * 23.6 + 12 * (1.7 + 3.5))
    assert snn == pytest.approx(48 * 4.6)


# ---- optical --------------------------------------------------------------------------------------

def test_optical_physics_energy_by_hand():
    p = oparams(enob=6, array_size=4, array_count=1, adc_fom_fj_per_step=10.0, laser_wall_plug_efficiency=0.25,
                laser_optical_fj_per_op=20.0, ops_per_mac=2.0, digital_mac_pj=5.0, dram_pj_per_bit=10.0)
    assert p.conversion_pj == pytest.approx(0.64)
    w = E.Work(passes=2, tokens=3, attention_macs=7.0, kv_bytes=50.0)
    e = E.optical_energy(w, G, p)
    assert not E.weights_resident(G, p)  # 48 weights > 4x4 array
    assert e["laser"] == pytest.approx(3 * 48 * 2 * 20e-15 / 0.25)
    assert e["adc_dac"] == pytest.approx(3 * 28 * 0.64e-12)
    assert e["weight_programming"] == pytest.approx(2 * 48 * 0.64e-12)
    assert e["attention_digital"] == pytest.approx(7 * 5e-12)
    assert e["memory"] == pytest.approx((2 * 100 + 50) * 8 * 10e-12)
    assert set(e) == set(E.OPTICAL_DOMAINS["physics"])


def test_optical_resident_weights_are_neither_programmed_nor_reread():
    p = oparams(array_size=8, array_count=1, dram_pj_per_bit=10.0)  # 64 >= 48 weights
    assert E.weights_resident(G, p)
    e = E.optical_energy(E.Work(2, 2, 0.0, 50.0), G, p)
    assert e["weight_programming"] == 0.0
    assert e["memory"] == pytest.approx(50 * 8 * 10e-12)


def test_optical_lightmatter_energy_by_hand():
    p = oparams(optical_model="lightmatter", dram_pj_per_bit=10.0)
    assert p.op_pj == pytest.approx(79.6 / 65.5e12 * 1e12)
    e = E.optical_energy(E.Work(1, 2, 4.0, 20.0), G, p)
    assert set(e) == set(E.OPTICAL_DOMAINS["lightmatter"])
    assert e["optical_system"] == pytest.approx((2 * 48 + 4) * 2 * p.op_pj * 1e-12)
    assert e["memory"] == pytest.approx((100 + 20) * 8 * 10e-12)


def test_higher_enob_costs_more():
    w = E.decode_work(G, 10, 5)
    totals = [sum(E.optical_energy(w, G, oparams(enob=b, array_size=4)).values()) for b in (4, 6, 8)]
    assert totals[0] < totals[1] < totals[2]


def test_larger_batch_less_weight_programming_per_token():
    p = oparams(array_size=4)
    per_token = []
    for batch in (1, 2, 8):
        w = E.decode_work(G, 10, 3, batch)
        per_token.append(E.optical_energy(w, G, p)["weight_programming"] / w.tokens)
    assert per_token[0] > per_token[1] > per_token[2] > 0
    assert per_token[0] == pytest.approx(8 * per_token[2])


# ---- parameters -----------------------------------------------------------------------------------

def test_presets_match_the_profile_schema():
    assert tuple(P.CHIPS) == profile_mod.SIM_CHIPS
    assert tuple(E.OPTICAL_DOMAINS) == profile_mod.OPTICAL_MODELS
    sim_keys = {f.name for f in dataclasses.fields(SimSpec)}
    n = {f.name for f in dataclasses.fields(P.NeuromorphicParams)} - {"sources"}
    o = {f.name for f in dataclasses.fields(P.OpticalParams)} - {"sources"}
    assert n | o == sim_keys  # every [sim] key is used, and every figure is overridable


def test_every_default_names_its_source():
    for p in (P.neuromorphic_params(), P.optical_params(), *(nparams(chip=c) for c in P.CHIPS)):
        for key, src in p.sources.items():
            assert src and (key == "chip" or not src.startswith("profile")), key
    for key, (_, src) in P.DEFAULTS.items():
        assert len(src) > 10, key
    assert P.neuromorphic_params().sources["synaptic_op_pj"].startswith("Davies et al. 2018")
    assert "Murmann" in P.optical_params().sources["adc_fom_fj_per_step"]
    assert P.DRAM_PJ_PER_BIT == pytest.approx(1300 / 64)
    assert P.LIGHTMATTER_PJ_PER_OP == pytest.approx(1.215, abs=1e-3)


def test_overrides_win_and_are_labelled():
    p = nparams(chip="loihi", synaptic_op_pj=10.0, firing_rate=0.05)
    assert p.synaptic_op_pj == 10.0 and p.spike_pj == 1.7
    assert p.sources["synaptic_op_pj"] == "profile [sim] synaptic_op_pj"
    assert p.sources["spike_pj"].startswith("Davies")
    o = oparams(enob=8)
    assert o.enob == 8 and o.conversion_pj == pytest.approx(2.56)  # energy-parameters.md: 8 bit ~ 2.5 pJ
    assert P.optical_params().conversion_pj == pytest.approx(0.64)  # 6 bit ~ 0.6 pJ


def test_unknown_preset_is_a_plain_error_for_direct_callers():
    with pytest.raises(ValueError, match="loihi3"):
        P.neuromorphic_params(SimSpec(chip="loihi3"))


# ---- meter and session ----------------------------------------------------------------------------

def test_meter_protocol_and_window_arithmetic():
    m = SimulatedMeter("neuromorphic-sim", E.NEUROMORPHIC_DOMAINS)
    assert isinstance(m, Meter) and m.method == "simulated"
    assert m.probe().usable and [d.name for d in m.domains()] == list(E.NEUROMORPHIC_DOMAINS)
    m.add({"memory": 5.0})  # before open: not counted
    m.open()
    s0 = m.snapshot()
    m.add({"synaptic_ops": 1.5, "memory": 2.0})
    s1 = m.snapshot()
    rows = {r.domain: r for r in window(m, s0, s1)}
    assert rows["synaptic_ops"].joules == 1.5 and rows["memory"].joules == 2.0 and rows["spikes"].joules == 0.0
    assert all(r.method == "simulated" for r in rows.values())
    assert s1.joules["memory"] == 2.0


class FakeInner:
    """An exact session stand-in: fixed tokens, counts calls."""

    def __init__(self, prompt_len=3, batch=2):
        self.prompt_ids = list(range(prompt_len))
        self.batch_size = batch
        self.closed = False

    def reset(self):
        pass

    def prefill(self):
        return 7

    def decode(self, first, n):
        return [first + 1 + i for i in range(n)]

    def cost(self):
        return {"macs_per_token": 1.0}

    def describe(self):
        return {"source": "fake"}

    def close(self):
        self.closed = True


def test_session_counts_each_pass_into_its_meter():
    inner = FakeInner(prompt_len=3, batch=2)
    meter = SimulatedMeter("neuromorphic-sim", E.NEUROMORPHIC_DOMAINS)
    p = nparams()
    s = SimulatedSession(inner, meter, G, lambda w: E.neuromorphic_energy(w, G, p), {"simulation": {"x": 1}})
    assert s.energy_meters() == [meter] and s.batch_size == 2 and s.prompt_ids == [0, 1, 2]
    meter.open()
    s.reset()
    a = meter.snapshot()
    first = s.prefill()
    b = meter.snapshot()
    assert s.decode(first, 4) == [8, 9, 10, 11]
    c = meter.snapshot()
    pre = E.prefill_work(G, 3, 2)
    dec = E.decode_work(G, 3, 4, 2)
    assert s.work == pre + dec
    want_pre = E.neuromorphic_energy(pre, G, p)
    want_dec = E.neuromorphic_energy(dec, G, p)
    for d in E.NEUROMORPHIC_DOMAINS:
        assert b.joules[d] - a.joules[d] == pytest.approx(want_pre[d])
        assert c.joules[d] - b.joules[d] == pytest.approx(want_dec[d])
    # a second repeat starts again from the prompt: same energy
    s.reset()
    s.prefill()
    s.decode(7, 4)
    d2 = meter.snapshot()
    first, second = sum(c.joules.values()) - sum(a.joules.values()), sum(d2.joules.values()) - sum(c.joules.values())
    assert second == pytest.approx(first) and first > 0
    assert s.describe() == {"source": "fake", "simulation": {"x": 1}}
    s.close()
    assert inner.closed


def test_decode_energy_per_token_grows_with_context():
    p = nparams()
    short = sum(E.neuromorphic_energy(E.decode_work(G, 1, 1), G, p).values())
    long = sum(E.neuromorphic_energy(E.decode_work(G, 100, 1), G, p).values())
    assert long > short and math.isfinite(long)
