"""Test doubles for the hardware and model seams (like hyperfine's MockExecutor)."""

from __future__ import annotations

import time
import types

from greenbench.meters.base import Domain, Probe, Snapshot


class StepMeter:
    """A counter meter whose reading advances by fixed joules per domain at every snapshot."""

    def __init__(self, name="fake", method="counter", steps=None):
        self.name = name
        self.method = method
        self.steps = steps or {"package-0": 1.0}
        self.cum = {d: 0.0 for d in self.steps}
        self.opened = self.closed = False
        self.t = 0.0

    def probe(self):
        return Probe(self.name, True, self.method, "", self.domains())

    def domains(self):
        return tuple(Domain(d) for d in self.steps)

    def open(self):
        self.opened = True

    def snapshot(self):
        for d, j in self.steps.items():
            self.cum[d] += j
        self.t += 1.0
        return Snapshot(self.t, dict(self.cum))

    def close(self):
        self.closed = True


class FakeSession:
    """Deterministic 'model': next token = (last * 7 + 3) % vocab. Can raise Ctrl-C at a given repeat."""

    def __init__(self, prompt=(1, 2, 3), vocab=101, interrupt_at_prefill=None):
        self.prompt_ids = list(prompt)
        self.batch_size = 1
        self.vocab = vocab
        self.prefills = 0
        self.interrupt_at_prefill = interrupt_at_prefill
        self.closed = False

    def reset(self):
        pass

    def prefill(self):
        self.prefills += 1
        if self.interrupt_at_prefill is not None and self.prefills == self.interrupt_at_prefill:
            raise KeyboardInterrupt
        return (self.prompt_ids[-1] * 7 + 3) % self.vocab

    def decode(self, first, n):
        out, t = [], first
        for _ in range(n):
            t = (t * 7 + 3) % self.vocab
            out.append(t)
        return out

    def cost(self):
        return {"params": 1000, "macs_per_token": 1000.0, "bytes_per_token": 4000.0}

    def describe(self):
        return {"source": "fake"}

    def close(self):
        self.closed = True


class FakeBackend:
    name = "fake"

    def __init__(self, session=None):
        self.session = session or FakeSession()

    def prepare(self, profile, progress=None):
        return self.session


def ticking_energy_mj(watts: float, period_s: float, clock=time.perf_counter):
    """An NVML-style energy counter (mJ) that advances at ``watts`` and changes only every ``period_s``."""
    t0 = clock()

    def read() -> int:
        steps = int((clock() - t0) / period_s)
        return int(watts * steps * period_s * 1000)

    return read


def make_pynvml(gpus, *, init_error=False):
    """A fake pynvml: gpus is a list of dicts {uuid, name, energy_mj (None: unsupported), power_mw, migs}."""
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    m.NVMLError = NVMLError
    m.NVMLError_NotSupported = NVMLError_NotSupported
    m.NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    m.gpus = gpus
    m.inits = 0

    class H:
        def __init__(self, i, mig=None):
            self.i, self.mig = i, mig

    def nvmlInit():
        if init_error:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")
        m.inits += 1

    def nvmlShutdown():
        m.inits -= 1

    def need_init():
        if m.inits <= 0:
            raise NVMLError("Uninitialized")

    def nvmlDeviceGetCount():
        need_init()
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(i):
        need_init()
        if not 0 <= i < len(gpus):
            raise NVMLError("Invalid Argument")
        return H(i)

    def nvmlDeviceGetUUID(h):
        return h.mig if h.mig else gpus[h.i]["uuid"]

    def nvmlDeviceGetName(h):
        return gpus[h.i]["name"]

    def nvmlDeviceGetTotalEnergyConsumption(h):
        need_init()
        e = gpus[h.i].get("energy_mj")
        if e is None:
            raise NVMLError_NotSupported("Not Supported")
        return e() if callable(e) else e

    def nvmlDeviceGetPowerUsage(h):
        need_init()
        return gpus[h.i]["power_mw"]

    def nvmlDeviceGetHandleByUUID(u):
        for i, g in enumerate(gpus):
            if u in g.get("migs", ()):
                return H(i, mig=u)
            if u == g["uuid"]:
                return H(i)
        raise NVMLError_NotFound("Not Found")

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h):
        return H(h.i)

    def nvmlDeviceGetIndex(h):
        return h.i

    for f in list(locals().values()):
        if callable(f) and getattr(f, "__name__", "").startswith("nvml"):
            setattr(m, f.__name__, f)
    return m


