"""The training workload: FLOPs per token (checked against torch's FlopCounterMode), MFU and its peak,
loss before the first step, the terminal rows and the built-in profile's repeats."""

from __future__ import annotations

import math

import pytest

from greenbench import profile as P
from greenbench import results, stats
from greenbench.models.cost import training_cost
from greenbench.workloads import peak

from fakes import StepMeter

SMALL = (
    'name = "t"\n[model]\nkind = "synthetic-llama"\nlayers = 2\nhidden = 32\nheads = 4\nkv_heads = 2\nffn = 64\n'
    'vocab = 96\n[train]\nsteps = 3\nseq_len = 16\nbatch_size = 2\nlr = 0.01\n[run]\nworkload = "training"\n'
    'repeats = 2\nwarmup = 1\n[carbon]\nregion = "FRA"\n'
)


def test_training_cost_of_llama_tiny_by_hand():
    # llama-tiny: L=2, H=64, nH=4, kvH=2, hd=16, F=176, V=512, T=64 (profiles/llama-tiny-train.toml)
    c = training_cost(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512, seq_len=64)
    # per layer: q 64*64 + k,v 2*64*32 + o 64*64 + MLP 3*64*176 = 4096 + 4096 + 4096 + 33792 = 46080
    n = 2 * 46080 + 64 * 512  # + untied LM head = 124928
    assert c["non_embedding_params"] == n == 124928
    assert c["embedding_params"] == 512 * 64
    assert c["params"] == n + 512 * 64 + 2 * 2 * 64 + 64  # + RMSNorm gains = 158016
    # PaLM appendix B: 6N + 12 L H Q T = 749568 + 12*2*4*16*64
    assert c["attention_flops_per_token"] == 98304
    assert c["flops_per_token"] == 6 * 124928 + 98304 == 847872
    # the old 6 x all parameters was 11.8 % above this (and 18.7 % above Kaplan's one-matmul attention term)
    assert 6 * c["params"] / c["flops_per_token"] == pytest.approx(1.1182, abs=1e-4)


def test_flops_per_token_agree_with_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from greenbench.workloads.training import TrainingSession

    s = TrainingSession(P.loads(SMALL), peak_probe_s=0.01)
    cost = s.cost()
    assert cost["params"] == s.params == sum(p.numel() for p in s.model.parameters())
    with FlopCounterMode(display=False) as fc:
        s.steps(1)
    tokens = s.batch_size * s.seq_len
    counted = fc.get_total_flops() / tokens  # matmuls, forward and backward (attention kernels may be uncounted)
    assert counted > 0 and torch.is_tensor(s.data)
    # Our count and torch's agree up to the attention term (which torch's CPU SDPA kernel does not report) ...
    assert abs(counted - cost["flops_per_token"]) <= cost["attention_flops_per_token"] * (1 + 1e-9)
    # ... and 6 x non-embedding weights is exactly what the matmuls do, while 6 x all parameters is not.
    assert counted >= 6 * cost["non_embedding_params"] * (1 - 1e-9)
    assert abs(counted - 6 * cost["params"]) > cost["attention_flops_per_token"]


def test_loss_before_the_first_step_is_about_ln_vocab():
    pytest.importorskip("torch")
    from greenbench.workloads.training import TrainingSession

    s = TrainingSession(P.loads(SMALL), peak_probe_s=0.01)
    assert s.loss_before == pytest.approx(math.log(96), rel=0.1)  # near-uniform predictions at init
    first = s.steps(1)[0]
    assert first == pytest.approx(s.loss_before, rel=1e-5)  # the first step sees the same batch, same weights


def test_gpu_peak_table():
    h100 = peak.gpu_peak("NVIDIA H100 80GB HBM3", "bf16")
    assert h100["flops_per_s"] == 989.5e12 and h100["method"] == "datasheet" and "1,979" in h100["source"]
    assert peak.gpu_peak("NVIDIA H200", "bf16")["flops_per_s"] == 989.5e12
    assert peak.gpu_peak("NVIDIA H100 PCIe", "bf16")["flops_per_s"] == 756.5e12
    assert peak.gpu_peak("NVIDIA A100-SXM4-80GB", "bf16")["flops_per_s"] == 312e12
    assert peak.gpu_peak("NVIDIA A100-SXM4-80GB", "fp32")["flops_per_s"] == 19.5e12
    assert peak.gpu_model("NVIDIA L40S") == "L40S" and peak.gpu_model("NVIDIA L4") == "L4"
    assert peak.gpu_model("NVIDIA A10G") is None and peak.gpu_model("NVIDIA A10") == "A10"
    v100 = peak.gpu_peak("Tesla V100-SXM2-16GB", "bf16")
    assert v100["flops_per_s"] is None and "no bf16" in v100["note"]
    unknown = peak.gpu_peak("NVIDIA B200", "bf16")
    assert unknown["flops_per_s"] is None and "not in greenbench's datasheet table" in unknown["note"]


