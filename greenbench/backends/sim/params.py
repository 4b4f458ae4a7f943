"""The published figures behind the simulated backends, and their resolution against ``[sim]``.

Every default names its source: the paper (and table or page) it comes from or, where no published
figure exists, the word ``assumption`` and why that value was chosen. A profile's ``[sim]`` table
overrides any figure; the result then records ``profile [sim] <key>`` as that figure's source.
``energy-parameters.md`` (the project's starting table) is followed except where a docstring or source
string below cites a better reading of the primary source; those departures are:

- Loihi's per-event energies are in Davies et al. 2018, **Table 2** (pre-silicon SDF/SPICE
  simulations at 0.75 V, "consistent with early post-silicon characterization"), not Table 1; the
  synaptic-op figure is the table's minimum; a tile hop costs 3.0 pJ east-west and 4.0 pJ north-south
  (3.5 pJ is their mean); the table also gives neuron updates (81 pJ active, 52 pJ inactive) and
  timing, which this model now uses.
- TrueNorth's 26 pJ and SpiNNaker's 5.9 uJ per synaptic event are whole-chip / whole-system figures
  (total energy over synaptic events at one operating point): spikes, routing, neuron updates, static
  power and the chips' own memory are inside them, so no term is added on top.
- The digital reference is no longer an fp32 MAC at 45 nm against a 14 nm chip: precision (fp32, fp16,
  int8, Horowitz 2014) and process node are parameters, scaled by :data:`NODE_SCALING_RULE`.
- The photonic laser energy follows the shot-noise limit for the requested ENOB (Hamerly et al. 2019)
  instead of Ahmed et al.'s measured optical power per op (still available as ``laser_optical_fj_per_op``).

Terms:
    synaptic op (SOP): one accumulate triggered by one incoming spike at one synapse. Following the
        convention of SpikeGPT (arXiv:2302.13939), Spikformer and SpikingBERT, a layer that costs M
        multiply-accumulates (MACs) as an ANN costs ``M x firing_rate x timesteps`` SOPs as an SNN.
    firing rate: the fraction of neurons that spike in one timestep.
    timesteps: how many times the spiking network is stepped per input (per token here).
    neuron update: one step of one neuron's membrane state, every neuron every timestep; "active"
        (the neuron spikes, at the firing rate) or "inactive" (Davies et al. 2018 price them apart).
    all-in figure: a chip's total energy divided by its synaptic events at one operating point
        (TrueNorth, SpiNNaker): it already contains everything but off-chip traffic.
    on-chip capacity: the synaptic memory of one chip, in bytes; a model whose weights (at
        ``weight_bits`` each) exceed it needs more chips, else its excess weights stream from DRAM.
    ENOB: effective number of bits of an analog signal path (here: the photonic array's DACs/ADCs).
    Walden figure of merit (FOM): ADC energy per conversion step; one conversion at ENOB bits costs
        ``FOM x 2**ENOB``.
    wall-plug efficiency: optical power out of a laser / electrical power in.
    hold power: the electrical power that keeps a programmed weight in place (a thermo-optic phase
        shifter's heater), paid for as long as the array computes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

CITATIONS: dict[str, str] = {
    "horowitz2014": "M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014 (45 nm)",
    "davies2018": "M. Davies et al., \"Loihi: a neuromorphic manycore processor with on-chip learning\", "
    "IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon energy and timing) and p. 95 (16 MB synaptic memory)",
    "frady2020": "E. P. Frady et al., \"Neuromorphic nearest-neighbor search using Intel's Pohoiki Springs\", "
    "NICE 2020, Table 1 (Loihi static power)",
    "merolla2014": "P. A. Merolla et al., \"A million spiking-neuron integrated circuit with a scalable "
    "communication network and interface\", Science 345:668, 2014 (26 pJ per synaptic event, total energy; "
    "256 M synapses; supplementary S5: off-chip bit energy)",
    "vanalbada2018": "S. J. van Albada et al., Front. Neurosci. 12:291, 2018 (SpiNNaker vs NEST, whole system)",
    "furber2014": "S. B. Furber et al., \"The SpiNNaker project\", Proc. IEEE 102(5):652-665, 2014 (128 MB SDRAM "
    "per chip, 130 nm)",
    "spikegpt2023": "R.-J. Zhu et al., \"SpikeGPT\", arXiv:2302.13939 (synaptic ops = MACs x firing rate x timesteps)",
    "spikformer2023": "Z. Zhou et al., \"Spikformer: when spiking neural network meets Transformer\", ICLR 2023",
    "yan2024": "Yan et al., arXiv:2409.08290 (SNNs save energy only below ~6.4 % spike rate once data "
    "movement is counted)",
    "oconnor2017": "M. O'Connor et al., \"Fine-grained DRAM: energy-efficient DRAM for extreme bandwidth "
    "systems\", MICRO 2017 (HBM2 ~3.9 pJ/bit)",
    "yan2020": "M. Yan et al., \"HyGCN: a GCN accelerator with hybrid architecture\", HPCA 2020 (7 pJ/bit HBM)",
    "ahmed2025": "S. R. Ahmed et al., \"Universal photonic artificial intelligence acceleration\", Nature 640:368, "
    "2025 (65.5 TOPS at 78 W electrical + 1.6 W optical)",
    "murmann": "B. Murmann, \"ADC Performance Survey\" (Walden FOM ~10 fJ/conversion-step)",
    "nahmias2020": "M. A. Nahmias et al., \"Photonic multiply-accumulate operations for neural networks\", "
    "IEEE JSTQE 26(1), 2020 (~4-8 effective bits)",
    "hamerly2019": "R. Hamerly et al., \"Large-scale optical neural networks based on photoelectric "
    "multiplication\", Phys. Rev. X 9:021032, 2019 (shot-noise limit: energy per MAC ~ h nu SNR^2 / fan-in; "
    "~50 zJ/MAC)",
    "harris2014": "N. C. Harris et al., \"Efficient, compact and low loss thermo-optic phase shifter in silicon\", "
    "Opt. Express 22(9):10487, 2014 (P_pi = 24.77 mW)",
    "kaplan2020": "J. Kaplan et al., arXiv:2001.08361, Table 1 (MACs per token; greenbench.models.cost)",
}

# ---------------------------------------------------------------------------------------------
# Digital reference and co-processor

#: Horowitz 2014, 45 nm: a multiply-accumulate is one multiply and one add (pJ).
DIGITAL_MAC_PJ_45NM: dict[str, float] = {
    "fp32": 0.9 + 3.7,  # fp32 add 0.9 + mult 3.7
    "fp16": 0.4 + 1.1,  # fp16 add 0.4 + mult 1.1
    "int8": 0.03 + 0.2,  # int8 add 0.03 + mult 0.2
}
PRECISION_BITS = {"fp32": 32, "fp16": 16, "int8": 8}
#: Horowitz 2014, 45 nm: a 64-bit read of a 1 MB SRAM costs 100 pJ (8 KB: 10 pJ, 32 KB: 20 pJ).
SRAM_PJ_PER_BIT = 100.0 / 64
HOROWITZ_NODE_NM = 45.0
NODE_SCALING_RULE = (
    "E(node) = E(45 nm) x node / 45: switching energy C V^2 with the capacitance proportional to the feature "
    "size and the supply voltage held at its 45 nm value, since voltage scaling stalled (Horowitz 2014). A first "
    "approximation: it flatters nodes below ~20 nm, where wires and SRAM scale less than logic. DRAM energy is "
    "not scaled."
)


def digital_mac_pj(precision: str, node_nm: float) -> float:
    """One MAC of ``precision`` (fp32/fp16/int8) at ``node_nm``: Horowitz's 45 nm figure scaled by
    :data:`NODE_SCALING_RULE`."""
    return DIGITAL_MAC_PJ_45NM[precision] * float(node_nm) / HOROWITZ_NODE_NM


# ---------------------------------------------------------------------------------------------
# Off-chip memory

#: DRAM technology presets: pJ per bit read, the (low, high) end of the published range, and the source.
DRAM: dict[str, tuple[float, tuple[float, float], str]] = {
    "ddr4": (
        1300.0 / 64,
        (1300.0 / 64, 2600.0 / 64),
        "Horowitz 2014: DRAM 1.3-2.6 nJ per 64-bit access (20.3-40.6 pJ/bit), the DDR3/DDR4 class; the low end, "
        "so the memory term is not overstated",
    ),
    "hbm2e": (
        3.9,
        (3.9, 7.0),
        "O'Connor et al. 2017 (MICRO): HBM2 ~3.9 pJ/bit, the most energy-efficient DRAM of its time; Yan et al. "
        "2020 (HyGCN, HPCA) use 7 pJ/bit for HBM access, the high end. HBM2e keeps HBM2's interface",
    ),
}
DRAM_PJ_PER_BIT = DRAM["ddr4"][0]
#: The lowest and highest pJ/bit of every preset's range: the span of the DRAM sensitivity line.
DRAM_RANGE_PJ_PER_BIT = (min(r[1][0] for r in DRAM.values()), max(r[1][1] for r in DRAM.values()))

# Ahmed et al. 2025: 65.5 TOPS at 78 W electrical + 1.6 W optical.
_LM_TOPS, _LM_ELECTRICAL_W, _LM_OPTICAL_W = 65.5e12, 78.0, 1.6
LIGHTMATTER_PJ_PER_OP = (_LM_ELECTRICAL_W + _LM_OPTICAL_W) / _LM_TOPS * 1e12  # ~1.215 pJ/op, all-in
LIGHTMATTER_OPTICAL_FJ_PER_OP = _LM_OPTICAL_W / _LM_TOPS * 1e15  # ~24.4 fJ of light per op
QUANTUM_LIMIT_J_PER_MAC = 50e-21  # Hamerly et al. 2019
YAN_BREAK_EVEN_SPIKE_RATE = 0.064  # Yan et al. 2024
PLANCK_J_S = 6.62607015e-34  # exact (SI 2019)
LIGHT_M_PER_S = 299792458.0  # exact

_HOROWITZ = "Horowitz 2014 (energy-parameters.md, Digital CMOS reference)"
_INTERCHIP = ("assumption: a 32-bit spike message at 2 pJ/bit, the on-to-off-chip bit energy Merolla et al. 2014 "
              "(supplementary S5) report for TrueNorth; no inter-chip figure is published for this chip")

#: Neuromorphic chip presets: per-event energies (pJ), static power, on-chip capacity, and their sources.
CHIPS: dict[str, dict[str, tuple[object, str]]] = {
    "loihi": {
        "synaptic_op_pj": (23.6, "Davies et al. 2018, Table 2: 23.6 pJ per synaptic spike op (minimum; Loihi, 14 nm, "
                           "pre-silicon at 0.75 V)"),
        "spike_pj": (1.7, "Davies et al. 2018, Table 2: 1.7 pJ per spike within a tile"),
        "hop_pj": (3.5, "Davies et al. 2018, Table 2: 3.0 pJ (east-west) / 4.0 pJ (north-south) per tile hop; mean"),
        "hops_per_spike": (1.0, "assumption: one tile hop per spike (depends on placement; not published "
                           "per workload)"),
        "neuron_update_active_pj": (81.0, "Davies et al. 2018, Table 2: 81 pJ per active neuron update"),
        "neuron_update_inactive_pj": (52.0, "Davies et al. 2018, Table 2: 52 pJ per inactive neuron update"),
        "static_power_w": (3.34 / 32, "Frady et al. 2020, Table 1: 3.34 W static (leakage) for the 32-chip board "
                           "their figures extrapolate from = 104 mW per chip"),
        "chip_memory_bytes": (16 * 2**20, "Davies et al. 2018, p. 95: 16 MB of synaptic memory per chip "
                              "(128 cores x 128 KB); weight bits only, the synapse list overhead is not counted"),
        "weight_bits": (8, "Davies et al. 2018: Loihi weights are 1-9 bits; 8 bits, as an int8 model would use"),
        "interchip_pj_per_spike": (64.0, _INTERCHIP),
        "node_nm": (14.0, "Davies et al. 2018: Intel 14 nm FinFET"),
    },
    "truenorth": {
        "synaptic_op_pj": (26.0, "Merolla et al. 2014: 26 pJ per synaptic event, total (passive + active) chip "
                           "energy at 20 Hz and 128 active synapses per neuron (TrueNorth, 28 nm)"),
        "spike_pj": (0.0, "inside the all-in synaptic event figure (Merolla et al. 2014)"),
        "hop_pj": (0.0, "inside the all-in synaptic event figure (Merolla et al. 2014)"),
        "hops_per_spike": (0.0, "inside the all-in synaptic event figure (Merolla et al. 2014)"),
        "neuron_update_active_pj": (0.0, "inside the all-in synaptic event figure (Merolla et al. 2014)"),
        "neuron_update_inactive_pj": (0.0, "inside the all-in synaptic event figure (Merolla et al. 2014)"),
        "static_power_w": (0.0, "inside the all-in synaptic event figure (leakage included, Merolla et al. 2014)"),
        "chip_memory_bytes": (256 * 2**20 // 8, "Merolla et al. 2014: 256 M binary synapses per chip = 32 MiB of "
                              "weight bits (a b-bit weight takes b synapses)"),
        "weight_bits": (8, "assumption: 8-bit weights, bit-sliced over binary synapses"),
        "interchip_pj_per_spike": (64.0, _INTERCHIP),
        "node_nm": (28.0, "Merolla et al. 2014: Samsung 28 nm"),
    },
    "spinnaker": {
        "synaptic_op_pj": (5.9e6, "van Albada et al. 2018: ~5.9 uJ per synaptic event, whole SpiNNaker 1 system"),
        "spike_pj": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "hop_pj": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "hops_per_spike": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "neuron_update_active_pj": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "neuron_update_inactive_pj": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "static_power_w": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "chip_memory_bytes": (128 * 2**20, "Furber et al. 2014: 128 MB SDRAM per SpiNNaker chip, where its synapses "
                              "live (inside the whole-system figure)"),
        "weight_bits": (16, "assumption: 16-bit weights, the width of SpiNNaker's synaptic row words"),
        "interchip_pj_per_spike": (0.0, "inside the whole-system figure (van Albada et al. 2018)"),
        "node_nm": (130.0, "Furber et al. 2014: UMC 130 nm"),
    },
    "ideal-ac": {
        "synaptic_op_pj": (0.9, f"{_HOROWITZ}: fp32 add 0.9 pJ, an accumulate (AC) per synaptic op, as SpikeGPT "
                           "and Spikformer count it"),
        "spike_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "hop_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "hops_per_spike": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "neuron_update_active_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "neuron_update_inactive_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "static_power_w": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "chip_memory_bytes": (None, "no chip: the ideal-AC convention has no on-chip memory, so every weight is read "
                              "from DRAM each pass"),
        "weight_bits": (32, "the convention's fp32 accumulates: 32-bit weights"),
        "interchip_pj_per_spike": (0.0, "no chip: not modelled"),
        "node_nm": (45.0, "Horowitz 2014's 45 nm, where the 0.9 pJ accumulate comes from"),
    },
}
#: Chips whose synaptic-event figure is a total over everything on the chip (see module doc).
ALL_IN_CHIPS = ("truenorth", "spinnaker")

#: Timing of a Loihi core (Davies et al. 2018, Table 2), the latency model behind its static energy:
#: per timestep, every core works through its share of synaptic ops and neuron updates, then the mesh
#: synchronises. Other chips have no such model; their static term (0 unless set) uses host time.
LOIHI_TIMING = {
    "cores_per_chip": 128,
    "synaptic_op_ns": 3.5,  # Table 2: time per synaptic spike op (max)
    "neuron_update_active_ns": 8.4,  # Table 2: time per neuron update, active
    "neuron_update_inactive_ns": 5.3,  # Table 2: inactive
    "barrier_ns": 465.0,  # Table 2: mesh-wide barrier sync, 32 tiles (one chip)
    "source": "Davies et al. 2018, Table 2: 3.5 ns per synaptic op, 8.4 / 5.3 ns per active / inactive neuron "
    "update, 465 ns mesh-wide barrier per timestep (32 tiles); work spread evenly over 128 cores per chip "
    "(optimistic); the multi-chip barrier (14-16 us across 256-768 chips, Frady et al. 2020) and layer "
    "pipelining are not modelled",
}
TIMING = {"loihi": LOIHI_TIMING}

_COMMON: dict[str, tuple[object, str]] = {
    "dram": ("ddr4", "default DRAM preset (see dram_pj_per_bit)"),
    "digital_precision": ("int8", "int8: the like-for-like digital baseline for <= 8-bit synapses and ~6-bit analog "
                          "paths (Horowitz 2014: 0.03 pJ add + 0.2 pJ mult at 45 nm)"),
    "measure_accuracy": (True, "run the perturbed model at prepare time and report greedy-token agreement"),
}

#: Defaults shared by both backends or specific to one, with their sources.
DEFAULTS: dict[str, tuple[object, str]] = {
    **_COMMON,
    "chip": ("loihi", "default chip preset (the only preset with per-op, per-spike, per-hop and timing figures)"),
    "firing_rate": (0.1, "assumption: 10 % of neurons spike per timestep; above Yan et al.'s ~6.4 % break-even, "
                    "so the default does not flatter the spiking model"),
    "timesteps": (4, "assumption: 4 timesteps, the setting of Spikformer's (ICLR 2023) ImageNet results"),
    "refetch_weights_per_timestep": (False, "assumption: weights streamed from DRAM (those beyond on-chip capacity) "
                                     "are read once per forward pass and held across timesteps (optimistic; Yan et "
                                     "al. 2024 show re-fetching per timestep can remove the advantage)"),
    "chips": (None, "as many chips as the weights need (ceil(weight bits / chip_memory_bytes x 8))"),
    "optical_model": ("physics", "default optical model: laser + ADC/DAC + weight programming and hold + digital "
                      "attention + memory, so the breakdown is visible"),
    "enob": (6, "Nahmias et al. 2020: photonic MACs reach ~4-8 effective bits; 6 is mid-range"),
    "adc_fom_fj_per_step": (10.0, "Murmann ADC survey: Walden FOM ~10 fJ/conversion-step "
                            "(8 bit ~2.5 pJ, 6 bit ~0.6 pJ)"),
    "array_size": (128, "assumption: a 128 x 128 weight-stationary photonic array"),
    "array_count": (1, "assumption: one array"),
    "wavelength_nm": (1550.0, "assumption: 1550 nm, the telecom C band of silicon photonics"),
    "laser_optical_fj_per_op": (None, "the shot-noise limit for the ENOB (Hamerly et al. 2019): 3 x 4^ENOB photons "
                                "per digitised partial sum; set it (e.g. 24.4, Ahmed et al. 2025's measured optical "
                                "power per op) to use a measured figure"),
    "laser_wall_plug_efficiency": (0.2, "assumption: 20 %, inside the 10-30 % range of energy-parameters.md"),
    "hold_mw_per_weight": (24.77 / 2, "Harris et al. 2014: a thermo-optic phase shifter needs P_pi = 24.77 mW; a "
                           "weight holds half of pi on average (one shifter per weight, assumption)"),
    "modulation_ghz": (10.0, "assumption: 10 GHz input modulation and detection, the order of silicon-photonic "
                       "modulators and photodiodes; sets the modelled compute time the hold power is paid for"),
    "op_pj": (LIGHTMATTER_PJ_PER_OP, "Ahmed et al. 2025: (78 W electrical + 1.6 W optical) / 65.5 TOPS "
              "= 1.215 pJ/op, all-in"),
    "ops_per_mac": (2.0, "convention: TOPS figures count a MAC as two ops (multiply + add)"),
    "noise_seed": (0, "seed of the first noise draw (seed k's node i uses noise_seed + 10000 k + i)"),
    "accuracy_seeds": (5, "5 noise seeds: the fewest for a t interval that can exclude chance (t_0.975,4 = 2.78)"),
}

#: Optical-only figures of DEFAULTS with their optical-specific sources where the neuromorphic ones differ.
_OPTICAL_OVERRIDES: dict[str, tuple[object, str]] = {
    "weight_bits": (8, "assumption: int8 weights in DRAM, enough for <= 8-bit DACs"),
    "process_node_nm": (45.0, "Horowitz 2014's 45 nm, unscaled: no node is published for a photonic accelerator's "
                        "digital side (set process_node_nm to compare at another node)"),
}


@dataclass(frozen=True)
class NeuromorphicParams:
    """Resolved ``neuromorphic-sim`` figures (energies in pJ, power in W, capacity in bytes)."""

    chip: str
    firing_rate: float
    timesteps: int
    synaptic_op_pj: float
    spike_pj: float
    hop_pj: float
    hops_per_spike: float
    neuron_update_active_pj: float
    neuron_update_inactive_pj: float
    static_power_w: float
    chip_memory_bytes: int | None
    weight_bits: int
    chips: int | None
    interchip_pj_per_spike: float
    refetch_weights_per_timestep: bool
    dram: str
    dram_pj_per_bit: float
    digital_precision: str
    process_node_nm: float
    digital_mac_pj: float  # the attention co-processor and the digital reference beside the result
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def all_in(self) -> bool:
        """Whether the synaptic-event figure is a whole-chip total (no memory, neuron or static term added)."""
        return self.chip in ALL_IN_CHIPS

    @property
    def timing(self) -> dict | None:
        """The chip's latency model (:data:`TIMING`), or None (static energy then uses host time)."""
        return TIMING.get(self.chip)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        d["all_in"] = self.all_in
        return d


