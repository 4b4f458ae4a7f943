"""The gateable metrics of a result: name -> (direction, unit).

Each has per-repeat samples at ``metrics.<name>_samples`` in a result document. ``lower`` means smaller
is better (energy, latency), ``higher`` means bigger is better (throughput, utilisation). Shared by the
gate, the profile's ``[gate]`` table and the pytest plugin.
"""

from __future__ import annotations

METRICS: dict[str, tuple[str, str]] = {
    "decode.j_per_token": ("lower", "J/token"),
    "decode.tokens_per_s": ("higher", "tokens/s"),
    "prefill.j_per_token": ("lower", "J/token"),
    "prefill.tokens_per_s": ("higher", "tokens/s"),
    "ttft_s": ("lower", "s"),
    "train.j_per_token": ("lower", "J/token"),
    "train.tokens_per_s": ("higher", "tokens/s"),
    "train.mfu": ("higher", "fraction"),
    "block.j_per_token": ("lower", "J/token"),
    "block.energy_j": ("lower", "J"),
    "block.duration_s": ("lower", "s"),
    "block.tokens_per_s": ("higher", "tokens/s"),
}

#: metrics gated by default, per workload kind
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "inference": ("decode.j_per_token", "decode.tokens_per_s", "prefill.j_per_token", "ttft_s"),
    "training": ("train.j_per_token", "train.tokens_per_s"),
    "measure": ("block.energy_j", "block.duration_s"),
}
