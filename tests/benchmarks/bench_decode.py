"""Decode speed of greenbench's session vs a minimal hand-written IOBinding loop, and the roofline.

Run:  python tests/benchmarks/bench_decode.py [--profiles llama-tiny llama-125m] [--rounds 7] [--busy 1]

For each profile, in ONE process and on the SAME model file, it alternates rounds of
  (a) greenbench: ``backend.prepare(profile)`` then ``prefill()`` + ``decode(first, n)``;
  (b) a minimal loop written directly against onnxruntime's public IOBinding API
      (KV buffers bound once as past+present for GQA models / ping-pong for concat models,
      logits bound to a preallocated array, argmax in numpy);
  (c) if onnxruntime-genai is installed, its C++ generator loop on the same directory;
and prints median decode tokens/s of each and their ratio (greenbench / hand loop). Rounds are
interleaved so slow drifts of the machine hit both sides alike. Memory bandwidth is measured in the
same run (between rounds, best pass) and the roofline fraction
``tokens/s / (bandwidth / bytes_per_token)`` is printed with bytes/token from the cost model.
Tokens are checked identical between (a) and (b).

``--busy K`` starts K processes that each keep one core busy (a pure-Python spin loop) beside both
loops for the whole run, to see how each loop holds up on a shared machine; targets: greenbench / hand
>= 0.97 on a quiet machine, >= 0.9 with one busy core.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # measure this checkout, not an installed greenbench


def hand_loop(onnx_path, threads, prompt, n_new, share):
    """A minimal decode loop on the public onnxruntime API. Returns (run(n) -> (tokens, seconds))."""
    import onnxruntime as ort

    from greenbench.models.loader import decoder_io, open_export_dir

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    io = decoder_io(sess.get_inputs(), sess.get_outputs(), open_export_dir(os.path.dirname(onnx_path)))
    S = len(prompt)
    cap = S + n_new + 1
    kvdt = np.dtype(io.kv_dtype)
    V = io.vocab
    kv = {}
    for i in range(io.layers):
        for name in (io.past_keys[i], io.past_values[i]):
            kv[name] = [np.zeros((1, io.kv_heads, cap, io.head_dim), kvdt) for _ in range(1 if share else 2)]
    b = sess.io_binding()
    ids_p = np.array([prompt], dtype=np.int64)
    ids = np.zeros((1, 1), np.int64)
    mask = np.ones((1, cap), np.int64)
    pos = np.zeros((1, 1), np.int64)
    lp = np.empty((1, S, V), np.dtype(io.logits_dtype))
    ls = np.empty((1, 1, V), np.dtype(io.logits_dtype))
    pairs = [(io.past_keys[i], io.present_keys[i]) for i in range(io.layers)]
    pairs += [(io.past_values[i], io.present_values[i]) for i in range(io.layers)]

    def run(n):
        b.bind_input("input_ids", "cpu", 0, np.int64, ids_p.shape, ids_p.ctypes.data)
        b.bind_input("attention_mask", "cpu", 0, np.int64, (1, S), mask.ctypes.data)
        if io.position_ids:
            pp = np.arange(S, dtype=np.int64)[None]
            b.bind_input("position_ids", "cpu", 0, np.int64, pp.shape, pp.ctypes.data)
        for past, present in pairs:
            bufs = kv[past]
            if share:
                b.bind_input(past, "cpu", 0, kvdt, bufs[0].shape, bufs[0].ctypes.data)
                b.bind_output(present, "cpu", 0, kvdt, bufs[0].shape, bufs[0].ctypes.data)
            else:
                b.bind_input(past, "cpu", 0, kvdt, (1, io.kv_heads, 0, io.head_dim), bufs[1].ctypes.data)
                b.bind_output(present, "cpu", 0, kvdt, (1, io.kv_heads, S, io.head_dim), bufs[0].ctypes.data)
        b.bind_output("logits", "cpu", 0, lp.dtype, lp.shape, lp.ctypes.data)
        sess.run_with_iobinding(b)
        tok = int(lp[0, -1].argmax())
        out = []
        b.bind_input("input_ids", "cpu", 0, np.int64, ids.shape, ids.ctypes.data)
        if io.position_ids:
            b.bind_input("position_ids", "cpu", 0, np.int64, pos.shape, pos.ctypes.data)
        b.bind_output("logits", "cpu", 0, ls.dtype, ls.shape, ls.ctypes.data)
        cur = 0
        t0 = time.perf_counter()
        for step in range(n):
            t = S + step + 1
            ids[0, 0] = tok
            b.bind_input("attention_mask", "cpu", 0, np.int64, (1, t), mask.ctypes.data)
            if io.position_ids:
                pos[0, 0] = t - 1
            if not share:
                for past, present in pairs:
                    bufs = kv[past]
                    b.bind_input(past, "cpu", 0, kvdt, (1, io.kv_heads, t - 1, io.head_dim), bufs[cur].ctypes.data)
                    b.bind_output(present, "cpu", 0, kvdt, (1, io.kv_heads, t, io.head_dim), bufs[1 - cur].ctypes.data)
                cur = 1 - cur
            sess.run_with_iobinding(b)
            tok = int(ls[0, 0].argmax())
            out.append(tok)
        return out, time.perf_counter() - t0

    return run


def genai_loop(model_dir, prompt, n_new):
    try:
        import onnxruntime_genai as og
    except ImportError:
        return None
    model = og.Model(str(model_dir))

    def run(n):
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(prompt) + n + 1, min_length=len(prompt) + n + 1)
        gen = og.Generator(model, params)
        gen.append_tokens([prompt])
        gen.generate_next_token()
        t0 = time.perf_counter()
        for _ in range(n):
            gen.generate_next_token()
        dt = time.perf_counter() - t0
        return list(gen.get_sequence(0))[len(prompt) + 1 :], dt

    return run


def bench(profile_name, rounds, n_tokens, threads, dtype, graph, a_bw_every=0):
    from greenbench import profile as P
    from greenbench.backends import get_backend
    from greenbench.models import memory_bandwidth_bytes_per_s, roofline

    prof = P.load(profile_name)
    if n_tokens:
        prof = prof.with_overrides(max_new_tokens=n_tokens)
    model = dataclasses.replace(prof.model, **{k: v for k, v in (("dtype", dtype), ("graph", graph)) if v})
    prof = dataclasses.replace(prof, model=model)
    if threads:
        prof = prof.with_overrides(threads=threads)
    n = prof.generation.max_new_tokens
    sess = get_backend("cpu").prepare(prof, progress=lambda m: print("  " + m, file=sys.stderr))
    info, cost = sess.describe(), sess.cost()
    share = info["kv_cache"] == "shared-buffer"
    hand = hand_loop(info["onnx_path"], info["intra_op_threads"], sess.prompt_ids, n, share)
    genai = genai_loop(info["model_dir"], sess.prompt_ids, n)

    def ours(k):
        sess.reset()
        first = sess.prefill()
        t0 = time.perf_counter()
        toks = sess.decode(first, k)
        return toks, time.perf_counter() - t0

    ours(4), hand(4)  # warm up both
    if genai:
        genai(4)
    rate_g, rate_h, rate_x, bws = [], [], [], []
    tok_g = tok_h = None
    for r in range(rounds):
        order = [("g", ours), ("h", hand)] if r % 2 == 0 else [("h", hand), ("g", ours)]
        if genai:
            order.append(("x", genai))
        for tag, fn in order:
            toks, dt = fn(n)
            {"g": rate_g, "h": rate_h, "x": rate_x}[tag].append(n / dt)
            if tag == "g":
                tok_g = toks
            elif tag == "h":
                tok_h = toks
        if a_bw_every and r % a_bw_every == a_bw_every - 1:
            bws.append(memory_bandwidth_bytes_per_s(threads=info["intra_op_threads"], min_time_s=0.2))
    bws.append(memory_bandwidth_bytes_per_s(threads=info["intra_op_threads"], min_time_s=0.3))
    g, h = statistics.median(rate_g), statistics.median(rate_h)
    bw = max(bws)
    label = f"{profile_name} ({info['graph']}, {info['dtype']}, {info['kv_cache']} KV, {info['intra_op_threads']} threads)"
    print(f"\n{label}: {n} decode tokens x {rounds} interleaved rounds")
    print(f"  greenbench      {g:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in rate_g)})")
    print(f"  hand IOBinding  {h:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in rate_h)})")
    paired = statistics.median(a / b for a, b in zip(rate_g, rate_h))
    print(f"  ratio greenbench / hand loop = {g / h:.3f} (medians), {paired:.3f} (median of per-round ratios)"
          f"   tokens identical: {tok_g == tok_h}")
    if genai:
        x = statistics.median(rate_x)
        print(f"  onnxruntime-genai {x:8.1f} tok/s   ratio greenbench / genai = {g / x:.3f}")
    else:
        print("  onnxruntime-genai: not installed, comparison skipped")
    frac = roofline(cost, g, bw)
    print(
        f"  bytes/token {cost['bytes_per_token'] / 1e6:.2f} MB, bandwidth {bw / 1e9:.1f} GB/s (best of {len(bws)}), "
        f"ceiling {bw / cost['bytes_per_token']:.1f} tok/s, roofline_fraction {frac:.3f}"
    )
    sess.close()
    return g / h, frac


def start_busy(k: int) -> list:
    """K processes that each spin one core until killed."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["llama-tiny", "llama-125m"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=0, help="decode tokens per round (default: profile's max_new_tokens)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "int4"], default=None)
    ap.add_argument("--graph", choices=["contrib", "standard"], default=None)
    ap.add_argument("--bw-every", type=int, default=0, help="also measure bandwidth every N rounds (default: once, after)")
    ap.add_argument("--keep-cache", action="store_true", help="use the user cache dir instead of a temp dir")
    ap.add_argument("--busy", type=int, default=0, help="processes spinning one core each beside both loops")
    a = ap.parse_args()
    if not a.keep_cache and "GREENBENCH_CACHE_DIR" not in os.environ:
        os.environ["GREENBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="gb-bench-")
    busy = start_busy(a.busy)
    if busy:
        print(f"{a.busy} busy process(es) spinning beside both loops")
    try:
        for p in a.profiles:
            bench(p, a.rounds, a.tokens, a.threads, a.dtype, a.graph, a.bw_every)
    finally:
        for proc in busy:
            proc.kill()


if __name__ == "__main__":
    main()
