"""Greedy tokens equal the model's own framework, on real exports (issue 3).

- Hugging Face: tiny random Llama and GPT-2 models made with transformers, exported by Optimum
  (`text-generation-with-past`), run by greenbench from the export directory; the tokens must equal
  `model.generate(do_sample=False)` in transformers.
- onnxruntime-genai: greenbench's generated (genai-builder layout) model, run by onnxruntime-genai's own
  generator from the directory's genai_config.json; the tokens must equal greenbench's.

These need optional packages (`pip install optimum-onnx onnxruntime-genai`, torch from the train extra);
`.ci/run` installs them. Without them the tests skip.
"""

import json

import pytest
from typer.testing import CliRunner

from greenbench.cli import app

PROMPT = [5, 17, 42, 7]
N_NEW = 12


def run_greenbench(tmp_path, model_lines: str, name: str) -> list[int]:
    prof = tmp_path / f"{name}.toml"
    prof.write_text(
        f'name = "{name}"\n[model]\n{model_lines}\n[prompt]\ntoken_ids = {PROMPT}\n'
        f"[generation]\nmax_new_tokens = {N_NEW}\n[run]\nrepeats = 1\nwarmup = 0\n[carbon]\nregion = \"FRA\"\n"
    )
    res = CliRunner().invoke(app, ["run", str(prof), "--out", str(tmp_path / "res"), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["workload"]["generated_token_ids"]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_optimum_export_matches_transformers_generate(tmp_path, family):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    exporters = pytest.importorskip("optimum.exporters.onnx")

    torch.manual_seed(0)
    if family == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3,
        )
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                      initializer_range=0.3)
        model = transformers.GPT2LMHeadModel(cfg)
    model.eval()
    pt_dir, onnx_dir = tmp_path / "pt", tmp_path / "onnx"
    model.save_pretrained(pt_dir)
    with torch.no_grad():
        out = model.generate(torch.tensor([PROMPT]), max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                             do_sample=False, pad_token_id=0)
    expected = out[0, len(PROMPT):].tolist()
    assert len(set(expected)) > 2  # a discriminating sequence, not one repeated token

    exporters.main_export(str(pt_dir), output=onnx_dir, task="text-generation-with-past", device="cpu")
    assert run_greenbench(tmp_path, f'path = "{onnx_dir}"', f"hf-{family}") == expected


@pytest.mark.parametrize("graph", ["contrib", "standard"])
def test_generated_model_matches_onnxruntime_genai(tmp_path, graph):
    og = pytest.importorskip("onnxruntime_genai")
    model_lines = (
        'kind = "synthetic-llama"\nlayers = 2\nhidden = 64\nheads = 4\nkv_heads = 2\nffn = 176\nvocab = 512\n'
        f'max_seq_len = 64\ngraph = "{graph}"'
    )
    tokens = run_greenbench(tmp_path, model_lines, f"genai-{graph}")

    from greenbench import profile as P
    from greenbench.models import LlamaConfig, ensure_model

    prof = P.loads(f'name = "x"\n[model]\n{model_lines}\n', source="<test>")
    model_dir = ensure_model(LlamaConfig.from_spec(prof.model))
    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    total = len(PROMPT) + N_NEW
    params.set_search_options(do_sample=False, max_length=total, min_length=total)
    gen = og.Generator(model, params)
    gen.append_tokens([PROMPT])
    while not gen.is_done():
        gen.generate_next_token()
    assert list(gen.get_sequence(0))[len(PROMPT):] == tokens
