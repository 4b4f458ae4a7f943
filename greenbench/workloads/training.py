"""Training workload (PyTorch, the optional ``train`` extra): joules per trained token.

A Llama-style decoder of the profile's shape (RMSNorm, rotary attention with grouped KV heads,
SwiGLU MLP) with seeded random weights is trained with AdamW on seeded random token sequences of
``[train] seq_len``. A *step* is one forward + backward + optimizer update over ``batch_size x seq_len``
tokens; a measured repeat is ``[train] steps`` steps inside one energy window. The data are random,
so the loss falls only as the model memorises them: ``loss_before`` (the loss of the freshly
initialised model on the first batch, before any step, warmup included; about ``ln(vocab)``),
``loss_first`` and ``loss_last`` (first and last measured steps) show that the work was real training,
not a measure of model quality.

Work and efficiency (:meth:`TrainingSession.cost`, :meth:`TrainingSession.train_metrics`):
    FLOPs per trained token: ``6 N + 12 L H Q T`` with N the non-embedding matmul weights
        (:func:`greenbench.models.cost.training_cost`; Kaplan et al. 2020, PaLM appendix B).
    MFU: tokens/s x FLOPs per token / the device's peak (:mod:`greenbench.workloads.peak`): on a CPU
        the peak is measured by a GEMM probe before the run, on a GPU it is the datasheet's dense rate
        for the training precision. Both are recorded in ``metrics.train.peak``.

Device (:func:`training_device`): training is PyTorch whatever ``[run] backend`` says. ``--backend cuda``
trains on the GPU (CUDA device 0, metered by NVML by its UUID), ``--backend torch`` on ``--device`` /
``[run] device`` (default: the GPU when PyTorch sees one), ``--backend cpu`` on the CPU unless ``[train]
device = "cuda"`` (the key from before the torch backend existed).
"""

from __future__ import annotations

from greenbench.errors import BackendError


def _torch():
    try:
        import torch
    except ImportError:
        raise BackendError(
            "the training workload needs PyTorch, which is not installed",
            "install the extra: pip install 'greenbench[train]' (or pip install torch)",
        ) from None
    return torch


