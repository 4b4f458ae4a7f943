"""The energy models of the simulated backends: counted work in, joules per domain out. Pure functions.

Work is counted per *forward pass* over the whole batch, from the same cost model as
:mod:`greenbench.models.cost` (Kaplan et al. 2020 MACs plus the LM head; weights read once per pass, the
KV cache per token), so a simulated result's ``metrics.cost`` and its energy agree.

Terms:
    weight matmul: a matrix product against a constant weight matrix ``K x N`` (q/k/v/o projections,
        MLP, LM head). One token costs ``K*N`` MACs in it and feeds it ``K`` input activations.
    attention MACs: ``2*nH*hd`` per layer per cached position (scores and weighted values); they depend
        on the context and on no weight.
    pass: one model run: the prefill (all prompt positions of all rows) or one decode step (one
        position of every row). The weights are read (and, on a small photonic array, programmed) once
        per pass, so their cost per token falls with batch size.

Prefill counts the causal attention exactly (position i attends to i cached positions) and writes
the prompt's keys/values once (reads of them during the prefill are taken to stay on chip). A
decode step with ``T`` cached positions reads those ``T`` and writes one, as in ``decode_cost``.

Neuromorphic (``neuromorphic-sim``), SpikeGPT convention (see :mod:`.params`):
    synaptic_ops = MACs x firing_rate x timesteps                      -> x synaptic_op_pj
    spikes       = input activations x firing_rate x timesteps          -> x spike_pj
    routing      = spikes x hops_per_spike                              -> x hop_pj
    memory       = (weight bytes [x timesteps if re-fetched] + KV bytes) x 8 x dram_pj_per_bit

Optical (``optical-sim``), ``physics`` model, for a weight-stationary ``A x A`` photonic array:
    laser              = weight MACs x ops_per_mac x laser_optical_fj_per_op / wall-plug efficiency
    adc_dac            = per token, per weight matmul ``ceil(N/A)*K`` input DAC + ``ceil(K/A)*N`` output
                         ADC conversions, each FOM x 2**ENOB
    weight_programming = every weight through a DAC once per pass, when the weights do not fit on the
                         arrays (``K*N`` summed > A*A*array_count); 0 when they stay resident
    attention_digital  = attention MACs x digital_mac_pj (attention has no stationary weights, so it
                         runs on the digital side)
    memory             = (weight bytes per pass, unless resident + KV bytes) x 8 x dram_pj_per_bit
``lightmatter`` model: every MAC x ops_per_mac x op_pj (the measured all-in figure, which includes the
processor's own conversions and programming) plus the same memory term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PJ = 1e-12
FJ = 1e-15

NEUROMORPHIC_DOMAINS = ("synaptic_ops", "spikes", "routing", "memory")
OPTICAL_DOMAINS = {
    "physics": ("laser", "adc_dac", "weight_programming", "attention_digital", "memory"),
    "lightmatter": ("optical_system", "memory"),
}


@dataclass(frozen=True)
class Geometry:
    """What the model costs per token, independent of the hardware.

    Attributes:
        matmuls: ``(K, N)`` of every weight matmul a token goes through.
        attention_macs_per_position: ``2*L*nH*hd``, attention MACs per token per cached position.
        weight_bytes_per_pass: bytes of weights read per forward pass (``weight_bytes_per_step``).
        kv_bytes_per_position: ``b_kv*2*L*kvH*hd``, KV-cache bytes per position read or written.
    """

    matmuls: tuple[tuple[int, int], ...]
    attention_macs_per_position: float
    weight_bytes_per_pass: float
    kv_bytes_per_position: float

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

    def conversions_per_token(self, array_size: int) -> float:
        """DAC + ADC conversions per token on an ``array_size`` square array, tile by tile."""
        a = int(array_size)
        return float(sum(math.ceil(n / a) * k + math.ceil(k / a) * n for k, n in self.matmuls))


@dataclass(frozen=True)
class Work:
    """Work of one or more forward passes over the whole batch.

    Attributes:
        passes: forward passes (weights read/programmed once each).
        tokens: token positions computed, all rows.
        attention_macs: attention MACs, all positions and rows.
        kv_bytes: KV-cache bytes read and written, all positions and rows.
    """

    passes: int
    tokens: int
    attention_macs: float
    kv_bytes: float

    def __add__(self, other: "Work") -> "Work":
        return Work(self.passes + other.passes, self.tokens + other.tokens,
                    self.attention_macs + other.attention_macs, self.kv_bytes + other.kv_bytes)


def prefill_work(g: Geometry, prompt_len: int, batch: int = 1) -> Work:
    """One prefill pass over ``prompt_len`` positions in each of ``batch`` rows."""
    S, B = int(prompt_len), int(batch)
    return Work(
        passes=1,
        tokens=B * S,
        attention_macs=B * g.attention_macs_per_position * S * (S - 1) / 2,
        kv_bytes=B * S * g.kv_bytes_per_position,
    )


def decode_work(g: Geometry, past_len: int, steps: int, batch: int = 1) -> Work:
    """``steps`` decode steps, the first with ``past_len`` cached positions (each step adds one)."""
    T0, n, B = int(past_len), int(steps), int(batch)
    positions = n * T0 + n * (n - 1) / 2  # sum of cached positions over the steps
    return Work(
        passes=n,
        tokens=B * n,
        attention_macs=B * g.attention_macs_per_position * positions,
        kv_bytes=B * g.kv_bytes_per_position * (positions + n),
    )


def _memory_j(weight_bytes: float, kv_bytes: float, dram_pj_per_bit: float) -> float:
    return (weight_bytes + kv_bytes) * 8 * dram_pj_per_bit * PJ


def neuromorphic_energy(work: Work, g: Geometry, p) -> dict[str, float]:
    """Joules per domain (:data:`NEUROMORPHIC_DOMAINS`) of ``work`` with :class:`~.params.NeuromorphicParams` ``p``."""
    macs = work.tokens * g.weight_macs_per_token + work.attention_macs
    activity = p.firing_rate * p.timesteps
    spikes = work.tokens * g.inputs_per_token * activity
    weight_bytes = work.passes * g.weight_bytes_per_pass * (p.timesteps if p.refetch_weights_per_timestep else 1)
    return {
        "synaptic_ops": macs * activity * p.synaptic_op_pj * PJ,
        "spikes": spikes * p.spike_pj * PJ,
        "routing": spikes * p.hops_per_spike * p.hop_pj * PJ,
        "memory": _memory_j(weight_bytes, work.kv_bytes, p.dram_pj_per_bit),
    }


def weights_resident(g: Geometry, p) -> bool:
    """Whether every weight fits on the photonic arrays at once (then none is re-programmed or re-read)."""
    return g.weight_params <= p.array_size**2 * p.array_count


def optical_energy(work: Work, g: Geometry, p) -> dict[str, float]:
    """Joules per domain (:data:`OPTICAL_DOMAINS` of ``p.optical_model``) of ``work``.

    ``p`` is an :class:`~greenbench.backends.sim.params.OpticalParams`.
    """
    weight_macs = work.tokens * g.weight_macs_per_token
    if p.optical_model == "lightmatter":
        return {
            "optical_system": (weight_macs + work.attention_macs) * p.ops_per_mac * p.op_pj * PJ,
            "memory": _memory_j(work.passes * g.weight_bytes_per_pass, work.kv_bytes, p.dram_pj_per_bit),
        }
    conv_j = p.conversion_pj * PJ
    resident = weights_resident(g, p)
    return {
        "laser": weight_macs * p.ops_per_mac * p.laser_optical_fj_per_op * FJ / p.laser_wall_plug_efficiency,
        "adc_dac": work.tokens * g.conversions_per_token(p.array_size) * conv_j,
        "weight_programming": 0.0 if resident else work.passes * g.weight_params * conv_j,
        "attention_digital": work.attention_macs * p.digital_mac_pj * PJ,
        "memory": _memory_j(0.0 if resident else work.passes * g.weight_bytes_per_pass, work.kv_bytes,
                            p.dram_pj_per_bit),
    }


def digital_reference_energy(
    work: Work, g: Geometry, digital_mac_pj: float, dram_pj_per_bit: float
) -> dict[str, float]:
    """The same work on a digital accelerator: every MAC at ``digital_mac_pj`` plus the same memory traffic."""
    macs = work.tokens * g.weight_macs_per_token + work.attention_macs
    return {
        "macs": macs * digital_mac_pj * PJ,
        "memory": _memory_j(work.passes * g.weight_bytes_per_pass, work.kv_bytes, dram_pj_per_bit),
    }


def break_even_firing_rate(g: Geometry, p, context: int) -> float:
    """The firing rate at which the SNN's compute (synaptic ops, spikes, routing) per decode token equals
    the digital MACs' at ``context`` cached positions. Memory traffic is excluded; Yan et al.'s ~6.4 %
    (:data:`~.params.YAN_BREAK_EVEN_SPIKE_RATE`) is the published figure with data movement counted."""
    macs = g.weight_macs_per_token + g.attention_macs_per_position * context
    per_rate = p.timesteps * (macs * p.synaptic_op_pj + g.inputs_per_token * (p.spike_pj + p.hops_per_spike * p.hop_pj))
    return macs * p.digital_mac_pj / per_rate if per_rate > 0 else math.inf
