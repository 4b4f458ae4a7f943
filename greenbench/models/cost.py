"""The decode cost model: parameters, MACs and bytes per generated token, and the memory roofline.

For a Llama-style decoder with L layers, hidden H, nH query heads, kvH key/value heads, head dim hd,
MLP width F, vocab V and context T (energy-parameters.md, after Kaplan et al. 2020, arXiv:2001.08361,
Table 1, plus the LM head):

    MACs/token  = L·[H·hd·(2·nH + 2·kvH) + 3·H·F + 2·nH·hd·T] + H·V          (FLOPs = 2·MACs)
    bytes/token = b_w·[L·(H·hd·(2nH+2kvH) + 3HF) + H·V + H] + b_kv·2·L·kvH·hd·(T+1)

``b_w`` is the bytes per weight (4 fp32, 2 fp16; int4 ``MatMulNBits``: half a byte plus a 4-byte scale
per block, counted exactly per matrix) and ``b_kv`` the bytes per KV element. With batch B one step
reads the weights once for B tokens, so the weight term is divided by B.

Memory-bound ceiling (kipply, "Transformer Inference Arithmetic", 2022):
``tokens/s <= bandwidth / bytes_per_token``; :func:`roofline` reports the achieved fraction of it.
"""

from __future__ import annotations

import math

from greenbench.models.config import LlamaConfig

CITATION = (
    "MACs: Kaplan et al. 2020 (arXiv:2001.08361) Table 1 + LM head; bytes and ceiling: kipply, "
    "'Transformer Inference Arithmetic' (2022); see energy-parameters.md"
)


