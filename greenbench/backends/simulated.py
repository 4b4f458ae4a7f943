"""Simulated backends: ``neuromorphic-sim`` and ``optical-sim``.

A simulated backend runs the profile's model exactly as ``cpu`` does (onnxruntime on the host: the
tokens are real) and counts the work each forward pass does (MACs, input activations, KV and weight
bytes, from the cost model of :mod:`greenbench.models.cost`). Its :class:`SimulatedMeter` turns that
work into joules with published per-operation figures (:mod:`greenbench.backends.sim.params`, each
default cited, each overridable from the profile's ``[sim]`` table) and the models of
:mod:`greenbench.backends.sim.energy`. The runner uses these meters instead of the host's for every
prefill/decode window, so every joule in the result is labelled ``simulated``; wall time and tokens/s
remain the host's.

Terms:
    simulated joule: energy computed from counted work x a published per-event figure; never a
        measurement (method ``simulated``, the least trusted method).
    domain: where the simulated joules go (:data:`~greenbench.backends.sim.energy.NEUROMORPHIC_DOMAINS`,
        :data:`~greenbench.backends.sim.energy.OPTICAL_DOMAINS`): synaptic ops, neuron updates, spikes,
        routing, inter-chip traffic, static power, the digital attention co-processor and DRAM
        (neuromorphic); laser, ADC/DAC, weight programming and hold, digital attention and DRAM (optical).
    memory share and DRAM sensitivity: ``simulation.memory_share`` is the DRAM domain over the total
        per decode token; ``simulation.dram_sensitivity`` is the J/token at the low and high end of the
        DRAM range (every preset's published range, :data:`~greenbench.backends.sim.params.DRAM`), so a
        reader sees whether a comparison is about the device or the memory.
    token agreement: for ``optical-sim``, the fraction of greedy tokens a noisy (ENOB-limited) copy of
        the model gets right, over several noise seeds with a 95 % interval, plus the KL divergence of
        its next-token distributions from the exact model's (:mod:`greenbench.backends.sim.noise`),
        reported in ``describe()["accuracy"]``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

from greenbench.backends.sim import energy as E
from greenbench.backends.sim import params as P
from greenbench.errors import BackendError
from greenbench.meters.base import Domain, Probe, Snapshot

NEUROMORPHIC = "neuromorphic-sim"
OPTICAL = "optical-sim"

STATEMENT = (
    "Energy is SIMULATED, not measured: the work this run did (MACs, spikes, conversions, bytes, counted per "
    "forward pass) times published per-operation figures (see parameters, parameter_sources and citations). "
    "Tokens are computed exactly by onnxruntime on the host CPU; durations and tokens/s are the host's, "
    "not the simulated hardware's."
)


class SimulatedMeter:
    """A meter whose cumulative joules per domain advance as its session counts work.

    Implements :class:`greenbench.meters.base.Meter`. The session calls :meth:`add` after each
    forward pass; :meth:`snapshot` returns the joules added since :meth:`open`.
    """

    method = "simulated"
    process_scoped = True  # a simulation draws nothing while idle: its idle power is 0 W

    def __init__(self, name: str, domains: tuple[str, ...]):
        self.name = name
        self._domains = tuple(Domain(d) for d in domains)
        self._total = {d: 0.0 for d in domains}
        self._base = dict(self._total)

    def probe(self) -> Probe:
        return Probe(self.name, True, self.method, "", self._domains,
                     {"note": "simulated from published per-operation figures; not a measurement"})

    def domains(self) -> tuple[Domain, ...]:
        return self._domains

    def add(self, joules: dict[str, float]) -> None:
        for d, j in joules.items():
            self._total[d] += float(j)

    def open(self) -> None:
        self._base = dict(self._total)

    def snapshot(self) -> Snapshot:
        return Snapshot(time.perf_counter(), {d: self._total[d] - self._base[d] for d in self._total})

    def close(self) -> None:
        pass


class SimulatedSession:
    """An exact inference session (usually ``cpu``'s DecoderSession) plus the simulated energy of its work.

    Implements the ``InferenceSession`` protocol of :mod:`greenbench.backends` and ``energy_meters()``,
    which the runner uses instead of the host's meters.

    Args:
        inner: the exact session that computes the tokens.
        meter: the :class:`SimulatedMeter` that receives each pass's joules.
        geometry: the model's per-token cost (:class:`greenbench.backends.sim.energy.Geometry`).
        energy: ``Work -> {domain: joules}``.
        info: merged into :meth:`describe` (``simulation``, ``accuracy``).
    """

    def __init__(self, inner, meter: SimulatedMeter, geometry: E.Geometry, energy: Callable[[E.Work], dict],
                 info: dict):
        self._inner = inner
        self._meter = meter
        self.geometry = geometry
        self._energy = energy
        self._info = info
        self._past = 0
        self.work = E.Work(0, 0, 0.0, 0.0)  # everything counted so far, warmup included

    @property
    def prompt_ids(self) -> list[int]:
        return self._inner.prompt_ids

    @property
    def batch_size(self) -> int:
        return self._inner.batch_size

    def _count(self, work: E.Work) -> None:
        self.work = self.work + work
        self._meter.add(self._energy(work))

    def reset(self) -> None:
        self._inner.reset()
        self._past = 0

    def prefill(self) -> int:
        t0 = time.perf_counter()
        token = self._inner.prefill()
        host_s = time.perf_counter() - t0
        self._past = len(self.prompt_ids)
        self._count(E.prefill_work(self.geometry, self._past, self.batch_size, host_s))
        return token

    def decode(self, first_token: int, n: int) -> list[int]:
        t0 = time.perf_counter()
        tokens = self._inner.decode(first_token, n)
        host_s = time.perf_counter() - t0
        self._count(E.decode_work(self.geometry, self._past, n, self.batch_size, host_s))
        self._past += n
        return tokens

    def cost(self) -> dict:
        return self._inner.cost()

    def describe(self) -> dict:
        return {**self._inner.describe(), **self._info}

    def energy_meters(self) -> list[SimulatedMeter]:
        return [self._meter]

    def close(self) -> None:
        self._inner.close()


def geometry_of(info: dict, cost: dict) -> tuple[E.Geometry, dict]:
    """The model's :class:`~greenbench.backends.sim.energy.Geometry` from an ort session's describe()/cost().

    Weight matmuls come from the ONNX graph; attention MACs from the config (``2*L*nH*hd`` per cached
    position); weight and KV bytes from the cost model. Returns (geometry, a dict for describe()).

    Raises:
        BackendError: the graph has no weight matmuls, or the cost/config lacks a needed figure.
    """
    from greenbench.backends.sim.noise import load_graph, weight_matmuls

    cfg = info.get("config") or {}
    try:
        attn = 2.0 * int(cfg["layers"]) * int(cfg["heads"]) * int(cfg["head_dim"])
        T = int(cost["context_tokens"])
        kv_per_position = float(cost["kv_bytes_per_token"]) / (T + 1)
        weight_bytes = float(cost["weight_bytes_per_step"])
        cost_weight_macs = float(cost["macs_per_token"]) - attn * T
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"simulated backends need the model's layers/heads/head_dim and cost figures; missing {exc}")
    mats = weight_matmuls(load_graph(info["onnx_path"]))
    if not mats:
        raise BackendError(
            f"{info['onnx_path']}: no weight matmuls (MatMul/Gemm with a constant 2-D weight, MatMulNBits) found",
            "the simulated backends count work per weight matmul; use --backend cpu for this model",
        )
    kv_elements = 2 * int(cfg["layers"]) * int(cfg.get("kv_heads") or cfg["heads"]) * int(cfg["head_dim"])
    g = E.Geometry(tuple((m.k, m.n) for m in mats), attn, weight_bytes, kv_per_position, kv_per_position / kv_elements)
    return g, {
        "weight_matmuls": len(mats),
        "matmuls": [[m.k, m.n] for m in mats],
        "weight_macs_per_token": g.weight_macs_per_token,
        "weight_macs_per_token_cost_model": cost_weight_macs,
        "inputs_per_token": g.inputs_per_token,
        "attention_macs_per_position": attn,
        "weight_bytes_per_pass": weight_bytes,
        "kv_bytes_per_position": kv_per_position,
        "kv_element_bytes": g.kv_element_bytes,
        "mean_context_tokens": T,
    }


def _per_token(energy: dict[str, float], tokens: int) -> dict[str, float]:
    out = {d: j / tokens for d, j in energy.items()}
    out["total"] = sum(energy.values()) / tokens
    return out


def dram_sensitivity(energy: Callable, p, step: E.Work) -> dict:
    """Decode J/token at the low and high end of the DRAM range (and at each preset), all else equal.

    Args:
        energy: ``(work, params) -> {domain: joules}``.
        p: the resolved parameters (their ``dram_pj_per_bit`` is the reported value).
        step: one decode step at the mean context.
    """
    lo = min(P.DRAM_RANGE_PJ_PER_BIT[0], p.dram_pj_per_bit)
    hi = max(P.DRAM_RANGE_PJ_PER_BIT[1], p.dram_pj_per_bit)

    def at(pj: float) -> float:
        return sum(energy(step, P.with_dram(p, pj)).values()) / step.tokens

    return {
        "low_pj_per_bit": lo,
        "high_pj_per_bit": hi,
        "j_per_token_low": at(lo),
        "j_per_token_high": at(hi),
        "pj_per_bit": p.dram_pj_per_bit,
        "j_per_token": at(p.dram_pj_per_bit),
        "presets_j_per_token": {name: at(v[0]) for name, v in P.DRAM.items()},
        "note": "decode J/token at the mean context with only the DRAM energy per bit changed, over the span of "
        "every DRAM preset's published range (" + "; ".join(f"{n}: {v[2]}" for n, v in P.DRAM.items()) + ")",
    }


class SimulatedBackend:
    """``neuromorphic-sim`` or ``optical-sim``: the ``cpu`` backend's exact model plus a simulated meter."""

    def __init__(self, name: str):
        if name not in (NEUROMORPHIC, OPTICAL):
            raise BackendError(f"no simulated backend {name!r}", f"valid: {NEUROMORPHIC}, {OPTICAL}")
        self.name = name

    def prepare(self, profile, progress: Optional[Callable[[str], None]] = None) -> SimulatedSession:
        """Prepare the exact model on the CPU, resolve the simulation figures and (optical) measure accuracy.

        Raises:
            BackendError: the model cannot be driven, or it has no weight matmuls to count.
        """
        from greenbench.backends.ort import cpu_backend

        inner = cpu_backend().prepare(profile, progress)
        try:
            return self._wrap(inner, profile, progress)
        except BaseException:
            inner.close()
            raise

    def _wrap(self, inner, profile, progress) -> SimulatedSession:
        info, cost = inner.describe(), inner.cost()
        g, geo_info = geometry_of(info, cost)
        B, T = inner.batch_size, geo_info["mean_context_tokens"]
        step = E.decode_work(g, T, 1, B)  # one decode step at the mean context: the per-token summary
        try:
            p = P.neuromorphic_params(profile.sim) if self.name == NEUROMORPHIC else P.optical_params(profile.sim)
        except (ValueError, KeyError) as exc:
            raise BackendError(f"[sim] {exc}", "valid presets: greenbench/backends/sim/params.py") from None
        sim: dict = {
            "backend": self.name,
            "statement": STATEMENT,
            "parameters": p.as_dict(),
            "parameter_sources": dict(p.sources),
            "geometry": geo_info,
        }
        if self.name == NEUROMORPHIC:
            try:
                placement = E.place(g, p.chip_memory_bytes, p.weight_bits, p.chips)
            except ValueError as exc:
                raise BackendError(f"[sim] {exc}", "raise chip_memory_bytes or lower weight_bits") from None
            energy = lambda w, q=p: E.neuromorphic_energy(w, g, q, placement)  # noqa: E731
            domains = E.NEUROMORPHIC_DOMAINS
            _, time_how = E.neuromorphic_time(step, g, p, placement)
            geo_info["placement"] = placement.as_dict()
            sim["time_model"] = (
                {"kind": "modelled", "source": p.timing["source"]} if time_how == "modelled" else
                {"kind": "host", "source": "no latency model for this chip: the static term uses the host's wall "
                 "time of each pass" + (" (0 W here)" if not p.static_power_w else "")}
            )
            sim["energy_model"] = (
                "synaptic_ops = weight MACs x firing_rate x timesteps x synaptic_op_pj (SpikeGPT convention); "
                "neuron_updates = matmul outputs x timesteps x (rate x active + (1 - rate) x inactive pJ); "
                "spikes = weight-matmul input activations x firing_rate x timesteps x spike_pj; "
                "routing = spikes x hops_per_spike x hop_pj; interchip = spikes into a matmul on another chip x "
                "interchip_pj_per_spike; static = static_power_w x chips x time; attention_digital = attention MACs "
                "x digital_mac_pj (digital co-processor); memory = (weights beyond on-chip capacity, at weight_bits, "
                "per pass" + (" x timesteps" if p.refetch_weights_per_timestep else "")
                + " + KV bytes) x 8 x dram_pj_per_bit"
                + ("; all-in chip figure: spikes, routing, neuron updates, static power and on-chip memory are "
                   "inside synaptic_op_pj" if p.all_in else "")
            )
            ref = E.digital_reference_energy(step, g, p)
            ref_sram = E.digital_reference_energy(step, g, p, weights_on_chip=True)
            r_star = E.break_even_firing_rate(g, p)
            side = "above" if p.firing_rate > P.YAN_BREAK_EVEN_SPIKE_RATE else "at or below"
            sim["reference"] = {
                "digital_decode_j_per_token": _per_token(ref, step.tokens),
                "digital_memory_share": E.memory_share(ref),
                "digital_note": f"the same work on a digital {p.digital_precision} accelerator at "
                f"{p.process_node_nm:g} nm: every MAC at digital_mac_pj, weights read from DRAM once per pass, "
                "the same KV traffic",
                "digital_weights_on_chip_decode_j_per_token": _per_token(ref_sram, step.tokens),
                "digital_weights_on_chip_memory_share": E.memory_share(ref_sram),
                "digital_weights_on_chip_note": "the same digital accelerator holding the weights in on-chip SRAM "
                "(read once per pass at Horowitz 2014's 100 pJ per 64 bits of a 1 MB SRAM): the like-for-like "
                "baseline when the chip holds the weights too",
                "break_even_firing_rate": r_star,
                "break_even_note": "firing rate at which synaptic ops + neuron updates + spikes + routing cost as "
                "much as the digital weight MACs (attention and memory excluded: both run the same way beside either)"
                + ("; null: the inactive neuron updates alone cost more than the digital MACs" if r_star is None else ""),
                "yan2024_break_even_spike_rate": P.YAN_BREAK_EVEN_SPIKE_RATE,
                "yan2024_note": (
                    f"firing_rate {p.firing_rate:g} is {side} "
                    "the ~6.4 % spike rate below which Yan et al. (arXiv:2409.08290) find SNNs save energy once "
                    "data movement is counted"
                ),
            }
            keys = ["spikegpt2023", "spikformer2023", "yan2024", "horowitz2014", "kaplan2020"]
            chip_paper = {"loihi": ["davies2018", "frady2020", "merolla2014"], "truenorth": ["merolla2014"],
                          "spinnaker": ["vanalbada2018", "furber2014"]}
            keys += chip_paper.get(p.chip, [])
            keys += ["oconnor2017", "yan2020"] if p.dram == "hbm2e" else []
            accuracy = {
                "token_agreement": None,
                "method": "not simulated: the tokens are the exact (non-spiking) model's; converting a model to a "
                "spiking network changes its accuracy, which this backend does not model",
            }
        else:
            energy = lambda w, q=p: E.optical_energy(w, g, q)  # noqa: E731
            domains = E.OPTICAL_DOMAINS[p.optical_model]
            geo_info["weights_resident"] = E.weights_resident(g, p)
            geo_info["array_weights"] = p.array_size**2 * p.array_count
            geo_info["conversions_per_token"] = g.conversions_per_token(p.array_size)
            geo_info["partial_sums_per_token"] = g.partial_sums_per_token(p.array_size)
            geo_info["tiles_per_token"] = g.tiles_per_token(p.array_size)
            if p.optical_model == "physics":
                sim["time_model"] = {
                    "kind": "modelled",
                    "source": "tokens x tiles / (array_count x modulation_ghz): one array cycle per tile; "
                    "programming time not modelled",
                }
                sim["energy_model"] = (
                    ("laser = digitised partial sums x 3 x 4^ENOB photons x h c / wavelength (shot-noise limit, "
                     "Hamerly et al. 2019)" if p.laser_optical_fj_per_op is None else
                     "laser = weight MACs x ops_per_mac x laser_optical_fj_per_op")
                    + " / laser_wall_plug_efficiency; adc_dac = per token and weight matmul ceil(N/A)*K + "
                    "ceil(K/A)*N conversions x FOM x 2^ENOB; weight_programming = every weight once per pass x FOM "
                    "x 2^ENOB unless the weights fit on the arrays; weight_hold = hold_mw_per_weight x weights on "
                    "the arrays x modelled compute time; attention_digital = attention MACs x digital_mac_pj; "
                    "memory = (weights at weight_bits per pass unless resident + KV bytes) x 8 x dram_pj_per_bit"
                )
            else:
                sim["energy_model"] = (
                    "optical_system = weight MACs x ops_per_mac x op_pj (measured all-in figure); attention_digital "
                    "= attention MACs x digital_mac_pj; memory = (weights at weight_bits per pass + KV bytes) x 8 x "
                    "dram_pj_per_bit"
                )
            other = dataclasses.replace(p, optical_model="lightmatter" if p.optical_model == "physics" else "physics")
            ref = E.digital_reference_energy(step, g, p)
            sim["reference"] = {
                f"{other.optical_model}_decode_j_per_token": _per_token(E.optical_energy(step, g, other), step.tokens),
                "digital_decode_j_per_token": _per_token(ref, step.tokens),
                "digital_memory_share": E.memory_share(ref),
                "digital_note": f"the same work on a digital {p.digital_precision} accelerator at "
                f"{p.process_node_nm:g} nm: every MAC at digital_mac_pj, weights read from DRAM once per pass",
                "quantum_limit_weight_macs_j_per_token": g.weight_macs_per_token * P.QUANTUM_LIMIT_J_PER_MAC,
                "quantum_limit_note": "Hamerly et al. 2019: ~50 zJ per MAC, the weight MACs only, no memory",
            }
            keys = ["ahmed2025", "murmann", "nahmias2020", "hamerly2019", "harris2014", "horowitz2014", "kaplan2020"]
            keys += ["oconnor2017", "yan2020"] if p.dram == "hbm2e" else []
            accuracy = self._accuracy(inner, profile, p, info, len(g.matmuls), progress) if p.measure_accuracy else {
                "token_agreement": None, "method": "not measured ([sim] measure_accuracy = false)"}
        per_token = energy(step)
        sim["decode_j_per_token_at_mean_context"] = _per_token(per_token, step.tokens)
        sim["memory_share"] = E.memory_share(per_token)
        sim["memory_share_note"] = ("DRAM (KV cache, and weights that are not resident) over the total, per decode "
                                    "token at the mean context")
        sim["dram_sensitivity"] = dram_sensitivity(energy, p, step)
        if self.name == NEUROMORPHIC and sim["time_model"]["kind"] == "host" and p.static_power_w:
            sim["decode_note"] = "static energy needs the host time of a pass: not in the mean-context figures"
        sim["citations"] = [P.CITATIONS[k] for k in keys]
        meter = SimulatedMeter(self.name, domains)
        return SimulatedSession(inner, meter, g, energy, {"simulation": sim, "accuracy": accuracy})

    def _accuracy(self, inner, profile, p, info, n_matmuls: int, progress) -> dict:
        """Agreement of the noisy model with the exact one over ``accuracy_seeds`` noise seeds, with 95 %
        intervals, and the KL divergence of the next-token distributions (see
        :mod:`greenbench.backends.sim.noise`)."""
        from greenbench.backends.sim import noise
        from greenbench.models.loader import decoder_io, open_export_dir
        from greenbench.workloads.inference import DecoderSession

        n = profile.generation.max_new_tokens
        seeds = [p.noise_seed + noise.SEED_STRIDE * k for k in range(p.accuracy_seeds)]
        if progress:
            progress(f"optical-sim: measuring greedy-token agreement at ENOB {p.enob} over {n} tokens and "
                     f"{len(seeds)} noise seeds")
        exact, exact_logits = noise.greedy_with_logits(inner, n)
        inner.reset()
        export = open_export_dir(info["model_dir"], source=info.get("source"))
        threads = info.get("intra_op_threads") or 1

        def make_session(seed: int):
            ort_sess = noise.perturbed_session(info["onnx_path"], p.enob, seed, threads, p.array_size)
            io = decoder_io(ort_sess.get_inputs(), ort_sess.get_outputs(), export)
            return DecoderSession(ort_sess, io, inner.prompt_ids, batch_size=1, max_new_tokens=n)

        result = noise.measure_over_seeds(exact, exact_logits, make_session, seeds)
        return {
            **result,
            "enob": p.enob,
            "array_size": p.array_size,
            "noise_seed": p.noise_seed,
            "ci_method": "mean over seeds with a two-sided 95 % Student t interval (t_0.975,n-1 s / sqrt(n)); "
            "agreements clipped to [0, 1]",
            "method": (
                f"each of the {n_matmuls} weight matmuls (q/k/v/o projections, MLP, LM head) of the ONNX graph is "
                f"split into its ceil(K/{p.array_size}) partial sums, as the {p.array_size}x{p.array_size} array "
                f"digitises them; each partial sum y_c gets z * max|y_c| * 2^-{p.enob} / sqrt(3) (z ~ N(0,1), the "
                "noise of an ideal ENOB converter over [-max, max], max over each output vector); attention, norms "
                "and all other ops exact. token_agreement: teacher-forced (the noisy model is fed the exact model's "
                "preceding tokens) fraction of greedy tokens equal to the exact model's; free_running_agreement: the "
                "noisy model decoding on its own, position by position; kl_divergence: mean KL(exact || noisy) of the "
                "teacher-forced next-token distributions, nats"
            ),
        }


def neuromorphic_backend() -> SimulatedBackend:
    return SimulatedBackend(NEUROMORPHIC)


def optical_backend() -> SimulatedBackend:
    return SimulatedBackend(OPTICAL)
