"""The onnxruntime backends: ``cpu`` (CPU execution provider) and ``cuda`` (CUDA execution provider).

``prepare`` resolves the model (a generated model from the cache, built on first use, or an export
directory), creates ONE ``onnxruntime.InferenceSession`` (sequential execution, all graph optimizations,
``intra_op_num_threads`` = ``[run] threads`` or the number of physical cores, one inter-op thread),
resolves the prompt and returns a :class:`~greenbench.workloads.inference.DecoderSession`.

Provider selection is a pure function (:func:`select_providers`) of the backend name, the providers
this onnxruntime build offers and the number of NVIDIA GPUs NVML sees, so it is testable without a GPU.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from greenbench.errors import BackendError

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def select_providers(backend: str, available: list[str], gpu_count: int, gpu_reason: str = "") -> list[str]:
    """The onnxruntime providers for ``backend``, in priority order.

    Raises:
        BackendError: ``cuda`` requested but this onnxruntime has no CUDA provider, or no GPU is visible.
    """
    if backend == "cpu":
        return [CPU_PROVIDER]
    if backend == "cuda":
        if CUDA_PROVIDER not in available:
            raise BackendError(
                "--backend cuda needs onnxruntime's CUDA execution provider, but this onnxruntime "
                f"offers only {', '.join(available) or 'none'}",
                "on a machine with an NVIDIA GPU: pip uninstall onnxruntime && pip install onnxruntime-gpu; "
                "otherwise use --backend cpu",
            )
        if gpu_count < 1:
            why = f" ({gpu_reason})" if gpu_reason else ""
            raise BackendError(
                f"--backend cuda: no NVIDIA GPU is visible{why}",
                "run on a machine with an NVIDIA GPU and its driver (nvidia-smi must list it), or use --backend cpu",
            )
        return [CUDA_PROVIDER, CPU_PROVIDER]
    raise BackendError(f"onnxruntime has no backend {backend!r}", "valid: cpu, cuda")


def nvidia_gpu_count() -> tuple[int, str]:
    """(number of GPUs NVML reports, reason when 0)."""
    try:
        import pynvml
    except ImportError:
        return 0, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError and friends
        return 0, f"NVML: {exc}"
    try:
        return int(pynvml.nvmlDeviceGetCount()), "NVML reports no devices"
    except Exception as exc:
        return 0, f"NVML: {exc}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def physical_cores() -> int:
    """Physical cores this process may use: psutil's count, capped by its CPU affinity and a cgroup v2 quota.

    A container limited to 2 CPUs on a 64-core host (``cpu.max`` quota, or ``taskset``) that ran 64 intra-op
    threads would oversubscribe its share and slow every step to the scheduler's pace.
    """
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:
        n = None
    n = int(n or os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        try:
            n = min(n, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    quota = _cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return max(1, n)


def _cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` quota ("max 100000" means none), or None."""
    try:
        with open(path) as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def session_options(threads: int):
    """onnxruntime session options for a benchmark: sequential, fully optimized, ``threads`` intra-op."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class OrtBackend:
    """An onnxruntime backend (``cpu`` or ``cuda``)."""

    def __init__(self, name: str, providers: list[str]):
        self.name = name
        self.providers = providers

    def prepare(self, profile, progress: Optional[Callable[[str], None]] = None):
        """Build or load the model, create one session and allocate every buffer.

        Raises:
            BackendError: the model or prompt cannot be driven (names the input/output or option).
        """
        import numpy as np
        import onnxruntime as ort

        from greenbench.models.cache import ensure_model
        from greenbench.models.config import LlamaConfig
        from greenbench.models.cost import decode_cost, graph_cost
        from greenbench.models.loader import decoder_io, load_tokenizer, open_export_dir
        from greenbench.workloads.inference import DecoderSession, resolve_prompt

        spec = profile.model
        cfg = None
        if spec.kind and spec.dtype == "bf16":
            raise BackendError(
                f"[model] dtype bf16 runs on the torch backend only, not on onnxruntime's {self.name!r}",
                "use --backend torch, or dtype fp32/fp16/int4 with onnxruntime",
            )
        if spec.kind:
            try:
                cfg = LlamaConfig.from_spec(spec)
            except ValueError as exc:
                raise BackendError(f"[model] {exc}", "fix the model shape in the profile") from None
            export = open_export_dir(ensure_model(cfg, progress), source="generated")
        else:
            export = open_export_dir(spec.path)
        threads = profile.run.threads or physical_cores()
        if progress:
            progress(f"loading {export.onnx_path} on {', '.join(self.providers)} ({threads} threads)")
        try:
            sess = ort.InferenceSession(str(export.onnx_path), session_options(threads), providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise BackendError(
                f"onnxruntime cannot load {export.onnx_path}: {_ort_message(exc)}",
                "check that the directory holds a complete ONNX export (model.onnx and its .onnx.data)",
            ) from None
        if self.name == "cuda" and CUDA_PROVIDER not in sess.get_providers():
            raise BackendError(
                "onnxruntime could not start its CUDA execution provider (CUDA/cuDNN libraries missing?)",
                "install the CUDA and cuDNN versions this onnxruntime-gpu build needs, or use --backend cpu",
            )
        io = decoder_io(sess.get_inputs(), sess.get_outputs(), export)

        gen = export.source == "generated"
        prompt = resolve_prompt(profile.prompt, vocab=io.vocab,
                                encode=None if gen else (lambda text: load_tokenizer(export).encode(text).ids))

        B, n_new = profile.generation.batch_size, profile.generation.max_new_tokens
        context = len(prompt) + (n_new + 1) // 2  # mean context length over the decode steps
        if cfg is not None:
            cost = decode_cost(cfg, context, B)
        else:
            kv_item = np.dtype(io.kv_dtype).itemsize if io.kv_dtype != "bfloat16" else 2
            cost = graph_cost(
                export.onnx_path, layers=io.layers, heads=io.heads, kv_heads=io.kv_heads, head_dim=io.head_dim,
                kv_itemsize=kv_item, context_tokens=context, batch_size=B,
            )
        if cfg is None:  # an exported model: its weights identify it (greenbench.workloads.identity)
            from greenbench.fsutil import cache_dir
            from greenbench.workloads.identity import weights_digest

            if progress:
                progress(f"hashing the weights in {export.directory} (cached after the first time)")
            w_digest = weights_digest(export.directory, cache_dir())
        info = {
            "source": export.source,
            "config": cfg.to_dict() if cfg is not None else _export_config(io),
            "model_dir": str(export.directory),
            "onnx_path": str(export.onnx_path),
            "providers": list(sess.get_providers()),
            "intra_op_threads": int(threads),
            "execution_mode": "sequential",
            "graph": cfg.graph if cfg is not None else _graph_form(export.onnx_path),
            "dtype": cfg.dtype if cfg is not None else io.kv_dtype,
            "kv_cache": "shared-buffer" if io.share_buffer else "concat",
            "batch_size": B,
            "eos_token_id": io.eos_token_id,
            "eos_ignored": True,
            "onnxruntime_version": ort.__version__,
        }
        if cfg is None:
            info["weights_digest"] = w_digest
        return DecoderSession(
            sess, io, prompt, batch_size=B, max_new_tokens=n_new,
            device="cuda" if self.name == "cuda" else "cpu", info=info, cost=cost,
        )


def _ort_message(exc: Exception) -> str:
    """The useful part of an onnxruntime exception (no status prefix, no C++ source location)."""
    import re

    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    msg = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", lines[0])
    msg = re.sub(r"\S*onnxruntime_src\S*:\d+ \S+\(.*\) (?=\S)", "", msg)
    return msg[:400]


def _export_config(io) -> dict:
    return {
        "layers": io.layers,
        "heads": io.heads,
        "kv_heads": io.kv_heads,
        "head_dim": io.head_dim,
        "vocab": io.vocab,
        "max_seq_len": io.max_seq_len,
        "inputs": [n for n in (io.input_ids, io.attention_mask, io.position_ids) if n],
    }


def _graph_form(onnx_path) -> str:
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    return "contrib" if any(n.op_type == "GroupQueryAttention" for n in m.graph.node) else "standard"


def cpu_backend() -> OrtBackend:
    return OrtBackend("cpu", [CPU_PROVIDER])


def cuda_backend() -> OrtBackend:
    """The CUDA backend, or a BackendError saying why it cannot run here."""
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    count, reason = nvidia_gpu_count() if CUDA_PROVIDER in available else (0, "")
    return OrtBackend("cuda", select_providers("cuda", available, count, reason))
