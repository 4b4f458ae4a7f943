"""The shape of a generated Llama-style decoder and its content hash.

Terms:
    layers (L), hidden (H), heads (nH), kv_heads (kvH), head_dim (hd), ffn (F), vocab (V): the
        usual decoder dimensions. ``kv_heads < heads`` is grouped-query attention (GQA): each key/value
        head serves ``heads // kv_heads`` query heads.
    graph form: ``contrib`` uses onnxruntime's contrib ops (``GroupQueryAttention`` with rotary inside,
        ``SimplifiedLayerNormalization``, ``SkipSimplifiedLayerNormalization``, packed QKV), laid out like
        the onnxruntime-genai model builder; ``standard`` uses plain ONNX ops with the Hugging Face
        Optimum I/O layout (4-D past/present key/value that grow by concatenation).
    config hash: sha256 over the canonical JSON of the config plus the builder version; it names the
        model's directory in the cache, so a second run with the same shape reuses the build.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from greenbench.canonical import canonical_bytes

#: Bumped whenever the generated graph or weights change, so stale cache entries are not reused.
BUILDER_VERSION = 2


@dataclass(frozen=True)
class LlamaConfig:
    """A generated decoder's shape, weights seed and graph options (all fields resolved)."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 4
    head_dim: int = 16
    ffn: int = 176
    vocab: int = 512
    rope_theta: float = 10000.0
    max_seq_len: int = 512
    seed: int = 0
    dtype: str = "fp32"  # fp32 | fp16 | int4 (int4 weights via MatMulNBits, fp32 activations) | bf16 (torch only)
    graph: str = "contrib"  # contrib | standard
    int4_block_size: int = 32
    int4_accuracy_level: int = 4  # MatMulNBits accuracy_level: 4 = int8 compute (how CPUs run int4), 0 = exact fp32
    rms_eps: float = 1e-5
    position_ids: bool = True  # standard graph only: whether position_ids is a graph input

    def __post_init__(self):
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for rotary embeddings")
        if self.dtype not in ("fp32", "fp16", "int4", "bf16"):
            raise ValueError(f"unknown dtype {self.dtype!r}")
        if self.graph not in ("contrib", "standard"):
            raise ValueError(f"unknown graph form {self.graph!r}")
        if self.int4_block_size < 16 or self.int4_block_size & (self.int4_block_size - 1):
            raise ValueError("int4_block_size must be a power of two >= 16")
        if self.int4_accuracy_level not in (0, 1, 2, 3, 4):
            raise ValueError(f"int4_accuracy_level must be 0..4, got {self.int4_accuracy_level}")

    @classmethod
    def from_spec(cls, spec) -> "LlamaConfig":
        """Resolve a :class:`greenbench.profile.ModelSpec` (defaults: kv_heads=heads, head_dim=hidden//heads)."""
        kv = spec.kv_heads if spec.kv_heads is not None else spec.heads
        hd = spec.head_dim if spec.head_dim is not None else spec.hidden // spec.heads
        return cls(
            layers=spec.layers,
            hidden=spec.hidden,
            heads=spec.heads,
            kv_heads=kv,
            head_dim=hd,
            ffn=spec.ffn,
            vocab=spec.vocab,
            rope_theta=float(spec.rope_theta),
            max_seq_len=spec.max_seq_len,
            seed=spec.seed,
            dtype=spec.dtype,
            graph=spec.graph,
            int4_block_size=spec.int4_block_size,
            int4_accuracy_level=spec.int4_accuracy_level,
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.dtype != "int4":
            d.pop("int4_accuracy_level")  # meaningless without int4 weights: fp32/fp16 configs keep their hash
        return d

    @property
    def digest(self) -> str:
        """Hex sha256 of the canonical config + builder version (the cache key)."""
        doc = {"builder_version": BUILDER_VERSION, "config": self.to_dict()}
        return hashlib.sha256(canonical_bytes(doc)).hexdigest()

    def hf_fields(self) -> dict:
        """The architecture in a Hugging Face ``LlamaConfig``'s field names (the part of ``config.json`` both
        the ONNX builder and the safetensors export write)."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab,
            "max_position_embeddings": self.max_seq_len,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_eps,
        }

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim
