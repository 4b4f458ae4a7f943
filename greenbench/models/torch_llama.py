"""greenbench's Llama-style decoder in PyTorch, with a static KV cache (the ``torch`` backend's model).

It computes the function of the ONNX graphs that :mod:`greenbench.models.builder` writes, from the same
weights: RMSNorm (``x / sqrt(mean(x^2) + eps) * g``, computed in fp32 as Hugging Face does), rotary position
embeddings in the non-interleaved ("rotate half") layout with ``inv_freq = theta^(-2i/hd)``, grouped-query
attention with a causal mask and scale ``1/sqrt(hd)``, a SwiGLU MLP and an untied LM head. A Hugging Face
Llama checkpoint has the same layout and names, so :func:`hf_llama_tensors` loads one into this model too.

Terms:
    static KV cache: one ``[layers, batch, kv_heads, capacity, head_dim]`` buffer each for keys and values,
        allocated once. Prefill writes positions ``0..S-1``; a decode step at position ``p`` (a one-element
        device tensor) writes position ``p`` with ``index_copy_`` and attends over the whole capacity with the
        mask ``arange(capacity) <= p``. Shapes never change, so one decode step can be captured in a CUDA graph
        and replayed (:class:`greenbench.backends.torch_backend.TorchSession`). The price: every step reads
        the full capacity of the cache, at most twice what the context needs (the capacity is the prompt plus
        the tokens to generate, not the model's maximum length).
    fused weights: q, k and v are one ``[(nH + 2 kvH) hd, H]`` matrix and gate and up one ``[2F, H]`` matrix,
        in ``F.linear``'s ``[out, in]`` layout, so a step launches 4 GEMMs per layer instead of 7.

Weights: :func:`generated_tensors` takes them from :func:`greenbench.models.weights.make_weights`, the
generator the ONNX builder writes its initializers from, so the values are exactly the ONNX model's (fp16:
the same round-to-nearest-even cast; bf16: rounded from the same fp32 master weights).
"""

from __future__ import annotations

from typing import Iterator

from greenbench.models.config import LlamaConfig

#: Model dtypes the torch model runs, and their torch dtype names.
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def generated_tensors(cfg: LlamaConfig) -> Iterator[tuple[str, "object"]]:
    """``(name, fp32 numpy array)`` of a generated model's weights, linear layers ``[out, in]`` (HF layout).

    Yields tensor by tensor, so a caller can move each to its device and drop the host copy (a 1B model is
    4.4 GB in fp32).
    """
    from greenbench.models.weights import is_linear, make_weights

    w = make_weights(cfg)
    for name in list(w):
        arr = w.pop(name)
        yield name, (arr.T if is_linear(name) else arr)


def hf_llama_tensors(directory) -> Iterator[tuple[str, "object"]]:
    """``(name, torch tensor)`` of every tensor in a Hugging Face directory's ``*.safetensors`` files."""
    from pathlib import Path

    from safetensors import safe_open

    for f in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name)


