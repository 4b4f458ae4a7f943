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
    assert G.neurons_per_token == 10
    # array 4: 4x8 -> 1 row tile x 8 outputs + 8x2 -> 2 row tiles x 2 outputs = 12 partial sums; 2 + 2 tiles
    assert G.partial_sums_per_token(4) == 12 and G.tiles_per_token(4) == 4
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

PJ = 1e-12
BIT_DDR4 = 8 * (1300 / 64) * PJ  # J per byte at Horowitz's 1.3 nJ per 64 bits


def test_neuromorphic_energy_by_hand_loihi():
    # Davies et al. 2018, Table 2: 23.6 pJ/SOP, 81/52 pJ per active/inactive neuron update, 1.7 pJ per spike,
    # 3.0/4.0 pJ per hop (mean 3.5); 3.5 ns/SOP, 8.4/5.3 ns per update, 465 ns barrier; Frady et al. 2020: 104 mW static
    p = nparams(chip="loihi", firing_rate=0.25, timesteps=2, digital_precision="fp32", process_node_nm=45.0)
    assert p.digital_mac_pj == pytest.approx(4.6)
    w = E.Work(passes=1, tokens=2, attention_macs=10.0, kv_bytes=40.0)
    e = E.neuromorphic_energy(w, G, p)
    assert set(e) == set(E.NEUROMORPHIC_DOMAINS)
    sops = 2 * 48 * 0.25 * 2  # 48
    updates = 2 * 10 * 2  # 2 tokens x 10 outputs x 2 timesteps = 40
    spikes = 2 * 12 * 0.25 * 2  # 12
    assert e["synaptic_ops"] == pytest.approx(sops * 23.6 * PJ)
    assert e["neuron_updates"] == pytest.approx(updates * (0.25 * 81 + 0.75 * 52) * PJ)
    assert e["spikes"] == pytest.approx(spikes * 1.7 * PJ)
    assert e["routing"] == pytest.approx(spikes * 1.0 * 3.5 * PJ)
    assert e["interchip"] == 0.0  # 48 weights fit on one chip
    t_ns = (sops * 3.5 + updates * (0.25 * 8.4 + 0.75 * 5.3)) / 128 + 1 * 2 * 465
    assert e["static"] == pytest.approx(3.34 / 32 * t_ns * 1e-9)
    assert e["attention_digital"] == pytest.approx(10 * 4.6 * PJ)
    assert e["memory"] == pytest.approx(40 * BIT_DDR4)  # weights resident: KV only (fp32 KV at an fp32 co-processor)


def test_int8_coprocessor_keeps_an_int8_kv_cache_and_scales_to_the_chip_node():
    p = nparams()  # Loihi: int8 digital side at its 14 nm
    assert p.digital_precision == "int8" and p.process_node_nm == 14.0
    assert p.digital_mac_pj == pytest.approx((0.03 + 0.2) * 14 / 45)
    e = E.neuromorphic_energy(E.Work(1, 1, 9.0, 40.0), G, p)
    assert e["memory"] == pytest.approx(40 / 4 * BIT_DDR4)  # 4-byte model KV stored as 1 byte
    assert e["attention_digital"] == pytest.approx(9 * 0.23 * 14 / 45 * PJ)


