"""The model cache: generated models live in ``cache_dir()/models/<config hash>``.

A build goes into a temporary sibling directory that is renamed into place only when complete
(``greenbench_model.json`` written last), so a crash or Ctrl-C never leaves a half-built model that a
later run would trust, and two processes building the same model at once both end up using one copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from greenbench.errors import GreenbenchError
from greenbench.fsutil import cache_dir
from greenbench.models.config import BUILDER_VERSION, LlamaConfig

MARKER = "greenbench_model.json"


def model_dir(cfg: LlamaConfig) -> Path:
    """Where the model for ``cfg`` lives (whether or not it is built yet)."""
    return cache_dir() / "models" / cfg.digest[:32]


def is_cached(cfg: LlamaConfig) -> bool:
    return (model_dir(cfg) / MARKER).is_file()


def ensure_model(cfg: LlamaConfig, progress: Callable[[str], None] | None = None) -> Path:
    """Return the cached model directory for ``cfg``, building it first if needed.

    Raises:
        GreenbenchError: the cache directory cannot be written (names it; hint: GREENBENCH_CACHE_DIR).
    """
    from greenbench.models.builder import build_model

    final = model_dir(cfg)
    if (final / MARKER).is_file():
        return final
    if progress:
        progress(f"building model {cfg.layers}x{cfg.hidden} {cfg.dtype} ({cfg.graph} graph) into {final}")
    root = final.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{final.name[:8]}-", dir=root))
    except OSError as exc:
        raise GreenbenchError(
            f"cannot write the model cache {root}: {exc.strerror or exc}",
            "set GREENBENCH_CACHE_DIR to a writable directory",
        ) from None
    try:
        build_model(cfg, tmp)
        doc = {"builder_version": BUILDER_VERSION, "digest": cfg.digest, "config": cfg.to_dict()}
        (tmp / MARKER).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        if final.exists():  # an incomplete leftover (no marker): replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MARKER).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GreenbenchError(
            f"cannot build the model into {root}: {exc.strerror or exc}",
            "free disk space or set GREENBENCH_CACHE_DIR to a writable directory",
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
