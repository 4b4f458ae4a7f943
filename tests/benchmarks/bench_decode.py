"""Decode speed of greenbench's session vs a minimal hand-written IOBinding loop, and the roofline.

Run:  python tests/benchmarks/bench_decode.py [--profiles llama-tiny llama-125m] [--rounds 7] [--busy 1]
      python tests/benchmarks/bench_decode.py --device cuda [--profiles llama-1b] [--batch 1 16] [--json OUT.json]

With ``--device cpu|cuda`` it measures the torch backend instead (:func:`bench_torch`): greenbench's static-cache
session (a CUDA graph per decode step on cuda) against Hugging Face ``generate`` (transformers, eager, its
dynamic cache) on the SAME weights (the generated model's, loaded into ``LlamaForCausalLM``), in one process,
interleaved rounds, per batch size; the GPU's copy bandwidth is measured in the same run and gives each side's
roofline fraction. ``--compile MODE`` adds greenbench with the decode step ``torch.compile``d before capture.

Default mode:

For each profile, in ONE process and on the SAME model file, it alternates rounds of
  (a) greenbench: ``backend.prepare(profile)`` then ``prefill()`` + ``decode(first, n)``;
  (b) a minimal loop written directly against onnxruntime's public IOBinding API
      (KV buffers bound once as past+present for GQA models / ping-pong for concat models,
      logits bound to a preallocated array, argmax in numpy);
  (c) if onnxruntime-genai is installed, its C++ generator loop on the same directory;
and prints median decode tokens/s of each and their ratio (greenbench / hand loop). Rounds are
interleaved so slow drifts of the machine hit both sides alike, and the whole comparison runs twice, once
with each loop's session made first: the session made second ran ~10% faster on this VM whichever loop it
was (where its memory landed), so the ratio reported is the geometric mean over both orders. Memory bandwidth is measured in the
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


def _phase(prof, n, rounds, hand_first, with_genai, a_bw_every):
    """One phase: both loops made (in the given order), warmed up, then interleaved rounds."""
    import gc

    from greenbench.backends import get_backend
    from greenbench.models import memory_bandwidth_bytes_per_s

    def make_ours():
        return get_backend("cpu").prepare(prof, progress=lambda m: print("  " + m, file=sys.stderr))

    if hand_first:  # the loop made second tends to run faster (where its memory lands): measure both orders
        probe = make_ours()
        info = probe.describe()
        prompt = probe.prompt_ids
        probe.close()
        del probe
        gc.collect()
        hand = hand_loop(info["onnx_path"], info["intra_op_threads"], prompt, n, info["kv_cache"] == "shared-buffer")
        sess = make_ours()
    else:
        sess = make_ours()
        info = sess.describe()
        hand = hand_loop(info["onnx_path"], info["intra_op_threads"], sess.prompt_ids, n, info["kv_cache"] == "shared-buffer")
    genai = genai_loop(info["model_dir"], sess.prompt_ids, n) if with_genai else None

    def ours(k):
        sess.reset()
        first = sess.prefill()
        t0 = time.perf_counter()
        toks = sess.decode(first, k)
        return toks, time.perf_counter() - t0

    ours(4), hand(4)  # warm up both
    if genai:
        genai(4)
    rates = {"g": [], "h": [], "x": []}
    toks = {}
    bws = []
    for r in range(rounds):
        order = [("g", ours), ("h", hand)] if r % 2 == 0 else [("h", hand), ("g", ours)]
        if genai:
            order.append(("x", genai))
        for tag, fn in order:
            t, dt = fn(n)
            rates[tag].append(n / dt)
            toks[tag] = t
        if a_bw_every and r % a_bw_every == a_bw_every - 1:
            bws.append(memory_bandwidth_bytes_per_s(threads=info["intra_op_threads"], min_time_s=0.2))
    cost = sess.cost()
    sess.close()
    return info, cost, rates, toks, bws


def bench(profile_name, rounds, n_tokens, threads, dtype, graph, a_bw_every=0):
    from greenbench import profile as P
    from greenbench.models import memory_bandwidth_bytes_per_s, roofline

    prof = P.load(profile_name)
    if n_tokens:
        prof = prof.with_overrides(max_new_tokens=n_tokens)
    model = dataclasses.replace(prof.model, **{k: v for k, v in (("dtype", dtype), ("graph", graph)) if v})
    prof = dataclasses.replace(prof, model=model)
    if threads:
        prof = prof.with_overrides(threads=threads)
    n = prof.generation.max_new_tokens
    phases = {}
    for hand_first in (False, True):
        phases[hand_first] = _phase(prof, n, rounds, hand_first, not hand_first, a_bw_every)
    info, cost = phases[False][0], phases[False][1]
    bws = phases[False][4] + phases[True][4]
    bws.append(memory_bandwidth_bytes_per_s(threads=info["intra_op_threads"], min_time_s=0.3))
    label = f"{profile_name} ({info['graph']}, {info['dtype']}, {info['kv_cache']} KV, {info['intra_op_threads']} threads)"
    print(f"\n{label}: {n} decode tokens x {rounds} interleaved rounds, in each creation order")
    ratios = []
    for hand_first, (_, _, rates, toks, _) in phases.items():
        g, h = statistics.median(rates["g"]), statistics.median(rates["h"])
        ratios.append(g / h)
        made = "hand loop made first" if hand_first else "greenbench made first"
        print(f"  [{made}]")
        print(f"    greenbench      {g:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in rates['g'])})")
        print(f"    hand IOBinding  {h:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in rates['h'])})")
        paired = statistics.median(a / b for a, b in zip(rates["g"], rates["h"]))
        print(f"    ratio greenbench / hand loop = {g / h:.3f} (medians), {paired:.3f} (median of per-round ratios)"
              f"   tokens identical: {toks.get('g') == toks.get('h')}")
        if rates["x"]:
            x = statistics.median(rates["x"])
            print(f"    onnxruntime-genai {x:8.1f} tok/s   ratio greenbench / genai = {g / x:.3f}")
    both = (ratios[0] * ratios[1]) ** 0.5
    print(f"  ratio greenbench / hand loop over both creation orders (geometric mean): {both:.3f}")
    g_all = statistics.median(phases[False][2]["g"] + phases[True][2]["g"])
    bw = max(bws)
    frac = roofline(cost, g_all, bw)
    print(
        f"  bytes/token {cost['bytes_per_token'] / 1e6:.2f} MB, bandwidth {bw / 1e9:.1f} GB/s (best of {len(bws)}), "
        f"ceiling {bw / cost['bytes_per_token']:.1f} tok/s, roofline_fraction {frac:.3f}"
    )
    return both, frac


def start_busy(k: int) -> list:
    """K processes that each spin one core until killed."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def hf_llama_from(m, transformers, torch, device):
    """A ``transformers.LlamaForCausalLM`` holding exactly the weights of a greenbench ``StaticLlama`` ``m``
    (its fused q|k|v and gate|up matrices split back), in the same dtype, on ``device``."""
    from greenbench.models.hf_export import hf_config

    c = m.cfg
    conf = transformers.LlamaConfig(**{k: v for k, v in hf_config(c).items() if k != "torch_dtype"})
    with torch.device(device):
        model = transformers.LlamaForCausalLM(conf)
    model = model.to(m.dtype).eval()
    state = {"model.embed_tokens.weight": m.embed, "model.norm.weight": m.norm, "lm_head.weight": m.lm_head}
    for i in range(c.layers):
        p = f"model.layers.{i}."
        q, k, v = m.wqkv[i].split([c.heads * c.head_dim, c.kv_heads * c.head_dim, c.kv_heads * c.head_dim])
        gate, up = m.wgu[i].chunk(2)
        state.update({p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
                      p + "self_attn.v_proj.weight": v, p + "self_attn.o_proj.weight": m.wo[i],
                      p + "mlp.gate_proj.weight": gate, p + "mlp.up_proj.weight": up,
                      p + "mlp.down_proj.weight": m.wdown[i], p + "input_layernorm.weight": m.ln1[i],
                      p + "post_attention_layernorm.weight": m.ln2[i]})
    with torch.inference_mode():
        missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return model