def test_placement_multi_chip_and_streaming_by_hand():
    # a 32-byte chip holds 32 8-bit weights: matmul 4x8 (32) fills chip 0, matmul 8x2 (16) goes on chip 1
    pl = E.place(G, chip_memory_bytes=32, weight_bits=8)
    assert (pl.chips, pl.capacity_weights, pl.resident_params, pl.streamed_params) == (2, 32, 48, 0)
    assert pl.spans == ((0,), (1,)) and pl.interchip_inputs_per_token == 8  # 8 inputs cross from chip 0 to 1
    p = nparams(chip_memory_bytes=32, firing_rate=0.5, timesteps=1)
    e = E.neuromorphic_energy(E.Work(1, 3, 0.0, 0.0), G, p)
    assert e["interchip"] == pytest.approx(3 * 8 * 0.5 * 64 * PJ)  # 32-bit message x 2 pJ/bit
    assert e["memory"] == 0.0
    t_ns = (3 * 48 * 0.5 * 3.5 + 3 * 10 * (0.5 * 8.4 + 0.5 * 5.3)) / 256 + 465  # 2 chips x 128 cores
    assert e["static"] == pytest.approx(2 * 3.34 / 32 * t_ns * 1e-9)
    # one chip only: the 8x2 matmul (16 weights) streams from DRAM every pass, computed on chip 0
    one = E.place(G, 32, 8, chips=1)
    assert (one.chips, one.streamed_params, one.spans, one.interchip_inputs_per_token) == (1, 16, ((0,), (0,)), 0)
    e1 = E.neuromorphic_energy(E.Work(2, 2, 0.0, 0.0), G, nparams(chip_memory_bytes=32, chips=1))
    assert e1["memory"] == pytest.approx(2 * 16 * 1 * BIT_DDR4)
    # a matmul split over chips needs its inputs on every part: 4 bytes x 8 / 4 bits = 8 weights per chip
    split = E.place(G, 4, 4)
    assert split.chips == 6 and split.spans == ((0, 1, 2, 3), (4, 5))
    assert split.interchip_inputs_per_token == 4 * 3 + 8 * 2  # parts on chips 1-3; both parts of the second


def test_refetch_multiplies_streamed_weight_traffic_only():
    w = E.Work(passes=3, tokens=3, attention_macs=0.0, kv_bytes=120.0)
    once = E.neuromorphic_energy(w, G, nparams(chip="ideal-ac", timesteps=4))["memory"]
    every = E.neuromorphic_energy(w, G, nparams(chip="ideal-ac", timesteps=4, refetch_weights_per_timestep=True))["memory"]
    # ideal-AC: no chip, every 32-bit weight from DRAM each pass; int8 co-processor: KV / 4
    assert once == pytest.approx((3 * 48 * 4 + 30) * BIT_DDR4)
    assert every == pytest.approx((4 * 3 * 48 * 4 + 30) * BIT_DDR4)
    resident = E.neuromorphic_energy(w, G, nparams(timesteps=4, refetch_weights_per_timestep=True))["memory"]
    assert resident == pytest.approx(30 * BIT_DDR4)  # Loihi holds the weights: nothing to re-fetch


@pytest.mark.parametrize("chip,sop", [("truenorth", 26.0), ("spinnaker", 5.9e6)])
def test_all_in_chips_add_nothing_on_top(chip, sop):
    # Merolla et al. 2014: 26 pJ per synaptic event, total chip energy; van Albada et al. 2018: 5.9 uJ, whole system
    p = nparams(chip=chip)
    assert p.all_in
    e = E.neuromorphic_energy(E.Work(1, 1, 5.0, 40.0), G, p)
    assert e["synaptic_ops"] == pytest.approx(48 * 0.1 * 4 * sop * PJ)
    for d in ("neuron_updates", "spikes", "routing", "interchip", "static"):
        assert e[d] == 0.0, d
    assert e["memory"] == pytest.approx(40 / 4 * BIT_DDR4)  # KV of the co-processor only: no weight DRAM term
    assert e["attention_digital"] == pytest.approx(5 * p.digital_mac_pj * PJ)
    assert E.place(G, p.chip_memory_bytes, p.weight_bits).streamed_params == 0


