"""The device a PyTorch run uses: choosing it, naming it for NVML, and measuring its memory bandwidth.

Terms:
    device: ``cpu`` or ``cuda`` (CUDA device 0 of this process, ``torch.cuda.current_device()``). Asked for by
        ``--device`` / ``[run] device``; left unset, ``cuda`` when PyTorch sees a GPU, else ``cpu``
        (:func:`resolve_device`).
    NVML UUID: NVML names a GPU ``GPU-<uuid>`` (a MIG instance ``MIG-<uuid>``); PyTorch reports the bare uuid
        (``torch.cuda.get_device_properties(i).uuid``). :func:`gpu_ref` adds the prefix so the NVML meter
        selects exactly the GPU the work runs on (:mod:`greenbench.meters.scope`).
    copy bandwidth: a device-to-device copy of a buffer much larger than the GPU's L2 cache moves its size
        twice over the memory bus (read + write); the best rate over repeated copies is the ceiling used for
        the decode roofline on a GPU, the way ``shared/gpu-machine.md`` measured 4.24-4.27 TB/s on an H200.
        Copies are timed with CUDA events, which bracket only the GPU's own work.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Mapping

from greenbench.errors import BackendError
from greenbench.meters.scope import GpuRef, Scope

DEVICES = ("cpu", "cuda")

#: Default size of each buffer of the copy probe: far beyond any GPU's L2 cache (H200: 60 MiB).
COPY_PROBE_BYTES = 1 << 30


def import_torch(purpose: str = "the torch backend"):
    """``torch``, or a BackendError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise BackendError(
            f"{purpose} needs PyTorch, which is not installed",
            "pip install 'greenbench[train]' (or pip install torch; a CUDA build for GPUs)",
        ) from None
    return torch


def resolve_device(requested: str | None, cuda_available: Callable[[], bool]) -> str:
    """``requested`` checked against what PyTorch sees, or the default (``cuda`` when available, else ``cpu``).

    Raises:
        BackendError: ``cuda`` requested and PyTorch sees no CUDA device; an unknown device.
    """
    if requested is None:
        return "cuda" if cuda_available() else "cpu"
    if requested not in DEVICES:
        raise BackendError(f"unknown device {requested!r}", f"valid devices: {', '.join(DEVICES)}")
    if requested == "cuda" and not cuda_available():
        raise BackendError(
            "device cuda was asked for, but PyTorch sees no CUDA device",
            "install a CUDA build of torch on a machine with an NVIDIA GPU (python -c 'import torch; "
            "print(torch.cuda.is_available())' must print True), or use --device cpu",
        )
    return requested


def nvml_uuid(torch_uuid, ordinal: int, env: Mapping[str, str] | None = None) -> str | None:
    """NVML's name for CUDA device ``ordinal``: ``MIG-…`` when ``CUDA_VISIBLE_DEVICES`` selects a MIG instance
    there, else ``GPU-`` + PyTorch's uuid; None when PyTorch reports none."""
    env = os.environ if env is None else env
    entries = [e.strip() for e in (env.get("CUDA_VISIBLE_DEVICES") or "").split(",") if e.strip()]
    if ordinal < len(entries) and entries[ordinal].startswith("MIG-"):
        return entries[ordinal]
    if torch_uuid is None:
        return None
    s = str(torch_uuid).strip()
    if not s:
        return None
    return s if s.startswith(("GPU-", "MIG-")) else f"GPU-{s}"


def gpu_ref(torch, ordinal: int | None = None) -> GpuRef:
    """The :class:`GpuRef` of a CUDA device of this process, with its NVML UUID when PyTorch reports one."""
    i = torch.cuda.current_device() if ordinal is None else ordinal
    try:
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
    except Exception:  # an old torch without the property, or a driver that does not say
        uuid = None
    return GpuRef(int(i), nvml_uuid(uuid, int(i)))


def device_scope(torch, device: str) -> Scope:
    """The devices a PyTorch run on ``device`` uses: the host CPU (which drives it) and, on cuda, its GPU."""
    if device == "cuda":
        return Scope(cpu=True, gpus=(gpu_ref(torch),))
    return Scope(cpu=True)


def l2_cache_bytes(torch, ordinal: int = 0) -> int:
    """The GPU's L2 cache size (50 MiB when PyTorch does not report it)."""
    try:
        return int(getattr(torch.cuda.get_device_properties(ordinal), "L2_cache_size", 0)) or 50 << 20
    except Exception:
        return 50 << 20


def copy_bandwidth(torch, device: str = "cuda", *, size_bytes: int = COPY_PROBE_BYTES, min_time_s: float = 0.3,
                   max_copies: int = 200) -> dict:
    """Device-to-device copy bandwidth (read + write bytes per second), best of repeated copies.

    On ``cuda`` each copy is timed with CUDA events; on ``cpu`` (for tests and completeness) with
    ``time.perf_counter``. At least 3 copies after one untimed copy, then more until ``min_time_s`` has passed.

    Returns:
        ``{"bytes_per_s", "method", "copies", "size_bytes", "probe_s"}``.
    """
    cuda = str(device).startswith("cuda")
    with torch.inference_mode():
        src = torch.empty(int(size_bytes), dtype=torch.uint8, device=device)
        src.fill_(1)
        dst = torch.empty_like(src)
        dst.copy_(src)  # untimed: page-in and allocator
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best_s = float("inf")
        copies = 0
        t0 = time.perf_counter()
        while copies < 3 or (time.perf_counter() - t0 < min_time_s and copies < max_copies):
            if cuda:
                start.record()
                dst.copy_(src)
                end.record()
                end.synchronize()
                dt = start.elapsed_time(end) / 1e3
            else:
                a = time.perf_counter()
                dst.copy_(src)
                dt = time.perf_counter() - a
            best_s = min(best_s, dt)
            copies += 1
        probe_s = time.perf_counter() - t0
        del src, dst
    return {
        "bytes_per_s": 2.0 * size_bytes / best_s if best_s > 0 else None,
        "method": f"device-to-device copy of {size_bytes / 2**20:.0f} MiB, read + write bytes, best of {copies}"
                  + (" (CUDA events)" if cuda else ""),
        "copies": copies,
        "size_bytes": int(size_bytes),
        "probe_s": probe_s,
    }
