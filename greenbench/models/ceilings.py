"""The two ceilings of decode on a CPU, measured here: memory bandwidth and the matmul kernels' peak.

A decode step reads every weight once (for the whole batch) and multiplies it with one activation row per
batch row, so its speed is bounded twice (the roofline model: Williams, Waterman and Patterson, "Roofline:
an insightful visual performance model", CACM 52(4), 2009):

    memory ceiling   tokens/s <= bandwidth / bytes_per_token        (kipply 2022)
    compute ceiling  tokens/s <= peak MACs/s of the kernels used / MACs_per_token

and the lower one applies (``bound``). fp32 decode at batch 1 is memory-bound on CPUs; int4
(MatMulNBits) is often compute-bound because unpacking and dequantizing 4-bit weights costs more
arithmetic than reading them.

Terms:
    read kernel: a loop that streams a buffer larger than the last-level cache. Decode's matmuls read
        weights with vectorised loads on ``threads`` threads, and no single numpy kernel reaches the same
        rate on every CPU, so :func:`memory_bandwidth_bytes_per_s` takes the best of several (``np.max``,
        a 1-D ``np.dot``, a BLAS GEMV) on 1 thread and on the session's threads. Taking the best keeps the
        ceiling high, so a roofline fraction is conservative; a fraction above 1 still means the probe
        missed a faster path, and is flagged, not reported.
    compute peak: :func:`matmul_peak_macs_per_s` runs the decode's own onnxruntime kernel (``MatMul`` for
        fp32/fp16, ``MatMulNBits`` with the model's block size and accuracy level for int4) on weights small
        enough to stay in cache, with the session's threads and batch, and reports the best MACs/s.
"""

from __future__ import annotations

import time

__all__ = ["last_level_cache_bytes", "memory_bandwidth_bytes_per_s", "memory_bandwidth_gbps",
           "matmul_peak_macs_per_s"]


def last_level_cache_bytes() -> int:
    """The largest CPU cache of cpu0 from sysfs (32 MiB when unknown)."""
    try:
        import glob

        sizes = []
        for f in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
            s = open(f).read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
            sizes.append(int(s.rstrip("KMG")) * mult)
        return max(sizes) if sizes else 32 << 20
    except (OSError, ValueError):
        return 32 << 20


def _read_kernels(np):
    """name -> (one chunk -> None): streaming reads of a float32 chunk."""
    def gemv(c):
        n = c.size - c.size % 4096
        c[:n].reshape(-1, 4096) @ _ones(np, 4096)

    return {
        "np.max": np.max,
        "np.dot (1-D)": lambda c: np.dot(c, c),
        "BLAS gemv": gemv,
    }


_ONES: dict = {}


def _ones(np, n):
    if n not in _ONES:
        _ONES[n] = np.ones(n, dtype=np.float32)
    return _ONES[n]


def memory_bandwidth_bytes_per_s(
    threads: int | None = None, size_bytes: int | None = None, min_time_s: float = 0.3, detail: dict | None = None
) -> float:
    """Sustained DRAM read bandwidth measured in this process, in bytes/s (see the module docstring).

    Streams a float32 array larger than the last-level cache (default 256 MiB, or 8x the cache if larger)
    with each read kernel, split over 1 thread and over ``threads`` threads (default: physical cores),
    repeating for at least ``min_time_s`` per thread count; returns the best pass. ``detail``, when given,
    receives the kernel and thread count of the best pass.
    """
    import concurrent.futures

    import numpy as np

    if threads is None:
        import psutil

        threads = psutil.cpu_count(logical=False) or 1
    if size_bytes is None:
        size_bytes = max(256 << 20, 8 * last_level_cache_bytes())
    a = np.ones(size_bytes // 4, dtype=np.float32)
    kernels = _read_kernels(np)
    best, best_how = 0.0, ("", 0)
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        for nt in sorted({1, max(1, threads)}):
            chunks = np.array_split(a, nt)
            deadline = time.perf_counter() + min_time_s
            passes = 0
            while passes < 2 or (time.perf_counter() < deadline and passes < 12):
                for name, fn in kernels.items():
                    t0 = time.perf_counter()
                    list(pool.map(fn, chunks))
                    rate = a.nbytes / (time.perf_counter() - t0)
                    if rate > best:
                        best, best_how = rate, (name, nt)
                passes += 1
    if detail is not None:
        detail.update(kernel=best_how[0], threads=best_how[1], buffer_bytes=a.nbytes)
    return best


def memory_bandwidth_gbps(threads: int | None = None, size_bytes: int | None = None, min_time_s: float = 0.3) -> float:
    """:func:`memory_bandwidth_bytes_per_s` in GB/s (1e9 bytes/s)."""
    return memory_bandwidth_bytes_per_s(threads, size_bytes, min_time_s) / 1e9


def matmul_peak_macs_per_s(
    dtype: str,
    *,
    threads: int,
    batch: int = 1,
    block_size: int = 32,
    accuracy_level: int = 4,
    k: int = 1024,
    n: int = 1024,
    min_time_s: float = 0.2,
) -> dict:
    """The best MACs/s of decode's matmul kernel on cache-resident weights (see the module docstring).

    Returns:
        ``{"peak_macs_per_s", "kernel", "k", "n", "batch", "threads", "weight_bytes"}``.
    """
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if dtype == "int4":
        n_blocks = -(-k // block_size)
        packed = rng.integers(0, 256, (n, n_blocks, block_size // 2), dtype=np.uint8)
        scales = rng.random(n * n_blocks, dtype=np.float32) * 0.01 + 0.001
        node = helper.make_node("MatMulNBits", ["X", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n, bits=4,
                                block_size=block_size, accuracy_level=accuracy_level)
        inits = [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales, "S")]
        elem, np_dt = TensorProto.FLOAT, np.float32
        kernel = f"MatMulNBits int4 (block {block_size}, accuracy_level {accuracy_level})"
        weight_bytes = packed.nbytes + scales.nbytes
    else:
        np_dt = np.float16 if dtype == "fp16" else np.float32
        elem = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
        w = (rng.standard_normal((k, n)) * 0.01).astype(np_dt)
        node = helper.make_node("MatMul", ["X", "W"], ["Y"])
        inits = [numpy_helper.from_array(w, "W")]
        kernel = f"MatMul {dtype}"
        weight_bytes = w.nbytes
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("X", elem, [batch, k])],
                              [helper.make_tensor_value_info("Y", elem, [batch, n])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((batch, k)).astype(np_dt)
    feed = {"X": x}
    for _ in range(3):
        sess.run(None, feed)
    best = 0.0
    deadline = time.perf_counter() + min_time_s
    runs = 0
    while runs < 5 or time.perf_counter() < deadline:
        reps = 8
        t0 = time.perf_counter()
        for _ in range(reps):
            sess.run(None, feed)
        best = max(best, reps * batch * k * n / (time.perf_counter() - t0))
        runs += 1
    return {"peak_macs_per_s": best, "kernel": kernel, "k": k, "n": n, "batch": batch, "threads": int(threads),
            "weight_bytes": int(weight_bytes)}