def test_chip_presets_by_hand():
    t, s, ac = nparams(chip="truenorth"), nparams(chip="spinnaker"), nparams(chip="ideal-ac")
    assert t.chip_memory_bytes * 8 == 256 * 2**20  # 256 M binary synapses
    assert s.chip_memory_bytes == 128 * 2**20 and s.weight_bits == 16  # 128 MB SDRAM per chip
    assert ac.chip_memory_bytes is None and ac.synaptic_op_pj == 0.9
    assert (t.process_node_nm, s.process_node_nm, ac.process_node_nm) == (28.0, 130.0, 45.0)
    loihi = nparams()
    assert loihi.chip_memory_bytes == 128 * 128 * 1024 and loihi.weight_bits == 8  # 128 cores x 128 KB
    assert loihi.static_power_w == pytest.approx(0.104375)


def test_more_timesteps_or_firing_rate_cost_more():
    w = E.decode_work(G, 10, 5)

    def total(**kw):
        return sum(E.neuromorphic_energy(w, G, nparams(**kw)).values())

    assert total(timesteps=1) < total(timesteps=2) < total(timesteps=8)
    assert total(firing_rate=0.01) < total(firing_rate=0.1) < total(firing_rate=0.5)


def test_break_even_firing_rate():
    p = nparams(chip="ideal-ac", timesteps=1, digital_precision="fp32", process_node_nm=45.0)
    # compute only: rate* x 1 x macs x 0.9 pJ = macs x 4.6 pJ -> above 1: ideal ACs always beat fp32 MACs
    assert E.break_even_firing_rate(G, p) == pytest.approx(4.6 / 0.9)
    # int8 at 45 nm: 0.23 / 0.9
    assert E.break_even_firing_rate(G, nparams(chip="ideal-ac", timesteps=1, process_node_nm=45.0)) == \
        pytest.approx(0.23 / 0.9)
    loihi = nparams(timesteps=4, neuron_update_active_pj=0.0, neuron_update_inactive_pj=0.0,
                    digital_precision="fp32", process_node_nm=45.0)
    r = E.break_even_firing_rate(G, loihi)
    snn = 4 * r * (48 * 23.6 + 12 * (1.7 + 3.5))  # at r, synaptic ops + spikes + routing == digital MACs
    assert snn == pytest.approx(48 * 4.6)
    # with Loihi's inactive neuron updates (52 pJ each, every neuron every timestep) it never breaks even here
    assert E.break_even_firing_rate(G, nparams()) is None


# ---- digital reference ----------------------------------------------------------------------------

def test_digital_mac_by_precision_and_node():
    assert P.digital_mac_pj("fp32", 45) == pytest.approx(4.6)  # Horowitz 2014: 0.9 add + 3.7 mult
    assert P.digital_mac_pj("fp16", 45) == pytest.approx(1.5)  # 0.4 + 1.1
    assert P.digital_mac_pj("int8", 45) == pytest.approx(0.23)  # 0.03 + 0.2
    assert P.digital_mac_pj("int8", 7) == pytest.approx(0.23 * 7 / 45)  # linear in the node
    p = nparams(digital_mac_pj=1.0)
    assert p.digital_mac_pj == 1.0 and p.sources["digital_mac_pj"] == "profile [sim] digital_mac_pj"


def test_digital_reference_by_hand():
    p = nparams(dram_pj_per_bit=10.0)  # int8 at 14 nm
    w = E.Work(passes=2, tokens=3, attention_macs=5.0, kv_bytes=40.0)
    mac = 0.23 * 14 / 45
    ref = E.digital_reference_energy(w, G, p)
    assert ref["macs"] == pytest.approx((3 * 48 + 5) * mac * PJ)
    assert ref["memory"] == pytest.approx((2 * 48 * 1 + 40 / 4) * 8 * 10 * PJ)  # int8 weights, int8 KV
    on_chip = E.digital_reference_energy(w, G, p, weights_on_chip=True)
    assert on_chip["sram"] == pytest.approx(2 * 48 * 8 * 100 / 64 * PJ)  # Horowitz: 100 pJ per 64 bits, 1 MB SRAM
    assert on_chip["memory"] == pytest.approx(40 / 4 * 8 * 10 * PJ)
    fp32 = E.digital_reference_energy(w, G, nparams(dram_pj_per_bit=10.0, digital_precision="fp32",
                                                    process_node_nm=45.0))
    assert fp32["macs"] == pytest.approx(149 * 4.6 * PJ) and fp32["memory"] == pytest.approx((2 * 48 * 4 + 40) * 80 * PJ)


