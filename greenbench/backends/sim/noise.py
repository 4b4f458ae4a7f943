"""The optical precision model: analog noise on every digitised partial sum, measured as token agreement.

An analog photonic array computes ``y = x @ W`` with an effective resolution of ENOB bits. On an
``A x A`` array a ``K x N`` weight matmul is split into ``ceil(K/A)`` row tiles; each tile's partial sum
``y_c = x[.., c] @ W[c, :]`` goes through an ADC, and the digital side adds them up. That is what the
energy model counts (``ceil(K/A) x N`` ADC conversions per token), and that is where noise is added here.

The noise of each partial sum is an ideal ENOB-bit converter's: a B-bit quantiser over ``[-FS, FS]``
has an LSB of ``2 FS 2^-B`` and noise ``LSB / sqrt(12) = FS 2^-B / sqrt(3)`` (Bennett 1948; the
definition of ENOB, Walden 1999), modelled as Gaussian: ``y_c + z * max|y_c| * 2**-ENOB / sqrt(3)``
with ``z ~ N(0, 1)`` per element, drawn by an ONNX ``RandomNormalLike`` node. ``max|y_c|`` is taken over
each partial-sum vector (the last axis): the ADC's full scale is set per readout, an ideal
(optimistic) calibration. The same ``3 x 4^ENOB`` photons per readout that make shot noise no larger
than this are what the energy model's laser term pays for (:mod:`.params`).

What is perturbed, exactly: every weight matmul in the ONNX graph (``MatMul`` or ``Gemm`` with a
constant 2-D weight, ``com.microsoft.MatMulNBits``: the q/k/v/o projections, the MLP and the LM head).
A ``MatMul`` is split into its partial sums (``Slice`` of the input and the weight, one ``MatMul``,
noise and ``Sum``); ``Gemm`` and ``MatMulNBits``, whose weights cannot be sliced the same way, get one
noise draw per output with sigma ``x sqrt(ceil(K/A))`` (the sum of that many equal, independent
partial-sum noises, with the whole output's full scale: an approximation). Attention scores, softmax,
norms, rotary embeddings and everything else stay exact, since attention runs on the digital side in
the energy model too. The graph is rewritten in memory; the model's files are not touched (its
external weights are read from the original directory).

Agreement is measured over the profile's prompt and ``max_new_tokens``:
    teacher-forced (``token_agreement``): at each position the perturbed model is fed the exact model's
        preceding tokens; the fraction of positions where its greedy token equals the exact one.
    free-running (``free_running_agreement``): the perturbed model decodes on its own; the fraction of
        positions equal to the exact sequence, and the first position where they differ.
    KL divergence (``kl_divergence``): the mean over teacher-forced positions of
        ``KL(p_exact || p_noisy)`` of the next-token distributions (softmax of the logits), in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from greenbench.errors import BackendError

WEIGHT_MATMUL_OPS = ("MatMul", "Gemm", "MatMulNBits")
#: Seeds of one noise draw are ``seed + i`` for matmul ``i``; draw ``k`` of several starts at ``seed + SEED_STRIDE k``.
SEED_STRIDE = 10_000
IDEAL_ADC_SIGMA = 1.0 / math.sqrt(3.0)  # noise / (full scale x 2^-ENOB) of an ideal converter over [-FS, FS]


@dataclass(frozen=True)
class WeightMatmul:
    """A matmul against a constant weight: node index and name, ``K`` inputs, ``N`` outputs, output element type."""

    index: int  # position in graph.node
    node: str
    k: int
    n: int
    elem_type: int  # onnx.TensorProto data type of the output


def weight_matmuls(model) -> list[WeightMatmul]:
    """The weight matmuls of an ``onnx.ModelProto``'s main graph, in graph order."""
    import onnx

    inits = {t.name: t for t in model.graph.initializer}
    out: list[WeightMatmul] = []
    for i, node in enumerate(model.graph.node):
        name = node.name or f"node{i}"
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            t = inits[node.input[1]]
            if len(t.dims) != 2:
                continue
            k, n = int(t.dims[0]), int(t.dims[1])
            if node.op_type == "Gemm":
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                if attrs.get("transB", 0):
                    k, n = n, k
            out.append(WeightMatmul(i, name, k, n, t.data_type))
        elif node.op_type == "MatMulNBits":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            scales = inits.get(node.input[2]) if len(node.input) > 2 else None
            elem = scales.data_type if scales is not None else onnx.TensorProto.FLOAT
            out.append(WeightMatmul(i, name, int(attrs["K"]), int(attrs["N"]), elem))
    return out


