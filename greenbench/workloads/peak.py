"""The peak FLOP rate of the device a training run uses: the denominator of MFU.

Terms:
    MFU (model FLOPs utilisation): achieved model FLOPs per second / the device's peak FLOPs per second
        (Chowdhery et al. 2022, PaLM, arXiv:2204.02311, appendix B). Achieved FLOPs are the *model's*
        (6N + attention per trained token, :func:`greenbench.models.cost.training_cost`) times tokens/s,
        not whatever the kernels happened to execute, so recomputation or padding does not raise it.
    peak, GPU: the dense (no structured sparsity) tensor-core rate of the training precision from the
        vendor's datasheet (:data:`GPU_PEAK_TFLOPS`). Datasheets print sparse figures with an asterisk;
        the dense rate is half of it.
    peak, CPU: no datasheet gives one for an arbitrary CPU, so it is measured here: the best rate of
        square ``torch.matmul`` GEMMs in the training precision on the training's thread count
        (:func:`cpu_gemm_peak`). A measured peak is a ceiling the BLAS library reaches on this machine
        today, so MFU against it says how well the model's shapes use that ceiling; it is recorded in
        the result with how it was measured.
"""

from __future__ import annotations

import re
import time

#: Dense peak TFLOP/s by GPU and precision, from each vendor datasheet. ``fp32`` is the CUDA-core rate
#: (PyTorch does not use TF32 for fp32 matmuls by default); ``bf16`` is the tensor-core rate without
#: sparsity (the datasheets' "with sparsity" figure halved).
GPU_PEAK_TFLOPS: dict[str, dict] = {
    "H200": {"fp32": 67.0, "bf16": 989.5,
             "source": "NVIDIA H200 Tensor Core GPU datasheet (2024), SXM: FP32 67 TFLOPS, BF16 Tensor Core "
                       "1,979 TFLOPS with sparsity"},
    "H100 PCIe": {"fp32": 51.0, "bf16": 756.5,
                  "source": "NVIDIA H100 Tensor Core GPU datasheet (2023), PCIe: FP32 51 TFLOPS, BF16 Tensor Core "
                            "1,513 TFLOPS with sparsity"},
    "H100": {"fp32": 67.0, "bf16": 989.5,
             "source": "NVIDIA H100 Tensor Core GPU datasheet (2023), SXM: FP32 67 TFLOPS, BF16 Tensor Core "
                       "1,979 TFLOPS with sparsity"},
    "A100": {"fp32": 19.5, "bf16": 312.0,
             "source": "NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5 TFLOPS, BF16 Tensor Core 312 "
                       "TFLOPS (624 with sparsity)"},
    "L40S": {"fp32": 91.6, "bf16": 362.05,
             "source": "NVIDIA L40S datasheet (2023): FP32 91.6 TFLOPS, BF16 Tensor Core 733 TFLOPS with sparsity"},
    "L4": {"fp32": 30.3, "bf16": 121.0,
           "source": "NVIDIA L4 Tensor Core GPU datasheet (2023): FP32 30.3 TFLOPS, BF16 Tensor Core 242 TFLOPS "
                     "with sparsity"},
    "A10": {"fp32": 31.2, "bf16": 125.0,
            "source": "NVIDIA A10 Tensor Core GPU datasheet (2021): FP32 31.2 TFLOPS, BF16 Tensor Core 125 TFLOPS "
                      "(250 with sparsity)"},
    "RTX 4090": {"fp32": 82.6, "bf16": 165.2,
                 "source": "NVIDIA Ada GPU architecture whitepaper (2022), GeForce RTX 4090: FP32 82.6 TFLOPS, "
                           "BF16 Tensor Core with FP32 accumulate 165.2 TFLOPS (dense)"},
    "V100": {"fp32": 15.7, "bf16": None,
             "source": "NVIDIA V100 Tensor Core GPU datasheet (2020), SXM2: FP32 15.7 TFLOPS; no BF16"},
    "T4": {"fp32": 8.1, "bf16": None,
           "source": "NVIDIA T4 Tensor Core GPU datasheet (2019): FP32 8.1 TFLOPS; no BF16"},
}
#: How ``torch.cuda.get_device_name()`` names each GPU, in matching order (a longer name before its prefix;
#: ``A10`` but not ``A100`` or ``A10G``, another chip with other figures; ``L4`` but not ``L40S``).
_GPU_PATTERNS = (
    ("H200", r"\bH200\b"),
    ("H100 PCIe", r"\bH100\b.*\bPCIE\b"),
    ("H100", r"\bH100\b"),
    ("A100", r"\bA100\b"),
    ("L40S", r"\bL40S\b"),
    ("L4", r"\bL4\b"),
    ("RTX 4090", r"\bRTX 4090\b"),
    ("V100", r"\bV100\b"),
    ("T4", r"\bT4\b"),
    ("A10", r"\bA10\b"),
)


