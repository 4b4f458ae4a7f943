"""Backends: where a profile's model runs.

A *backend* turns a profile into a prepared :class:`InferenceSession` (model built or loaded, one
runtime session, buffers allocated once); the runner then measures energy windows around
``prefill`` and ``decode``. ``cpu`` and ``cuda`` run onnxruntime (CPU / CUDA execution provider);
``torch`` runs the same models in PyTorch on the CPU or a CUDA GPU (:mod:`greenbench.backends.torch_backend`);
``neuromorphic-sim`` and ``optical-sim`` run the ``cpu`` model and simulate the energy
(:mod:`greenbench.backends.simulated`). Training is PyTorch whatever the backend: ``cpu`` trains on the CPU,
``cuda`` on the GPU, ``torch`` on its device (:func:`backend_for`).

To add a backend, add its name and ``"module:factory"`` to ``_REGISTRY``; the factory takes no
arguments and may raise :class:`~greenbench.errors.BackendError` when the backend cannot be used here.

Device scope: a backend declares the devices its work uses (:func:`device_scope`), and by default only
those are metered (:mod:`greenbench.meters.scope`). A backend object may refine the declaration with a
``devices() -> Scope`` method, e.g. to name its GPU by UUID when its framework can tell.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Optional, Protocol, runtime_checkable

from greenbench.errors import BackendError
from greenbench.meters.scope import GpuRef, Scope, machine_scope

if TYPE_CHECKING:  # pragma: no cover
    from greenbench.profile import Profile

_REGISTRY: dict[str, str] = {
    "cpu": "greenbench.backends.ort:cpu_backend",
    "cuda": "greenbench.backends.ort:cuda_backend",
    "torch": "greenbench.backends.torch_backend:TorchBackend",
    "neuromorphic-sim": "greenbench.backends.simulated:neuromorphic_backend",
    "optical-sim": "greenbench.backends.simulated:optical_backend",
}

#: Backend names the CLI accepts.
BACKENDS: tuple[str, ...] = tuple(_REGISTRY)
_SIMULATED = ("neuromorphic-sim", "optical-sim")


def device_scope(name: str, *, kind: str = "devices", backend=None, device_id: int = 0) -> Scope:
    """The devices a run on backend ``name`` meters.

    Args:
        name: the backend's name.
        kind: ``devices`` (only what the work uses) or ``machine`` (everything).
        backend: the backend object, if already made; its ``devices()`` method, when it has one, wins.
        device_id: the CUDA device ordinal of GPU backends.
    """
    if kind == "machine":
        return machine_scope()
    refine = getattr(backend, "devices", None)
    if callable(refine):
        return refine()
    if name in _SIMULATED:
        return Scope(cpu=False)
    if name == "cuda":  # onnxruntime's CUDA provider names its GPU by ordinal only (it reports no UUID)
        return Scope(cpu=True, gpus=(GpuRef(device_id),))
    if name == "torch":  # its default device: the GPU when PyTorch sees one
        from greenbench.backends.torch_backend import TorchBackend

        try:
            return TorchBackend().devices()
        except BackendError:  # no torch here: the backend cannot run, and would use no GPU
            return Scope(cpu=True)
    return Scope(cpu=True)


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


def backend_for(profile):
    """The backend object for a profile (CLI overrides applied), ready for :func:`device_scope` and ``prepare``.

    Inference: :func:`get_backend` on ``[run] backend``, bound to the profile (``bind(profile)``: the torch
    backend resolves its device there). Training: the PyTorch trainer on the device the backend names
    (:func:`greenbench.workloads.training.training_backend`).

    Raises:
        BackendError: as :func:`get_backend`; a device the backend does not run on (``--device cuda`` with
            ``--backend cpu``).
    """
    run = profile.run
    device = getattr(run, "device", None)
    if run.workload == "training":
        from greenbench.workloads.training import training_backend

        return training_backend(profile)
    if device is not None and run.backend in ("cpu", "cuda") and device != run.backend:
        raise BackendError(
            f"--device {device} does not apply to onnxruntime's {run.backend!r} backend, which runs on {run.backend}",
            f"use --backend torch --device {device}, or --backend {device}",
        )
    if device is not None and run.backend in _SIMULATED:
        raise BackendError(f"--device does not apply to the simulated backend {run.backend!r}", "drop --device")
    backend = get_backend(run.backend)
    bind = getattr(backend, "bind", None)
    return bind(profile) if callable(bind) else backend