@dataclass(frozen=True)
class OpticalParams:
    """Resolved ``optical-sim`` figures (energies in pJ or fJ as named)."""

    optical_model: str
    enob: int
    adc_fom_fj_per_step: float
    array_size: int
    array_count: int
    wavelength_nm: float
    laser_optical_fj_per_op: float | None
    laser_wall_plug_efficiency: float
    hold_mw_per_weight: float
    modulation_ghz: float
    op_pj: float
    ops_per_mac: float
    weight_bits: int
    dram: str
    dram_pj_per_bit: float
    digital_precision: str
    process_node_nm: float
    digital_mac_pj: float
    noise_seed: int
    accuracy_seeds: int
    measure_accuracy: bool
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def conversion_pj(self) -> float:
        """Energy of one DAC or ADC conversion at ``enob`` bits: FOM x 2**ENOB (Murmann)."""
        return self.adc_fom_fj_per_step * 2.0**self.enob / 1000.0

    @property
    def photons_per_readout(self) -> float:
        """Photons one detector must collect for a partial sum resolved to ``enob`` bits: ``3 x 4^ENOB``.

        An ideal B-bit converter over ``[-FS, FS]`` has quantisation noise ``2 FS 2^-B / sqrt(12) =
        FS 2^-B / sqrt(3)`` (the LSB over sqrt(12)); shot noise of ``n`` photons at full scale is ``FS /
        sqrt(n)``. Shot noise no larger than the converter's needs ``n >= 3 x 4^B``: the optical energy
        grows as 4^ENOB, the SNR^2 dependence of Hamerly et al. 2019's standard quantum limit. Ideal
        detectors (quantum efficiency 1, no loss): a lower bound.
        """
        return 3.0 * 4.0**self.enob

    @property
    def photon_j(self) -> float:
        """Energy of one photon at ``wavelength_nm``: h c / lambda."""
        return PLANCK_J_S * LIGHT_M_PER_S / (self.wavelength_nm * 1e-9)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        d["conversion_pj"] = self.conversion_pj
        d["photons_per_readout"] = self.photons_per_readout
        return d


