"""A numpy reference implementation of the generated decoder (float64), to check the ONNX graphs.

It computes the same function as the graphs built by :mod:`greenbench.models.builder` from the same
seeded weights (after fp16 rounding / int4 dequantization): Llama with RMSNorm, rotary position
embeddings in the non-interleaved ("rotate half") layout, grouped-query attention with a causal mask,
and a SwiGLU MLP. Slow and simple on purpose.
"""

from __future__ import annotations

import numpy as np

from greenbench.models.config import LlamaConfig
from greenbench.models.weights import effective_weights


def rope_tables(cfg: LlamaConfig, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin ``[len(positions), head_dim/2]`` for rotary angle ``pos * theta^(-2i/hd)``."""
    inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2, dtype=np.float64) / cfg.head_dim))
    ang = np.outer(positions.astype(np.float64), inv_freq)
    return np.cos(ang), np.sin(ang)


def _rms(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    # x [B, h, S, hd]; cos/sin [S, hd/2]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


class ReferenceLlama:
    """The decoder in numpy; keeps its own KV cache between :meth:`forward` calls."""

    def __init__(self, cfg: LlamaConfig, weights: dict[str, np.ndarray] | None = None):
        self.cfg = cfg
        self.w = effective_weights(cfg) if weights is None else weights
        self.reset()

    def reset(self) -> None:
        self.past: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.length = 0

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """Run ``ids`` ``[B, S]`` after the cached positions; return logits ``[B, S, V]`` (float64)."""
        c, w = self.cfg, self.w
        ids = np.asarray(ids)
        B, S = ids.shape
        P = self.length
        x = w["model.embed_tokens.weight"][ids]
        cos, sin = rope_tables(c, np.arange(P, P + S))
        g = c.heads // c.kv_heads
        causal = np.arange(P + S)[None, :] <= np.arange(P, P + S)[:, None]  # [S, T]
        presents = []
        for i in range(c.layers):
            p = f"model.layers.{i}."
            h = _rms(x, w[p + "input_layernorm.weight"], c.rms_eps)
            q = (h @ w[p + "self_attn.q_proj.weight"]).reshape(B, S, c.heads, c.head_dim).transpose(0, 2, 1, 3)
            k = (h @ w[p + "self_attn.k_proj.weight"]).reshape(B, S, c.kv_heads, c.head_dim).transpose(0, 2, 1, 3)
            v = (h @ w[p + "self_attn.v_proj.weight"]).reshape(B, S, c.kv_heads, c.head_dim).transpose(0, 2, 1, 3)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            if self.past is not None:
                k = np.concatenate([self.past[i][0], k], axis=2)
                v = np.concatenate([self.past[i][1], v], axis=2)
            presents.append((k, v))
            kr, vr = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
            scores = q @ kr.transpose(0, 1, 3, 2) / np.sqrt(c.head_dim)
            scores = np.where(causal, scores, -np.inf)
            scores -= scores.max(axis=-1, keepdims=True)
            prob = np.exp(scores)
            prob /= prob.sum(axis=-1, keepdims=True)
            o = (prob @ vr).transpose(0, 2, 1, 3).reshape(B, S, c.q_dim)
            x = x + o @ w[p + "self_attn.o_proj.weight"]
            h = _rms(x, w[p + "post_attention_layernorm.weight"], c.rms_eps)
            gate = h @ w[p + "mlp.gate_proj.weight"]
            up = h @ w[p + "mlp.up_proj.weight"]
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"]
        self.past = presents
        self.length = P + S
        x = _rms(x, w["model.norm.weight"], c.rms_eps)
        return x @ w["lm_head.weight"]

    def greedy(self, prompt: list[int], n_new: int, batch_size: int = 1) -> list[int]:
        """Greedy tokens: the prompt's next token, then ``n_new - 1`` more (``n_new`` in all)."""
        self.reset()
        logits = self.forward(np.array([prompt] * batch_size))
        tok = int(np.argmax(logits[0, -1]))
        out = [tok]
        for _ in range(n_new - 1):
            logits = self.forward(np.full((batch_size, 1), tok))
            tok = int(np.argmax(logits[0, -1]))
            out.append(tok)
        return out
