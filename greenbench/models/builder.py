"""Build a Llama-style decoder as an ONNX graph with seeded random weights.

Two graph forms (see :mod:`greenbench.models.config`):

``contrib`` (default), laid out like the onnxruntime-genai model builder:
    inputs ``input_ids [B, S]``, ``attention_mask [B, T]``, ``past_key_values.{i}.key/.value
    [B, kvH, P, hd]``; outputs ``logits [B, S, V]``, ``present.{i}.key/.value``. ``seqlens_k =
    sum(attention_mask) - 1`` and ``total_sequence_length = T`` are computed inside the graph and fed
    to ``GroupQueryAttention`` (packed QKV, rotary inside, so there is no ``position_ids`` input).
    Past and present may be the same max-length buffer (genai's ``past_present_share_buffer``).
    Norms are ``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` (residual add
    fused).

``standard``: plain ONNX ops (opset 17) with the Hugging Face Optimum ``text-generation-with-past``
    I/O: ``input_ids``, ``attention_mask``, ``position_ids`` (optional, else derived from the mask),
    4-D past that the graph concatenates with the new keys/values into ``present``.

dtype ``int4`` replaces every linear layer by ``com.microsoft.MatMulNBits`` (4-bit weights, fp32
activations) in both forms, with the config's ``int4_accuracy_level``: 4 by default (int8 compute, the
way int4 models are run on CPUs: 310-337 tok/s against 217-236 at level 0 for llama-125m on a 2-core
EPYC VM, the same greedy tokens), 0 for exact dequantized fp32 arithmetic (what the numpy reference
computes).

Large initializers go to one external data file (``model.onnx.data``), page-aligned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from greenbench.models.config import LlamaConfig
from greenbench.models.weights import make_weights, quantize_int4

OPSET = 17
MS_OPSET = 1
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
_ALIGN = 4096


class _GraphBuilder:
    """Collects nodes and initializers; writes large initializers to an external data file."""

    def __init__(self, data_fh=None):
        import onnx

        self.onnx = onnx
        self.nodes: list = []
        self.inits: list = []
        self.fh = data_fh
        self.offset = 0
        self._count = 0

    def init(self, name: str, arr: np.ndarray) -> str:
        onnx = self.onnx
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy()  # (np.ascontiguousarray would turn scalars into 1-D arrays)
        t = onnx.TensorProto()
        t.name = name
        t.data_type = onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        if self.fh is not None and arr.nbytes >= 1024:
            pad = (-self.offset) % _ALIGN
            if pad:
                self.fh.write(b"\0" * pad)
                self.offset += pad
            self.fh.write(memoryview(arr).cast("B"))
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", DATA_FILE), ("offset", str(self.offset)), ("length", str(arr.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            self.offset += arr.nbytes
        else:
            t.raw_data = arr.tobytes()
        self.inits.append(t)
        return name

    def node(self, op: str, inputs: list[str], name: str, n_out: int = 1, outputs=None, domain: str = "", **attrs):
        outs = outputs if outputs is not None else [f"{name}/output_{j}" for j in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0] if len(outs) == 1 else outs


def _np_dtype(cfg: LlamaConfig):
    return np.float16 if cfg.dtype == "fp16" else np.float32


def build_model(cfg: LlamaConfig, out_dir: str | os.PathLike, *, symbolic_kv_dims: bool = False) -> Path:
    """Build the model into ``out_dir`` (``model.onnx``, ``model.onnx.data``, ``genai_config.json``, ``config.json``).

    Args:
        cfg: the model shape and options.
        out_dir: an existing or new directory; files in it are overwritten.
        symbolic_kv_dims: name the kv-heads and head-dim axes of past/present symbolically (as some
            onnxruntime-genai exports do) instead of giving their sizes.

    Returns:
        The path of ``model.onnx``.
    """
    from onnx import TensorProto, helper

    if cfg.dtype not in ("fp32", "fp16", "int4"):
        raise ValueError(f"the ONNX builder writes fp32, fp16 and int4 models, not {cfg.dtype!r} (bf16 runs on torch)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = make_weights(cfg)
    dt = _np_dtype(cfg)
    onnx_dt = TensorProto.FLOAT16 if cfg.dtype == "fp16" else TensorProto.FLOAT
    with open(out / DATA_FILE, "wb") as fh:
        g = _GraphBuilder(fh)
        if cfg.graph == "contrib":
            inputs, outputs = _contrib_graph(g, cfg, w, dt, onnx_dt, symbolic_kv_dims)
        else:
            inputs, outputs = _standard_graph(g, cfg, w, dt, onnx_dt, symbolic_kv_dims)
        fh.flush()
        os.fsync(fh.fileno())
    graph = helper.make_graph(g.nodes, f"greenbench-llama-{cfg.graph}", inputs, outputs, initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", MS_OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="greenbench", ir_version=8)
    path = out / MODEL_FILE
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    (out / "genai_config.json").write_text(json.dumps(genai_config(cfg), indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(hf_config(cfg), indent=2) + "\n")
    return path


def genai_config(cfg: LlamaConfig) -> dict:
    """An onnxruntime-genai ``genai_config.json`` describing the built model."""
    inputs = {
        "input_ids": "input_ids",
        "attention_mask": "attention_mask",
        "past_key_names": "past_key_values.%d.key",
        "past_value_names": "past_key_values.%d.value",
    }
    if cfg.graph == "standard" and cfg.position_ids:
        inputs["position_ids"] = "position_ids"
    return {
        "model": {
            "bos_token_id": 1,
            "context_length": cfg.max_seq_len,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": MODEL_FILE,
                "head_size": cfg.head_dim,
                "hidden_size": cfg.hidden,
                "inputs": inputs,
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": cfg.heads,
                "num_hidden_layers": cfg.layers,
                "num_key_value_heads": cfg.kv_heads,
            },
            "eos_token_id": 2,
            "pad_token_id": 0,
            "type": "llama",
            "vocab_size": cfg.vocab,
        },
        "search": {
            "do_sample": False,
            "early_stopping": True,
            "max_length": cfg.max_seq_len,
            "min_length": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": cfg.graph == "contrib",
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


def hf_config(cfg: LlamaConfig) -> dict:
    """A Hugging Face ``config.json`` (LlamaConfig fields) for the built model."""
    return {
        **cfg.hf_fields(),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "greenbench": {"generated": True, "config": cfg.to_dict()},
    }


def _kv_value_infos(cfg, onnx_dt, symbolic):
    from onnx import helper

    kvh = "num_key_value_heads" if symbolic else cfg.kv_heads
    hd = "head_size" if symbolic else cfg.head_dim
    ins, outs = [], []
    for i in range(cfg.layers):
        for kind in ("key", "value"):
            ins.append(
                helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", onnx_dt, ["batch_size", kvh, "past_sequence_length", hd]
                )
            )
            outs.append(
                helper.make_tensor_value_info(
                    f"present.{i}.{kind}", onnx_dt, ["batch_size", kvh, "total_sequence_length", hd]
                )
            )
    return ins, outs


def _linear(g: _GraphBuilder, cfg: LlamaConfig, x: str, weight: np.ndarray, name: str, dt) -> str:
    """``x @ weight`` as MatMul (fp32/fp16) or MatMulNBits (int4)."""
    if cfg.dtype == "int4":
        q, _ = quantize_int4(weight, cfg.int4_block_size)
        b = g.init(f"{name}.qweight", q.packed)
        s = g.init(f"{name}.scales", q.scales)
        return g.node(
            "MatMulNBits",
            [x, b, s],
            name,
            domain="com.microsoft",
            K=q.k,
            N=q.n,
            bits=4,
            block_size=q.block_size,
            accuracy_level=cfg.int4_accuracy_level,
        )
    return g.node("MatMul", [x, g.init(f"{name}.weight", weight.astype(dt))], name)


def _contrib_graph(g: _GraphBuilder, cfg: LlamaConfig, w, dt, onnx_dt, symbolic):
    from onnx import TensorProto, helper

    from greenbench.models.reference import rope_tables

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
    ]
    kv_in, kv_out = _kv_value_infos(cfg, onnx_dt, symbolic)
    inputs += kv_in
    outputs = [helper.make_tensor_value_info("logits", onnx_dt, ["batch_size", "sequence_length", cfg.vocab])]
    outputs += kv_out

    # seqlens_k and total_sequence_length from the attention mask (as the genai builder does)
    one = g.init("/model/constants/one_i64", np.array([1], dtype=np.int64))
    axes1 = g.init("/model/constants/axes_1", np.array([1], dtype=np.int64))
    idx1 = g.init("/model/constants/index_1", np.array(1, dtype=np.int64))
    red = g.node("ReduceSum", ["attention_mask", axes1], "/model/attn_mask_reformat/ReduceSum", keepdims=0)
    sub = g.node("Sub", [red, one], "/model/attn_mask_reformat/Sub")
    seqlens_k = g.node("Cast", [sub], "/model/attn_mask_reformat/seqlens_k", to=TensorProto.INT32)
    shape = g.node("Shape", ["attention_mask"], "/model/attn_mask_reformat/Shape")
    tot = g.node("Gather", [shape, idx1], "/model/attn_mask_reformat/Gather", axis=0)
    total_len = g.node("Cast", [tot], "/model/attn_mask_reformat/total_seq_len", to=TensorProto.INT32)

    cos, sin = rope_tables(cfg, np.arange(cfg.max_seq_len))
    cos_c = g.init("cos_cache", cos.astype(dt))
    sin_c = g.init("sin_cache", sin.astype(dt))

    emb = g.init("model.embed_tokens.weight", w["model.embed_tokens.weight"].astype(dt))
    x = g.node("Gather", [emb, "input_ids"], "/model/embed_tokens/Gather")
    eps = cfg.rms_eps
    gamma0 = g.init("model.layers.0.input_layernorm.weight", w["model.layers.0.input_layernorm.weight"].astype(dt))
    h = g.node(
        "SimplifiedLayerNormalization", [x, gamma0], "/model/layers.0/input_layernorm/LayerNorm",
        axis=-1, epsilon=eps, stash_type=1,
    )
    residual = x
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        n = f"/model/layers.{i}"
        wqkv = np.concatenate(
            [w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"], w[p + "self_attn.v_proj.weight"]],
            axis=1,
        )
        qkv = _linear(g, cfg, h, wqkv, f"{n}/attn/qkv_proj/MatMul", dt)
        attn = g.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total_len, cos_c, sin_c],
            f"{n}/attn/GroupQueryAttention",
            outputs=[f"{n}/attn/GroupQueryAttention/output_0", f"present.{i}.key", f"present.{i}.value"],
            domain="com.microsoft",
            num_heads=cfg.heads,
            kv_num_heads=cfg.kv_heads,
            do_rotary=1,
            rotary_interleaved=0,
            scale=float(1.0 / np.sqrt(cfg.head_dim)),
        )[0]
        o = _linear(g, cfg, attn, w[p + "self_attn.o_proj.weight"], f"{n}/attn/o_proj/MatMul", dt)
        gamma = g.init(p + "post_attention_layernorm.weight", w[p + "post_attention_layernorm.weight"].astype(dt))
        h, residual = g.node(
            "SkipSimplifiedLayerNormalization",
            [o, residual, gamma],
            f"{n}/post_attention_layernorm/SkipLayerNorm",
            outputs=[f"{n}/post_attention_layernorm/output_0", "", "", f"{n}/post_attention_layernorm/output_3"],
            domain="com.microsoft",
            epsilon=eps,
        )[0::3]
        gate = _linear(g, cfg, h, w[p + "mlp.gate_proj.weight"], f"{n}/mlp/gate_proj/MatMul", dt)
        up = _linear(g, cfg, h, w[p + "mlp.up_proj.weight"], f"{n}/mlp/up_proj/MatMul", dt)
        sig = g.node("Sigmoid", [gate], f"{n}/mlp/act_fn/Sigmoid")
        act = g.node("Mul", [gate, sig], f"{n}/mlp/act_fn/Mul")
        prod = g.node("Mul", [act, up], f"{n}/mlp/Mul")
        down = _linear(g, cfg, prod, w[p + "mlp.down_proj.weight"], f"{n}/mlp/down_proj/MatMul", dt)
        last = i == cfg.layers - 1
        gname = "model.norm.weight" if last else f"model.layers.{i + 1}.input_layernorm.weight"
        gamma = g.init(gname, w[gname].astype(dt))
        nn = "/model/norm" if last else f"/model/layers.{i + 1}/input_layernorm"
        h, residual = g.node(
            "SkipSimplifiedLayerNormalization",
            [down, residual, gamma],
            f"{nn}/SkipLayerNorm",
            outputs=[f"{nn}/output_0", "", "", "" if last else f"{nn}/output_3"],
            domain="com.microsoft",
            epsilon=eps,
        )[0::3]
    if cfg.dtype == "int4":
        _linear(g, cfg, h, w["lm_head.weight"], "/lm_head/MatMul", dt)
        g.nodes[-1].output[0] = "logits"
    else:
        g.node("MatMul", [h, g.init("lm_head.weight", w["lm_head.weight"].astype(dt))], "/lm_head/MatMul",
               outputs=["logits"])
    return inputs, outputs


def _standard_graph(g: _GraphBuilder, cfg: LlamaConfig, w, dt, onnx_dt, symbolic):
    from onnx import TensorProto, helper

    from greenbench.models.reference import rope_tables

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
    ]
    if cfg.position_ids:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]))
    kv_in, kv_out = _kv_value_infos(cfg, onnx_dt, symbolic)
    inputs += kv_in
    outputs = [helper.make_tensor_value_info("logits", onnx_dt, ["batch_size", "sequence_length", cfg.vocab])]
    outputs += kv_out

    def c(name, arr):
        return g.init(name, np.asarray(arr))

    i64 = lambda name, v: c(f"/model/constants/{name}", np.array(v, dtype=np.int64))  # noqa: E731
    zero_s, one_s = i64("zero", 0), i64("one", 1)
    ax0, ax1, ax_neg1 = i64("axes_0", [0]), i64("axes_1", [1]), i64("axes_-1", [-1])
    idx1 = i64("index_1", 1)

    # lengths: T = attention_mask.shape[1], S = input_ids.shape[1], P = T - S
    t_len = g.node("Gather", [g.node("Shape", ["attention_mask"], "/model/mask/Shape_T"), idx1], "/model/mask/T", axis=0)
    s_len = g.node("Gather", [g.node("Shape", ["input_ids"], "/model/mask/Shape_S"), idx1], "/model/mask/S", axis=0)
    p_len = g.node("Sub", [t_len, s_len], "/model/mask/P")

    if cfg.position_ids:
        pos = "position_ids"
    else:  # Optimum/HF without position_ids: cumsum(mask) - 1, last S columns (GPT-2 style)
        cs = g.node("CumSum", ["attention_mask", idx1], "/model/pos/CumSum")
        pm1 = g.node("Sub", [cs, one_s], "/model/pos/Sub")
        pos = g.node("Slice", [pm1, g.node("Unsqueeze", [p_len, ax0], "/model/pos/P1"),
                               g.node("Unsqueeze", [t_len, ax0], "/model/pos/T1"), ax1], "/model/pos/Slice")
        pos = g.node("Max", [pos, zero_s], "/model/pos/clamp")  # left-padding slots (-1) -> 0; they are masked anyway

    # causal + padding mask as an additive bias [B, 1, 1, S, T] (broadcast over kv groups and heads)
    qpos = g.node("Range", [p_len, t_len, one_s], "/model/mask/qpos")
    kpos = g.node("Range", [zero_s, t_len, one_s], "/model/mask/kpos")
    causal = g.node(
        "LessOrEqual",
        [g.node("Unsqueeze", [kpos, ax0], "/model/mask/k2"), g.node("Unsqueeze", [qpos, ax1], "/model/mask/q2")],
        "/model/mask/causal",
    )
    pad = g.node("Cast", ["attention_mask"], "/model/mask/pad_bool", to=TensorProto.BOOL)
    pad = g.node("Unsqueeze", [pad, i64("axes_1_2_3", [1, 2, 3])], "/model/mask/pad5")  # [B,1,1,1,T]
    allowed = g.node("And", [causal, pad], "/model/mask/allowed")  # [B,1,1,S,T]
    neg = c("/model/constants/neg", np.array(np.finfo(dt).min, dtype=dt))
    zero_f = c("/model/constants/zero_f", np.array(0, dtype=dt))
    bias = g.node("Where", [allowed, zero_f, neg], "/model/mask/bias")

    # rotary tables [max, hd] (halves duplicated), gathered by position -> [B, 1, S, hd]
    cos, sin = rope_tables(cfg, np.arange(cfg.max_seq_len))
    cos_full = c("cos_cached", np.concatenate([cos, cos], axis=1).astype(dt))
    sin_full = c("sin_cached", np.concatenate([sin, sin], axis=1).astype(dt))
    cos_p = g.node("Unsqueeze", [g.node("Gather", [cos_full, pos], "/model/rope/cos"), ax1], "/model/rope/cos4")
    sin_p = g.node("Unsqueeze", [g.node("Gather", [sin_full, pos], "/model/rope/sin"), ax1], "/model/rope/sin4")
    half = cfg.head_dim // 2
    st_a, en_a = i64("half_start", [0]), i64("half_end", [half])
    st_b, en_b = i64("half2_start", [half]), i64("half2_end", [cfg.head_dim])

    def rope(x, n):
        x1 = g.node("Slice", [x, st_a, en_a, ax_neg1], f"{n}/Slice_1")
        x2 = g.node("Slice", [x, st_b, en_b, ax_neg1], f"{n}/Slice_2")
        rot = g.node("Concat", [g.node("Neg", [x2], f"{n}/Neg"), x1], f"{n}/Concat", axis=-1)
        return g.node("Add", [g.node("Mul", [x, cos_p], f"{n}/Mul_cos"), g.node("Mul", [rot, sin_p], f"{n}/Mul_sin")],
                      f"{n}/Add")

    eps = c("/model/constants/eps", np.array(cfg.rms_eps, dtype=np.float32))

    def rms(x, gamma_name, n):
        # computed in fp32 (like SimplifiedLayerNormalization's stash_type=1)
        xf = g.node("Cast", [x], f"{n}/Cast", to=TensorProto.FLOAT) if dt == np.float16 else x
        var = g.node("ReduceMean", [g.node("Mul", [xf, xf], f"{n}/Sq")], f"{n}/ReduceMean", axes=[-1], keepdims=1)
        inv = g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [var, eps], f"{n}/AddEps")], f"{n}/Sqrt")], f"{n}/Inv")
        y = g.node("Mul", [xf, inv], f"{n}/Norm")
        if dt == np.float16:
            y = g.node("Cast", [y], f"{n}/Cast_back", to=TensorProto.FLOAT16)
        return g.node("Mul", [y, g.init(gamma_name, w[gamma_name].astype(dt))], f"{n}/Gamma")

    grp = cfg.heads // cfg.kv_heads
    q_shape = i64("q_shape", [0, 0, cfg.heads, cfg.head_dim])
    kv_shape = i64("kv_shape", [0, 0, cfg.kv_heads, cfg.head_dim])
    q5_shape = i64("q5_shape", [0, cfg.kv_heads, grp, -1, cfg.head_dim])
    q4_shape = i64("q4_shape", [0, cfg.heads, -1, cfg.head_dim])
    o_shape = i64("o_shape", [0, 0, cfg.q_dim])
    scale = c("/model/constants/scale", np.array(1.0 / np.sqrt(cfg.head_dim), dtype=dt))

    emb = g.init("model.embed_tokens.weight", w["model.embed_tokens.weight"].astype(dt))
    x = g.node("Gather", [emb, "input_ids"], "/model/embed_tokens/Gather")
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        n = f"/model/layers.{i}"
        h = rms(x, p + "input_layernorm.weight", f"{n}/input_layernorm")

        def heads(name, nh_shape):
            y = _linear(g, cfg, h, w[p + f"self_attn.{name}.weight"], f"{n}/attn/{name}/MatMul", dt)
            y = g.node("Reshape", [y, nh_shape], f"{n}/attn/{name}/Reshape")
            return g.node("Transpose", [y], f"{n}/attn/{name}/Transpose", perm=[0, 2, 1, 3])

        q = rope(heads("q_proj", q_shape), f"{n}/attn/q_rotary")
        k = rope(heads("k_proj", kv_shape), f"{n}/attn/k_rotary")
        v = heads("v_proj", kv_shape)
        kp = g.node("Concat", [f"past_key_values.{i}.key", k], f"{n}/attn/k_concat", outputs=[f"present.{i}.key"], axis=2)
        vp = g.node("Concat", [f"past_key_values.{i}.value", v], f"{n}/attn/v_concat", outputs=[f"present.{i}.value"],
                    axis=2)
        q5 = g.node("Reshape", [q, q5_shape], f"{n}/attn/q_groups")  # [B, kvH, g, S, hd]
        k5 = g.node("Unsqueeze", [kp, i64(f"axes_2_l{i}", [2])], f"{n}/attn/k5")  # [B, kvH, 1, T, hd]
        v5 = g.node("Unsqueeze", [vp, i64(f"axes_2v_l{i}", [2])], f"{n}/attn/v5")
        kt = g.node("Transpose", [k5], f"{n}/attn/kT", perm=[0, 1, 2, 4, 3])
        sc = g.node("Mul", [g.node("MatMul", [q5, kt], f"{n}/attn/QK"), scale], f"{n}/attn/scale")
        sc = g.node("Add", [sc, bias], f"{n}/attn/mask")
        prob = g.node("Softmax", [sc], f"{n}/attn/Softmax", axis=-1)
        o = g.node("MatMul", [prob, v5], f"{n}/attn/PV")  # [B, kvH, g, S, hd]
        o = g.node("Reshape", [o, q4_shape], f"{n}/attn/o4")
        o = g.node("Transpose", [o], f"{n}/attn/o_T", perm=[0, 2, 1, 3])
        o = g.node("Reshape", [o, o_shape], f"{n}/attn/o3")
        o = _linear(g, cfg, o, w[p + "self_attn.o_proj.weight"], f"{n}/attn/o_proj/MatMul", dt)
        x = g.node("Add", [x, o], f"{n}/attn/residual")
        h = rms(x, p + "post_attention_layernorm.weight", f"{n}/post_attention_layernorm")
        gate = _linear(g, cfg, h, w[p + "mlp.gate_proj.weight"], f"{n}/mlp/gate_proj/MatMul", dt)
        up = _linear(g, cfg, h, w[p + "mlp.up_proj.weight"], f"{n}/mlp/up_proj/MatMul", dt)
        act = g.node("Mul", [gate, g.node("Sigmoid", [gate], f"{n}/mlp/Sigmoid")], f"{n}/mlp/SiLU")
        down = _linear(g, cfg, g.node("Mul", [act, up], f"{n}/mlp/Mul"), w[p + "mlp.down_proj.weight"],
                       f"{n}/mlp/down_proj/MatMul", dt)
        x = g.node("Add", [x, down], f"{n}/mlp/residual")
    h = rms(x, "model.norm.weight", "/model/norm")
    _linear(g, cfg, h, w["lm_head.weight"], "/lm_head/MatMul", dt)
    g.nodes[-1].output[0] = "logits"
    return inputs, outputs
