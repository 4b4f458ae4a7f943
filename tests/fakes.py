"""Test doubles for the hardware and model seams (like hyperfine's MockExecutor)."""

from __future__ import annotations

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