def gpu_model(device_name: str) -> str | None:
    """The :data:`GPU_PEAK_TFLOPS` key of a CUDA device name (``NVIDIA H100 80GB HBM3`` -> ``H100``), or None."""
    name = device_name.upper().replace("-", " ")
    for key, pattern in _GPU_PATTERNS:
        if re.search(pattern, name):
            return key
    return None


def gpu_peak(device_name: str, precision: str) -> dict:
    """The datasheet peak of a CUDA device for ``precision`` (``fp32`` or ``bf16``).

    Returns:
        ``{"flops_per_s", "method": "datasheet", "device", "precision", "source"}``; ``flops_per_s`` is
        None (and ``note`` says why) for a GPU or precision the table does not have.
    """
    key = gpu_model(device_name)
    out = {"flops_per_s": None, "method": "datasheet", "device": device_name, "precision": precision}
    if key is None:
        out["note"] = f"{device_name!r} is not in greenbench's datasheet table ({', '.join(GPU_PEAK_TFLOPS)}); MFU not computed"
        return out
    row = GPU_PEAK_TFLOPS[key]
    out["source"] = row["source"]
    tflops = row.get(precision)
    if tflops is None:
        out["note"] = f"{key} has no {precision} rate in its datasheet; MFU not computed"
        return out
    out["flops_per_s"] = tflops * 1e12
    return out


def cpu_gemm_peak(torch, *, precision: str = "fp32", n: int = 512, min_time_s: float = 0.3, max_reps: int = 200) -> dict:
    """Measure the CPU's peak: the best rate of ``n x n`` ``torch.matmul`` GEMMs (``2 n^3`` FLOPs each).

    Runs on the threads torch is set to use (the training's), for at least ``min_time_s`` after one
    untimed call, and keeps the fastest call: the best case is the ceiling, so MFU is not flattered by
    a slow probe.

    Returns:
        ``{"flops_per_s", "method": "measured", "device": "cpu", "precision", "gemm_n", "reps",
        "threads", "probe_s", "source"}``.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    with torch.no_grad():
        torch.matmul(a, b)  # warm the BLAS library and its thread pool
        best = float("inf")
        reps = 0
        t_start = time.perf_counter()
        while reps < 3 or (time.perf_counter() - t_start < min_time_s and reps < max_reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        probe_s = time.perf_counter() - t_start
    flops = 2.0 * n**3 / best if best > 0 else None
    return {
        "flops_per_s": flops,
        "method": "measured",
        "device": "cpu",
        "precision": precision,
        "gemm_n": n,
        "reps": reps,
        "threads": torch.get_num_threads(),
        "probe_s": probe_s,
        "source": f"best of {reps} torch.matmul {precision} {n}x{n} GEMMs (2n^3 FLOPs each) on "
                  f"{torch.get_num_threads()} threads, measured before the run",
    }


def mfu(tokens_per_s: float | None, flops_per_token: float | None, peak_flops_per_s: float | None) -> float | None:
    """Model FLOPs utilisation: ``tokens_per_s x flops_per_token / peak``; None when any input is missing."""
    if not tokens_per_s or not flops_per_token or not peak_flops_per_s:
        return None
    return float(tokens_per_s) * float(flops_per_token) / float(peak_flops_per_s)