def _pick(spec, key: str, *tables: dict) -> tuple[object, str]:
    value = getattr(spec, key, None) if spec is not None else None
    if value is not None:
        return value, f"profile [sim] {key}"
    for table in tables:
        if table is not None and key in table:
            return table[key]
    raise KeyError(key)


def _resolve_common(spec, values: dict, sources: dict, *tables: dict) -> None:
    """DRAM, digital precision and node, and the digital MAC they give (shared by both backends)."""
    dram, sources["dram"] = _pick(spec, "dram", *tables)
    if dram not in DRAM:
        raise ValueError(f"unknown DRAM preset {dram!r}; valid: {', '.join(DRAM)}")
    values["dram"] = dram
    if getattr(spec, "dram_pj_per_bit", None) is not None:
        values["dram_pj_per_bit"], sources["dram_pj_per_bit"] = float(spec.dram_pj_per_bit), "profile [sim] dram_pj_per_bit"
    else:
        values["dram_pj_per_bit"], sources["dram_pj_per_bit"] = DRAM[dram][0], f"DRAM preset {dram}: {DRAM[dram][2]}"
    precision, sources["digital_precision"] = _pick(spec, "digital_precision", *tables)
    if precision not in DIGITAL_MAC_PJ_45NM:
        raise ValueError(f"unknown digital precision {precision!r}; valid: {', '.join(DIGITAL_MAC_PJ_45NM)}")
    values["digital_precision"] = precision
    node, sources["process_node_nm"] = _pick(spec, "process_node_nm", *tables)
    values["process_node_nm"] = float(node)
    if getattr(spec, "digital_mac_pj", None) is not None:
        values["digital_mac_pj"], sources["digital_mac_pj"] = float(spec.digital_mac_pj), "profile [sim] digital_mac_pj"
    else:
        values["digital_mac_pj"] = digital_mac_pj(precision, node)
        sources["digital_mac_pj"] = (
            f"{_HOROWITZ}: {precision} MAC {DIGITAL_MAC_PJ_45NM[precision]:.3g} pJ at 45 nm, scaled to {float(node):g} "
            f"nm by {NODE_SCALING_RULE.split(':')[0]}"
        )