def test_mfu_arithmetic_and_cpu_probe():
    torch = pytest.importorskip("torch")
    assert peak.mfu(1000.0, 6e6, 1.2e10) == pytest.approx(0.5)
    assert peak.mfu(None, 6e6, 1e10) is None and peak.mfu(1.0, 6e6, None) is None
    p = peak.cpu_gemm_peak(torch, n=64, min_time_s=0.01)
    assert p["method"] == "measured" and p["flops_per_s"] > 0 and p["reps"] >= 3 and p["gemm_n"] == 64
    assert "torch.matmul" in p["source"]


def test_run_records_mfu_peak_and_loss_before():
    pytest.importorskip("torch")
    from greenbench.runner import run_profile

    doc = run_profile(P.loads(SMALL), meters=[StepMeter(steps={"package-0": 3.0})], measure_bandwidth=False)
    results.validate(doc)
    t, cost = doc["metrics"]["train"], doc["metrics"]["cost"]
    assert cost["flops_per_token"] == t["flops_per_token"] and cost["params"] > cost["non_embedding_params"]
    assert t["peak"]["method"] == "measured" and t["peak"]["flops_per_s"] > 0
    assert t["mfu"] == pytest.approx(t["tokens_per_s"] * cost["flops_per_token"] / t["peak"]["flops_per_s"])
    assert 0 < t["mfu"] < 1 and len(t["mfu_samples"]) == 2
    assert t["loss_before"] == pytest.approx(math.log(96), rel=0.1)
    assert doc["workload"]["model"]["peak_flops_per_s"] == t["peak"]["flops_per_s"]


def test_terminal_summary_shows_training_rows(capsys):
    from greenbench.cli import render

    doc = {
        "profile": {"name": "t"}, "backend": "cpu",
        "workload": {"kind": "training", "repeats_completed": 5, "tokens_per_repeat": 2560, "prompt_tokens": 64,
                     "new_tokens": 0},
        "metrics": {"train": {"j_per_token": 6.2e-4, "j_per_token_iqr": 1e-5, "tokens_per_s": 9500.0, "mfu": 0.054,
                              "loss_before": 6.365, "loss_first": 6.187, "loss_last": 5.971,
                              "peak": {"flops_per_s": 1.5e11, "method": "measured", "source": "GEMM probe"}}},
        "energy": {"method": "estimate", "meters": [], "total_j": 8.9},
        "carbon": {},
    }
    render.result_summary(doc)
    out = capsys.readouterr().out
    for text in ("train", "620 µJ", "9500.0", "5.4 %", "6.365", "6.187", "5.971", "150 GFLOP/s"):
        assert text in out, text


def test_builtin_training_profile_has_enough_repeats_for_the_gate():
    prof = P.load("llama-tiny-train")
    n = prof.run.repeats
    assert n >= 5
    # With n repeats per side, completely separated samples must reach p < 0.05 (Mann-Whitney U, the gate's test).
    _, p = stats.mann_whitney_u([1.0 + i for i in range(n)], [100.0 + i for i in range(n)])
    assert p < 0.05
    _, p3 = stats.mann_whitney_u([1.0, 2.0, 3.0], [100.0, 101.0, 102.0])
    assert p3 >= 0.05  # the old 3 repeats could never decide


def test_train_device_and_precision_are_validated():
    with pytest.raises(Exception) as ei:
        P.loads(SMALL.replace("lr = 0.01\n", 'lr = 0.01\ndevice = "tpu"\n'))
    assert "device" in str(ei.value)
    with pytest.raises(Exception):
        P.loads(SMALL.replace("lr = 0.01\n", 'lr = 0.01\nprecision = "fp8"\n'))
    # defaults leave the digest as it was before the keys existed
    assert "device" not in P.loads(SMALL).resolved()["train"]


@pytest.mark.gpu
def test_cuda_training_uses_the_datasheet_peak():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from greenbench.workloads.training import TrainingSession

    prof = P.loads(SMALL.replace("lr = 0.01\n", 'lr = 0.01\ndevice = "cuda"\nprecision = "bf16"\n'))
    s = TrainingSession(prof)
    assert s.peak["method"] == "datasheet"
    losses = s.steps(3)
    assert all(math.isfinite(x) for x in losses)
