"""optical-sim precision model: which matmuls are perturbed, by how much, and the agreement arithmetic."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from greenbench.backends.sim import noise
from greenbench.errors import BackendError
from greenbench.models.cache import ensure_model
from greenbench.models.config import LlamaConfig

TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=176, vocab=512, max_seq_len=64)


def tiny_dir(**over):
    return ensure_model(LlamaConfig(**{**TINY, **over}))


@pytest.mark.parametrize("over", [{}, {"graph": "standard"}, {"dtype": "int4"}])
def test_weight_matmuls_of_generated_models(over):
    m = noise.load_graph(tiny_dir(**over) / "model.onnx")
    mats = noise.weight_matmuls(m)
    H, hd, F, V = 64, 16, 176, 512
    per_layer = [(H, (4 + 2 * 2) * hd), (4 * hd, H), (H, F), (H, F), (F, H)]
    if over.get("graph") == "standard":  # separate q, k, v projections
        per_layer = [(H, 4 * hd), (H, 2 * hd), (H, 2 * hd), (4 * hd, H), (H, F), (H, F), (F, H)]
    got = sorted((w.k, w.n) for w in mats)
    assert got == sorted(per_layer * 2 + [(H, V)])  # attention's QK/PV matmuls have no constant weight
    ops = {n.name: n.op_type for n in m.graph.node}
    assert {ops[w.node] for w in mats} == ({"MatMulNBits"} if over.get("dtype") == "int4" else {"MatMul"})


def test_gemm_trans_b_and_non_constant_matmuls():
    w = numpy_helper.from_array(np.zeros((8, 4), np.float32), "W")  # transB: N=8, K=4
    w2 = numpy_helper.from_array(np.zeros((4, 3), np.float32), "W2")
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm", transB=1),
         helper.make_node("MatMul", ["y", "z"], ["u"], name="dyn"),  # no constant weight: not perturbed
         helper.make_node("MatMul", ["x", "W2"], ["v"], name="mm")],
        "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("x", [2, 4]), ("z", [8, 5]))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("u", "v")], [w, w2])
    mats = noise.weight_matmuls(helper.make_model(g))
    assert [(m.node, m.k, m.n) for m in mats] == [("gemm", 4, 8), ("mm", 4, 3)]


def _single_matmul_model(opset: int, k=64, n=512):
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("enob", [4, 8])
def test_noise_is_an_ideal_converters_of_each_rows_full_scale(opset, enob):
    model = _single_matmul_model(opset)
    x = np.random.default_rng(2).standard_normal((400, 64)).astype(np.float32)
    exact = _run(model, x)
    assert noise.add_matmul_noise(model, enob, seed=3) == 1  # K = 64 <= any array: one partial sum
    noisy = _run(model, x)
    z = (noisy - exact) / np.abs(exact).max(axis=-1, keepdims=True) * 2.0**enob
    # an ideal B-bit converter over [-FS, FS]: LSB 2 FS 2^-B, noise LSB / sqrt(12) = FS 2^-B / sqrt(3)
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1 / np.sqrt(3), rel=0.02)  # 204,800 draws
    assert np.abs(noisy - exact).max() > 0


def test_noise_is_added_to_each_digitised_partial_sum():
    k, n, a, enob = 64, 512, 16, 5  # 4 row tiles of 16 on a 16 x 16 array
    model = _single_matmul_model(17, k, n)
    w = numpy_helper.to_array(model.graph.initializer[0])
    x = np.random.default_rng(4).standard_normal((300, k)).astype(np.float32)
    exact = _run(model, x)
    assert noise.add_matmul_noise(model, enob, seed=9, array_size=a) == 1
    ops = [nd.op_type for nd in model.graph.node]
    assert ops.count("MatMul") == 4 and ops.count("RandomNormalLike") == 4 and ops.count("Sum") == 1
    onnx.checker.check_model(model)
    noisy = _run(model, x)
    # each partial sum y_c = x[:, c] @ W[c] gets sigma_c = max|y_c| 2^-B / sqrt(3), independently
    parts = [x[:, c * a:(c + 1) * a] @ w[c * a:(c + 1) * a] for c in range(k // a)]
    assert np.allclose(sum(parts), exact, atol=1e-4)
    sigma = np.sqrt(sum((np.abs(y).max(axis=-1, keepdims=True) * 2.0**-enob / np.sqrt(3)) ** 2 for y in parts))
    z = (noisy - exact) / sigma
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, rel=0.02)  # 153,600 draws


def test_perturbed_session_keeps_external_weights_in_place(tmp_path):
    d = tiny_dir()
    files = sorted(p.name for p in d.iterdir())
    s = noise.perturbed_session(d / "model.onnx", enob=6, seed=0, threads=1)
    assert "input_ids" in [i.name for i in s.get_inputs()]
    assert sorted(p.name for p in d.iterdir()) == files  # nothing written next to the model


def test_a_graph_without_weight_matmuls_is_a_clean_error(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(g), tmp_path / "model.onnx")
    with pytest.raises(BackendError, match="no weight matmuls") as e:
        noise.perturbed_session(tmp_path / "model.onnx", 6, 0, 1)
    assert "measure_accuracy" in e.value.hint


class Scripted:
    """A session whose greedy choices are scripted: teacher-forced then free-running."""

    def __init__(self, forced, free):
        self.runs = [list(forced), list(free)]
        self.prompt_ids = [1]
        self.batch_size = 1
        self.fed = []

    def reset(self):
        self.cur = self.runs.pop(0)

    def prefill(self):
        return self.cur.pop(0)

    def decode(self, first, n):
        self.fed.append(first)
        return [self.cur.pop(0) for _ in range(n)]


def test_agreement_arithmetic():
    exact = [5, 6, 7, 8]
    s = Scripted(forced=[5, 0, 7, 8], free=[5, 6, 9, 9])
    r = noise.measure_agreement(exact, s)
    assert s.fed[:3] == [5, 6, 7]  # teacher forcing feeds the exact tokens
    assert r["token_agreement"] == 0.75
    assert r["free_running_agreement"] == 0.5 and r["first_divergence"] == 2
    assert r["perturbed_token_ids"] == [5, 6, 9, 9] and r["positions"] == 4
    assert r["kl_divergence"] is None  # no logits exposed


def test_kl_divergence_by_hand():
    p, q = np.log([0.5, 0.25, 0.25]), np.log([0.25, 0.5, 0.25])
    # KL = 0.5 ln 2 + 0.25 ln 0.5 + 0 = 0.25 ln 2
    assert noise.kl_divergence(p + 3.0, q - 1.0) == pytest.approx(0.25 * np.log(2))  # shift-invariant
    assert noise.kl_divergence(p, p) == 0.0


def test_over_seeds_mean_and_t_interval():
    runs = {0: ([5, 6, 7, 8], [5, 6, 7, 8]), 1: ([5, 0, 7, 8], [5, 6, 9, 9]), 2: ([5, 6, 0, 8], [0, 0, 0, 0])}
    r = noise.measure_over_seeds([5, 6, 7, 8], None, lambda seed: Scripted(*runs[seed]), [0, 1, 2])
    assert r["seeds"] == [0, 1, 2] and [s["seed"] for s in r["per_seed"]] == [0, 1, 2]
    forced = [1.0, 0.75, 0.75]
    m = sum(forced) / 3
    sd = np.std(forced, ddof=1)
    assert r["token_agreement"] == pytest.approx(m)
    assert r["token_agreement_ci95"] == pytest.approx([m - 4.303 * sd / np.sqrt(3), 1.0])  # t_0.975,2; clipped at 1
    assert r["free_running_agreement"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert r["free_running_agreement_ci95"][0] == 0.0  # clipped at 0
    assert r["kl_divergence"] is None and r["kl_divergence_ci95"] is None


def test_agreement_on_the_tiny_model_falls_with_fewer_bits():
    from greenbench.backends.ort import session_options
    from greenbench.models.loader import decoder_io, open_export_dir
    from greenbench.workloads.inference import DecoderSession
    import onnxruntime as ort

    exp = open_export_dir(tiny_dir(), source="generated")
    prompt = list(range(3, 19))

    def session(s):
        return DecoderSession(s, decoder_io(s.get_inputs(), s.get_outputs(), exp), prompt, max_new_tokens=16)

    exact = noise.greedy_tokens(
        session(ort.InferenceSession(str(exp.onnx_path), session_options(1), providers=["CPUExecutionProvider"])), 16)
    exact2, logits = noise.greedy_with_logits(
        session(ort.InferenceSession(str(exp.onnx_path), session_options(1), providers=["CPUExecutionProvider"])), 16)
    assert exact2 == exact and len(logits) == 16 and logits[0].shape == (512,)
    agree = {b: noise.measure_agreement(exact, session(noise.perturbed_session(exp.onnx_path, b, 0, 1, 32)), logits)
             for b in (1, 16)}
    assert agree[16]["token_agreement"] == 1.0 and agree[16]["first_divergence"] is None
    assert agree[1]["token_agreement"] < 0.5
    assert 0 <= agree[16]["kl_divergence"] < 1e-6 < agree[1]["kl_divergence"]


def test_unnamed_nodes_are_each_perturbed_once():
    import onnxruntime as ort

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("MatMul", ["a", "W"], ["b"])],  # no names
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 4])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert noise.add_matmul_noise(model, 2, 0) == 2
    assert sum(n.op_type == "RandomNormalLike" for n in model.graph.node) == 2
    onnx.checker.check_model(model)
    x = np.ones((3, 4), np.float32)
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert out.shape == (3, 4) and not np.allclose(out, x)