class StaticLlama:
    """The decoder's weights on one device in one dtype, and a forward pass over a static KV cache.

    Args:
        cfg: the shape (its ``dtype`` is ignored; ``dtype`` below decides).
        tensors: ``(name, array)`` pairs with Hugging Face Llama names, linear layers ``[out, in]``;
            ``lm_head.weight`` may be missing when ``tie_word_embeddings`` is set.
        dtype: ``fp32``, ``fp16`` or ``bf16``.
        device: a torch device string (``cpu``, ``cuda``, ``cuda:1``).
        tie_word_embeddings: the LM head is the embedding table.
    """

    def __init__(self, cfg: LlamaConfig, tensors, *, dtype: str, device: str, torch, tie_word_embeddings=False):
        if dtype not in TORCH_DTYPES:
            raise ValueError(f"the torch model runs {', '.join(TORCH_DTYPES)}, not {dtype!r}")
        self.torch = torch
        self.cfg = cfg
        self.dtype = getattr(torch, TORCH_DTYPES[dtype])
        self.device = torch.device(device)
        L = cfg.layers
        got: dict[str, object] = {}
        with torch.inference_mode():
            for name, arr in tensors:
                t = arr if isinstance(arr, torch.Tensor) else torch.from_numpy(arr)
                # cast on the host from fp32 (the ONNX builder's fp16 cast is numpy's, also round-to-nearest-even)
                got[name] = t.to(dtype=self.dtype).contiguous().to(self.device)
            need = lambda n: _take(got, n)  # noqa: E731
            self.embed = need("model.embed_tokens.weight")
            self.wqkv, self.wo, self.wgu, self.wdown, self.ln1, self.ln2 = [], [], [], [], [], []
            for i in range(L):
                p = f"model.layers.{i}."
                self.wqkv.append(torch.cat([need(p + f"self_attn.{x}_proj.weight") for x in "qkv"], 0))
                self.wo.append(need(p + "self_attn.o_proj.weight"))
                self.wgu.append(torch.cat([need(p + "mlp.gate_proj.weight"), need(p + "mlp.up_proj.weight")], 0))
                self.wdown.append(need(p + "mlp.down_proj.weight"))
                self.ln1.append(need(p + "input_layernorm.weight"))
                self.ln2.append(need(p + "post_attention_layernorm.weight"))
            self.norm = need("model.norm.weight")
            head = got.pop("lm_head.weight", None)
            self.lm_head = self.embed if head is None and tie_word_embeddings else head
            if self.lm_head is None:
                raise KeyError("lm_head.weight")
            hd = cfg.head_dim
            self.inv_freq = 1.0 / (cfg.rope_theta ** (
                torch.arange(0, hd, 2, dtype=torch.float64, device=self.device) / hd)).float()
        self._check_shapes()
        self.unused = sorted(k for k in got if not k.endswith("rotary_emb.inv_freq"))
        v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
        self._sdpa_gqa = v >= (2, 5)  # scaled_dot_product_attention(enable_gqa=) is new in torch 2.5
        self._fused_rms = hasattr(torch.nn.functional, "rms_norm")  # torch >= 2.4

    def _check_shapes(self) -> None:
        c = self.cfg
        H, hd, nH, kvH, F, V = c.hidden, c.head_dim, c.heads, c.kv_heads, c.ffn, c.vocab
        want = {"embed": (V, H), "lm_head": (V, H), "norm": (H,)}
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} has shape {got}, the config says {shape}")
        for i in range(c.layers):
            for name, shape in (("wqkv", ((nH + 2 * kvH) * hd, H)), ("wo", (H, nH * hd)), ("wgu", (2 * F, H)),
                                ("wdown", (H, F)), ("ln1", (H,)), ("ln2", (H,))):
                got = tuple(getattr(self, name)[i].shape)
                if got != shape:
                    raise ValueError(f"layer {i} {name} has shape {got}, the config says {shape}")

    @property
    def weight_bytes(self) -> int:
        ts = [self.embed, self.norm, *self.wqkv, *self.wo, *self.wgu, *self.wdown, *self.ln1, *self.ln2]
        if self.lm_head is not self.embed:
            ts.append(self.lm_head)
        return sum(t.numel() * t.element_size() for t in ts)

    def alloc_cache(self, batch_size: int, capacity: int):
        """Zeroed key and value caches ``[layers, batch, kv_heads, capacity, head_dim]``."""
        c, torch = self.cfg, self.torch
        shape = (c.layers, batch_size, c.kv_heads, capacity, c.head_dim)
        with torch.inference_mode():
            return (torch.zeros(shape, dtype=self.dtype, device=self.device),
                    torch.zeros(shape, dtype=self.dtype, device=self.device))

    def _rms(self, x, g):
        if self._fused_rms:  # one kernel where PyTorch fuses it
            return self.torch.nn.functional.rms_norm(x, (x.shape[-1],), g, self.cfg.rms_eps)
        xf = x.float()
        return (xf * self.torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps)).to(x.dtype) * g

    def rope_tables(self, pos):
        """``cos`` ``[S, hd]`` (both halves) and ``sin`` ``[S, hd]`` signed ``[-sin, sin]``, in the model dtype, for
        :meth:`forward`'s ``x * cos + swap_halves(x) * sin`` (= ``[x1 cos - x2 sin, x2 cos + x1 sin]``)."""
        torch = self.torch
        ang = pos.float()[:, None] * self.inv_freq[None, :]
        c, s = ang.cos(), ang.sin()
        return torch.cat([c, c], -1).to(self.dtype), torch.cat([-s, s], -1).to(self.dtype)

    def decode_mask(self, arange, pos):
        """The additive attention mask of a decode step at ``pos``: 0 where ``arange <= pos``, else -inf (device
        ops only, so it is captured with the step)."""
        mask = self.torch.zeros(arange.shape, dtype=self.dtype, device=arange.device)
        return mask.masked_fill_(arange > pos, float("-inf"))

    def forward(self, ids, pos, k_cache, v_cache, *, prefill: bool, mask=None):
        """Logits ``[B, V]`` of the last position of ``ids`` ``[B, S]``.

        Args:
            ids: token ids ``[B, S]`` (long, on the model's device).
            pos: positions ``[S]`` (long, on the device): prefill ``0..S-1``, a decode step ``[p]``.
            k_cache, v_cache: from :meth:`alloc_cache`; prefill writes ``[:S]``, a step writes ``[p]``.
            prefill: attend causally among the new tokens only (the cache before them is empty).
            mask: decode only: :meth:`decode_mask`, ``[1, 1, 1, capacity]``.

        A decode step's attention is written out for grouped heads (query head ``h`` uses key/value head
        ``h // (nH / kvH)``, as Hugging Face's ``repeat_kv``): scores ``[B, kvH, nH/kvH, capacity]`` from two
        batched matmuls, softmax in fp32, no copy of the cache.
        """
        torch = self.torch
        F = torch.nn.functional
        c = self.cfg
        B, S = ids.shape
        nH, kvH, hd = c.heads, c.kv_heads, c.head_dim
        g = nH // kvH
        half = hd // 2
        scale = hd ** -0.5
        x = F.embedding(ids, self.embed)
        cos, sin = self.rope_tables(pos)  # [S, hd]
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        for i in range(c.layers):
            h = self._rms(x, self.ln1[i])
            qkv = F.linear(h, self.wqkv[i])
            qk = qkv[..., : (nH + kvH) * hd].view(B, S, nH + kvH, hd)
            swapped = torch.cat([qk[..., half:], qk[..., :half]], dim=-1)
            qk = torch.addcmul(qk * cos, swapped, sin)  # rotary on the query and key heads at once
            q = qk[:, :, :nH].transpose(1, 2)  # [B, nH, S, hd]
            k = qk[:, :, nH:].transpose(1, 2)  # [B, kvH, S, hd]
            v = qkv[..., (nH + kvH) * hd:].view(B, S, kvH, hd).transpose(1, 2)
            if prefill:
                k_cache[i, :, :, :S].copy_(k)
                v_cache[i, :, :, :S].copy_(v)
                if g > 1 and not self._sdpa_gqa:
                    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
                kw = {"enable_gqa": True} if g > 1 and self._sdpa_gqa else {}
                a = F.scaled_dot_product_attention(q, k, v, is_causal=S > 1, **kw).transpose(1, 2)
            else:
                k_cache[i].index_copy_(2, pos, k)
                v_cache[i].index_copy_(2, pos, v)
                qg = q.reshape(B, kvH, g * S, hd)
                scores = torch.matmul(qg, k_cache[i].transpose(-1, -2)).mul_(scale).add_(mask)
                p = torch.softmax(scores.float(), dim=-1).to(self.dtype)
                a = torch.matmul(p, v_cache[i]).view(B, nH, S, hd).transpose(1, 2)
            x = x + F.linear(a.reshape(B, S, nH * hd), self.wo[i])
            h = self._rms(x, self.ln2[i])
            gate, up = F.linear(h, self.wgu[i]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.wdown[i])
        return F.linear(self._rms(x[:, -1], self.norm), self.lm_head)


