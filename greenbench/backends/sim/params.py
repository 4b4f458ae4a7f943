"""The published figures behind the simulated backends, and their resolution against ``[sim]``.

Every default names its source: a row of ``energy-parameters.md`` (the paper it cites) or, where no
published figure exists, the word ``assumption`` and why that value was chosen. A profile's ``[sim]``
table overrides any figure; the result then records ``profile [sim] <key>`` as that figure's source.

Terms:
    synaptic op (SOP): one accumulate triggered by one incoming spike at one synapse. Following the
        convention of SpikeGPT (arXiv:2302.13939), Spikformer and SpikingBERT, a layer that costs M
        multiply-accumulates (MACs) as an ANN costs ``M x firing_rate x timesteps`` SOPs as an SNN.
    firing rate: the fraction of neurons that spike in one timestep.
    timesteps: how many times the spiking network is stepped per input (per token here).
    ENOB: effective number of bits of an analog signal path (here: the photonic array's DACs/ADCs).
    Walden figure of merit (FOM): ADC energy per conversion step; one conversion at ENOB bits costs
        ``FOM x 2**ENOB``.
    wall-plug efficiency: optical power out of a laser / electrical power in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

CITATIONS: dict[str, str] = {
    "horowitz2014": "M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014 (45 nm)",
    "davies2018": "M. Davies et al., \"Loihi: a neuromorphic manycore processor with on-chip learning\", "
    "IEEE Micro 38(1), 2018, Table 1",
    "merolla2014": "P. A. Merolla et al., \"A million spiking-neuron integrated circuit with a scalable "
    "communication network and interface\", Science 345:668, 2014",
    "vanalbada2018": "S. J. van Albada et al., Front. Neurosci. 12:291, 2018 (SpiNNaker vs NEST, whole system)",
    "spikegpt2023": "R.-J. Zhu et al., \"SpikeGPT\", arXiv:2302.13939 (synaptic ops = MACs x firing rate x timesteps)",
    "spikformer2023": "Z. Zhou et al., \"Spikformer: when spiking neural network meets Transformer\", ICLR 2023",
    "yan2024": "Yan et al., arXiv:2409.08290 (SNNs save energy only below ~6.4 % spike rate once data "
    "movement is counted)",
    "ahmed2025": "S. R. Ahmed et al., \"Universal photonic artificial intelligence acceleration\", Nature 640:368, "
    "2025 (65.5 TOPS at 78 W electrical + 1.6 W optical)",
    "murmann": "B. Murmann, \"ADC Performance Survey\" (Walden FOM ~10 fJ/conversion-step)",
    "nahmias2020": "M. A. Nahmias et al., \"Photonic multiply-accumulate operations for neural networks\", "
    "IEEE JSTQE 26(1), 2020 (~4-8 effective bits)",
    "hamerly2019": "R. Hamerly et al., \"Large-scale optical neural networks based on photoelectric "
    "multiplication\", Phys. Rev. X 9:021032, 2019 (~50 zJ/MAC quantum limit)",
    "kaplan2020": "J. Kaplan et al., arXiv:2001.08361, Table 1 (MACs per token; greenbench.models.cost)",
}

# Horowitz 2014: DRAM 1.3-2.6 nJ per 64-bit access. The low end, so that the memory term (which
# usually dominates) is not overstated against the simulated hardware; 2.6 nJ/64 = 40.6 pJ/bit is the high end.
DRAM_PJ_PER_BIT = 1300.0 / 64
# Ahmed et al. 2025: 65.5 TOPS at 78 W electrical + 1.6 W optical.
_LM_TOPS, _LM_ELECTRICAL_W, _LM_OPTICAL_W = 65.5e12, 78.0, 1.6
LIGHTMATTER_PJ_PER_OP = (_LM_ELECTRICAL_W + _LM_OPTICAL_W) / _LM_TOPS * 1e12  # ~1.215 pJ/op, all-in
LIGHTMATTER_OPTICAL_FJ_PER_OP = _LM_OPTICAL_W / _LM_TOPS * 1e15  # ~24.4 fJ of light per op
QUANTUM_LIMIT_J_PER_MAC = 50e-21  # Hamerly et al. 2019
YAN_BREAK_EVEN_SPIKE_RATE = 0.064  # Yan et al. 2024

_HOROWITZ = "Horowitz 2014 (energy-parameters.md, Digital CMOS reference)"

#: Neuromorphic chip presets: per-event energies (pJ) and where they come from.
CHIPS: dict[str, dict[str, tuple[float, str]]] = {
    "loihi": {
        "synaptic_op_pj": (23.6, "Davies et al. 2018, Table 1: 23.6 pJ per synaptic op (Loihi, 14 nm)"),
        "spike_pj": (1.7, "Davies et al. 2018, Table 1: 1.7 pJ per spike within a tile"),
        "hop_pj": (3.5, "Davies et al. 2018, Table 1: 3.5 pJ per tile hop"),
        "hops_per_spike": (1.0, "assumption: one tile hop per spike (depends on placement; not published "
                           "per workload)"),
    },
    "truenorth": {
        "synaptic_op_pj": (26.0, "Merolla et al. 2014: 26 pJ per synaptic event, all-in (TrueNorth, 28 nm)"),
        "spike_pj": (0.0, "included in the all-in synaptic event figure (Merolla et al. 2014)"),
        "hop_pj": (0.0, "included in the all-in synaptic event figure (Merolla et al. 2014)"),
        "hops_per_spike": (0.0, "included in the all-in synaptic event figure (Merolla et al. 2014)"),
    },
    "spinnaker": {
        "synaptic_op_pj": (5.9e6, "van Albada et al. 2018: ~5.9 uJ per synaptic event, whole SpiNNaker 1 system"),
        "spike_pj": (0.0, "included in the whole-system figure (van Albada et al. 2018)"),
        "hop_pj": (0.0, "included in the whole-system figure (van Albada et al. 2018)"),
        "hops_per_spike": (0.0, "included in the whole-system figure (van Albada et al. 2018)"),
    },
    "ideal-ac": {
        "synaptic_op_pj": (0.9, f"{_HOROWITZ}: fp32 add 0.9 pJ, an accumulate (AC) per synaptic op, as SpikeGPT "
                           "and Spikformer count it"),
        "spike_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "hop_pj": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
        "hops_per_spike": (0.0, "not modelled: the ideal-AC convention counts accumulates only"),
    },
}

#: Defaults shared by both backends or specific to one, with their sources.
DEFAULTS: dict[str, tuple[object, str]] = {
    "chip": ("loihi", "default chip preset (the only preset with per-op, per-spike and per-hop figures)"),
    "firing_rate": (0.1, "assumption: 10 % of neurons spike per timestep; above Yan et al.'s ~6.4 % break-even, "
                    "so the default does not flatter the spiking model"),
    "timesteps": (4, "assumption: 4 timesteps, the setting of Spikformer's (ICLR 2023) ImageNet results"),
    "refetch_weights_per_timestep": (False, "assumption: weights fetched from DRAM once per forward pass and "
                                     "held on chip across timesteps (optimistic; Yan et al. 2024 show "
                                     "re-fetching per timestep can remove the advantage)"),
    "dram_pj_per_bit": (DRAM_PJ_PER_BIT, f"{_HOROWITZ}: DRAM 1.3 nJ per 64-bit access (low end of 1.3-2.6 nJ)"),
    "digital_mac_pj": (4.6, f"{_HOROWITZ}: fp32 MAC = 0.9 pJ add + 3.7 pJ mult"),
    "optical_model": ("physics", "default optical model: laser + ADC/DAC + weight programming + digital "
                      "attention + memory, so the breakdown is visible"),
    "enob": (6, "Nahmias et al. 2020: photonic MACs reach ~4-8 effective bits; 6 is mid-range"),
    "adc_fom_fj_per_step": (10.0, "Murmann ADC survey: Walden FOM ~10 fJ/conversion-step "
                            "(8 bit ~2.5 pJ, 6 bit ~0.6 pJ)"),
    "array_size": (128, "assumption: a 128 x 128 weight-stationary photonic array"),
    "array_count": (1, "assumption: one array"),
    "laser_optical_fj_per_op": (LIGHTMATTER_OPTICAL_FJ_PER_OP,
                                "Ahmed et al. 2025: 1.6 W optical at 65.5 TOPS = 24.4 fJ of light per op"),
    "laser_wall_plug_efficiency": (0.2, "assumption: 20 %, inside the 10-30 % range of energy-parameters.md"),
    "op_pj": (LIGHTMATTER_PJ_PER_OP, "Ahmed et al. 2025: (78 W electrical + 1.6 W optical) / 65.5 TOPS "
              "= 1.215 pJ/op, all-in"),
    "ops_per_mac": (2.0, "convention: TOPS figures count a MAC as two ops (multiply + add)"),
    "noise_seed": (0, "seed of the RandomNormalLike noise nodes (node i uses seed + i)"),
    "measure_accuracy": (True, "run the perturbed model once at prepare time and report greedy-token agreement"),
}


@dataclass(frozen=True)
class NeuromorphicParams:
    """Resolved ``neuromorphic-sim`` figures (energies in pJ)."""

    chip: str
    firing_rate: float
    timesteps: int
    synaptic_op_pj: float
    spike_pj: float
    hop_pj: float
    hops_per_spike: float
    refetch_weights_per_timestep: bool
    dram_pj_per_bit: float
    digital_mac_pj: float  # for the digital reference beside the result, not for the SNN energy
    sources: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        return d


@dataclass(frozen=True)
class OpticalParams:
    """Resolved ``optical-sim`` figures (energies in pJ or fJ as named)."""

    optical_model: str
    enob: int
    adc_fom_fj_per_step: float
    array_size: int
    array_count: int
    laser_optical_fj_per_op: float
    laser_wall_plug_efficiency: float
    op_pj: float
    ops_per_mac: float
    digital_mac_pj: float
    dram_pj_per_bit: float
    noise_seed: int
    measure_accuracy: bool
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def conversion_pj(self) -> float:
        """Energy of one DAC or ADC conversion at ``enob`` bits: FOM x 2**ENOB (Murmann)."""
        return self.adc_fom_fj_per_step * 2.0**self.enob / 1000.0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        d["conversion_pj"] = self.conversion_pj
        return d


def _pick(spec, key: str, preset: dict | None = None) -> tuple[object, str]:
    value = getattr(spec, key, None) if spec is not None else None
    if value is not None:
        return value, f"profile [sim] {key}"
    if preset is not None and key in preset:
        return preset[key]
    return DEFAULTS[key]


def neuromorphic_params(spec=None) -> NeuromorphicParams:
    """Resolve a :class:`greenbench.profile.SimSpec` (or ``None``) to the figures ``neuromorphic-sim`` uses."""
    chip, chip_src = _pick(spec, "chip")
    if chip not in CHIPS:  # the profile validates this too; direct callers get a plain error
        raise ValueError(f"unknown neuromorphic chip preset {chip!r}; valid: {', '.join(CHIPS)}")
    values, sources = {"chip": chip}, {"chip": chip_src}
    for key in ("firing_rate", "timesteps", "refetch_weights_per_timestep", "dram_pj_per_bit", "digital_mac_pj",
                "synaptic_op_pj", "spike_pj", "hop_pj", "hops_per_spike"):
        values[key], sources[key] = _pick(spec, key, CHIPS[chip])
    values["firing_rate"] = float(values["firing_rate"])
    return NeuromorphicParams(**values, sources=sources)


def optical_params(spec=None) -> OpticalParams:
    """Resolve a :class:`greenbench.profile.SimSpec` (or ``None``) to the figures ``optical-sim`` uses."""
    values, sources = {}, {}
    for f in dataclasses.fields(OpticalParams):
        if f.name != "sources":
            values[f.name], sources[f.name] = _pick(spec, f.name)
    if values["optical_model"] not in ("physics", "lightmatter"):
        raise ValueError(f"unknown optical model {values['optical_model']!r}; valid: physics, lightmatter")
    return OpticalParams(**values, sources=sources)
