"""Models: the generated Llama-style ONNX decoder, its numpy reference, the cost model, the export
loader and the model cache.

Public entry points (imported lazily so ``import greenbench.models`` stays cheap):
    :class:`~greenbench.models.config.LlamaConfig`, :func:`~greenbench.models.cache.ensure_model`,
    :func:`~greenbench.models.cost.decode_cost`, :func:`~greenbench.models.cost.training_cost`,
    :func:`~greenbench.models.cost.roofline`,
    :func:`~greenbench.models.ceilings.memory_bandwidth_bytes_per_s`, :func:`~greenbench.models.ceilings.matmul_peak_macs_per_s`.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LlamaConfig": "greenbench.models.config",
    "ensure_model": "greenbench.models.cache",
    "model_dir": "greenbench.models.cache",
    "build_model": "greenbench.models.builder",
    "ReferenceLlama": "greenbench.models.reference",
    "decode_cost": "greenbench.models.cost",
    "graph_cost": "greenbench.models.cost",
    "training_cost": "greenbench.models.cost",
    "roofline": "greenbench.models.cost",
    "roofline_bounds": "greenbench.models.cost",
    "memory_bandwidth_gbps": "greenbench.models.ceilings",
    "memory_bandwidth_bytes_per_s": "greenbench.models.ceilings",
    "last_level_cache_bytes": "greenbench.models.ceilings",
    "matmul_peak_macs_per_s": "greenbench.models.ceilings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'greenbench.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