def _take(got: dict, name: str):
    try:
        return got.pop(name)
    except KeyError:
        raise KeyError(name) from None


def config_from_hf(hf: dict, dtype: str | None = None) -> LlamaConfig:
    """The :class:`LlamaConfig` of a Hugging Face Llama ``config.json``.

    Raises:
        ValueError: the config is not a plain Llama this model computes exactly (names what differs).
    """
    if hf.get("model_type") != "llama":
        raise ValueError(f"model_type is {hf.get('model_type')!r}, not 'llama'")
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})  # transformers 5 / 4 spelling
    theta = rope.pop("rope_theta", None) or hf.get("rope_theta", 10000.0)
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"rope scaling {rope!r} is not supported by greenbench's static-cache Llama")
    for key, ok in (("hidden_act", ("silu", None)), ("attention_bias", (False, None)), ("mlp_bias", (False, None))):
        if hf.get(key) not in ok:
            raise ValueError(f"{key} = {hf.get(key)!r} is not supported by greenbench's static-cache Llama")
    heads = int(hf["num_attention_heads"])
    hidden = int(hf["hidden_size"])
    return LlamaConfig(
        layers=int(hf["num_hidden_layers"]), hidden=hidden, heads=heads,
        kv_heads=int(hf.get("num_key_value_heads") or heads), head_dim=int(hf.get("head_dim") or hidden // heads),
        ffn=int(hf["intermediate_size"]), vocab=int(hf["vocab_size"]), rope_theta=float(theta),
        max_seq_len=int(hf.get("max_position_embeddings", 2048)), rms_eps=float(hf.get("rms_norm_eps", 1e-6)),
        dtype=dtype or "fp32",
    )
