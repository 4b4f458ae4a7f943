"""The energy models of the simulated backends: counted work in, joules per domain out. Pure functions.

Work is counted per *forward pass* over the whole batch, from the same cost model as
:mod:`greenbench.models.cost` (Kaplan et al. 2020 MACs plus the LM head; weights read once per pass, the
KV cache per token), so a simulated result's ``metrics.cost`` and its energy agree.

Terms:
    weight matmul: a matrix product against a constant weight matrix ``K x N`` (q/k/v/o projections,
        MLP, LM head). One token costs ``K*N`` MACs in it, feeds it ``K`` input activations and gets
        ``N`` outputs (neurons, in a spiking network).
    attention MACs: ``2*nH*hd`` per layer per cached position (scores and weighted values); they depend
        on the context and on no weight, so both backends run them on a digital co-processor at
        ``digital_mac_pj`` (precision and node: :mod:`.params`), next to the KV cache in DRAM.
    pass: one model run: the prefill (all prompt positions of all rows) or one decode step (one
        position of every row). Weights that are not resident are read (and, on a photonic array,
        programmed) once per pass, so their cost per token falls with batch size.
    placement: which chips hold which weights (:func:`place`): weight matmuls fill the chips' synaptic
        memory in graph order; a matmul that does not fit spans the next chip, and what no chip holds
        streams from DRAM every pass.
    memory share: the off-chip memory (DRAM) domain over the total: near 1, a comparison is about
        DRAM, not the device.

Prefill counts the causal attention exactly (position i attends to i cached positions) and writes
the prompt's keys/values once (reads of them during the prefill are taken to stay on chip). A
decode step with ``T`` cached positions reads those ``T`` and writes one, as in ``decode_cost``.

Neuromorphic (``neuromorphic-sim``), SpikeGPT convention for the synaptic ops (see :mod:`.params`):
    synaptic_ops      = weight MACs x firing_rate x timesteps                       x synaptic_op_pj
    neuron_updates    = matmul outputs x timesteps x (rate x active + (1 - rate) x inactive pJ)
    spikes            = input activations x firing_rate x timesteps                 x spike_pj
    routing           = spikes x hops_per_spike                                     x hop_pj
    interchip         = spikes into a matmul held on another chip                   x interchip_pj_per_spike
    static            = static_power_w x chips x time (Loihi: its modelled time, :data:`.params.LOIHI_TIMING`;
                        other chips: host time)
    attention_digital = attention MACs x digital_mac_pj
    memory            = (weight bytes beyond on-chip capacity per pass [x timesteps if re-fetched]
                        + KV bytes at the co-processor's precision) x 8 x dram_pj_per_bit
    For an all-in chip (TrueNorth, SpiNNaker) the presets set every per-event term but the synaptic op
    to 0: the published figure already contains them, and the chip's own memory.

Optical (``optical-sim``), ``physics`` model, for weight-stationary ``A x A`` photonic arrays:
    laser              = digitised partial sums x 3 x 4^ENOB photons x h c / lambda / wall-plug efficiency
                         (the shot-noise limit, :attr:`.params.OpticalParams.photons_per_readout`); or weight
                         MACs x ops_per_mac x laser_optical_fj_per_op when that figure is set
    adc_dac            = per token, per weight matmul ``ceil(N/A)*K`` input DAC + ``ceil(K/A)*N`` output
                         ADC conversions (one per partial sum), each FOM x 2**ENOB
    weight_programming = every weight through a DAC once per pass, when the weights do not fit on the
                         arrays (``K*N`` summed > A*A*array_count); 0 when they stay resident
    weight_hold        = hold_mw_per_weight x weights on the arrays x compute time, the time being
                         tokens x tiles / (array_count x modulation rate)
    attention_digital  = attention MACs x digital_mac_pj
    memory             = (weight bytes per pass, unless resident + KV bytes at the co-processor's precision)
                         x 8 x dram_pj_per_bit
``lightmatter`` model: weight MACs x ops_per_mac x op_pj (the measured all-in figure, which includes the
processor's own conversions and programming) plus the same digital attention and memory terms.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

PJ = 1e-12
FJ = 1e-15

NEUROMORPHIC_DOMAINS = ("synaptic_ops", "neuron_updates", "spikes", "routing", "interchip", "static",
                        "attention_digital", "memory")
OPTICAL_DOMAINS = {
    "physics": ("laser", "adc_dac", "weight_programming", "weight_hold", "attention_digital", "memory"),
    "lightmatter": ("optical_system", "attention_digital", "memory"),
}
#: The domains that are off-chip memory traffic (the numerator of the memory share).
MEMORY_DOMAINS = ("memory",)


@dataclass(frozen=True)
class Geometry:
    """What the model costs per token, independent of the hardware.

    Attributes:
        matmuls: ``(K, N)`` of every weight matmul a token goes through, in graph order.
        attention_macs_per_position: ``2*L*nH*hd``, attention MACs per token per cached position.
        weight_bytes_per_pass: bytes of the model's stored weights read per forward pass
            (``weight_bytes_per_step`` of the cost model; informative, the energy models count weights at
            the simulated hardware's ``weight_bits``).
        kv_bytes_per_position: ``b_kv*2*L*kvH*hd``, KV-cache bytes per position read or written, at the
            model's own KV element size ``kv_element_bytes`` (``b_kv``); the energy models re-count them at
            the digital co-processor's precision (:func:`kv_scale`).
    """

    matmuls: tuple[tuple[int, int], ...]
    attention_macs_per_position: float
    weight_bytes_per_pass: float
    kv_bytes_per_position: float
    kv_element_bytes: float = 4.0

    @property
    def weight_macs_per_token(self) -> float:
        return float(sum(k * n for k, n in self.matmuls))

    @property
    def weight_params(self) -> float:
        """Weights held by the matmuls (one per MAC per token)."""
        return self.weight_macs_per_token

    @property
    def inputs_per_token(self) -> float:
        """Input activations per token over all weight matmuls (the presynaptic neurons)."""
        return float(sum(k for k, _ in self.matmuls))

    @property
    def neurons_per_token(self) -> float:
        """Outputs per token over all weight matmuls (the postsynaptic neurons updated every timestep)."""
        return float(sum(n for _, n in self.matmuls))

    def conversions_per_token(self, array_size: int) -> float:
        """DAC + ADC conversions per token on an ``array_size`` square array, tile by tile."""
        a = int(array_size)
        return float(sum(math.ceil(n / a) * k + math.ceil(k / a) * n for k, n in self.matmuls))

    def partial_sums_per_token(self, array_size: int) -> float:
        """Partial sums digitised per token: each output is summed over ``ceil(K/A)`` row tiles."""
        a = int(array_size)
        return float(sum(math.ceil(k / a) * n for k, n in self.matmuls))

    def tiles_per_token(self, array_size: int) -> float:
        """``A x A`` tiles a token passes through (one array cycle each)."""
        a = int(array_size)
        return float(sum(math.ceil(k / a) * math.ceil(n / a) for k, n in self.matmuls))


@dataclass(frozen=True)
class Work:
    """Work of one or more forward passes over the whole batch.

    Attributes:
        passes: forward passes (weights read/programmed once each).
        tokens: token positions computed, all rows.
        attention_macs: attention MACs, all positions and rows.
        kv_bytes: KV-cache bytes read and written, all positions and rows.
        host_s: wall seconds the host took for these passes (the time of a static term on a chip
            without a latency model); 0 when not measured.
    """

    passes: int
    tokens: int
    attention_macs: float
    kv_bytes: float
    host_s: float = 0.0

    def __add__(self, other: "Work") -> "Work":
        return Work(self.passes + other.passes, self.tokens + other.tokens,
                    self.attention_macs + other.attention_macs, self.kv_bytes + other.kv_bytes,
                    self.host_s + other.host_s)


def prefill_work(g: Geometry, prompt_len: int, batch: int = 1, host_s: float = 0.0) -> Work:
    """One prefill pass over ``prompt_len`` positions in each of ``batch`` rows."""
    S, B = int(prompt_len), int(batch)
    return Work(
        passes=1,
        tokens=B * S,
        attention_macs=B * g.attention_macs_per_position * S * (S - 1) / 2,
        kv_bytes=B * S * g.kv_bytes_per_position,
        host_s=host_s,
    )


def decode_work(g: Geometry, past_len: int, steps: int, batch: int = 1, host_s: float = 0.0) -> Work:
    """``steps`` decode steps, the first with ``past_len`` cached positions (each step adds one)."""
    T0, n, B = int(past_len), int(steps), int(batch)
    positions = n * T0 + n * (n - 1) / 2  # sum of cached positions over the steps
    return Work(
        passes=n,
        tokens=B * n,
        attention_macs=B * g.attention_macs_per_position * positions,
        kv_bytes=B * g.kv_bytes_per_position * (positions + n),
        host_s=host_s,
    )


def _dram_j(bytes_: float, dram_pj_per_bit: float) -> float:
    return bytes_ * 8 * dram_pj_per_bit * PJ


def kv_scale(g: Geometry, p) -> float:
    """Bytes of KV cache the simulated system moves per byte the model's own cache holds: keys and values
    are the operands of the digital co-processor's attention, so they are stored at its precision
    (``p.digital_precision``: an int8 co-processor keeps an int8 cache)."""
    from greenbench.backends.sim.params import PRECISION_BITS

    return PRECISION_BITS[p.digital_precision] / 8 / g.kv_element_bytes


# ---------------------------------------------------------------------------------------------
# neuromorphic


@dataclass(frozen=True)
class Placement:
    """Where a model's weights live on a neuromorphic system (see module doc, *placement*).

    Attributes:
        chips: chips used (0 when the preset has no on-chip memory).
        capacity_weights: weights one chip holds (``chip_memory_bytes x 8 / weight_bits``); None: no chip.
        resident_params: weights held on chips.
        streamed_params: weights read from DRAM every pass.
        interchip_inputs_per_token: input activations per token delivered to a chip other than the one
            that produced them (multiplied by the firing activity to give inter-chip spikes).
        spans: for each matmul, the chips holding it.
    """

    chips: int
    capacity_weights: float | None
    resident_params: float
    streamed_params: float
    interchip_inputs_per_token: float
    spans: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["spans"] = [list(s) for s in self.spans]
        d["chips_needed"] = d["chips"]
        return d


def place(g: Geometry, chip_memory_bytes: int | None, weight_bits: int, chips: int | None = None) -> Placement:
    """Fill the chips' synaptic memory with the weight matmuls in graph order (see :class:`Placement`).

    A matmul split over chips (by output columns) needs all ``K`` inputs on every chip that holds part
    of it; its inputs come from the chip holding the end of the previous matmul. Matmuls beyond the
    chips' capacity stream from DRAM and run on the last chip.
    """
    if chip_memory_bytes is None:
        return Placement(0, None, 0.0, g.weight_params, 0.0, tuple(() for _ in g.matmuls))
    cap = math.floor(chip_memory_bytes * 8 / weight_bits)
    if cap < 1:
        raise ValueError(f"a chip of {chip_memory_bytes} bytes holds no {weight_bits}-bit weight")
    needed = max(1, math.ceil(g.weight_params / cap))
    n = needed if chips is None else int(chips)
    free = [cap] * n
    spans: list[tuple[int, ...]] = []
    chip = 0
    streamed = 0.0
    for k, m in g.matmuls:
        left = k * m
        span = []
        while left > 0 and chip < n:
            take = min(left, free[chip])
            if take > 0:
                span.append(chip)
                free[chip] -= take
                left -= take
            if free[chip] == 0:
                chip += 1
        if left > 0:  # no room left: streamed from DRAM, computed on the last chip
            streamed += left
            if n - 1 not in span:
                span.append(n - 1)
        spans.append(tuple(span))
    interchip = 0.0
    for i, ((k, _), span) in enumerate(zip(g.matmuls, spans)):
        src = spans[i - 1][-1] if i > 0 else span[0]
        interchip += k * sum(1 for c in span if c != src)
    return Placement(n, float(cap), g.weight_params - streamed, streamed, interchip, tuple(spans))


def loihi_time_s(work: Work, g: Geometry, p, chips: int) -> float:
    """Modelled time of ``work`` on Loihi (:data:`.params.LOIHI_TIMING`): per pass and timestep, the
    synaptic ops and neuron updates spread over every core, then one mesh-wide barrier."""
    t = p.timing
    rate = p.firing_rate
    sops = work.tokens * g.weight_macs_per_token * rate * p.timesteps
    updates = work.tokens * g.neurons_per_token * p.timesteps
    per_update = rate * t["neuron_update_active_ns"] + (1 - rate) * t["neuron_update_inactive_ns"]
    cores = t["cores_per_chip"] * max(chips, 1)
    ns = (sops * t["synaptic_op_ns"] + updates * per_update) / cores + work.passes * p.timesteps * t["barrier_ns"]
    return ns * 1e-9


def neuromorphic_time(work: Work, g: Geometry, p, placement: Placement) -> tuple[float, str]:
    """(seconds, how): the chip's modelled time when it has a latency model, else the host's."""
    if p.timing is not None:
        return loihi_time_s(work, g, p, placement.chips), "modelled"
    return work.host_s, "host"


def neuromorphic_energy(work: Work, g: Geometry, p, placement: Placement | None = None) -> dict[str, float]:
    """Joules per domain (:data:`NEUROMORPHIC_DOMAINS`) of ``work`` with :class:`~.params.NeuromorphicParams` ``p``."""
    if placement is None:
        placement = place(g, p.chip_memory_bytes, p.weight_bits, p.chips)
    rate = p.firing_rate
    activity = rate * p.timesteps
    spikes = work.tokens * g.inputs_per_token * activity
    updates = work.tokens * g.neurons_per_token * p.timesteps
    refetch = p.timesteps if p.refetch_weights_per_timestep else 1
    streamed_bytes = work.passes * placement.streamed_params * p.weight_bits / 8 * refetch
    seconds, _ = neuromorphic_time(work, g, p, placement)
    return {
        "synaptic_ops": work.tokens * g.weight_macs_per_token * activity * p.synaptic_op_pj * PJ,
        "neuron_updates": updates * (rate * p.neuron_update_active_pj + (1 - rate) * p.neuron_update_inactive_pj) * PJ,
        "spikes": spikes * p.spike_pj * PJ,
        "routing": spikes * p.hops_per_spike * p.hop_pj * PJ,
        "interchip": work.tokens * placement.interchip_inputs_per_token * activity * p.interchip_pj_per_spike * PJ,
        "static": p.static_power_w * max(placement.chips, 1) * seconds,
        "attention_digital": work.attention_macs * p.digital_mac_pj * PJ,
        "memory": _dram_j(streamed_bytes + work.kv_bytes * kv_scale(g, p), p.dram_pj_per_bit),
    }


def break_even_firing_rate(g: Geometry, p) -> float | None:
    """The firing rate at which the SNN's compute per decode token (synaptic ops, neuron updates, spikes,
    routing) equals the digital weight MACs' at ``digital_mac_pj``. Attention and memory are left out:
    both run the same way beside either. Yan et al.'s ~6.4 % (:data:`~.params.YAN_BREAK_EVEN_SPIKE_RATE`)
    is the published figure with data movement counted.

    Returns:
        The rate (may exceed 1: the SNN wins at any rate), or None when the SNN loses even at rate 0
        (its inactive neuron updates alone cost more than the digital MACs).
    """
    T = p.timesteps
    digital = g.weight_macs_per_token * p.digital_mac_pj
    fixed = g.neurons_per_token * T * p.neuron_update_inactive_pj  # paid at any rate
    per_rate = T * (g.weight_macs_per_token * p.synaptic_op_pj
                    + g.inputs_per_token * (p.spike_pj + p.hops_per_spike * p.hop_pj)
                    + g.neurons_per_token * (p.neuron_update_active_pj - p.neuron_update_inactive_pj))
    if digital <= fixed:
        return None
    return (digital - fixed) / per_rate if per_rate > 0 else math.inf


# ---------------------------------------------------------------------------------------------
# optical


def weights_resident(g: Geometry, p) -> bool:
    """Whether every weight fits on the photonic arrays at once (then none is re-programmed or re-read)."""
    return g.weight_params <= p.array_size**2 * p.array_count


def optical_time_s(work: Work, g: Geometry, p) -> float:
    """Modelled compute time: each token passes through its tiles, one per cycle, on ``array_count`` arrays at
    ``modulation_ghz``. Programming time (re-loading weights) is not modelled."""
    return work.tokens * g.tiles_per_token(p.array_size) / (p.array_count * p.modulation_ghz * 1e9)


def optical_energy(work: Work, g: Geometry, p) -> dict[str, float]:
    """Joules per domain (:data:`OPTICAL_DOMAINS` of ``p.optical_model``) of ``work``.

    ``p`` is an :class:`~greenbench.backends.sim.params.OpticalParams`.
    """
    weight_macs = work.tokens * g.weight_macs_per_token
    attention = work.attention_macs * p.digital_mac_pj * PJ
    weight_bytes = g.weight_params * p.weight_bits / 8
    if p.optical_model == "lightmatter":
        return {
            "optical_system": weight_macs * p.ops_per_mac * p.op_pj * PJ,
            "attention_digital": attention,
            "memory": _dram_j(work.passes * weight_bytes + work.kv_bytes * kv_scale(g, p), p.dram_pj_per_bit),
        }
    conv_j = p.conversion_pj * PJ
    resident = weights_resident(g, p)
    if p.laser_optical_fj_per_op is None:
        optical = work.tokens * g.partial_sums_per_token(p.array_size) * p.photons_per_readout * p.photon_j
    else:
        optical = weight_macs * p.ops_per_mac * p.laser_optical_fj_per_op * FJ
    held = min(g.weight_params, p.array_size**2 * p.array_count)
    return {
        "laser": optical / p.laser_wall_plug_efficiency,
        "adc_dac": work.tokens * g.conversions_per_token(p.array_size) * conv_j,
        "weight_programming": 0.0 if resident else work.passes * g.weight_params * conv_j,
        "weight_hold": p.hold_mw_per_weight * 1e-3 * held * optical_time_s(work, g, p),
        "attention_digital": attention,
        "memory": _dram_j((0.0 if resident else work.passes * weight_bytes) + work.kv_bytes * kv_scale(g, p),
                          p.dram_pj_per_bit),
    }


# ---------------------------------------------------------------------------------------------
# the digital reference and the summaries


def digital_reference_energy(work: Work, g: Geometry, p, weights_on_chip: bool = False) -> dict[str, float]:
    """The same work on a digital accelerator of ``p.digital_precision`` at ``p.process_node_nm``: every MAC
    at ``p.digital_mac_pj`` and the same KV traffic, with the weights (at the precision's bits) either read
    from DRAM once per pass, as a GPU at small batch does, or, with ``weights_on_chip``, held in on-chip
    SRAM and read from it once per pass at Horowitz's 100 pJ per 64-bit access of a 1 MB SRAM (45 nm,
    not scaled: SRAM scales less than logic), the like-for-like baseline for a chip that holds them."""
    from greenbench.backends.sim.params import PRECISION_BITS, SRAM_PJ_PER_BIT

    macs = work.tokens * g.weight_macs_per_token + work.attention_macs
    weight_bits = work.passes * g.weight_params * PRECISION_BITS[p.digital_precision]
    kv = work.kv_bytes * kv_scale(g, p)
    if weights_on_chip:
        return {
            "macs": macs * p.digital_mac_pj * PJ,
            "sram": weight_bits * SRAM_PJ_PER_BIT * PJ,
            "memory": _dram_j(kv, p.dram_pj_per_bit),
        }
    return {
        "macs": macs * p.digital_mac_pj * PJ,
        "memory": _dram_j(weight_bits / 8 + kv, p.dram_pj_per_bit),
    }


def memory_share(energy: dict[str, float]) -> float | None:
    """The off-chip memory domains (:data:`MEMORY_DOMAINS`) over the total, 0-1; None for zero energy."""
    total = sum(energy.values())
    return sum(energy.get(d, 0.0) for d in MEMORY_DOMAINS) / total if total > 0 else None
