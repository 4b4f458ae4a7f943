"""The optical precision model: analog noise on every weight matmul, measured as token agreement.

An analog photonic array computes ``y = x @ W`` with an effective resolution of ENOB bits
(energy-parameters.md: accuracy effects can be simulated by adding Gaussian noise of
``sigma ~ 2**-ENOB x full scale`` and measured as greedy-token agreement with the exact model).

What is perturbed, exactly: the output ``y`` of every weight matmul in the ONNX graph (``MatMul`` or
``Gemm`` with a constant 2-D weight, ``com.microsoft.MatMulNBits``: the q/k/v/o projections, the MLP and
the LM head) becomes ``y + z * max|y| * 2**-ENOB`` with ``z ~ N(0, 1)`` drawn per element by an ONNX
``RandomNormalLike`` node (node ``i`` seeded ``noise_seed + i``). ``max|y|`` is taken over each output
vector (the last axis): the ADC's full scale is set per readout, an ideal (optimistic) calibration.
Attention scores, softmax, norms, rotary embeddings and everything else stay exact, since attention
runs on the digital side in the energy model too. The graph is rewritten in memory; the model's
files are not touched (its external weights are read from the original directory).

Agreement is measured over the profile's prompt and ``max_new_tokens``:
    teacher-forced (``token_agreement``): at each position the perturbed model is fed the exact model's
        preceding tokens; the fraction of positions where its greedy token equals the exact one.
    free-running (``free_running_agreement``): the perturbed model decodes on its own; the fraction of
        positions equal to the exact sequence, and the first position where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from greenbench.errors import BackendError

WEIGHT_MATMUL_OPS = ("MatMul", "Gemm", "MatMulNBits")


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


def add_matmul_noise(model, enob: int, seed: int = 0) -> int:
    """Rewrite ``model`` in place: Gaussian noise on every weight matmul output (see module doc).

    Returns:
        The number of matmuls perturbed.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    targets = {m.index: m for m in weight_matmuls(model)}  # by position: node names need not be unique
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    nodes = []
    count = 0
    for i, node in enumerate(model.graph.node):
        nodes.append(node)
        m = targets.get(i)
        if m is None:
            continue
        y = node.output[0]
        p = f"greenbench_sim/noise{count}"
        exact = f"{p}/exact"
        node.output[0] = exact
        np_dtype = helper.tensor_dtype_to_np_dtype(m.elem_type)
        sigma = numpy_helper.from_array(np.array(2.0 ** -int(enob), dtype=np_dtype), f"{p}/sigma")
        model.graph.initializer.append(sigma)
        reduce_inputs = [f"{p}/abs"]
        reduce_attrs = {"keepdims": 1}
        if opset >= 18:
            model.graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{p}/axes"))
            reduce_inputs.append(f"{p}/axes")
        else:
            reduce_attrs["axes"] = [-1]
        nodes += [
            helper.make_node("Abs", [exact], [f"{p}/abs"], name=f"{p}/Abs"),
            helper.make_node("ReduceMax", reduce_inputs, [f"{p}/full_scale"], name=f"{p}/ReduceMax", **reduce_attrs),
            helper.make_node("RandomNormalLike", [exact], [f"{p}/z"], name=f"{p}/RandomNormalLike",
                             seed=float(int(seed) + count)),
            helper.make_node("Mul", [f"{p}/z", f"{p}/full_scale"], [f"{p}/z_fs"], name=f"{p}/Mul0"),
            helper.make_node("Mul", [f"{p}/z_fs", sigma.name], [f"{p}/noise"], name=f"{p}/Mul1"),
            helper.make_node("Add", [exact, f"{p}/noise"], [y], name=f"{p}/Add"),
        ]
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def perturbed_session(onnx_path, enob: int, seed: int, threads: int):
    """An onnxruntime CPU session of the model with :func:`add_matmul_noise` applied.

    Raises:
        BackendError: the graph has no weight matmuls, or onnxruntime rejects the rewritten graph.
    """
    import onnxruntime as ort

    from greenbench.backends.ort import _ort_message, session_options

    model = load_graph(onnx_path)
    if add_matmul_noise(model, enob, seed) == 0:
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


def measure_agreement(exact_tokens: list[int], noisy) -> dict:
    """Teacher-forced and free-running greedy agreement of ``noisy`` (an InferenceSession) with ``exact_tokens``."""
    n = len(exact_tokens)
    noisy.reset()
    forced = [noisy.prefill()]
    for tok in exact_tokens[:-1]:
        forced.append(noisy.decode(tok, 1)[0])
    free = greedy_tokens(noisy, n)
    diverge = next((i for i, (a, b) in enumerate(zip(exact_tokens, free)) if a != b), None)
    return {
        "token_agreement": sum(a == b for a, b in zip(exact_tokens, forced)) / n,
        "free_running_agreement": sum(a == b for a, b in zip(exact_tokens, free)) / n,
        "first_divergence": diverge,
        "positions": n,
        "perturbed_token_ids": free,
    }