def build_model(spec, torch):
    nn = torch.nn
    F = torch.nn.functional
    heads = spec.heads
    kv_heads = spec.kv_heads or spec.heads
    head_dim = spec.head_dim or spec.hidden // spec.heads

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.eps = eps

        def forward(self, x):
            return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def rotary(x, cos, sin):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = RMSNorm(spec.hidden)
            self.ln2 = RMSNorm(spec.hidden)
            self.q = nn.Linear(spec.hidden, heads * head_dim, bias=False)
            self.k = nn.Linear(spec.hidden, kv_heads * head_dim, bias=False)
            self.v = nn.Linear(spec.hidden, kv_heads * head_dim, bias=False)
            self.o = nn.Linear(heads * head_dim, spec.hidden, bias=False)
            self.gate = nn.Linear(spec.hidden, spec.ffn, bias=False)
            self.up = nn.Linear(spec.hidden, spec.ffn, bias=False)
            self.down = nn.Linear(spec.ffn, spec.hidden, bias=False)

        def forward(self, x, cos, sin):
            b, t, _ = x.shape
            h = self.ln1(x)
            q = self.q(h).view(b, t, heads, head_dim).transpose(1, 2)
            k = self.k(h).view(b, t, kv_heads, head_dim).transpose(1, 2)
            v = self.v(h).view(b, t, kv_heads, head_dim).transpose(1, 2)
            q, k = rotary(q, cos, sin), rotary(k, cos, sin)
            if kv_heads != heads:
                k = k.repeat_interleave(heads // kv_heads, dim=1)
                v = v.repeat_interleave(heads // kv_heads, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, t, heads * head_dim))
            h = self.ln2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(spec.vocab, spec.hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(spec.layers))
            self.norm = RMSNorm(spec.hidden)
            self.head = nn.Linear(spec.hidden, spec.vocab, bias=False)
            inv = 1.0 / (spec.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
            self.register_buffer("inv_freq", inv, persistent=False)

        def forward(self, ids):
            t = ids.shape[1]
            freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
            cos, sin = freqs.cos(), freqs.sin()
            x = self.embed(ids)
            for blk in self.blocks:
                x = blk(x, cos, sin)
            return self.head(self.norm(x))

    return Decoder()


def training_device(profile, cuda_available=None) -> str:
    """The device a training profile trains on (see the module docstring).

    Raises:
        BackendError: a simulated or unknown backend; ``--device`` contradicting ``--backend``; cuda asked for
            and PyTorch sees no GPU.
    """
    from greenbench.backends.torch_device import resolve_device

    run, t = profile.run, profile.train
    requested = getattr(run, "device", None)
    if run.backend not in ("cpu", "cuda", "torch"):
        raise BackendError(
            f"the training workload runs on cpu, cuda or torch, not {run.backend!r}",
            "use --backend cpu, --backend cuda or --backend torch (simulated backends model inference only)",
        )
    if requested is not None and run.backend != "torch" and requested != run.backend:
        raise BackendError(f"--device {requested} contradicts --backend {run.backend}",
                           f"use --backend torch --device {requested}, or --backend {requested}")
    if run.backend == "cuda":
        requested = "cuda"
    elif run.backend == "cpu":
        requested = "cuda" if t.device == "cuda" else "cpu"
    elif requested is None and t.device == "cuda":
        requested = "cuda"
    if cuda_available is None:
        cuda_available = lambda: _torch().cuda.is_available()  # noqa: E731
    return resolve_device(requested, cuda_available)


class TrainingBackend:
    """The trainer as a backend object: its ``devices()`` name what it meters before the model is built.

    Args:
        profile: the training profile.
        device: ``cpu``/``cuda``; default :func:`training_device`.
    """

    def __init__(self, profile, device: str | None = None):
        self.name = profile.run.backend
        self.device = device or training_device(profile)

    def devices(self):
        from greenbench.backends.torch_device import device_scope

        return device_scope(_torch(), self.device)

    def prepare(self, profile, progress=None) -> "TrainingSession":
        if progress:
            progress(f"building {profile.name} for training (PyTorch, {self.device})")
        return TrainingSession(profile, threads=profile.run.threads, device=self.device)


def training_backend(profile) -> TrainingBackend:
    return TrainingBackend(profile)


class TrainingSession:
    """One model, optimizer and seeded data stream; ``steps(n)`` trains n steps and returns their losses.

    Args:
        profile: the profile (``[model]`` shape, ``[train]`` settings).
        threads: intra-op threads for torch (default: torch's).
        peak_probe_s: how long the CPU GEMM probe of the peak FLOP rate runs (see
            :func:`greenbench.workloads.peak.cpu_gemm_peak`).
        device: ``cpu``/``cuda``; default ``[train] device``.
    """

    def __init__(self, profile, threads: int | None = None, peak_probe_s: float = 0.3, device: str | None = None):
        torch = _torch()
        self.torch = torch
        spec = profile.model
        if spec.kind != "synthetic-llama":
            raise BackendError(
                "the training workload supports generated models only ([model] kind = \"synthetic-llama\")",
                "remove [model] path or set [run] workload = \"inference\"",
            )
        if threads:
            torch.set_num_threads(threads)
        t = profile.train
        self.device = device or getattr(t, "device", "cpu") or "cpu"
        self.precision = getattr(t, "precision", "fp32") or "fp32"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise BackendError(
                "[train] device = \"cuda\" but PyTorch sees no CUDA device",
                "install a CUDA build of torch on a machine with an NVIDIA GPU, or set device = \"cpu\"",
            )
        torch.manual_seed(spec.seed)
        self.model = build_model(spec, torch).to(self.device)
        self.model.train()
        self.batch_size, self.seq_len = t.batch_size, t.seq_len
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=t.lr)
        self.gen = torch.Generator().manual_seed(spec.seed + 1)
        # A small fixed pool of sequences so the loss can actually fall (memorisation).
        self.data = torch.randint(0, spec.vocab, (8 * t.batch_size, t.seq_len + 1), generator=self.gen).to(self.device)
        self.cursor = 0
        self.params = sum(p.numel() for p in self.model.parameters())
        from greenbench.models.config import LlamaConfig
        from greenbench.models.cost import training_cost

        cfg = LlamaConfig.from_spec(spec)
        self._cost = training_cost(
            layers=cfg.layers, hidden=cfg.hidden, heads=cfg.heads, kv_heads=cfg.kv_heads, head_dim=cfg.head_dim,
            ffn=cfg.ffn, vocab=cfg.vocab, seq_len=self.seq_len,
        )
        self.loss_before = self._loss(self._batch(0), train=False)
        self.peak = self._peak(peak_probe_s)

    def _autocast(self):
        torch = self.torch
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device, dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    def _batch(self, i: int):
        return self.data[i * self.batch_size : (i + 1) * self.batch_size]

    def _loss(self, batch, train: bool = True):
        torch = self.torch
        x, y = batch[:, :-1], batch[:, 1:]
        with self._autocast(), (torch.enable_grad() if train else torch.no_grad()):
            logits = self.model(x)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss if train else float(loss)

    def _peak(self, probe_s: float) -> dict:
        from greenbench.workloads import peak

        if self.device == "cuda":
            return peak.gpu_peak(self.torch.cuda.get_device_name(), self.precision)
        return peak.cpu_gemm_peak(self.torch, precision=self.precision, min_time_s=probe_s)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def steps(self, n: int) -> list[float]:
        losses = []
        for _ in range(n):
            i = self.cursor % (self.data.shape[0] // self.batch_size)
            self.cursor += 1
            loss = self._loss(self._batch(i))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(float(loss.detach()))
        return losses

    def cost(self) -> dict:
        """The result's ``metrics.cost``: ``params`` (all), ``flops_per_token`` (6N + attention), ... (see
        :func:`greenbench.models.cost.training_cost`)."""
        return dict(self._cost)

    def train_metrics(self, train: dict) -> dict:
        """What the runner adds to ``metrics.train`` once the repeats are measured.

        Args:
            train: the runner's ``metrics.train`` (``tokens_per_s``, ``tokens_per_s_samples``, ...).

        Returns:
            ``mfu`` (median over repeats), ``mfu_samples`` (one per repeat), ``peak`` (the denominator:
            rate, how it was obtained, source), ``flops_per_token`` and ``loss_before``.
        """
        from greenbench.workloads.peak import mfu

        f, p = self._cost["flops_per_token"], self.peak.get("flops_per_s")
        samples = [mfu(tps, f, p) for tps in train.get("tokens_per_s_samples") or []]
        return {
            "mfu": mfu(train.get("tokens_per_s"), f, p),
            "mfu_samples": [x for x in samples if x is not None],
            "peak": dict(self.peak),
            "flops_per_token": f,
            "loss_before": self.loss_before,
        }

    def describe(self) -> dict:
        return {
            "source": "generated",
            "framework": f"torch {self.torch.__version__}",
            "params": self.params,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "threads": self.torch.get_num_threads(),
            "device": self.device,
            "precision": self.precision,
            "peak_flops_per_s": self.peak.get("flops_per_s"),
            **({"device_name": self.torch.cuda.get_device_name()} if self.device == "cuda" else {}),
        }
