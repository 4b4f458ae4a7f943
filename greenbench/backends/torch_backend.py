"""The ``torch`` backend: greenbench's models in PyTorch, on the CPU or a CUDA GPU.

``prepare`` builds :class:`~greenbench.models.torch_llama.StaticLlama` from a generated model's weights (the
ONNX model's exactly, so greedy tokens equal the ``cpu`` backend's) or from a Hugging Face Llama directory
(``config.json`` + ``*.safetensors``, read locally, never downloaded), allocates a static KV cache and every
buffer once, and returns a :class:`TorchSession`. Other Hugging Face architectures run through
``transformers`` when it is installed (:class:`HFSession`: eager, its own dynamic cache).

Terms:
    device: ``cpu`` or ``cuda`` (:mod:`greenbench.backends.torch_device`), from ``--device`` / ``[run] device``,
        default ``cuda`` when PyTorch sees a GPU. It is part of ``workload.digest`` (``describe()["device"]``).
    dtype: ``[model] dtype``: ``fp32``, ``fp16`` or ``bf16`` (``int4`` is onnxruntime's ``MatMulNBits``).
    decode step: one token for every batch row: embed the previous token, run the layers at position ``p``,
        argmax, write the token to the output buffer, advance ``p``. Every input and output of a step lives
        in a device buffer, so on CUDA one step is captured in a CUDA graph (``torch.cuda.CUDAGraph``) and
        decoding ``n`` tokens is ``n`` graph replays with no host synchronisation until the tokens are read
        back: Python's per-kernel overhead does not dominate a GPU step.
    rewind: return to the state right after prefill (the prompt's keys and values stay; decode writes only
        positions after it), so the runner can repeat a decode back to back inside one energy window.

Batch: every row holds the same prompt; the returned tokens are row 0's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from greenbench.backends.torch_device import copy_bandwidth, device_scope, import_torch, resolve_device
from greenbench.errors import BackendError

#: ``compile`` choices: torch.compile the decode step before capturing it (inductor's own CUDA graphs stay
#: off: greenbench captures the step itself).
COMPILE_MODES = {"default": "default", "max-autotune": "max-autotune-no-cudagraphs"}


class TorchBackend:
    """The ``torch`` backend.

    Args:
        device: ``cpu``/``cuda``; None: the profile's ``[run] device``, else cuda when available.
        graphs: capture the decode step in a CUDA graph on ``cuda`` (False: eager, for comparison).
        compile: None, or a :data:`COMPILE_MODES` key: ``torch.compile`` the decode step first (the profile's
            ``[run] compile`` wins). Compiling takes seconds to minutes, before the warmup.
    """

    name = "torch"

    def __init__(self, device: str | None = None, *, graphs: bool = True, compile: str | None = None):
        if compile is not None and compile not in COMPILE_MODES:
            raise BackendError(f"unknown compile mode {compile!r}", f"valid: {', '.join(COMPILE_MODES)}")
        self.requested = device
        self.device: str | None = None
        self.graphs = graphs
        self.compile = compile
        self._models: dict = {}  # weights reused by a batch sweep's prepares (same model, same device)

    def bind(self, profile) -> "TorchBackend":
        """Resolve the device for ``profile`` (``--device``/``[run] device`` over the constructor's, else auto)."""
        torch = import_torch()
        self.device = resolve_device(getattr(profile.run, "device", None) or self.requested, torch.cuda.is_available)
        self.compile = getattr(profile.run, "compile", None) or self.compile
        return self

    def devices(self):
        """The devices the work uses: the CPU, and on cuda the GPU by its NVML UUID (the device :meth:`bind`
        resolved, else the constructor's or the default)."""
        torch = import_torch()
        if self.device is None:
            self.device = resolve_device(self.requested, torch.cuda.is_available)
        return device_scope(torch, self.device)

    def prepare(self, profile, progress: Optional[Callable[[str], None]] = None):
        """Load the model's weights on the device and allocate the KV cache and every buffer.

        Raises:
            BackendError: int4, a directory the backend cannot read, a prompt that does not fit, or the device
                running out of memory (names the batch size).
        """
        torch = import_torch()
        device = self.bind(profile).device
        from greenbench.backends.ort import physical_cores
        from greenbench.models.config import LlamaConfig
        from greenbench.models.torch_llama import StaticLlama, generated_tensors
        from greenbench.workloads.inference import resolve_prompt

        threads = profile.run.threads or physical_cores()
        torch.set_num_threads(int(threads))
        spec = profile.model
        B, n_new = profile.generation.batch_size, profile.generation.max_new_tokens
        if spec.dtype == "int4":
            raise BackendError(
                "[model] dtype int4 is onnxruntime's MatMulNBits format; the torch backend runs fp32, fp16 and bf16",
                "use --backend cpu for int4, or set [model] dtype to fp32, fp16 or bf16",
            )
        info: dict = {"framework": f"torch {torch.__version__}", "device": device, "dtype": spec.dtype,
                      "batch_size": B, "threads": int(threads), "eos_ignored": True}
        if device == "cuda":
            info["device_name"] = torch.cuda.get_device_name()
        if spec.kind:
            cfg = LlamaConfig.from_spec(spec)
            key = ("generated", cfg.digest, device)
            if key not in self._models:
                if progress:
                    progress(f"generating the weights of {cfg.layers}x{cfg.hidden} on {device} ({spec.dtype})")
                self._models = {key: _oom_guard(torch, lambda: StaticLlama(
                    cfg, generated_tensors(cfg), dtype=spec.dtype, device=device, torch=torch), "the weights")}
            model = self._models[key]
            info.update(source="generated", config=cfg.to_dict())
            encode = None
        else:
            model, cfg, encode = self._load_dir(torch, spec, device, info, progress)
            if isinstance(cfg, dict):  # not a plain Llama: transformers drives it
                vocab = int(cfg.get("vocab_size") or model.config.vocab_size)
                prompt = resolve_prompt(profile.prompt, vocab=vocab, encode=encode)
                context = len(prompt) + (n_new + 1) // 2
                return _oom_guard(torch, lambda: HFSession(
                    model, torch, prompt, batch_size=B, max_new_tokens=n_new, info=info,
                    cost=_hf_cost(model, cfg, spec.dtype, context, B),
                    max_len=int(cfg.get("max_position_embeddings") or 0) or None), f"batch {B}")
        prompt = resolve_prompt(profile.prompt, vocab=cfg.vocab, encode=encode)
        context = len(prompt) + (n_new + 1) // 2
        info["kv_cache"] = "static"
        info["weight_bytes"] = model.weight_bytes
        step = model.forward
        if self.compile:
            step = torch.compile(model.forward, mode=COMPILE_MODES[self.compile], dynamic=False)
            info["compile"] = COMPILE_MODES[self.compile]
        graphs = self.graphs and device == "cuda"
        info["decode"] = "cuda-graph" if graphs else "eager"
        return _oom_guard(torch, lambda: TorchSession(
            model, prompt, batch_size=B, max_new_tokens=n_new, info=info, cost=_cost(cfg, spec.dtype, context, B),
            graphs=graphs, step=step), f"batch {B}")

    def _load_dir(self, torch, spec, device, info, progress):
        """A Hugging Face directory: ``(StaticLlama, LlamaConfig, encode)`` for a plain Llama, else
        ``(transformers model, config.json dict, encode)``."""
        from greenbench.fsutil import cache_dir
        from greenbench.models.torch_llama import StaticLlama, config_from_hf, hf_llama_tensors
        from greenbench.workloads.identity import weights_digest

        d = Path(spec.path).expanduser()
        hf = _hf_config(d)
        encode = _tokenizer(d)
        if progress:
            progress(f"hashing the weights in {d} (cached after the first time)")
        info.update(source="huggingface", model_dir=str(d), weights_digest=weights_digest(d, cache_dir()))
        try:
            cfg = config_from_hf(hf, spec.dtype)
        except (ValueError, KeyError, TypeError) as exc:
            info["static_llama"] = f"not used: {exc}"
            return _hf_model(torch, d, hf, spec.dtype, device, info, progress), hf, encode
        try:
            import safetensors  # noqa: F401
        except ImportError:
            raise BackendError(f"reading {d}'s safetensors needs the safetensors package",
                               "pip install 'greenbench[hf]'") from None
        key = ("hf", info["weights_digest"], spec.dtype, device)
        if key not in self._models:
            if progress:
                progress(f"loading {d} on {device} ({spec.dtype})")
            try:
                self._models = {key: _oom_guard(torch, lambda: StaticLlama(
                    cfg, hf_llama_tensors(d), dtype=spec.dtype, device=device, torch=torch,
                    tie_word_embeddings=bool(hf.get("tie_word_embeddings"))), "the weights")}
            except (KeyError, ValueError) as exc:
                raise BackendError(f"{d} is not a complete Llama checkpoint: {exc}",
                                   "check that every *.safetensors file of the model is in the directory") from None
        model = self._models[key]
        if model.unused:
            raise BackendError(f"{d} has tensors a Llama does not use: {', '.join(model.unused[:4])}",
                               "this architecture is not a plain Llama; export it to ONNX and use --backend cpu")
        info["config"] = cfg.to_dict()
        return model, cfg, encode


def _cost(cfg, dtype: str, context: int, batch: int) -> dict:
    """The decode cost model of :func:`greenbench.models.cost.decode_cost` (bf16 counts as fp16: 2 bytes each)."""
    import dataclasses

    from greenbench.models.cost import decode_cost

    return decode_cost(dataclasses.replace(cfg, dtype="fp16" if dtype == "bf16" else dtype), context, batch)


def _oom_guard(torch, make, what: str):
    try:
        return make()
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise BackendError(f"the GPU ran out of memory allocating {what}",
                           "use a smaller batch, a shorter max_new_tokens, or dtype bf16/fp16") from None


def _hf_config(d: Path) -> dict:
    if not d.is_dir():
        raise BackendError(f"[model] path {str(d)!r} is not a directory",
                           "point [model] path at a Hugging Face model directory (config.json + *.safetensors)")
    if not any(d.glob("*.safetensors")):
        onnx = (d / "model.onnx").is_file() or (d / "genai_config.json").is_file()
        raise BackendError(
            f"{d} holds no *.safetensors weights" + (" (it is an ONNX export)" if onnx else ""),
            "run ONNX exports with --backend cpu or cuda; the torch backend reads Hugging Face directories "
            "(config.json + *.safetensors) and generated models",
        )
    try:
        hf = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackendError(f"{d} has no config.json", "a Hugging Face model directory has config.json") from None
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {d / 'config.json'}: {exc}") from None
    if not isinstance(hf, dict):
        raise BackendError(f"{d / 'config.json'} is not a JSON object")
    return hf


def _tokenizer(d: Path):
    p = d / "tokenizer.json"
    if not p.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a plain Exception on bad files
        raise BackendError(f"cannot load {p}: {exc}", "use a tokenizer.json written by Hugging Face tokenizers") from None
    return lambda text: tok.encode(text).ids


class TorchSession:
    """A prepared :class:`~greenbench.models.torch_llama.StaticLlama`: KV cache, token buffers and (on CUDA)
    the captured decode step. Implements the ``InferenceSession`` protocol of :mod:`greenbench.backends`.

    Args:
        model: the weights on their device.
        prompt_ids: one row, repeated ``batch_size`` times.
        max_new_tokens: the most tokens :meth:`decode` generates after :meth:`prefill` (sets the cache capacity).
        info, cost: returned by :meth:`describe` and :meth:`cost`.
        graphs: capture the decode step in a CUDA graph (the model must be on a CUDA device).
        step: the forward function the decode step calls (``model.forward`` or a ``torch.compile`` of it).
    """

    def __init__(self, model, prompt_ids, *, batch_size: int = 1, max_new_tokens: int = 32, info=None, cost=None,
                 graphs: bool = False, step=None):
        torch = model.torch
        self.torch, self.model = torch, model
        self.prompt_ids = [int(t) for t in prompt_ids]
        self.batch_size, self.max_new_tokens = int(batch_size), int(max_new_tokens)
        self._info, self._cost = dict(info or {}), dict(cost or {})
        cfg = model.cfg
        S = len(self.prompt_ids)
        if S < 1:
            raise BackendError("the prompt is empty", "give [prompt] token_ids, length or text")
        if S + self.max_new_tokens > cfg.max_seq_len:
            raise BackendError(
                f"prompt ({S} tokens) + max_new_tokens ({self.max_new_tokens}) exceeds the model's context length "
                f"({cfg.max_seq_len})", "use a shorter prompt or lower --max-new-tokens")
        if any(t < 0 or t >= cfg.vocab for t in self.prompt_ids):
            raise BackendError(f"prompt token ids must be in [0, {cfg.vocab}) for this model")
        self._S, self._len = S, 0
        self._cap = cap = S + self.max_new_tokens + 1
        dev, B = model.device, self.batch_size
        self._forward = step or model.forward
        with torch.inference_mode():
            self._ids_prompt = torch.tensor([self.prompt_ids] * B, dtype=torch.long, device=dev)
            self._pos_prompt = torch.arange(S, dtype=torch.long, device=dev)
            self._ids = torch.zeros((B, 1), dtype=torch.long, device=dev)
            self._pos = torch.zeros((1,), dtype=torch.long, device=dev)
            self._arange = torch.arange(cap, dtype=torch.long, device=dev).view(1, 1, 1, cap)
            self._tokens = torch.zeros((B, cap), dtype=torch.long, device=dev)
            self._k, self._v = model.alloc_cache(B, cap)
        self._logits = None
        self._graph = None
        if dev.type == "cuda":  # the runner's roofline takes this GPU's ceilings, not the CPU's
            self.ceilings = lambda: gpu_ceilings(torch, str(dev), self._info.get("dtype"))
        if graphs:
            with torch.inference_mode():  # the buffers are inference tensors: update them only in inference mode
                self._graph = capture(torch, self._step, dev, self._reset_step_state)

    # -- the decode step: reads and writes device buffers only (so it can be captured and replayed) -----
    def _step(self) -> None:
        mask = self.model.decode_mask(self._arange, self._pos)
        logits = self._forward(self._ids, self._pos, self._k, self._v, prefill=False, mask=mask)
        nxt = logits.argmax(dim=-1)
        self._tokens.index_copy_(1, self._pos, nxt.view(-1, 1))
        self._ids.copy_(nxt.view(-1, 1))
        self._pos.add_(1)
        self._logits = logits

    def _reset_step_state(self) -> None:
        """Before capture warm-up: positions inside the capacity, after the prompt (where decode writes)."""
        self._pos.fill_(self._S)
        self._ids.zero_()

    # -- protocol --------------------------------------------------------------------------------
    def reset(self) -> None:
        self._len = 0

    def prefill(self) -> int:
        """Run the prompt; return the first greedy token (row 0)."""
        torch = self.torch
        with torch.inference_mode():
            logits = self.model.forward(self._ids_prompt, self._pos_prompt, self._k, self._v, prefill=True)
            first = logits.argmax(dim=-1)
            self._tokens[:, self._S - 1].copy_(first)
            self._prefill_logits = logits
            tok = int(first[0].item())
        self._len = self._S
        self._logits = None
        return tok

    def rewind(self) -> None:
        """Return to the state right after :meth:`prefill` (see the module docstring)."""
        if self._len == 0:
            raise RuntimeError("rewind() before prefill()")
        self._len = self._S

    def decode(self, first_token: int, n: int) -> list[int]:
        """Feed ``first_token`` and generate ``n`` greedy tokens (EOS ignored); return row 0's tokens."""
        if self._len == 0:
            raise RuntimeError("decode() before prefill()")
        if self._len + n >= self._cap:
            raise ValueError(f"decode of {n} tokens exceeds the prepared capacity ({self._cap - self._len - 1} left)")
        torch = self.torch
        start = self._len
        with torch.inference_mode():
            self._ids.fill_(int(first_token))
            self._pos.fill_(start)
            run = self._graph.replay if self._graph is not None else self._step
            for _ in range(n):
                run()
            out = self._tokens[0, start:start + n].tolist()  # waits for the GPU
        self._len = start + n
        return out

    def last_logits(self):
        """Row 0's logits (float64 numpy) of the last :meth:`prefill` (last position) or :meth:`decode` step."""
        src = self._logits if self._len > self._S and self._logits is not None else self._prefill_logits
        return src[0].double().cpu().numpy()

    def cost(self) -> dict:
        return dict(self._cost)

    def describe(self) -> dict:
        return dict(self._info)

    def close(self) -> None:
        self._graph = None
        self._k = self._v = self._tokens = self._logits = None


def capture(torch, step: Callable[[], None], device, reset: Callable[[], None], warmup: int = 3):
    """Capture ``step`` (which must touch device buffers only) in a CUDA graph; returns the graph. Call it in
    ``torch.inference_mode()`` when the buffers are inference tensors.

    ``warmup`` eager calls on a side stream first, as PyTorch's CUDA graph notes require (they let cuBLAS and
    the allocator set up outside the capture); ``reset`` runs before them, so they write only where decoding
    writes anyway.
    """
    reset()
    s = torch.cuda.Stream(device=device)
    s.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(s):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream(device).wait_stream(s)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    torch.cuda.synchronize(device)
    return graph


def gpu_ceilings(torch, device: str, dtype: str | None, probe=copy_bandwidth) -> dict:
    """The roofline's ceilings on a GPU (the runner's ``session.ceilings()``): memory bandwidth from a
    device-to-device copy measured now (:func:`greenbench.backends.torch_device.copy_bandwidth`), compute from
    the datasheet's dense rate for the dtype (:func:`greenbench.workloads.peak.gpu_peak`; None, with a note,
    where the table has no rate, e.g. fp16)."""
    from greenbench.workloads.peak import gpu_peak

    bw = probe(torch, device)
    pk = gpu_peak(torch.cuda.get_device_name(), dtype or "fp32")
    flops = pk.get("flops_per_s")
    return {"memory_bytes_per_s": bw["bytes_per_s"], "peak_macs_per_s": flops / 2 if flops else None,
            "memory": bw, "compute": pk}


# ---------------------------------------------------------------------------------------------------------
# Hugging Face architectures other than a plain Llama: transformers, eager.

def _hf_model(torch, d: Path, hf: dict, dtype: str, device: str, info: dict, progress):
    """A transformers model for a directory that is not a plain Llama (eager, transformers' own cache)."""
    try:
        import transformers
    except ImportError:
        raise BackendError(
            f"{d} is a {hf.get('model_type', 'Hugging Face')} model, which greenbench runs through transformers, "
            "and transformers is not installed", "pip install 'greenbench[hf]'") from None
    from greenbench.models.torch_llama import TORCH_DTYPES

    if progress:
        progress(f"loading {d} with transformers {transformers.__version__} on {device} ({dtype})")
    v = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
    kw = {"dtype" if v >= (4, 56) else "torch_dtype": getattr(torch, TORCH_DTYPES[dtype])}  # renamed in 4.56
    try:
        model = _oom_guard(torch, lambda: transformers.AutoModelForCausalLM.from_pretrained(
            str(d), local_files_only=True, **kw).to(device).eval(), "the weights")
    except BackendError:
        raise
    except Exception as exc:  # transformers raises many types (OSError, ValueError, KeyError) for bad dirs
        raise BackendError(f"transformers cannot load {d}: {str(exc).splitlines()[0][:300]}",
                           "check that the directory is a complete Hugging Face model") from None
    info.update(config={k: hf.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")},
                kv_cache="transformers dynamic cache", decode="eager (transformers)",
                transformers_version=transformers.__version__)
    return model


class HFSession:
    """A transformers causal LM driven greedily: eager, with transformers' dynamic cache (no CUDA graph).

    ``rewind`` crops the cache back to the prompt (``DynamicCache.crop``), so short decodes can be repeated
    inside one energy window like the static-cache session's.
    """

    def __init__(self, model, torch, prompt_ids, *, batch_size=1, max_new_tokens=32, info=None, cost=None,
                 max_len=None):
        self.model, self.torch = model, torch
        self.prompt_ids = [int(t) for t in prompt_ids]
        self.batch_size, self.max_new_tokens = int(batch_size), int(max_new_tokens)
        self._info, self._cost = dict(info or {}), dict(cost or {})
        S = len(self.prompt_ids)
        if S < 1:
            raise BackendError("the prompt is empty", "give [prompt] token_ids, length or text")
        if max_len and S + self.max_new_tokens > max_len:
            raise BackendError(f"prompt ({S} tokens) + max_new_tokens ({self.max_new_tokens}) exceeds the model's "
                               f"context length ({max_len})", "use a shorter prompt or lower --max-new-tokens")
        dev = next(model.parameters()).device
        if dev.type == "cuda":
            self.ceilings = lambda: gpu_ceilings(torch, str(dev), self._info.get("dtype"))
        self._ids = torch.tensor([self.prompt_ids] * self.batch_size, dtype=torch.long, device=dev)
        self._S, self._past, self._len = S, None, 0

    def reset(self) -> None:
        self._past, self._len = None, 0

    def prefill(self) -> int:
        with self.torch.inference_mode():
            out = self.model(input_ids=self._ids, use_cache=True)
            self._past = out.past_key_values
            tok = int(out.logits[0, -1].argmax().item())
        self._len = self._S
        return tok

    def rewind(self) -> None:
        if self._past is None:
            raise RuntimeError("rewind() before prefill()")
        self._past.crop(self._S)
        self._len = self._S

    def decode(self, first_token: int, n: int) -> list[int]:
        torch = self.torch
        if self._past is None:
            raise RuntimeError("decode() before prefill()")
        out: list[int] = []
        with torch.inference_mode():
            ids = torch.full((self.batch_size, 1), int(first_token), dtype=torch.long, device=self._ids.device)
            toks = []
            for _ in range(n):
                r = self.model(input_ids=ids, past_key_values=self._past, use_cache=True)
                self._past = r.past_key_values
                ids = r.logits[:, -1].argmax(dim=-1, keepdim=True)
                toks.append(ids[0, 0])
            if toks:
                out = torch.stack(toks).tolist()
        self._len += n
        return out

    def cost(self) -> dict:
        return dict(self._cost)

    def describe(self) -> dict:
        return dict(self._info)

    def close(self) -> None:
        self._past = None
        self.model = None


def _hf_cost(model, hf: dict, dtype: str, context: int, batch: int) -> dict:
    """A cost for an architecture greenbench has no formula for: weights (less the embedding table, plus one row
    of it) and no KV term; MACs are the non-embedding parameters. ``method`` says so."""
    params = sum(p.numel() for p in model.parameters())
    item = 4 if dtype == "fp32" else 2
    emb = model.get_input_embeddings().weight
    non_emb = params - emb.numel()
    weight_bytes = (non_emb + emb.shape[-1]) * item
    return {
        "params": int(params), "macs_per_token": float(non_emb), "flops_per_token": float(2 * non_emb),
        "bytes_per_token": float(weight_bytes / batch), "weight_bytes_per_step": float(weight_bytes),
        "kv_bytes_per_token": None, "context_tokens": int(context), "batch_size": int(batch),
        "method": "parameters (no KV-cache term; architecture without a greenbench cost formula)",
    }
