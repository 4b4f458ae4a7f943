"""Training workload (PyTorch, the optional ``train`` extra): joules per trained token.

A Llama-style decoder of the profile's shape (RMSNorm, rotary attention with grouped KV heads,
SwiGLU MLP) with seeded random weights is trained with AdamW on seeded random token sequences of
``[train] seq_len``. A *step* is one forward + backward + optimizer update over ``batch_size x seq_len``
tokens; a measured repeat is ``[train] steps`` steps inside one energy window. The data are random,
so the loss falls only as the model memorises them: ``loss_first``/``loss_last`` show that the work was
real training, not a measure of model quality.
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
            freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
            cos, sin = freqs.cos(), freqs.sin()
            x = self.embed(ids)
            for blk in self.blocks:
                x = blk(x, cos, sin)
            return self.head(self.norm(x))

    return Decoder()


class TrainingSession:
    """One model, optimizer and seeded data stream; ``steps(n)`` trains n steps and returns their losses."""

    def __init__(self, profile, threads: int | None = None):
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
        torch.manual_seed(spec.seed)
        self.model = build_model(spec, torch)
        self.model.train()
        t = profile.train
        self.batch_size, self.seq_len = t.batch_size, t.seq_len
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=t.lr)
        self.gen = torch.Generator().manual_seed(spec.seed + 1)
        # A small fixed pool of sequences so the loss can actually fall (memorisation).
        self.data = torch.randint(0, spec.vocab, (8 * t.batch_size, t.seq_len + 1), generator=self.gen)
        self.cursor = 0
        self.params = sum(p.numel() for p in self.model.parameters())

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def steps(self, n: int) -> list[float]:
        torch = self.torch
        F = torch.nn.functional
        losses = []
        for _ in range(n):
            i = self.cursor % (self.data.shape[0] // self.batch_size)
            self.cursor += 1
            batch = self.data[i * self.batch_size : (i + 1) * self.batch_size]
            x, y = batch[:, :-1], batch[:, 1:]
            logits = self.model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(float(loss.detach()))
        return losses

    def cost(self) -> dict:
        # Training FLOPs ~ 6 N per token (Kaplan et al. 2020, arXiv:2001.08361, section 2.1).
        return {"params": self.params, "flops_per_token": 6.0 * self.params}

    def describe(self) -> dict:
        return {
            "source": "generated",
            "framework": f"torch {self.torch.__version__}",
            "params": self.params,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "threads": self.torch.get_num_threads(),
        }
