"""Write a generated model as a Hugging Face Llama directory (``config.json`` + ``model.safetensors``).

The same weights as the ONNX build (:func:`greenbench.models.weights.make_weights`), linear layers transposed
to PyTorch's ``[out, in]``, under Hugging Face Llama's names, so ``transformers.LlamaForCausalLM`` computes the
same function: the decode benchmark runs Hugging Face ``generate`` on exactly the model greenbench measures,
and the tests check the torch backend's Hugging Face loader against the generated model. Needs the
``safetensors`` package (installed with transformers).
"""

from __future__ import annotations

import json
from pathlib import Path

from greenbench.models.config import LlamaConfig


def hf_config(cfg: LlamaConfig) -> dict:
    """The ``config.json`` of ``cfg`` as a ``LlamaForCausalLM``."""
    return {
        **cfg.hf_fields(),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": {"fp16": "float16"}.get(cfg.dtype, "float32"),
        "bos_token_id": None,
        "eos_token_id": None,
    }


def write_hf_llama(cfg: LlamaConfig, directory) -> Path:
    """Write ``cfg``'s model into ``directory`` (created); returns it. fp16 models are stored in fp16.

    Raises:
        ValueError: an int4 or bf16 config (Hugging Face Llama checkpoints here are fp32 or fp16).
    """
    import numpy as np
    from safetensors.numpy import save_file

    from greenbench.models.torch_llama import generated_tensors

    if cfg.dtype not in ("fp32", "fp16"):
        raise ValueError(f"write_hf_llama writes fp32 or fp16 checkpoints, not {cfg.dtype!r}")
    dt = np.float16 if cfg.dtype == "fp16" else np.float32
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(arr.astype(dt)) for name, arr in generated_tensors(cfg)}
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps(hf_config(cfg), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return d
