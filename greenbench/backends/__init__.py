"""Backends: where a profile's model runs.

A *backend* turns a profile into a prepared :class:`InferenceSession` (model built or loaded, one
runtime session, buffers allocated once); the runner then measures energy windows around
``prefill`` and ``decode``. ``cpu`` and ``cuda`` run onnxruntime (CPU / CUDA execution provider);
``neuromorphic-sim`` and ``optical-sim`` run the ``cpu`` model and simulate the energy
(:mod:`greenbench.backends.simulated`).

To add a backend, add its name and ``"module:factory"`` to ``_REGISTRY``; the factory takes no
arguments and may raise :class:`~greenbench.errors.BackendError` when the backend cannot be used here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Optional, Protocol, runtime_checkable

from greenbench.errors import BackendError

if TYPE_CHECKING:  # pragma: no cover
    from greenbench.profile import Profile

_REGISTRY: dict[str, str] = {
    "cpu": "greenbench.backends.ort:cpu_backend",
    "cuda": "greenbench.backends.ort:cuda_backend",
    "neuromorphic-sim": "greenbench.backends.simulated:neuromorphic_backend",
    "optical-sim": "greenbench.backends.simulated:optical_backend",
}

#: Backend names the CLI accepts.
BACKENDS: tuple[str, ...] = tuple(_REGISTRY)


@runtime_checkable
class InferenceSession(Protocol):
    """A prepared model: the runner calls ``reset``, ``prefill``, ``decode`` per repeat."""

    prompt_ids: list[int]
    batch_size: int

    def reset(self) -> None: ...

    def prefill(self) -> int: ...

    def decode(self, first_token: int, n: int) -> list[int]: ...

    def cost(self) -> dict: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    name: str

    def prepare(self, profile: "Profile", progress: Optional[Callable[[str], None]] = None) -> InferenceSession: ...


def get_backend(name: str) -> Backend:
    """The backend called ``name``.

    Raises:
        BackendError: unknown name (lists the valid ones), or the backend cannot be used on this
            machine (e.g. ``cuda`` without the CUDA execution provider or without a GPU).
    """
    target = _REGISTRY.get(name)
    if target is None:
        import difflib

        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise BackendError(f"unknown backend {name!r}", f"{hint}valid backends: {', '.join(BACKENDS)}")
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)()