def _matrix_bytes(k: int, n: int, dtype: str, block_size: int) -> int:
    if dtype == "int4":
        n_blocks = -(-k // block_size)
        return n * n_blocks * (block_size // 2) + n * n_blocks * 4
    return k * n * (2 if dtype == "fp16" else 4)


def decode_cost(cfg: LlamaConfig, context_tokens: int, batch_size: int = 1) -> dict:
    """Cost per generated token of one decode step at context ``context_tokens`` (see module docstring)."""
    L, H, nH, kvH, hd, F, V = cfg.layers, cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn, cfg.vocab
    T = int(context_tokens)
    macs = L * (H * hd * (2 * nH + 2 * kvH) + 3 * H * F + 2 * nH * hd * T) + H * V
    bs = cfg.int4_block_size
    mats = [(H, nH * hd + 2 * kvH * hd), (nH * hd, H), (H, F), (H, F), (F, H)]
    layer_bytes = sum(_matrix_bytes(k, n, cfg.dtype, bs) for k, n in mats)
    b_act = 2 if cfg.dtype == "fp16" else 4  # embeddings, norms and KV stay in the activation dtype
    weight_bytes = L * layer_bytes + _matrix_bytes(H, V, cfg.dtype, bs) + H * b_act
    kv_bytes = b_act * 2 * L * kvH * hd * (T + 1)
    params = L * (H * hd * (nH + 2 * kvH) + nH * hd * H + 3 * H * F + 2 * H) + 2 * V * H + H
    return _cost(params, macs, weight_bytes, kv_bytes, T, batch_size, "analytic")


TRAINING_CITATION = (
    "FLOPs per trained token = 6 N + 12 L H Q T: Chowdhery et al. 2022 (PaLM, arXiv:2204.02311), appendix B "
    "(the 6N term: Kaplan et al. 2020, arXiv:2001.08361, section 2.1, N without embeddings)"
)


def training_cost(
    *, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, ffn: int, vocab: int, seq_len: int
) -> dict:
    """FLOPs per trained token of the training workload's decoder (PaLM appendix B).

    ``flops_per_token = 6 N + 12 L nH hd T``: a forward pass costs 2 FLOPs per weight per token and the
    backward pass twice that (Kaplan et al. 2020, section 2.1: C = 6N); attention adds ``QK^T`` and
    ``softmax x V``, 2 matmuls of ``2 nH hd T`` FLOPs per token and layer forward, x3 with the backward
    pass (Chowdhery et al. 2022, appendix B). ``N`` counts the weights of the matmuls a token goes
    through: q/k/v/o, the MLP and the (untied) LM head. The embedding table is excluded, as Kaplan et
    al. exclude it: a lookup reads one row and does no multiply-adds, so ``6 x all parameters``
    overstates the work by ``6 V H`` per token. RMSNorm gains are excluded as sub-leading (a handful of
    FLOPs each, not 6 per token). ``T`` is the full sequence length, as in PaLM: causal masking makes
    half of the score matrix unused, but dense kernels compute it.

    Returns:
        ``params`` (every parameter, the embedding table included), ``non_embedding_params`` (N),
        ``embedding_params``, ``flops_per_token``, ``attention_flops_per_token``, ``seq_len``,
        ``method``, ``citation``.
    """
    L, H, nH, kvH, hd, F, V, T = layers, hidden, heads, kv_heads, head_dim, ffn, vocab, int(seq_len)
    per_layer = H * nH * hd + 2 * H * kvH * hd + nH * hd * H + 3 * H * F
    matmul_params = L * per_layer + H * V  # + LM head
    norm_params = 2 * L * H + H
    embedding = V * H
    attention = 12 * L * nH * hd * T
    return {
        "params": int(matmul_params + norm_params + embedding),
        "non_embedding_params": int(matmul_params),
        "embedding_params": int(embedding),
        "flops_per_token": float(6 * matmul_params + attention),
        "attention_flops_per_token": float(attention),
        "seq_len": T,
        "method": "analytic (6N + 12LHQT)",
        "citation": TRAINING_CITATION,
    }


def _cost(params, macs, weight_bytes, kv_bytes, context_tokens: int, batch_size: int, method: str) -> dict:
    """The cost dict: weight reads are shared by the batch's rows, KV reads are per row."""
    return {
        "params": int(params),
        "macs_per_token": float(macs),
        "flops_per_token": float(2 * macs),
        "bytes_per_token": float(weight_bytes / batch_size + kv_bytes),
        "weight_bytes_per_step": float(weight_bytes),
        "kv_bytes_per_token": float(kv_bytes),
        "context_tokens": int(context_tokens),
        "batch_size": int(batch_size),
        "method": method,
        "citation": CITATION,
    }


def graph_cost(
    onnx_path,
    *,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    kv_itemsize: int,
    context_tokens: int,
    batch_size: int = 1,
) -> dict:
    """The same cost model for a model we did not build, counted from its ONNX initializers.

    Weight bytes and MACs come from the constant right-hand operands of ``MatMul``/``Gemm``/``MatMulNBits``
    (K·N MACs, their stored bytes); an embedding table read by ``Gather`` and by no matmul counts one row.
    The attention term ``2·nH·hd·T`` per layer and the KV bytes use the given head counts.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}

    def nbytes(t) -> int:
        n = math.prod(t.dims)
        return n * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize

    macs = 0
    weight_bytes = 0
    params = 0
    matmul_weights: set[str] = set()
    gathers: list = []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            t = inits[node.input[1]]
            if len(t.dims) == 2:
                macs += t.dims[0] * t.dims[1]
                params += t.dims[0] * t.dims[1]
                weight_bytes += nbytes(t)
                matmul_weights.add(t.name)
        elif node.op_type == "MatMulNBits":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            macs += attrs["K"] * attrs["N"]
            params += attrs["K"] * attrs["N"]
            for name in node.input[1:]:
                if name in inits:
                    weight_bytes += nbytes(inits[name])
        elif node.op_type == "Gather" and node.input[0] in inits and len(inits[node.input[0]].dims) == 2:
            gathers.append(inits[node.input[0]])
    for t in gathers:
        if t.name not in matmul_weights:
            params += t.dims[0] * t.dims[1]
            weight_bytes += nbytes(t) // t.dims[0]  # one row per token
    T = int(context_tokens)
    macs += layers * 2 * heads * head_dim * T
    kv_bytes = kv_itemsize * 2 * layers * kv_heads * head_dim * (T + 1)
    return _cost(params, macs, weight_bytes, kv_bytes, T, batch_size, "counted-from-graph")


def roofline(cost: dict, tokens_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """Achieved fraction of the memory-bound ceiling: ``tokens_per_s / (bandwidth / bytes_per_token)``.

    ``tokens_per_s`` counts every generated token (all batch rows), matching ``bytes_per_token``.
    """
    if bandwidth_bytes_per_s <= 0 or cost["bytes_per_token"] <= 0:
        raise ValueError("bandwidth and bytes_per_token must be positive")
    return float(tokens_per_s) / (float(bandwidth_bytes_per_s) / float(cost["bytes_per_token"]))


def roofline_bounds(cost: dict, tokens_per_s: float, bandwidth_bytes_per_s: float,
                    peak_macs_per_s: float | None) -> dict:
    """Both ceilings (tokens/s), which one binds, and the achieved fraction of it.

    The memory ceiling is ``bandwidth / bytes_per_token``, the compute ceiling ``peak MACs/s /
    MACs_per_token`` (Williams et al., "Roofline", CACM 2009); the lower one is the bound. A fraction above
    1 means a ceiling was measured too low: it is flagged (``roofline_fraction`` null, the raw value kept in
    ``roofline_fraction_raw``), never reported as if decode beat physics.
    """
    mem = float(bandwidth_bytes_per_s) / float(cost["bytes_per_token"])
    cmp_ = (float(peak_macs_per_s) / float(cost["macs_per_token"])
            if peak_macs_per_s and cost.get("macs_per_token") else None)
    bound, ceiling = ("memory", mem) if cmp_ is None or mem <= cmp_ else ("compute", cmp_)
    frac = float(tokens_per_s) / ceiling
    out = {
        "memory_ceiling_tokens_per_s": mem,
        "compute_ceiling_tokens_per_s": cmp_,
        "bound": bound,
        "roofline_fraction": frac,
        "roofline_fraction_raw": frac,
    }
    if frac > 1.0:
        out["roofline_fraction"] = None
        out["roofline_flag"] = (
            f"decode ran at {frac:.3g}x the {bound} ceiling measured here: the probe missed a faster path, so no "
            "fraction is reported (roofline_fraction_raw keeps the value)"
        )
    return out
