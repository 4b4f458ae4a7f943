"""Work identity: what determines the work a result measured, and its digest (``workload.digest``).

Two results with the same ``workload.digest`` did the same computation, however they were run, so a gate
or a leaderboard may compare them; results with different digests did different work and must not be.

In the digest (``workload.identity``): the workload kind; the backend (and its device); the model's
identity and weights digest (a generated model: its resolved config, seed and builder version, which fix
its weights exactly; an exported model: the sha256 of its weight files); the prompt's token ids;
``max_new_tokens`` and the batch size; the model's dtype; for training, the ``[train]`` settings; for a
simulated backend, its ``[sim]`` parameters (the simulated device).

The *task* (:func:`task`) is the work identity without what says where and in which number format it
ran: the backend, its device, the dtype (and the graph and quantisation options of a generated model's
config) and a simulated backend's ``[sim]`` parameters. Results of one task did the same job (same model
architecture and seed, prompt, ``max_new_tokens``, batch), so the leaderboard's "J/token by backend" chart
compares backends across them; they are still ranked only within their work digest.

Not in it (how the work was run): repeats, warmup, idle seconds, threads, meters, scope, window
periods, region, PUE, output paths. Those are in ``profile.digest``, which changes with any of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from greenbench.canonical import canonical_bytes

__all__ = ["identity", "digest", "weights_digest", "task", "task_digest"]

#: File names that hold a model's weights in an export directory.
_WEIGHT_SUFFIXES = (".onnx", ".onnx.data", ".data", ".safetensors", ".bin", ".pt")


def weights_digest(directory: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """``sha256:<hex>`` over an export directory's weight files (names, sizes and bytes, in name order).

    Hashing a multi-GB export takes seconds, so the value is cached in ``cache_dir`` keyed by every file's
    path, size and modification time; any change to a file recomputes it.
    """
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    stamp = [(p.name, st.st_size, st.st_mtime_ns) for p in files for st in (p.stat(),)]
    key = hashlib.sha256(json.dumps([str(d.resolve()), stamp]).encode()).hexdigest()
    cache = Path(cache_dir) / "weights-digests" / key if cache_dir else None
    if cache is not None and cache.is_file():
        value = cache.read_text().strip()
        if value.startswith("sha256:"):
            return value
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + str(p.stat().st_size).encode() + b"\0")
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    value = "sha256:" + h.hexdigest()
    if cache is not None:
        try:
            from greenbench.fsutil import atomic_write_bytes

            atomic_write_bytes(cache, value.encode())
        except OSError:
            pass  # a cache that cannot be written only costs time
    return value


def identity(profile, *, backend: str, prompt_ids: list[int] | None, model_info: dict,
             batch_size: int, device: str | None = None) -> dict:
    """The fields that determine the work (see the module docstring)."""
    training = profile.run.workload == "training"
    m = profile.model
    if m.kind:
        model = {"source": "generated", "kind": m.kind, "config": _generated_config(profile, model_info)}
    else:
        model = {
            "source": model_info.get("source", "export"),
            "weights_digest": model_info.get("weights_digest"),
        }
    out: dict = {
        "kind": "training" if training else "inference",
        "backend": backend,
        "model": model,
        "dtype": model_info.get("dtype") or m.dtype,
    }
    if device:
        out["device"] = device
    if training:
        import dataclasses

        out["train"] = dataclasses.asdict(profile.train)
    else:
        out["prompt_token_ids"] = [int(t) for t in (prompt_ids or [])]
        out["max_new_tokens"] = profile.generation.max_new_tokens
        out["batch_size"] = int(batch_size)
    if backend.endswith("-sim"):
        import dataclasses

        out["sim"] = {k: v for k, v in dataclasses.asdict(profile.sim).items() if v is not None}
    return out


def _generated_config(profile, model_info: dict) -> dict:
    from greenbench.models.config import BUILDER_VERSION

    cfg = model_info.get("config")
    if not isinstance(cfg, dict):  # a session that does not describe its config: the profile's [model]
        import dataclasses

        cfg = {k: v for k, v in dataclasses.asdict(profile.model).items() if k not in ("kind", "path")}
    return {**cfg, "builder_version": BUILDER_VERSION}


def digest(ident: dict) -> str:
    """``sha256:<hex>`` of the identity's canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_bytes(ident)).hexdigest()


#: Identity keys that say where and in which number format the work ran (not which task it was).
_NOT_TASK = ("backend", "device", "dtype", "sim")
#: Keys of a generated model's config that choose its number format or graph, not its architecture.
_NOT_TASK_CONFIG = ("dtype", "graph", "int4_block_size", "int4_accuracy_level", "position_ids")


def task(ident: dict) -> dict:
    """The task of a work identity (module docstring): ``ident`` without backend, device, dtype and
    simulated-device parameters."""
    out = {k: v for k, v in ident.items() if k not in _NOT_TASK}
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("config"), dict):
        out["model"] = {**model, "config": {k: v for k, v in model["config"].items() if k not in _NOT_TASK_CONFIG}}
    return out


def task_digest(ident: dict) -> str:
    """``sha256:<hex>`` of :func:`task` of an identity read from a result (decoded JSON, so string keys:
    the fast canonical encoder gives the same bytes; ``ValueError``/``TypeError`` for one that is not JSON)."""
    from greenbench.canonical import canonical_bytes_of_json

    return "sha256:" + hashlib.sha256(canonical_bytes_of_json(task(ident))).hexdigest()
