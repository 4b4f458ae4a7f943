"""Export directories (Optimum Llama with/without position_ids, GPT-2-style, genai builder GQA) driven by
the cpu backend, checked against the model's own framework (torch, when installed) and the numpy reference;
and the loader's errors for exports greenbench cannot drive."""

from __future__ import annotations

import dataclasses
import json

import pytest

from greenbench import profile as P
from greenbench.backends import get_backend
from greenbench.errors import BackendError, GreenbenchError
from greenbench.models.builder import build_model
from greenbench.models.config import LlamaConfig
from greenbench.models.loader import open_export_dir
from greenbench.models.reference import ReferenceLlama
from greenbench.models.weights import effective_weights

TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512, max_seq_len=128)
WORDS = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(509)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CACHE_DIR", str(tmp_path / "cache"))


def write_tokenizer(directory) -> None:
    """A word-level tokenizer.json over WORDS that prepends <s> (like a Llama tokenizer)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(directory / "tokenizer.json"))


def optimum_llama(tmp_path, position_ids=True, name="optimum"):
    cfg = LlamaConfig(**TINY, graph="standard", position_ids=position_ids)
    d = tmp_path / name
    build_model(cfg, d)
    (d / "genai_config.json").unlink()  # Optimum writes config.json (+ tokenizer), no genai config
    write_tokenizer(d)
    return cfg, d


def optimum_gpt2_style(tmp_path):
    """GPT-2 conventions: MHA (kv heads = heads), no position_ids input, GPT-2 config.json keys."""
    cfg = LlamaConfig(**{**TINY, "kv_heads": 4}, graph="standard", position_ids=False)
    d = tmp_path / "gpt2"
    build_model(cfg, d, symbolic_kv_dims=True)
    (d / "genai_config.json").unlink()
    hf = {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 128, "vocab_size": 512,
          "bos_token_id": 1, "eos_token_id": 2}
    (d / "config.json").write_text(json.dumps(hf))
    return cfg, d


def genai_export(tmp_path):
    """genai builder layout: GQA contrib graph, symbolic kv dims, genai_config.json with share buffer."""
    cfg = LlamaConfig(**TINY)
    d = tmp_path / "genai"
    build_model(cfg, d, symbolic_kv_dims=True)
    (d / "config.json").unlink()
    write_tokenizer(d)
    return cfg, d


def profile_for(d, **prompt):
    text = f'name = "t"\n[model]\npath = "{d}"\n[prompt]\n'
    for k, v in prompt.items():
        text += f"{k} = {json.dumps(v)}\n"
    text += "[generation]\nmax_new_tokens = 12\n[run]\nthreads = 1\n"
    return P.loads(text)


def torch_greedy(cfg: LlamaConfig, prompt: list[int], n_new: int) -> list[int] | None:
    """Greedy tokens from a Hugging Face-style Llama written in torch (full recompute each step, no cache)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    w = {k: torch.from_numpy(v) for k, v in effective_weights(cfg).items()}  # float64, [in, out]
    hd, nH, kvH = cfg.head_dim, cfg.heads, cfg.kv_heads
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_eps) * g

    def rotate_half(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n_new):
            ids = torch.tensor([seq])
            S = ids.shape[1]
            freqs = torch.outer(torch.arange(S, dtype=torch.float64), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos()[None, None], emb.sin()[None, None]
            x = w["model.embed_tokens.weight"][ids]
            for i in range(cfg.layers):
                p = f"model.layers.{i}."
                h = rms(x, w[p + "input_layernorm.weight"])
                q = (h @ w[p + "self_attn.q_proj.weight"]).view(1, S, nH, hd).transpose(1, 2)
                k = (h @ w[p + "self_attn.k_proj.weight"]).view(1, S, kvH, hd).transpose(1, 2)
                v = (h @ w[p + "self_attn.v_proj.weight"]).view(1, S, kvH, hd).transpose(1, 2)
                q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
                k = k.repeat_interleave(nH // kvH, dim=1)
                v = v.repeat_interleave(nH // kvH, dim=1)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + o.transpose(1, 2).reshape(1, S, nH * hd) @ w[p + "self_attn.o_proj.weight"]
                h = rms(x, w[p + "post_attention_layernorm.weight"])
                x = x + (F.silu(h @ w[p + "mlp.gate_proj.weight"]) * (h @ w[p + "mlp.up_proj.weight"])) @ w[
                    p + "mlp.down_proj.weight"
                ]
            logits = rms(x, w["model.norm.weight"]) @ w["lm_head.weight"]
            seq.append(int(logits[0, -1].argmax()))
    return seq[len(prompt) :]


def _generate(session, n_new=12):
    session.reset()
    first = session.prefill()
    return [first] + session.decode(first, n_new - 1)


@pytest.mark.parametrize("kind", ["optimum-llama", "optimum-llama-no-position-ids", "optimum-gpt2-style", "genai"])
def test_exports_give_the_frameworks_greedy_tokens(tmp_path, kind):
    if kind == "optimum-llama":
        cfg, d = optimum_llama(tmp_path)
    elif kind == "optimum-llama-no-position-ids":
        cfg, d = optimum_llama(tmp_path, position_ids=False)
    elif kind == "optimum-gpt2-style":
        cfg, d = optimum_gpt2_style(tmp_path)
    else:
        cfg, d = genai_export(tmp_path)
    s = get_backend("cpu").prepare(profile_for(d, token_ids=[1, 5, 17, 42, 7, 300]))
    info = s.describe()
    assert info["source"] == ("genai" if kind == "genai" else "optimum")
    assert info["kv_cache"] == ("shared-buffer" if kind == "genai" else "concat")
    assert info["graph"] == ("contrib" if kind == "genai" else "standard")
    assert info["config"]["layers"] == 2 and info["config"]["kv_heads"] == cfg.kv_heads
    toks = _generate(s)
    assert toks == ReferenceLlama(cfg).greedy(s.prompt_ids, 12)
    expected = torch_greedy(cfg, s.prompt_ids, 12)
    if expected is not None:
        assert toks == expected
    assert _generate(s) == toks  # a second repeat does the same work
    c = s.cost()
    assert c["method"] == "counted-from-graph" and c["macs_per_token"] > 0 and c["bytes_per_token"] > 0
    s.close()


def test_torch_cross_check_runs_when_torch_is_installed():
    pytest.importorskip("torch")
    cfg = LlamaConfig(**TINY)
    assert torch_greedy(cfg, [3, 4, 5], 5) == ReferenceLlama(cfg).greedy([3, 4, 5], 5)


def test_prompt_text_uses_the_directory_tokenizer(tmp_path):
    cfg, d = genai_export(tmp_path)
    s = get_backend("cpu").prepare(profile_for(d, text="w1 w2 w3 w10"))
    assert s.prompt_ids == [1, 4, 5, 6, 13]  # <s> then the word ids
    assert _generate(s, 4) == ReferenceLlama(cfg).greedy(s.prompt_ids, 4)


def test_prompt_text_without_tokenizer_is_exit_2(tmp_path):
    cfg, d = genai_export(tmp_path)
    (d / "tokenizer.json").unlink()
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, text="w1 w2"))
    assert "tokenizer.json" in ei.value.message and ei.value.exit_code == 2
    # token_ids need no tokenizer
    s = get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2, 3]))
    assert s.prompt_ids == [1, 2, 3]


