"""The torch backend: greedy tokens equal onnxruntime's on the same weights, the static cache and its rewind, the
CUDA graph path through a fake graph, device choice and the GPU's NVML UUID (fake torch.cuda, fake pynvml),
the GPU roofline branch, Hugging Face directories, and training on --backend torch/cuda."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from greenbench import profile as P  # noqa: E402
from greenbench.backends import backend_for, device_scope, get_backend  # noqa: E402
from greenbench.backends import torch_backend as tb  # noqa: E402
from greenbench.backends import torch_device as td  # noqa: E402
from greenbench.cli import app  # noqa: E402
from greenbench.errors import BackendError  # noqa: E402
from greenbench.models.config import LlamaConfig  # noqa: E402
from greenbench.runner import run_profile  # noqa: E402

from fakes import FakeBackend, FakeSession, StepMeter, make_pynvml  # noqa: E402

runner = CliRunner()


def tiny(backend="cpu", n=20, **model):
    prof = P.load("llama-tiny").with_overrides(max_new_tokens=n, backend=backend)
    return dataclasses.replace(prof, model=dataclasses.replace(prof.model, **model)) if model else prof


def greedy(session, n):
    first = session.prefill()
    return [first] + session.decode(first, n - 1)


# -- the same model as onnxruntime's ------------------------------------------------------------------------
@pytest.mark.parametrize("model", [{}, {"graph": "standard"}, {"kv_heads": 4}, {"dtype": "fp16"}],
                         ids=["contrib-gqa", "standard", "mha", "fp16"])
def test_greedy_tokens_equal_the_onnxruntime_cpu_backend(model):
    ort = get_backend("cpu").prepare(tiny(**model))
    want = greedy(ort, 20)
    ort_logits = ort.last_logits()
    s = backend_for(tiny("torch", **model)).prepare(tiny("torch", **model))
    assert s.describe()["device"] == "cpu" and s.describe()["decode"] == "eager"
    assert greedy(s, 20) == want
    tol = 1e-4 if not model.get("dtype") else 2e-2
    np.testing.assert_allclose(s.last_logits(), ort_logits, atol=tol * max(1.0, np.abs(ort_logits).max()))
    s.close()


def test_weights_are_the_onnx_initializers():
    import onnx
    from onnx import numpy_helper

    from greenbench.models.cache import ensure_model

    prof = tiny("torch")
    cfg = LlamaConfig.from_spec(prof.model)
    inits = {t.name: numpy_helper.to_array(t, base_dir=str(ensure_model(cfg)))
             for t in onnx.load(str(ensure_model(cfg) / "model.onnx")).graph.initializer}
    m = backend_for(prof).prepare(prof).model
    F = cfg.ffn
    assert np.array_equal(m.embed.numpy(), inits["model.embed_tokens.weight"])
    for i in range(cfg.layers):
        p = f"/model/layers.{i}/"
        assert np.array_equal(m.wqkv[i].numpy().T, inits[p + "attn/qkv_proj/MatMul.weight"])
        assert np.array_equal(m.wo[i].numpy().T, inits[p + "attn/o_proj/MatMul.weight"])
        assert np.array_equal(m.wgu[i][:F].numpy().T, inits[p + "mlp/gate_proj/MatMul.weight"])
        assert np.array_equal(m.wgu[i][F:].numpy().T, inits[p + "mlp/up_proj/MatMul.weight"])
        assert np.array_equal(m.wdown[i].numpy().T, inits[p + "mlp/down_proj/MatMul.weight"])


def test_batch_rows_decode_like_batch_one_and_rewind_repeats_the_same_tokens():
    one = backend_for(tiny("torch")).prepare(tiny("torch"))
    want = greedy(one, 20)
    four = dataclasses.replace(tiny("torch"), generation=dataclasses.replace(tiny().generation, batch_size=4))
    s = backend_for(four).prepare(four)
    assert greedy(s, 20) == want
    assert s._tokens[:, s._S:s._S + 19].unique(dim=0).shape[0] == 1  # every row generated the same tokens
    s.rewind()
    assert s.decode(want[0], 19) == want[1:]
    assert s.cost()["batch_size"] == 4 and s.cost()["bytes_per_token"] < one.cost()["bytes_per_token"]


def test_bf16_runs_on_torch_and_is_refused_by_onnxruntime_int4_the_other_way():
    s = backend_for(tiny("torch", dtype="bf16")).prepare(tiny("torch", dtype="bf16"))
    toks = greedy(s, 8)
    assert len(toks) == 8 and s.describe()["dtype"] == "bf16" and s.model.embed.dtype == torch.bfloat16
    # 2 bytes per weight, as fp16
    assert s.cost()["weight_bytes_per_step"] == backend_for(tiny("torch", dtype="fp16")).prepare(
        tiny("torch", dtype="fp16")).cost()["weight_bytes_per_step"]
    with pytest.raises(BackendError, match="bf16 runs on the torch backend only"):
        get_backend("cpu").prepare(tiny(dtype="bf16"))
    with pytest.raises(BackendError, match="int4"):
        backend_for(tiny("torch", dtype="int4")).prepare(tiny("torch", dtype="int4"))


def test_the_backend_reuses_the_weights_across_a_sweep():
    b = backend_for(tiny("torch"))
    s1 = b.prepare(tiny("torch"))
    four = dataclasses.replace(tiny("torch"), generation=dataclasses.replace(tiny().generation, batch_size=4))
    s2 = b.prepare(four)
    assert s1.model is s2.model


# -- the CUDA graph path, through a fake graph ------------------------------------------------------------
class FakeGraph:
    """Replays the captured step the way a CUDA graph does: the same operations on the same buffers."""

    def __init__(self, step):
        self.step, self.replays = step, 0

    def replay(self):
        self.replays += 1
        self.step()


def test_decode_replays_the_captured_step(monkeypatch):
    captured = {}

    def fake_capture(torch_, step, device, reset, warmup=3):
        reset()
        for _ in range(warmup):  # warm-up writes past the prompt only: the real decode overwrites it
            step()
        captured["graph"] = FakeGraph(step)
        return captured["graph"]

    monkeypatch.setattr(tb, "capture", fake_capture)
    want = greedy(backend_for(tiny("torch")).prepare(tiny("torch")), 20)
    b = backend_for(tiny("torch"))
    model = b.prepare(tiny("torch")).model
    s = tb.TorchSession(model, want[:0] or backend_for(tiny("torch")).prepare(tiny("torch")).prompt_ids,
                        max_new_tokens=20, graphs=True)
    assert greedy(s, 20) == want
    assert captured["graph"].replays == 19
    s.rewind()
    assert s.decode(want[0], 19) == want[1:] and captured["graph"].replays == 38


# -- device choice and the GPU's name for NVML ---------------------------------------------------------
def test_resolve_device():
    assert td.resolve_device(None, lambda: True) == "cuda"
    assert td.resolve_device(None, lambda: False) == "cpu"
    assert td.resolve_device("cpu", lambda: True) == "cpu"
    with pytest.raises(BackendError, match="sees no CUDA device"):
        td.resolve_device("cuda", lambda: False)
    with pytest.raises(BackendError, match="unknown device"):
        td.resolve_device("tpu", lambda: True)


def test_nvml_uuid_from_torch():
    assert td.nvml_uuid("cccc3333-0000-0000-0000-000000000000", 0, {}) == "GPU-cccc3333-0000-0000-0000-000000000000"
    assert td.nvml_uuid("GPU-abc", 0, {}) == "GPU-abc"
    assert td.nvml_uuid(None, 0, {}) is None
    mig = "MIG-1234abcd-0000-0000-0000-000000000000"
    assert td.nvml_uuid("cccc", 1, {"CUDA_VISIBLE_DEVICES": f"0,{mig}"}) == mig


def fake_torch(uuid="cccc3333-0000-0000-0000-000000000000", available=True):
    props = types.SimpleNamespace(uuid=uuid, L2_cache_size=60 << 20)
    cuda = types.SimpleNamespace(is_available=lambda: available, current_device=lambda: 0,
                                 get_device_properties=lambda i: props, get_device_name=lambda *a: "NVIDIA H200")
    return types.SimpleNamespace(cuda=cuda, __version__="2.11.0+cu130")


UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000",
         "GPU-cccc3333-0000-0000-0000-000000000000"]


@pytest.fixture
def three_gpus(monkeypatch):
    mod = make_pynvml([{"uuid": u, "name": "NVIDIA H200", "energy_mj": 1000, "power_mw": 80_000} for u in UUIDS])
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", "/nonexistent-powercap")
    return mod


@pytest.mark.parametrize("workload", ["inference", "training"])
def test_a_cuda_run_meters_exactly_the_gpu_torch_runs_on(monkeypatch, three_gpus, workload):
    """torch's device 0 is NVML's GPU 2 here (as with CUDA_DEVICE_ORDER=FASTEST_FIRST): the UUID picks it."""
    from greenbench.meters import select
    from greenbench.workloads import training

    fake = fake_torch()
    monkeypatch.setattr(tb, "import_torch", lambda *a: fake)
    monkeypatch.setattr(training, "_torch", lambda: fake)
    prof = tiny("torch") if workload == "inference" else P.load("llama-tiny-train").with_overrides(backend="torch")
    backend = backend_for(prof)
    assert backend.device == "cuda"
    scope = device_scope("torch", backend=backend)
    assert scope.cpu and scope.gpus[0].uuid == UUIDS[2]
    meters, _ = select(None, scope=scope)
    nv = [m for m in meters if m.name == "nvml"][0]
    assert [d.name for d in nv.domains()] == ["gpu:2"]
    assert nv.devices()[0]["selected_by"] == "UUID from the framework"


def test_training_device_follows_the_backend(monkeypatch):
    from greenbench.workloads.training import training_device

    base = P.load("llama-tiny-train")
    yes, no = (lambda: True), (lambda: False)

    def dev(backend, device=None, cuda=yes, train_device=None):
        p = base.with_overrides(backend=backend, device=device)
        if train_device:
            p = dataclasses.replace(p, train=dataclasses.replace(p.train, device=train_device))
        return training_device(p, cuda)

    assert dev("cuda") == "cuda" and dev("cpu") == "cpu" and dev("torch") == "cuda" and dev("torch", cuda=no) == "cpu"
    assert dev("torch", "cpu") == "cpu" and dev("cpu", train_device="cuda") == "cuda"
    with pytest.raises(BackendError, match="contradicts"):
        dev("cpu", "cuda")
    with pytest.raises(BackendError, match="sees no CUDA device"):
        dev("cuda", cuda=no)
    with pytest.raises(BackendError, match="cpu, cuda or torch"):
        dev("optical-sim")


# -- the GPU roofline ------------------------------------------------------------------------------------
def test_gpu_ceilings_are_the_copy_bandwidth_and_the_datasheet_peak():
    probe = lambda torch_, device: {"bytes_per_s": 4.25e12, "method": "fake copy"}  # noqa: E731
    c = tb.gpu_ceilings(fake_torch(), "cuda", "bf16", probe=probe)
    assert c["memory_bytes_per_s"] == 4.25e12 and c["memory"]["method"] == "fake copy"
    assert c["peak_macs_per_s"] == pytest.approx(989.5e12 / 2) and c["compute"]["method"] == "datasheet"
    fp16 = tb.gpu_ceilings(fake_torch(), "cuda", "fp16", probe=probe)
    assert fp16["peak_macs_per_s"] is None and "no fp16 rate" in fp16["compute"]["note"]


def test_only_a_gpu_session_brings_its_own_ceilings():
    s = backend_for(tiny("torch")).prepare(tiny("torch"))
    assert not hasattr(s, "ceilings")  # on the CPU the runner measures the CPU's ceilings


def test_runner_takes_the_roofline_from_the_gpu_ceilings():
    probe = lambda torch_, device: {"bytes_per_s": 4e12, "method": "fake copy"}  # noqa: E731
    session = FakeSession()
    session.ceilings = lambda: tb.gpu_ceilings(fake_torch(), "cuda", "bf16", probe=probe)
    session.cost = lambda: {"params": 1000, "macs_per_token": 1.1e9, "bytes_per_token": 2.2e9}
    prof = P.loads('name = "p"\n[model]\nkind = "synthetic-llama"\n[prompt]\ntoken_ids = [1, 2, 3]\n'
                   '[generation]\nmax_new_tokens = 5\n[run]\nrepeats = 2\nwarmup = 0\n[carbon]\nregion = "FRA"\n')
    doc = run_profile(prof, meters=[StepMeter()], backend=FakeBackend(session))
    d = doc["metrics"]["decode"]
    assert d["memory_bandwidth_bytes_per_s"] == 4e12 and d["bound"] == "memory"
    assert d["memory_ceiling_tokens_per_s"] == pytest.approx(4e12 / 2.2e9)
    assert d["ceilings_probe"]["memory"]["method"] == "fake copy"


def test_copy_bandwidth_probe_on_the_cpu():
    bw = td.copy_bandwidth(torch, "cpu", size_bytes=1 << 20, min_time_s=0.0)
    assert bw["bytes_per_s"] > 0 and bw["copies"] >= 3 and "read + write" in bw["method"]


# -- the runner: windows, rewind and the digest ---------------------------------------------------------
def test_short_decodes_repeat_inside_a_window_the_counter_resolves():
    from test_measurement_truth import TickMeter

    prof = dataclasses.replace(tiny("torch", n=4), run=dataclasses.replace(tiny("torch").run, repeats=2, warmup=0))
    doc = run_profile(prof, meters=[TickMeter(period_s=0.02)], measure_bandwidth=False)  # windows of >= 0.4 s
    d = doc["metrics"]["decode"]
    assert d["inner_repeats"] > 1 and d["j_per_token"] is not None and d["window_s"] >= 20 * 0.02
    assert not any("not deterministic" in w for w in doc["warnings"])
    assert doc["workload"]["identity"]["device"] == "cpu" and doc["backend"] == "torch"
    ort = run_profile(tiny("cpu", n=4), meters=[StepMeter()], measure_bandwidth=False)
    assert ort["workload"]["generated_token_ids"] == doc["workload"]["generated_token_ids"]
    assert ort["workload"]["digest"] != doc["workload"]["digest"]  # backend and device are part of the work


# -- the CLI ---------------------------------------------------------------------------------------------
def test_cli_torch_inference_and_training_on_the_cpu(tmp_path):
    base = ["--repeats", "1", "--warmup", "0", "--region", "FRA", "--out", str(tmp_path), "--json"]
    r = runner.invoke(app, ["run", "llama-tiny", "--backend", "torch", "--device", "cpu", "--max-new-tokens", "8"] + base)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["backend"] == "torch" and doc["workload"]["model"]["device"] == "cpu"
    assert doc["workload"]["model"]["kv_cache"] == "static"
    r = runner.invoke(app, ["run", "llama-tiny-train", "--backend", "torch", "--device", "cpu"] + base)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["backend"] == "torch" and doc["workload"]["model"]["device"] == "cpu"
    assert doc["workload"]["identity"]["device"] == "cpu" and doc["metrics"]["train"]["tokens_per_s"] > 0


@pytest.mark.parametrize("args, needle", [
    (["llama-tiny", "--backend", "cpu", "--device", "cuda"], "does not apply to onnxruntime"),
    (["llama-tiny-train", "--backend", "cpu", "--device", "cuda"], "contradicts"),
    (["llama-tiny-train", "--backend", "optical-sim"], "cpu, cuda or torch"),
    (["llama-tiny", "--backend", "torch", "--device", "tpu"], "unknown device"),
])
def test_cli_device_errors_are_exit_2(tmp_path, args, needle):
    r = runner.invoke(app, ["run", *args, "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output


def test_cli_cuda_without_a_gpu_is_exit_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for args in (["llama-tiny", "--backend", "torch", "--device", "cuda"], ["llama-tiny-train", "--backend", "cuda"]):
        r = runner.invoke(app, ["run", *args, "--out", str(tmp_path)])
        assert r.exit_code == 2 and "sees no CUDA device" in r.output and "Traceback" not in r.output, r.output


# -- Hugging Face directories ----------------------------------------------------------------------------
@pytest.fixture
def hf_dir(tmp_path):
    pytest.importorskip("safetensors")
    from greenbench.models.hf_export import write_hf_llama

    return write_hf_llama(LlamaConfig.from_spec(tiny().model), tmp_path / "hf")


def hf_profile(d, **over):
    prof = tiny("torch")
    return dataclasses.replace(prof, model=P.ModelSpec(path=str(d), **over))


def test_a_hugging_face_llama_directory_loads_into_the_static_cache_model(hf_dir):
    want = greedy(get_backend("cpu").prepare(tiny()), 20)
    s = backend_for(hf_profile(hf_dir)).prepare(hf_profile(hf_dir))
    info = s.describe()
    assert isinstance(s, tb.TorchSession) and info["source"] == "huggingface"
    assert info["weights_digest"].startswith("sha256:")
    assert greedy(s, 20) == want


def test_other_architectures_run_through_transformers(hf_dir, monkeypatch):
    pytest.importorskip("transformers")
    import greenbench.models.torch_llama as tl

    want = greedy(get_backend("cpu").prepare(tiny()), 20)

    def not_llama(*a, **k):
        raise ValueError("model_type is 'other'")

    monkeypatch.setattr(tl, "config_from_hf", not_llama)
    s = backend_for(hf_profile(hf_dir)).prepare(hf_profile(hf_dir))
    assert isinstance(s, tb.HFSession) and "transformers" in s.describe()["decode"]
    assert greedy(s, 20) == want
    s.rewind()
    assert s.decode(want[0], 19) == want[1:]


def test_hugging_face_generate_agrees_on_the_exported_model(hf_dir):
    transformers = pytest.importorskip("transformers")
    want = greedy(get_backend("cpu").prepare(tiny()), 20)
    prompt = get_backend("cpu").prepare(tiny()).prompt_ids
    m = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), local_files_only=True)
    out = m.generate(torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False)
    assert out[0, len(prompt):].tolist() == want


def test_directories_the_torch_backend_cannot_read(tmp_path):
    from greenbench.models.cache import ensure_model

    onnx_dir = ensure_model(LlamaConfig.from_spec(tiny().model))
    with pytest.raises(BackendError, match="ONNX export"):
        backend_for(hf_profile(onnx_dir)).prepare(hf_profile(onnx_dir))
    with pytest.raises(BackendError, match="not a directory"):
        backend_for(hf_profile(tmp_path / "nope")).prepare(hf_profile(tmp_path / "nope"))


def test_hf_config_mapping():
    from greenbench.models.hf_export import hf_config
    from greenbench.models.torch_llama import config_from_hf

    cfg = LlamaConfig.from_spec(tiny().model)
    back = config_from_hf(hf_config(cfg), "fp32")
    assert dataclasses.replace(back, graph=cfg.graph) == dataclasses.replace(cfg, rms_eps=back.rms_eps)
    with pytest.raises(ValueError, match="rope scaling"):
        config_from_hf({**hf_config(cfg), "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})
    with pytest.raises(ValueError, match="model_type"):
        config_from_hf({**hf_config(cfg), "model_type": "mistral"})


# -- on a real GPU ---------------------------------------------------------------------------------------
def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")


@pytest.mark.gpu
def test_gpu_cuda_graph_tokens_equal_the_cpu_backend():
    _cuda()
    want = greedy(get_backend("cpu").prepare(tiny()), 20)
    s = backend_for(tiny("torch")).prepare(tiny("torch"))
    assert s.describe()["device"] == "cuda" and s.describe()["decode"] == "cuda-graph"
    assert greedy(s, 20) == want
    s.rewind()
    assert s.decode(want[0], 19) == want[1:]


@pytest.mark.gpu
def test_gpu_scope_names_the_gpu_by_uuid():
    _cuda()
    from greenbench.meters import select

    scope = device_scope("torch", backend=backend_for(tiny("torch")))
    uuid = scope.gpus[0].uuid
    assert uuid.startswith(("GPU-", "MIG-"))
    meters, _ = select(None, scope=scope)
    nv = [m for m in meters if m.name == "nvml"]
    assert nv and [len(nv[0].domains())] == [1]
    if uuid.startswith("GPU-"):  # a MIG instance is metered through its parent GPU
        assert nv[0].devices()[0]["uuid"] == uuid


@pytest.mark.gpu
def test_gpu_copy_bandwidth_is_plausible():
    _cuda()
    bw = td.copy_bandwidth(torch, "cuda", size_bytes=256 << 20, min_time_s=0.1)
    assert 1e11 < bw["bytes_per_s"] < 2e13  # 100 GB/s .. 20 TB/s


@pytest.mark.gpu
def test_gpu_run_records_decode_roofline_and_training_mfu(tmp_path):
    _cuda()
    base = ["--repeats", "2", "--warmup", "1", "--region", "FRA", "--out", str(tmp_path), "--json"]
    r = runner.invoke(app, ["run", "llama-125m", "--backend", "torch", "--max-new-tokens", "32"] + base)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    d = doc["metrics"]["decode"]
    assert doc["workload"]["identity"]["device"] == "cuda"
    assert d["roofline_fraction"] is not None and 0 < d["roofline_fraction"] <= 1, (d.get("roofline_flag"), d.get("roofline_note"))
    assert d["memory_bandwidth_bytes_per_s"] > 1e11 and "copy" in d["ceilings_probe"]["memory"]["method"]
    assert any(r["name"] == "nvml" for r in doc["energy"]["meters"])
    r = runner.invoke(app, ["run", "llama-tiny-train", "--backend", "cuda"] + base)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["workload"]["model"]["device"] == "cuda" and doc["metrics"]["train"]["peak"]["method"] == "datasheet"


def test_compile_wraps_the_decode_step(monkeypatch):
    """[run] compile: the decode step goes through torch.compile (faked: compiling takes seconds) and says so."""
    seen = {}

    def fake_compile(fn, mode=None, dynamic=None):
        seen["mode"] = mode

        def wrapped(*a, **k):
            seen["calls"] = seen.get("calls", 0) + 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(torch, "compile", fake_compile)
    prof = tiny("torch")
    prof = dataclasses.replace(prof, run=dataclasses.replace(prof.run, compile="max-autotune"))
    want = greedy(backend_for(tiny("torch")).prepare(tiny("torch")), 12)
    s = backend_for(prof).prepare(prof)
    assert greedy(s, 12) == want
    assert seen == {"mode": "max-autotune-no-cudagraphs", "calls": 11}
    assert s.describe()["compile"] == "max-autotune-no-cudagraphs"
    with pytest.raises(P.ProfileError, match="compile mode"):
        P.loads('name = "c"\n[model]\nkind = "synthetic-llama"\n[run]\nbackend = "torch"\ncompile = "fast"\n')


def test_help_and_the_meters_plan_for_torch():
    import subprocess

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom greenbench.cli import app\n"
            "r = CliRunner().invoke(app, ['run', '--help'])\nassert r.exit_code == 0 and '--device' in r.output\n"
            "assert 'torch' not in sys.modules, 'greenbench run --help imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    scope = device_scope("torch")  # greenbench meters --backend torch: the default device here
    assert scope.cpu and (bool(scope.gpus) == torch.cuda.is_available())