# ---- optical --------------------------------------------------------------------------------------

H_C = 6.62607015e-34 * 299792458.0


def test_optical_physics_energy_by_hand():
    p = oparams(enob=6, array_size=4, array_count=1, adc_fom_fj_per_step=10.0, laser_wall_plug_efficiency=0.25,
                digital_precision="fp32", process_node_nm=45.0, dram_pj_per_bit=10.0, hold_mw_per_weight=2.0,
                modulation_ghz=1.0)
    assert p.conversion_pj == pytest.approx(0.64) and p.photons_per_readout == 3 * 4**6
    w = E.Work(passes=2, tokens=3, attention_macs=7.0, kv_bytes=50.0)
    e = E.optical_energy(w, G, p)
    assert set(e) == set(E.OPTICAL_DOMAINS["physics"])
    assert not E.weights_resident(G, p)  # 48 weights > 4x4 array
    # shot-noise limit: 3 x 4^6 photons of 1550 nm per digitised partial sum; 12 partial sums per token
    assert e["laser"] == pytest.approx(3 * 12 * 3 * 4**6 * H_C / 1550e-9 / 0.25)
    assert e["adc_dac"] == pytest.approx(3 * 28 * 0.64 * PJ)
    assert e["weight_programming"] == pytest.approx(2 * 48 * 0.64 * PJ)
    # hold: 2 mW x 16 weights on the array x (3 tokens x 4 tiles / 1 GHz)
    assert e["weight_hold"] == pytest.approx(2e-3 * 16 * 3 * 4 / 1e9)
    assert e["attention_digital"] == pytest.approx(7 * 4.6 * PJ)
    assert e["memory"] == pytest.approx((2 * 48 * 1 + 50) * 8 * 10 * PJ)  # int8 weights re-read, fp32 KV
    measured = E.optical_energy(w, G, oparams(array_size=4, laser_optical_fj_per_op=20.0,
                                              laser_wall_plug_efficiency=0.25))
    assert measured["laser"] == pytest.approx(3 * 48 * 2 * 20e-15 / 0.25)


def test_laser_energy_grows_as_4_pow_enob():
    w = E.decode_work(G, 10, 5)
    lasers = [E.optical_energy(w, G, oparams(enob=b, array_size=4))["laser"] for b in (4, 5, 6, 8)]
    assert lasers[1] / lasers[0] == pytest.approx(4.0) and lasers[3] / lasers[2] == pytest.approx(16.0)
    # 1 photon at 1550 nm is 0.8 eV
    assert P.optical_params().photon_j == pytest.approx(0.7999 * 1.602176634e-19, rel=1e-3)


def test_optical_resident_weights_are_neither_programmed_nor_reread():
    p = oparams(array_size=8, array_count=1, dram_pj_per_bit=10.0, digital_precision="fp32")  # 64 >= 48 weights
    assert E.weights_resident(G, p)
    e = E.optical_energy(E.Work(2, 2, 0.0, 50.0), G, p)
    assert e["weight_programming"] == 0.0
    assert e["memory"] == pytest.approx(50 * 8 * 10 * PJ)
    # all 48 weights held for 2 tokens x 2 tiles at 10 GHz, 12.385 mW each (Harris et al. 2014: P_pi / 2)
    assert e["weight_hold"] == pytest.approx(24.77 / 2 * 1e-3 * 48 * 2 * 2 / 10e9)


