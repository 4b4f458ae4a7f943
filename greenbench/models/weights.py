"""Deterministic seeded weights for a generated Llama-style decoder, and int4 block quantization.

Every tensor is drawn from its own generator seeded by ``(seed, crc32(name))``, so a tensor's values
depend only on the model seed and its name (not on the order of generation). Linear weights are
stored ``[in, out]`` (``y = x @ W``), the layout of ONNX ``MatMul``.

int4 (``MatMulNBits``): each output column is cut into blocks of ``block_size`` values along the
input dimension; a block is quantized symmetrically to 4 bits, ``q = clip(round(w / s), -8, 7) + 8``
with ``s = max|w| / 7``, and dequantizes to ``(q - 8) * s``. Two values share a byte, the first in the
low nibble. The numpy reference uses the dequantized values, so graph and reference compute the same
function.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from greenbench.models.config import LlamaConfig

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (_rng(seed, name).standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


@dataclass
class Int4Weight:
    """A ``MatMulNBits`` weight: ``packed`` uint8 ``[N, n_blocks, block/2]``, ``scales`` ``[N * n_blocks]``."""

    packed: np.ndarray
    scales: np.ndarray
    k: int
    n: int
    block_size: int

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.scales.nbytes)


def quantize_int4(w: np.ndarray, block_size: int) -> tuple[Int4Weight, np.ndarray]:
    """Quantize ``w`` ``[K, N]`` to 4-bit blocks; return the packed weight and its fp32 dequantization ``[K, N]``."""
    k, n = w.shape
    n_blocks = -(-k // block_size)
    kp = n_blocks * block_size
    wt = np.zeros((n, kp), dtype=np.float32)
    wt[:, :k] = w.T
    blocks = wt.reshape(n, n_blocks, block_size)
    absmax = np.abs(blocks).max(axis=-1, keepdims=True)
    scales = np.where(absmax > 0, absmax / 7.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(blocks / scales), -8, 7).astype(np.int16) + 8  # 0..15
    deq = ((q - 8).astype(np.float32) * scales).reshape(n, kp)[:, :k].T.copy()
    q8 = q.astype(np.uint8)
    packed = (q8[..., 0::2] | (q8[..., 1::2] << 4)).astype(np.uint8)
    return Int4Weight(packed, scales.reshape(-1).copy(), k, n, block_size), deq


def make_weights(cfg: LlamaConfig) -> dict[str, np.ndarray]:
    """The fp32 master weights of the model (names follow Hugging Face Llama, linear layers ``[in, out]``).

    Scales keep activations near unit variance so random-weight logits have clear argmax gaps:
    embeddings N(0, 1), linear N(0, 1/in), norm gains 1 + N(0, 0.1^2).
    """
    s, H = cfg.seed, cfg.hidden
    w: dict[str, np.ndarray] = {}
    w["model.embed_tokens.weight"] = _normal(s, "model.embed_tokens.weight", (cfg.vocab, H), 1.0)
    shapes = {
        "q_proj": (H, cfg.q_dim),
        "k_proj": (H, cfg.kv_dim),
        "v_proj": (H, cfg.kv_dim),
        "o_proj": (cfg.q_dim, H),
        "gate_proj": (H, cfg.ffn),
        "up_proj": (H, cfg.ffn),
        "down_proj": (cfg.ffn, H),
    }
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            name = p + norm + ".weight"
            w[name] = 1.0 + _normal(s, name, (H,), 0.1)
        for lin, shape in shapes.items():
            sub = "self_attn." if lin.endswith("_proj") and lin[0] in "qkvo" else "mlp."
            name = p + sub + lin + ".weight"
            w[name] = _normal(s, name, shape, 1.0 / np.sqrt(shape[0]))
    w["model.norm.weight"] = 1.0 + _normal(s, "model.norm.weight", (H,), 0.1)
    w["lm_head.weight"] = _normal(s, "lm_head.weight", (H, cfg.vocab), 1.0 / np.sqrt(H))
    return w


def is_linear(name: str) -> bool:
    return name == "lm_head.weight" or any(f".{lin}." in name for lin in LINEAR_NAMES)


def effective_weights(cfg: LlamaConfig, w: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The values the built graph actually computes with, as float64 (fp16 rounding, int4 dequantization).

    The contrib graph quantizes the packed QKV matrix; because blocks run along the input dimension
    per output column, that equals quantizing q, k and v separately, as done here.
    """
    w = make_weights(cfg) if w is None else w
    out: dict[str, np.ndarray] = {}
    for name, arr in w.items():
        if cfg.dtype == "fp16":
            arr = arr.astype(np.float16)
        elif cfg.dtype == "int4" and is_linear(name):
            arr = quantize_int4(arr, cfg.int4_block_size)[1]
        out[name] = arr.astype(np.float64)
    return out