def neuromorphic_params(spec=None) -> NeuromorphicParams:
    """Resolve a :class:`greenbench.profile.SimSpec` (or ``None``) to the figures ``neuromorphic-sim`` uses."""
    chip, chip_src = _pick(spec, "chip", DEFAULTS)
    if chip not in CHIPS:  # the profile validates this too; direct callers get a plain error
        raise ValueError(f"unknown neuromorphic chip preset {chip!r}; valid: {', '.join(CHIPS)}")
    preset = CHIPS[chip]
    values: dict = {"chip": chip}
    sources: dict = {"chip": chip_src}
    for key in ("firing_rate", "timesteps", "synaptic_op_pj", "spike_pj", "hop_pj", "hops_per_spike",
                "neuron_update_active_pj", "neuron_update_inactive_pj", "static_power_w", "chip_memory_bytes",
                "weight_bits", "chips", "interchip_pj_per_spike", "refetch_weights_per_timestep"):
        values[key], sources[key] = _pick(spec, key, preset, DEFAULTS)
    node_default = {"process_node_nm": (preset["node_nm"][0], f"the chip's node, so the digital baseline is "
                                        f"like for like ({preset['node_nm'][1]})")}
    _resolve_common(spec, values, sources, node_default, DEFAULTS)
    values["firing_rate"] = float(values["firing_rate"])
    return NeuromorphicParams(**values, sources=sources)


def optical_params(spec=None) -> OpticalParams:
    """Resolve a :class:`greenbench.profile.SimSpec` (or ``None``) to the figures ``optical-sim`` uses."""
    values: dict = {}
    sources: dict = {}
    common = {"dram", "dram_pj_per_bit", "digital_precision", "process_node_nm", "digital_mac_pj"}
    for f in dataclasses.fields(OpticalParams):
        if f.name != "sources" and f.name not in common:
            values[f.name], sources[f.name] = _pick(spec, f.name, _OPTICAL_OVERRIDES, DEFAULTS)
    _resolve_common(spec, values, sources, _OPTICAL_OVERRIDES, DEFAULTS)
    if values["optical_model"] not in ("physics", "lightmatter"):
        raise ValueError(f"unknown optical model {values['optical_model']!r}; valid: physics, lightmatter")
    return OpticalParams(**values, sources=sources)


def with_dram(p, pj_per_bit: float):
    """``p`` with another DRAM energy (for the sensitivity line)."""
    return dataclasses.replace(p, dram_pj_per_bit=float(pj_per_bit))