def test_optical_lightmatter_energy_by_hand():
    p = oparams(optical_model="lightmatter", dram_pj_per_bit=10.0, digital_precision="fp32", process_node_nm=45.0)
    assert p.op_pj == pytest.approx(79.6 / 65.5e12 * 1e12)  # Ahmed et al. 2025
    e = E.optical_energy(E.Work(1, 2, 4.0, 20.0), G, p)
    assert set(e) == set(E.OPTICAL_DOMAINS["lightmatter"])
    assert e["optical_system"] == pytest.approx(2 * 48 * 2 * p.op_pj * PJ)
    assert e["attention_digital"] == pytest.approx(4 * 4.6 * PJ)  # the same co-processor as neuromorphic-sim
    assert e["memory"] == pytest.approx((48 + 20) * 8 * 10 * PJ)


def test_attention_is_costed_the_same_way_in_both_backends():
    w = E.Work(1, 1, 123.0, 0.0)
    for over in ({}, {"digital_precision": "fp16", "process_node_nm": 7.0}):
        n = E.neuromorphic_energy(w, G, nparams(**over))["attention_digital"]
        o = E.optical_energy(w, G, oparams(**{"process_node_nm": 14.0, **over}))["attention_digital"]
        assert n == pytest.approx(o) == pytest.approx(123 * nparams(**over).digital_mac_pj * PJ)


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


# ---- memory share and DRAM sensitivity ------------------------------------------------------------

def llama_tiny_geometry():
    cfg = LlamaConfig(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512)
    H, hd, F, V = 64, 16, 176, 512
    mats = []
    for _ in range(2):
        mats += [(H, (4 + 2 * 2) * hd), (4 * hd, H), (H, F), (H, F), (F, H)]
    mats.append((H, V))
    c0 = decode_cost(cfg, 0, 1)
    return E.Geometry(tuple(mats), 2 * 2 * 4 * hd, c0["weight_bytes_per_step"], c0["kv_bytes_per_token"], 4.0)


def test_llama_tiny_on_loihi_with_resident_weights_is_not_about_memory():
    from greenbench.backends.simulated import dram_sensitivity

    g = llama_tiny_geometry()
    p = nparams()
    assert E.place(g, p.chip_memory_bytes, p.weight_bits).streamed_params == 0  # 124,928 8-bit weights fit
    step = E.decode_work(g, 32, 1)
    e = E.neuromorphic_energy(step, g, p)
    share = E.memory_share(e)
    assert share == pytest.approx(e["memory"] / sum(e.values())) and share < 0.5
    # the KV cache by hand: 33 positions x 2 x 2 layers x 2 kv heads x 16 x 1 byte (int8) x 8 bits x 20.3125 pJ
    assert e["memory"] == pytest.approx(33 * 128 * BIT_DDR4)
    # the digital reference streaming its weights from DRAM is almost all memory; with them in SRAM it is not
    assert E.memory_share(E.digital_reference_energy(step, g, p)) > 0.99
    assert E.memory_share(E.digital_reference_energy(step, g, p, weights_on_chip=True)) < 0.5
    line = dram_sensitivity(lambda w, q: E.neuromorphic_energy(w, g, q), p, step)
    assert line["low_pj_per_bit"] == 3.9 and line["high_pj_per_bit"] == 40.625
    assert line["j_per_token_low"] < line["j_per_token"] < line["j_per_token_high"]
    assert line["j_per_token"] == pytest.approx(sum(e.values()))
    # a streamed model (ideal-AC: no on-chip memory) is the opposite
    assert E.memory_share(E.neuromorphic_energy(step, g, nparams(chip="ideal-ac"))) > 0.9


