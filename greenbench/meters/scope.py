"""Device scope: which devices a run meters.

Terms:
    scope ``devices`` (the default for ``greenbench run``): only the devices the work runs on, as its
        backend declares them. ``cpu`` backends use the CPU packages and DRAM; ``cuda`` backends use the
        GPU of their device ordinal plus the host CPU and DRAM that drive it; simulated backends use no
        host device (their energy comes from their cost model).
    scope ``machine``: every usable meter, every device (what greenbench did before scopes existed, and
        what ``greenbench measure`` does for a command whose devices it cannot know).
    GPU reference: how a framework names the GPU it runs on: a CUDA device *ordinal* (0, 1, ... in this
        process's numbering) and, when the framework can tell, the GPU's or MIG instance's UUID.

Ordinals and UUIDs: the CUDA runtime numbers the devices ``CUDA_VISIBLE_DEVICES`` lists, in the order it
lists them. Entries that are UUIDs (``GPU-…``, ``MIG-…``) name one device exactly. Integer entries, and
the case where the variable is unset, number devices in ``CUDA_DEVICE_ORDER`` order, which is
``FASTEST_FIRST`` by default, while NVML numbers them in PCI bus order. greenbench then assumes PCI bus
order and says so (a warning) unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` is set or only one GPU exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GpuRef", "Scope", "SCOPES", "machine_scope"]

SCOPES = ("devices", "machine")


@dataclass(frozen=True)
class GpuRef:
    """A GPU as the framework running the work names it."""

    ordinal: int = 0
    uuid: str | None = None  # "GPU-…" or "MIG-…" when the framework reports it

    def as_dict(self) -> dict:
        return {"ordinal": self.ordinal, **({"uuid": self.uuid} if self.uuid else {})}


@dataclass(frozen=True)
class Scope:
    """What a run meters: ``kind`` ``devices`` (``cpu`` and ``gpus`` say which) or ``machine`` (everything)."""

    kind: str = "devices"
    cpu: bool = True
    gpus: tuple[GpuRef, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.kind not in SCOPES:
            raise ValueError(f"unknown scope {self.kind!r}; expected one of {SCOPES}")

    @property
    def machine(self) -> bool:
        return self.kind == "machine"

    def as_dict(self) -> dict:
        if self.machine:
            return {"kind": "machine"}
        return {"kind": self.kind, "cpu": self.cpu, "gpus": [g.as_dict() for g in self.gpus]}

    def describe(self) -> str:
        if self.machine:
            return "every device on this machine (--scope machine)"
        parts = ["CPU packages and DRAM"] if self.cpu else []
        for g in self.gpus:
            parts.append(f"GPU {g.uuid}" if g.uuid else f"CUDA device {g.ordinal}")
        return ", ".join(parts) or "no host device (simulated)"


def machine_scope() -> Scope:
    return Scope("machine")
