"""Backend registry and onnxruntime provider selection (CUDA logic tested without a GPU)."""

from __future__ import annotations

import sys
import types

import pytest
from typer.testing import CliRunner

from greenbench.backends import BACKENDS, get_backend
from greenbench.backends import ort as ort_backend
from greenbench.backends.ort import CPU_PROVIDER, CUDA_PROVIDER, nvidia_gpu_count, select_providers
from greenbench.errors import BackendError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_registry_names():
    assert {"cpu", "cuda"} <= set(BACKENDS)
    b = get_backend("cpu")
    assert b.name == "cpu" and b.providers == [CPU_PROVIDER]


def test_unknown_backend_lists_valid_names():
    with pytest.raises(BackendError) as ei:
        get_backend("gpu0")
    assert ei.value.exit_code == 2
    assert "gpu0" in ei.value.message
    assert "cpu" in ei.value.hint and "cuda" in ei.value.hint


def test_select_providers():
    assert select_providers("cpu", [CPU_PROVIDER], 0) == [CPU_PROVIDER]
    assert select_providers("cuda", [CUDA_PROVIDER, CPU_PROVIDER], 1) == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(BackendError) as ei:
        select_providers("cuda", ["AzureExecutionProvider", CPU_PROVIDER], 1)
    assert "CUDA execution provider" in ei.value.message and "onnxruntime-gpu" in ei.value.hint
    with pytest.raises(BackendError) as ei:
        select_providers("cuda", [CUDA_PROVIDER, CPU_PROVIDER], 0, "NVML: Driver Not Loaded")
    assert "no NVIDIA GPU" in ei.value.message and "Driver Not Loaded" in ei.value.message


def _fake_pynvml(count=None, init_error=None):
    m = types.ModuleType("pynvml")

    def init():
        if init_error:
            raise RuntimeError(init_error)

    m.nvmlInit = init
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: count
    return m


def test_nvidia_gpu_count_with_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(count=2))
    assert nvidia_gpu_count()[0] == 2
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(init_error="Driver Not Loaded"))
    n, why = nvidia_gpu_count()
    assert n == 0 and "Driver Not Loaded" in why


def test_cuda_backend_selection_without_gpu(monkeypatch):
    import onnxruntime

    # this machine's onnxruntime: no CUDA provider -> exit-2 error saying so
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU_PROVIDER])
    with pytest.raises(BackendError, match="CUDA execution provider"):
        get_backend("cuda")
    # CUDA provider present but no GPU
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(count=0))
    with pytest.raises(BackendError, match="no NVIDIA GPU"):
        get_backend("cuda")
    # provider and a GPU: selected, CUDA first
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(count=1))
    b = get_backend("cuda")
    assert b.name == "cuda" and b.providers == [CUDA_PROVIDER, CPU_PROVIDER]


def test_cuda_provider_that_fails_to_start_is_exit_2(monkeypatch):
    """onnxruntime silently falls back to CPU when CUDA libraries are missing; greenbench refuses."""
    from greenbench import profile as P

    b = ort_backend.OrtBackend("cuda", [CPU_PROVIDER])  # the session will only have the CPU provider
    prof = P.load("llama-tiny").with_overrides(threads=1)
    with pytest.raises(BackendError, match="could not start its CUDA"):
        b.prepare(prof)


def test_session_options():
    import onnxruntime as ort

    so = ort_backend.session_options(3)
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.parametrize("backend, needle", [("cuda", "CUDA"), ("nope", "unknown backend")])
def test_cli_bad_backend_is_exit_2_without_traceback(tmp_path, backend, needle):
    import onnxruntime

    if backend == "cuda" and CUDA_PROVIDER in onnxruntime.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    from greenbench.cli import app

    r = CliRunner().invoke(app, ["run", "llama-tiny", "--backend", backend, "--out", str(tmp_path / "out"), "--idle", "0"])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output


@pytest.mark.gpu
def test_cuda_greedy_tokens_match_cpu():
    from greenbench import profile as P

    try:
        cuda = get_backend("cuda")
    except BackendError as exc:
        pytest.skip(str(exc))
    prof = P.load("llama-tiny").with_overrides(max_new_tokens=12)

    def gen(b):
        s = b.prepare(prof)
        first = s.prefill()
        out = [first] + s.decode(first, 11)
        s.close()
        return out

    assert gen(cuda) == gen(get_backend("cpu"))