def load_graph(onnx_path):
    """The model's graph without its external weight data (cheap even for large models)."""
    import onnx

    try:
        return onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise BackendError(f"cannot read the ONNX graph {onnx_path}: {exc}") from None


def add_matmul_noise(model, enob: int, seed: int = 0, array_size: int | None = None) -> int:
    """Rewrite ``model`` in place: ideal-converter noise on every digitised partial sum (see module doc).

    Args:
        model: an ``onnx.ModelProto``.
        enob: effective bits of the ADCs.
        seed: seed of the first ``RandomNormalLike`` node (the next ones use ``seed + 1``, ...).
        array_size: rows of the photonic array (``A``); None: one partial sum per output (``K <= A``).

    Returns:
        The number of matmuls perturbed.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    targets = {m.index: m for m in weight_matmuls(model)}  # by position: node names need not be unique
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    inits = model.graph.initializer
    nodes: list = []
    draws = 0

    def const(name: str, values, dtype=np.int64) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=dtype), name))
        return name

    def noisy(p: str, exact: str, out: str, np_dtype, sigma_factor: float) -> None:
        nonlocal draws
        sigma = const(f"{p}/sigma", sigma_factor * 2.0 ** -int(enob), np_dtype)
        reduce_inputs, reduce_attrs = [f"{p}/abs"], {"keepdims": 1}
        if opset >= 18:
            reduce_inputs.append(const(f"{p}/axes", [-1]))
        else:
            reduce_attrs["axes"] = [-1]
        nodes.extend([
            helper.make_node("Abs", [exact], [f"{p}/abs"], name=f"{p}/Abs"),
            helper.make_node("ReduceMax", reduce_inputs, [f"{p}/full_scale"], name=f"{p}/ReduceMax", **reduce_attrs),
            helper.make_node("RandomNormalLike", [exact], [f"{p}/z"], name=f"{p}/RandomNormalLike",
                             seed=float(int(seed) + draws)),
            helper.make_node("Mul", [f"{p}/z", f"{p}/full_scale"], [f"{p}/z_fs"], name=f"{p}/Mul0"),
            helper.make_node("Mul", [f"{p}/z_fs", sigma], [f"{p}/noise"], name=f"{p}/Mul1"),
            helper.make_node("Add", [exact, f"{p}/noise"], [out], name=f"{p}/Add"),
        ])
        draws += 1

    count = 0
    for i, node in enumerate(model.graph.node):
        m = targets.get(i)
        if m is None:
            nodes.append(node)
            continue
        p = f"greenbench_sim/noise{count}"
        np_dtype = helper.tensor_dtype_to_np_dtype(m.elem_type)
        a = int(array_size) if array_size else m.k
        chunks = math.ceil(m.k / a)
        y = node.output[0]
        if node.op_type == "MatMul" and chunks > 1:
            parts = []
            for c in range(chunks):
                q = f"{p}/part{c}"
                starts, ends = const(f"{q}/starts", [c * a]), const(f"{q}/ends", [min(m.k, (c + 1) * a)])
                nodes.extend([
                    helper.make_node("Slice", [node.input[0], starts, ends, const(f"{q}/axis_x", [-1])], [f"{q}/x"],
                                     name=f"{q}/SliceX"),
                    helper.make_node("Slice", [node.input[1], starts, ends, const(f"{q}/axis_w", [0])], [f"{q}/w"],
                                     name=f"{q}/SliceW"),
                    helper.make_node("MatMul", [f"{q}/x", f"{q}/w"], [f"{q}/exact"], name=f"{q}/MatMul"),
                ])
                noisy(q, f"{q}/exact", f"{q}/y", np_dtype, IDEAL_ADC_SIGMA)
                parts.append(f"{q}/y")
            nodes.append(helper.make_node("Sum", parts, [y], name=f"{p}/Sum"))
        else:
            exact = f"{p}/exact"
            node.output[0] = exact
            nodes.append(node)
            noisy(p, exact, y, np_dtype, IDEAL_ADC_SIGMA * math.sqrt(chunks))
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def perturbed_session(onnx_path, enob: int, seed: int, threads: int, array_size: int | None = None):
    """An onnxruntime CPU session of the model with :func:`add_matmul_noise` applied.

    Raises:
        BackendError: the graph has no weight matmuls, or onnxruntime rejects the rewritten graph.
    """
    import onnxruntime as ort

    from greenbench.backends.ort import _ort_message, session_options

    model = load_graph(onnx_path)
    if add_matmul_noise(model, enob, seed, array_size) == 0:
        raise BackendError(
            f"optical-sim: {onnx_path} has no weight matmuls (MatMul/Gemm with a constant weight, MatMulNBits) "
            "to perturb",
            "set [sim] measure_accuracy = false to skip the accuracy measurement",
        )
    so = session_options(threads)
    # the rewritten graph is loaded from memory; its external weights stay in the model's directory
    so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(Path(onnx_path).parent))
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise BackendError(
            f"optical-sim: onnxruntime cannot run {onnx_path} with noise added to its matmuls: {_ort_message(exc)}",
            "set [sim] measure_accuracy = false to skip the accuracy measurement",
        ) from None


def greedy_tokens(session, n: int) -> list[int]:
    """``n`` greedy tokens from a prepared InferenceSession, as the runner generates them."""
    session.reset()
    first = session.prefill()
    return [first] + (list(session.decode(first, n - 1)) if n > 1 else [])


def _last_logits(session):
    get = getattr(session, "last_logits", None)
    return get() if get is not None else None


def greedy_with_logits(session, n: int) -> tuple[list[int], list | None]:
    """``n`` greedy tokens, one step at a time, and the logits each was chosen from (None if the session
    does not expose them)."""
    session.reset()
    tokens = [session.prefill()]
    logits = [_last_logits(session)]
    while len(tokens) < n:
        tokens.append(session.decode(tokens[-1], 1)[0])
        logits.append(_last_logits(session))
    return tokens, (None if any(x is None for x in logits) else logits)


def kl_divergence(p_logits, q_logits) -> float:
    """``KL(softmax(p) || softmax(q))`` in nats, computed in float64 from log-softmax."""
    import numpy as np

    p = np.asarray(p_logits, dtype=np.float64)
    q = np.asarray(q_logits, dtype=np.float64)
    lp = p - p.max() - np.log(np.exp(p - p.max()).sum())
    lq = q - q.max() - np.log(np.exp(q - q.max()).sum())
    return float(max(0.0, (np.exp(lp) * (lp - lq)).sum()))


def measure_agreement(exact_tokens: list[int], noisy, exact_logits: list | None = None) -> dict:
    """Teacher-forced and free-running greedy agreement of ``noisy`` (an InferenceSession) with ``exact_tokens``,
    and the mean KL divergence of its teacher-forced next-token distributions from ``exact_logits`` (when given
    and the session exposes its logits)."""
    n = len(exact_tokens)
    noisy.reset()
    forced = [noisy.prefill()]
    forced_logits = [_last_logits(noisy)]
    for tok in exact_tokens[:-1]:
        forced.append(noisy.decode(tok, 1)[0])
        forced_logits.append(_last_logits(noisy))
    free = greedy_tokens(noisy, n)
    diverge = next((i for i, (a, b) in enumerate(zip(exact_tokens, free)) if a != b), None)
    kl = None
    if exact_logits is not None and all(x is not None for x in forced_logits):
        kl = sum(kl_divergence(p, q) for p, q in zip(exact_logits, forced_logits)) / n
    return {
        "token_agreement": sum(a == b for a, b in zip(exact_tokens, forced)) / n,
        "free_running_agreement": sum(a == b for a, b in zip(exact_tokens, free)) / n,
        "first_divergence": diverge,
        "kl_divergence": kl,
        "positions": n,
        "perturbed_token_ids": free,
    }


def measure_over_seeds(exact_tokens: list[int], exact_logits: list | None, make_session, seeds: list[int]) -> dict:
    """:func:`measure_agreement` once per noise seed, and each figure's mean with its 95 % t interval.

    Args:
        exact_tokens, exact_logits: the exact model's greedy tokens and their logits.
        make_session: ``seed -> session`` of the perturbed model (closed here after use).
        seeds: the noise seeds.

    Returns:
        ``seeds``, ``per_seed`` (each seed's figures), and for ``token_agreement``,
        ``free_running_agreement`` and ``kl_divergence``: the mean and ``<name>_ci95`` as ``[low, high]``
        (Student t over seeds; agreements clipped to [0, 1]).
    """
    from greenbench.stats import mean_ci95

    per_seed = []
    for seed in seeds:
        session = make_session(seed)
        try:
            r = measure_agreement(exact_tokens, session, exact_logits)
        finally:
            close = getattr(session, "close", None)
            if close:
                close()
        per_seed.append({"seed": seed, **r})
    out: dict = {"seeds": list(seeds), "per_seed": per_seed, "positions": len(exact_tokens)}
    for key, lo, hi in (("token_agreement", 0.0, 1.0), ("free_running_agreement", 0.0, 1.0),
                        ("kl_divergence", 0.0, None)):
        values = [r[key] for r in per_seed if r[key] is not None]
        stat = mean_ci95(values, lo, hi)
        out[key] = stat[0] if stat else None
        out[f"{key}_ci95"] = list(stat[1]) if stat else None
    return out