@pytest.mark.parametrize("override", [None, 1.0, 100.0])
def test_dram_sensitivity_brackets_the_reported_value(override):
    from greenbench.backends.simulated import dram_sensitivity

    g = llama_tiny_geometry()
    step = E.decode_work(g, 20, 1)
    for p, fn in ((oparams() if override is None else oparams(dram_pj_per_bit=override), E.optical_energy),
                  (nparams() if override is None else nparams(dram_pj_per_bit=override), E.neuromorphic_energy)):
        line = dram_sensitivity(lambda w, q: fn(w, g, q), p, step)
        assert line["low_pj_per_bit"] <= p.dram_pj_per_bit <= line["high_pj_per_bit"]
        assert line["j_per_token_low"] <= line["j_per_token"] <= line["j_per_token_high"]
        assert line["j_per_token"] == pytest.approx(sum(fn(step, g, p).values()))
        assert set(line["presets_j_per_token"]) == set(P.DRAM)


def test_dram_presets():
    assert P.neuromorphic_params().dram_pj_per_bit == pytest.approx(1300 / 64)  # Horowitz, DDR class
    hbm = nparams(dram="hbm2e")
    assert hbm.dram_pj_per_bit == 3.9 and "O'Connor" in hbm.sources["dram_pj_per_bit"]
    assert nparams(dram="hbm2e", dram_pj_per_bit=5.0).dram_pj_per_bit == 5.0
    assert P.DRAM_RANGE_PJ_PER_BIT == (3.9, 2600 / 64)
    assert tuple(P.DRAM) == profile_mod.DRAM_PRESETS


# ---- parameters -----------------------------------------------------------------------------------

def test_presets_match_the_profile_schema():
    assert tuple(P.CHIPS) == profile_mod.SIM_CHIPS
    assert tuple(E.OPTICAL_DOMAINS) == profile_mod.OPTICAL_MODELS
    assert tuple(P.DIGITAL_MAC_PJ_45NM) == profile_mod.DIGITAL_PRECISIONS
    sim_keys = {f.name for f in dataclasses.fields(SimSpec)}
    n = {f.name for f in dataclasses.fields(P.NeuromorphicParams)} - {"sources"}
    o = {f.name for f in dataclasses.fields(P.OpticalParams)} - {"sources"}
    assert n | o == sim_keys  # every [sim] key is used, and every figure is overridable
    assert set(profile_mod._SIM_KEYS_ADDED) < sim_keys


def test_every_default_names_its_source():
    for p in (P.neuromorphic_params(), P.optical_params(), *(nparams(chip=c) for c in P.CHIPS)):
        for key, src in p.sources.items():
            assert src and (key == "chip" or not src.startswith("profile")), key
    for key, (_, src) in P.DEFAULTS.items():
        assert len(src) > 10, key
    for chip in P.CHIPS.values():
        for key, (_, src) in chip.items():
            assert len(src) > 10, key
    assert P.neuromorphic_params().sources["synaptic_op_pj"].startswith("Davies et al. 2018, Table 2")
    assert "Frady" in P.neuromorphic_params().sources["static_power_w"]
    assert "Murmann" in P.optical_params().sources["adc_fom_fj_per_step"]
    assert "Hamerly" in P.optical_params().sources["laser_optical_fj_per_op"]
    assert "Harris" in P.optical_params().sources["hold_mw_per_weight"]
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
    with pytest.raises(ValueError, match="lpddr9"):
        P.optical_params(SimSpec(dram="lpddr9"))


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
    assert dataclasses.replace(s.work, host_s=0.0) == pre + dec
    assert s.work.host_s > 0  # the host's time of each pass is measured (Loihi's static term uses its own model)
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


def test_static_power_without_a_latency_model_uses_host_time():
    inner = FakeInner(prompt_len=3, batch=1)
    meter = SimulatedMeter("neuromorphic-sim", E.NEUROMORPHIC_DOMAINS)
    p = nparams(chip="ideal-ac", static_power_w=2.0)
    assert p.timing is None
    s = SimulatedSession(inner, meter, G, lambda w: E.neuromorphic_energy(w, G, p), {})
    meter.open()
    s.reset()
    s.decode(s.prefill(), 3)
    snap = meter.snapshot()
    assert snap.joules["static"] == pytest.approx(2.0 * s.work.host_s) and snap.joules["static"] > 0