def bench_torch(profile_name, device, rounds, n_tokens, dtype, batches, compile_mode=None, hf=True, eager=False,
                threads=0):
    """greenbench's torch session vs Hugging Face generate on one model (see the module docstring).

    Returns a list of dicts (one per batch size) with every figure printed.
    """
    import torch

    from greenbench import profile as P
    from greenbench.backends.torch_backend import TorchBackend
    from greenbench.backends.torch_device import copy_bandwidth, l2_cache_bytes
    from greenbench.models.cost import roofline

    prof = P.load(profile_name).with_overrides(backend="torch", device=device)
    if n_tokens:
        prof = prof.with_overrides(max_new_tokens=n_tokens)
    if threads:
        prof = prof.with_overrides(threads=threads)
        torch.set_num_threads(threads)  # Hugging Face's side too
    if dtype:
        prof = dataclasses.replace(prof, model=dataclasses.replace(prof.model, dtype=dtype))
    n = prof.generation.max_new_tokens
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    say = lambda m: print("  " + m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    # One backend (one copy of the weights on the device); the variants differ in how the decode step runs.
    backend = TorchBackend(device)
    variants = {"greenbench": dict(graphs=True, compile=None)}
    if eager and device == "cuda":
        variants["greenbench eager"] = dict(graphs=False, compile=None)
    if compile_mode:
        variants[f"greenbench compile={compile_mode}"] = dict(graphs=True, compile=compile_mode)
    first = backend.prepare(prof, progress=say)  # generates the weights once
    say(f"weights ready ({time.perf_counter() - t0:.1f} s)")
    hf_model = None
    if hf:
        try:
            import transformers
        except ImportError:
            say("transformers is not installed: Hugging Face generate skipped")
        else:
            try:
                hf_model = hf_llama_from(first.model, transformers, torch, device)
                say(f"transformers {transformers.__version__} LlamaForCausalLM holds the same weights "
                    f"({time.perf_counter() - t0:.1f} s)")
            except Exception as exc:  # a transformers version we do not know: keep greenbench's figures
                say(f"Hugging Face model not built, generate skipped: {type(exc).__name__}: {exc}")
    first.close()
    bw = copy_bandwidth(torch, device) if device == "cuda" else None
    out = []
    for B in batches:
        p = dataclasses.replace(prof, generation=dataclasses.replace(prof.generation, batch_size=B))
        sessions = {}
        for name, how in variants.items():
            t1 = time.perf_counter()
            backend.graphs, backend.compile = how["graphs"], how["compile"]
            sessions[name] = backend.prepare(p, progress=say)
            say(f"{name}: prepared batch {B} in {time.perf_counter() - t1:.1f} s ({sessions[name].describe()['decode']})")
        prompt = next(iter(sessions.values())).prompt_ids
        cost = next(iter(sessions.values())).cost()

        def ours(s):
            s.reset()
            first = s.prefill()
            t = time.perf_counter()
            toks = s.decode(first, n - 1)
            return [first] + toks, time.perf_counter() - t

        ids = torch.tensor([prompt] * B, device=device)

        def generate(k):
            sync()
            t = time.perf_counter()
            with torch.inference_mode():
                g = hf_model.generate(ids, max_new_tokens=k, min_new_tokens=k, do_sample=False, pad_token_id=0,
                                      eos_token_id=None)
            sync()
            return g[0, len(prompt):].tolist(), time.perf_counter() - t

        for s in sessions.values():  # warm up (and, with --compile, compile)
            ours(s)
        if hf_model is not None:
            try:
                generate(2)
            except Exception as exc:  # keep greenbench's figures
                say(f"Hugging Face generate failed, skipped: {type(exc).__name__}: {str(exc)[:300]}")
                hf_model = None
        rates = {name: [] for name in sessions}
        hf_rates = []
        toks = {}
        for r in range(rounds):
            for name, s in (list(sessions.items()) if r % 2 == 0 else list(sessions.items())[::-1]):
                tk, dt = ours(s)
                rates[name].append((n - 1) * B / dt)
                toks[name] = tk
            if hf_model is not None:
                tk, t_all = generate(n)
                _, t_first = generate(1)
                hf_rates.append((n - 1) * B / max(t_all - t_first, 1e-9))
                toks["hf"] = tk
        row = {"profile": profile_name, "device": device, "dtype": prof.model.dtype, "batch_size": B,
               "decode_tokens": n - 1, "rounds": rounds, "bytes_per_token": cost["bytes_per_token"]}
        label = f"{profile_name} {prof.model.dtype} batch {B} on {device}"
        print(f"\n{label}: {n - 1} decode tokens x {rounds} interleaved rounds")
        for name in sessions:
            g = statistics.median(rates[name])
            row[f"{name} tokens_per_s"] = g
            line = f"  {name:28s} {g:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in rates[name])})"
            if bw and cost["bytes_per_token"] > l2_cache_bytes(torch):
                frac = roofline(cost, g, bw["bytes_per_s"])
                row[f"{name} roofline_fraction"] = frac
                line += f"   roofline {frac:.3f}"
            print(line)
        if hf_rates:
            h = statistics.median(hf_rates)
            g = row["greenbench tokens_per_s"]
            row.update({"hf_generate tokens_per_s": h, "ratio greenbench / hf_generate": g / h,
                        "tokens identical to hf": toks["hf"] == toks["greenbench"]})
            print(f"  {'HF generate (eager)':28s} {h:10.1f} tok/s   (samples {', '.join(f'{x:.1f}' for x in hf_rates)})")
            print(f"  ratio greenbench / HF generate = {g / h:.2f}   greedy tokens identical: {toks['hf'] == toks['greenbench']}")
        if bw:
            row.update(memory_bandwidth_bytes_per_s=bw["bytes_per_s"], memory_bandwidth_method=bw["method"])
            print(f"  bytes/token {cost['bytes_per_token'] / 1e6:.2f} MB, copy bandwidth {bw['bytes_per_s'] / 1e12:.3f} TB/s, "
                  f"ceiling {bw['bytes_per_s'] / cost['bytes_per_token']:.1f} tok/s")
        for s in sessions.values():
            s.close()
        out.append(row)
        if device == "cuda":
            torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["llama-tiny", "llama-125m"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=0, help="decode tokens per round (default: profile's max_new_tokens)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "int4", "bf16"], default=None)
    ap.add_argument("--graph", choices=["contrib", "standard"], default=None)
    ap.add_argument("--bw-every", type=int, default=0, help="also measure bandwidth every N rounds (default: once, after)")
    ap.add_argument("--keep-cache", action="store_true", help="use the user cache dir instead of a temp dir")
    ap.add_argument("--busy", type=int, default=0, help="processes spinning one core each beside both loops")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None,
                    help="measure the torch backend on this device against Hugging Face generate")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="torch mode: batch sizes")
    ap.add_argument("--compile", choices=["default", "max-autotune"], default=None,
                    help="torch mode: also measure the decode step torch.compile'd before capture")
    ap.add_argument("--eager", action="store_true", help="torch mode on cuda: also measure without the CUDA graph")
    ap.add_argument("--no-hf", action="store_true", help="torch mode: skip Hugging Face generate")
    ap.add_argument("--json", default=None, help="torch mode: write the figures to this JSON file")
    a = ap.parse_args()
    if not a.keep_cache and "GREENBENCH_CACHE_DIR" not in os.environ:
        os.environ["GREENBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="gb-bench-")
    if a.device:
        profiles = a.profiles if a.profiles != ap.get_default("profiles") else (
            ["llama-1b"] if a.device == "cuda" else ["llama-tiny"])
        rows = []
        for p in profiles:
            rows += bench_torch(p, a.device, a.rounds, a.tokens, a.dtype if a.dtype != "int4" else None, a.batch,
                                a.compile, hf=not a.no_hf, eager=a.eager, threads=a.threads)
        if a.json:
            import json

            Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
        return
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