def test_generated_models_reject_text_prompts():
    prof = P.loads('name="t"\n[model]\nkind="synthetic-llama"\n[prompt]\ntext="hello"\n[run]\nthreads=1\n')
    with pytest.raises(BackendError, match="tokenizer"):
        get_backend("cpu").prepare(prof)


def test_symbolic_kv_dims_without_config_name_the_input(tmp_path):
    cfg, d = genai_export(tmp_path)
    (d / "genai_config.json").unlink()  # now nothing says the head size
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "past_key_values.0.key" in ei.value.message and "symbolic" in ei.value.message


def _strip(d, drop_inputs=(), drop_outputs=(), add_input=None):
    """Rewrite d/model.onnx without some inputs/outputs (a model greenbench cannot drive)."""
    import onnx

    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    keep_in = [i for i in m.graph.input if i.name not in drop_inputs]
    del m.graph.input[:]
    m.graph.input.extend(keep_in)
    if add_input:
        m.graph.input.append(onnx.helper.make_tensor_value_info(add_input, onnx.TensorProto.BOOL, [1]))
    keep_out = [o for o in m.graph.output if o.name not in drop_outputs]
    del m.graph.output[:]
    m.graph.output.extend(keep_out)
    for name in drop_inputs:  # feed the dropped input from a constant so the graph stays valid
        for node in m.graph.node:
            for j, x in enumerate(node.input):
                if x == name:
                    node.input[j] = ""
    onnx.save(m, str(d / "model.onnx"))


def test_missing_present_output_is_named(tmp_path):
    cfg, d = optimum_llama(tmp_path)
    _strip(d, drop_outputs=["present.1.value"])
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "present.1.value" in ei.value.message


def test_unknown_input_is_named(tmp_path):
    cfg, d = optimum_llama(tmp_path)
    _strip(d, add_input="use_cache_branch")
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "use_cache_branch" in ei.value.message


def test_model_without_kv_cache_is_named(tmp_path):
    """A decoder exported without past (optimum --task text-generation) cannot be driven."""
    import onnx
    from onnx import TensorProto, helper

    d = tmp_path / "nopast"
    d.mkdir()
    g = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s"])],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(d / "model.onnx"))
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "past_key_values.0.key" in ei.value.message


def test_bad_directories(tmp_path):
    with pytest.raises(BackendError, match="not a directory"):
        open_export_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no model.onnx"):
        open_export_dir(tmp_path / "empty")
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "decoder_model_merged.onnx").write_bytes(b"")
    with pytest.raises(BackendError) as ei:
        open_export_dir(tmp_path / "merged")
    assert "decoder_model_merged.onnx" in ei.value.hint
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "genai_config.json").write_text("{nope")
    with pytest.raises(GreenbenchError, match="genai_config.json"):
        open_export_dir(tmp_path / "badjson")


def test_corrupt_onnx_is_exit_2(tmp_path):
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "cannot load" in ei.value.message and "onnxruntime_src" not in ei.value.message
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g, ir_version=99), str(d / "model.onnx"))
    with pytest.raises(BackendError) as ei:
        get_backend("cpu").prepare(profile_for(d, token_ids=[1, 2]))
    assert "IR version" in ei.value.message and "onnxruntime_src" not in ei.value.message


def test_context_length_is_checked(tmp_path):
    cfg, d = genai_export(tmp_path)
    prof = dataclasses.replace(profile_for(d, length=100), generation=P.GenerationSpec(max_new_tokens=40))
    with pytest.raises(BackendError, match="context length"):
        get_backend("cpu").prepare(prof)
