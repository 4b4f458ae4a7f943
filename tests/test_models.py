"""Generated models: config hash, seeded weights, int4 packing, graphs vs the numpy reference, cost, cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest

from greenbench import profile as P
from greenbench.errors import GreenbenchError
from greenbench.models import cache as cache_mod
from greenbench.models.builder import build_model
from greenbench.models.config import LlamaConfig
from greenbench.models.ceilings import memory_bandwidth_bytes_per_s
from greenbench.models.cost import decode_cost, graph_cost, roofline
from greenbench.models.reference import ReferenceLlama
from greenbench.models.weights import make_weights, quantize_int4

TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512, max_seq_len=64)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CACHE_DIR", str(tmp_path / "cache"))


def _run_graph(path, cfg, ids, past=None, start=0):
    """Run the built graph once with plain session.run (no IOBinding) -> logits, presents."""
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    B, S = ids.shape
    dt = np.float16 if cfg.dtype == "fp16" else np.float32
    feeds = {"input_ids": ids.astype(np.int64), "attention_mask": np.ones((B, start + S), np.int64)}
    if "position_ids" in [i.name for i in s.get_inputs()]:
        feeds["position_ids"] = np.tile(np.arange(start, start + S), (B, 1)).astype(np.int64)
    for i in range(cfg.layers):
        for j, kind in enumerate(("key", "value")):
            feeds[f"past_key_values.{i}.{kind}"] = (
                past[2 * i + j] if past else np.zeros((B, cfg.kv_heads, 0, cfg.head_dim), dt)
            )
    out = s.run(None, feeds)
    return out[0], out[1:]


def test_config_from_spec_defaults_and_digest():
    prof = P.load("llama-tiny")
    cfg = LlamaConfig.from_spec(prof.model)
    assert (cfg.kv_heads, cfg.head_dim) == (2, 16)
    spec = dataclasses.replace(prof.model, kv_heads=None, head_dim=None)
    cfg2 = LlamaConfig.from_spec(spec)
    assert (cfg2.kv_heads, cfg2.head_dim) == (4, 16)
    assert cfg.digest == LlamaConfig.from_spec(prof.model).digest
    assert cfg.digest != dataclasses.replace(cfg, seed=1).digest
    assert cfg.digest != dataclasses.replace(cfg, graph="standard").digest
    with pytest.raises(ValueError):
        LlamaConfig(heads=4, kv_heads=3)


def test_weights_are_seeded_and_order_independent():
    cfg = LlamaConfig(**TINY)
    a, b = make_weights(cfg), make_weights(cfg)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = make_weights(dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(a["lm_head.weight"], c["lm_head.weight"])
    # a tensor depends only on (seed, name): a model with more layers shares layer 0
    d = make_weights(dataclasses.replace(cfg, layers=3))
    assert np.array_equal(a["model.layers.0.self_attn.q_proj.weight"], d["model.layers.0.self_attn.q_proj.weight"])
    assert a["model.layers.1.mlp.down_proj.weight"].shape == (176, 64)


def test_int4_quantization_packs_low_nibble_first_and_dequantizes():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 3)).astype(np.float32)  # K=40 is not a multiple of the block (pads)
    q, deq = quantize_int4(w, 16)
    assert q.packed.shape == (3, 3, 8) and q.scales.shape == (9,)
    lo, hi = q.packed & 0xF, q.packed >> 4
    vals = np.stack([lo, hi], axis=-1).reshape(3, 3, 16).astype(np.int32) - 8  # [N, blocks, 16]
    scales = q.scales.reshape(3, 3, 1)
    rebuilt = (vals * scales).reshape(3, 48)[:, :40].T
    np.testing.assert_allclose(rebuilt, deq, rtol=0, atol=1e-7)
    # error per element at most half a quantization step
    step = np.repeat(q.scales.reshape(3, 3), 16, axis=1)[:, :40].T
    assert np.all(np.abs(deq - w) <= step / 2 + 1e-6)


@pytest.mark.parametrize("graph", ["contrib", "standard"])
@pytest.mark.parametrize("dtype", ["fp32", "int4"])
def test_graph_matches_numpy_reference(tmp_path, graph, dtype):
    # int4 at accuracy_level 0 computes exactly what the reference does (dequantized fp32)
    cfg = LlamaConfig(**TINY, graph=graph, dtype=dtype, int4_accuracy_level=0)
    path = build_model(cfg, tmp_path / "m")
    ref = ReferenceLlama(cfg)
    ids = np.random.default_rng(1).integers(0, cfg.vocab, (2, 7))
    logits, presents = _run_graph(path, cfg, ids)
    np.testing.assert_allclose(logits, ref.forward(ids), atol=1e-4, rtol=0)
    nxt = logits[:, -1].argmax(-1)[:, None]
    logits2, _ = _run_graph(path, cfg, nxt, past=presents, start=7)
    np.testing.assert_allclose(logits2, ref.forward(nxt), atol=1e-4, rtol=0)


def test_int4_defaults_to_int8_compute_close_to_the_reference(tmp_path):
    import onnx

    cfg = LlamaConfig(**TINY, dtype="int4")
    assert cfg.int4_accuracy_level == 4
    path = build_model(cfg, tmp_path / "m")
    m = onnx.load(str(path), load_external_data=False)
    levels = {a.i for n in m.graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "accuracy_level"}
    assert levels == {4}
    ids = np.random.default_rng(1).integers(0, cfg.vocab, (1, 7))
    logits, _ = _run_graph(path, cfg, ids)
    ref = ReferenceLlama(cfg).forward(ids)
    # int8 activations: close to the exact dequantized arithmetic, not equal to it
    assert np.abs(logits - ref).max() < 0.1 and np.abs(logits - ref).max() > 0
    assert LlamaConfig(**TINY).digest == LlamaConfig(**TINY, int4_accuracy_level=0).digest  # fp32: not in the hash
    assert cfg.digest != LlamaConfig(**TINY, dtype="int4", int4_accuracy_level=0).digest


@pytest.mark.parametrize("graph", ["contrib", "standard"])
def test_fp16_graph_close_to_reference(tmp_path, graph):
    cfg = LlamaConfig(**TINY, graph=graph, dtype="fp16")
    path = build_model(cfg, tmp_path / "m")
    ids = np.random.default_rng(2).integers(0, cfg.vocab, (1, 9))
    logits, _ = _run_graph(path, cfg, ids)
    assert logits.dtype == np.float16
    ref = ReferenceLlama(cfg).forward(ids)
    assert np.abs(logits.astype(np.float64) - ref).max() < 2e-2
    assert np.array_equal(logits[0].argmax(-1), ref[0].argmax(-1))


def test_built_files_and_contrib_ops(tmp_path):
    import onnx

    cfg = LlamaConfig(**TINY)
    path = build_model(cfg, tmp_path / "m")
    m = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in m.graph.node}
    assert {"GroupQueryAttention", "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"} <= ops
    assert [i.name for i in m.graph.input][:2] == ["input_ids", "attention_mask"]
    assert "present.1.value" in [o.name for o in m.graph.output]
    gqa = next(n for n in m.graph.node if n.op_type == "GroupQueryAttention")
    assert gqa.input[1] == "" and gqa.input[2] == ""  # packed QKV
    gc = json.loads((tmp_path / "m" / "genai_config.json").read_text())
    assert gc["search"]["past_present_share_buffer"] is True
    assert gc["model"]["decoder"]["num_key_value_heads"] == 2
    assert gc["model"]["decoder"]["inputs"]["past_key_names"] == "past_key_values.%d.key"
    # int4 uses MatMulNBits for every linear layer incl. the LM head
    p4 = build_model(dataclasses.replace(cfg, dtype="int4"), tmp_path / "q")
    m4 = onnx.load(str(p4), load_external_data=False)
    assert sum(n.op_type == "MatMulNBits" for n in m4.graph.node) == 5 * cfg.layers + 1  # qkv, o, gate, up, down
    assert not any(n.op_type == "MatMul" for n in m4.graph.node)
    # standard graph: no contrib op, Optimum I/O incl. position_ids
    ps = build_model(dataclasses.replace(cfg, graph="standard"), tmp_path / "s")
    ms = onnx.load(str(ps), load_external_data=False)
    assert all(n.domain in ("", "ai.onnx") for n in ms.graph.node)
    assert "position_ids" in [i.name for i in ms.graph.input]


def test_reference_greedy_equals_cached_forward():
    cfg = LlamaConfig(**TINY)
    ref = ReferenceLlama(cfg)
    prompt = [5, 17, 42, 7]
    toks = ref.greedy(prompt, 6)
    # recompute without a KV cache: full sequence each step
    seq = list(prompt)
    for _ in range(6):
        ref.reset()
        seq.append(int(ref.forward(np.array([seq]))[0, -1].argmax()))
    assert seq[len(prompt):] == toks


def test_decode_cost_formula_llama_125m():
    cfg = LlamaConfig.from_spec(P.load("llama-125m").model)
    L, H, nH, kvH, hd, F, V, T = 12, 768, 12, 12, 64, 2048, 32000, 100
    c = decode_cost(cfg, T)
    macs = L * (H * hd * (2 * nH + 2 * kvH) + 3 * H * F + 2 * nH * hd * T) + H * V
    assert c["macs_per_token"] == macs and c["flops_per_token"] == 2 * macs
    b = 4 * (L * (H * hd * (2 * nH + 2 * kvH) + 3 * H * F) + H * V + H) + 4 * 2 * L * kvH * hd * (T + 1)
    assert c["bytes_per_token"] == b
    assert 130e6 < c["params"] < 140e6  # ~134M as the profile says
    # batch amortizes the weights, not the KV cache
    c2 = decode_cost(cfg, T, batch_size=2)
    assert c2["bytes_per_token"] == pytest.approx(c["weight_bytes_per_step"] / 2 + c["kv_bytes_per_token"])
    # int4: ~0.5 byte + scale per weight -> roughly 6x less than fp32
    c4 = decode_cost(dataclasses.replace(cfg, dtype="int4"), T)
    assert 5.5 < c["weight_bytes_per_step"] / c4["weight_bytes_per_step"] < 6.5


@pytest.mark.parametrize("dtype", ["fp32", "int4", "fp16"])
def test_graph_cost_agrees_with_analytic(tmp_path, dtype):
    cfg = LlamaConfig(**TINY, dtype=dtype)
    path = build_model(cfg, tmp_path / "m")
    a = decode_cost(cfg, 40)
    g = graph_cost(path, layers=2, heads=4, kv_heads=2, head_dim=16, kv_itemsize=2 if dtype == "fp16" else 4,
                   context_tokens=40)
    assert g["macs_per_token"] == a["macs_per_token"]
    assert g["bytes_per_token"] == a["bytes_per_token"]
    assert g["kv_bytes_per_token"] == a["kv_bytes_per_token"]


def test_roofline_and_bandwidth():
    assert roofline({"bytes_per_token": 500e6}, 40.0, 20e9) == pytest.approx(1.0)
    assert roofline({"bytes_per_token": 500e6}, 20.0, 20e9) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        roofline({"bytes_per_token": 0}, 1.0, 1e9)
    bw = memory_bandwidth_bytes_per_s(threads=1, size_bytes=16 << 20, min_time_s=0.02)
    assert 1e8 < bw < 1e13


def test_cache_builds_once_atomically(tmp_path, monkeypatch):
    cfg = LlamaConfig(**TINY)
    msgs = []
    d = cache_mod.ensure_model(cfg, msgs.append)
    assert d.parent == tmp_path / "cache" / "models"
    assert (d / "model.onnx").is_file() and (d / cache_mod.MARKER).is_file()
    assert msgs and "building" in msgs[0]
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".build")]

    def boom(*a, **k):
        raise AssertionError("rebuilt a cached model")

    with monkeypatch.context() as m:
        m.setattr("greenbench.models.builder.build_model", boom)
        assert cache_mod.ensure_model(cfg) == d
    # a half-written leftover (no marker) is rebuilt, not trusted
    other = dataclasses.replace(cfg, seed=3)
    stale = cache_mod.model_dir(other)
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"garbage")
    d2 = cache_mod.ensure_model(other)
    assert d2 == stale and (d2 / cache_mod.MARKER).is_file()
    ort.InferenceSession(str(d2 / "model.onnx"), providers=["CPUExecutionProvider"])


def test_cache_failure_cleans_up_and_is_a_greenbench_error(tmp_path, monkeypatch):
    cfg = LlamaConfig(**TINY)

    def disk_full(cfg, out, **k):
        (out / "partial").write_bytes(b"x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("greenbench.models.builder.build_model", disk_full)
    with pytest.raises(GreenbenchError) as ei:
        cache_mod.ensure_model(cfg)
    assert "No space left" in ei.value.message and "GREENBENCH_CACHE_DIR" in ei.value.hint
    root = tmp_path / "cache" / "models"
    assert list(root.iterdir()) == []
