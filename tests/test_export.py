"""ONNX export: contract shape, dynamic batch, metadata round trip, parity failure, int8 gate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from training import onnx_export as ox
from training.networks import MlpClassifier, TimmClassifier


@pytest.fixture(scope="module")
def vit_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, model_kwargs={"depth": 1}).eval()
    return net, ox.export_onnx(net, tmp_path_factory.mktemp("onnx") / "model.onnx", 224)


def test_graph_has_the_contract_names_and_a_dynamic_batch(vit_onnx) -> None:
    net, path = vit_onnx
    sess = ox.session(path)
    (image,), (probability,) = sess.get_inputs(), sess.get_outputs()
    assert (image.name, image.type, image.shape[1:]) == ("image", "tensor(float)", [3, 224, 224])
    assert (probability.name, len(probability.shape)) == ("probability", 1)
    assert isinstance(image.shape[0], str)
    for batch in (1, 7):  # neither is the traced batch of 2
        images = torch.randn(batch, 3, 224, 224)
        got = ox.run_onnx(sess, images.numpy())
        with torch.no_grad():
            expected = torch.sigmoid(net(images)).numpy()
        assert got.shape == (batch,)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert path.stat().st_mode & 0o044 == 0o044  # readable by the serving user


def test_metadata_round_trips(vit_onnx, tmp_path: Path) -> None:
    _, path = vit_onnx
    target = tmp_path / "model.onnx"
    target.write_bytes(path.read_bytes())
    metadata = ox.base_metadata(
        model_name="vit_tiny_patch16_224",
        threshold=0.4321,
        mean=(0.1, 0.2, 0.3),
        std=(0.4, 0.5, 0.6),
        input_size=224,
        interpolation="bicubic",
        run_id="abc123",
        metrics={"val": {"auroc": 0.91}, "test": {"auroc": 0.88}},
    )
    ox.write_metadata(target, metadata)
    read = ox.read_metadata(target)
    expected_keys = {"model_name", "threshold", "mean", "std", "input_size", "interpolation", "positive_class"}
    assert expected_keys | {"mlflow_run_id", "created_at", "metrics"} <= read.keys()
    assert float(read["threshold"]) == pytest.approx(0.4321)
    assert json.loads(read["mean"]) == [0.1, 0.2, 0.3]
    assert json.loads(read["input_size"]) == [3, 224, 224]
    assert (read["positive_class"], read["negative_class"], read["mlflow_run_id"]) == ("SSA", "HP", "abc123")
    assert json.loads(read["metrics"])["test"]["auroc"] == 0.88
    ox.write_metadata(target, {"model_name": "replaced"})
    assert ox.read_metadata(target) == {"model_name": "replaced"}


def test_a_deliberately_altered_model_fails_the_parity_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = MlpClassifier(input_size=32, hidden_sizes=(16,)).eval()
    path = ox.export_onnx(net, tmp_path / "model.onnx", 32)
    images = torch.randn(20, 3, 32, 32)
    with torch.no_grad():
        reference = torch.sigmoid(net(images)).numpy()
    assert ox.check_parity(reference, ox.run_onnx(ox.session(path), images.numpy()), 0.5) < 1e-5

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    largest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(largest) * 1.5, largest.name))
    onnx.save(model, str(path))
    altered = ox.run_onnx(ox.session(path), images.numpy())
    with pytest.raises(ox.ExportParityError, match=r"max \|probability difference\| .* \(allowed 0.0001\)"):
        ox.check_parity(reference, altered, 0.5)


def test_one_flipped_label_fails_parity_even_within_tolerance() -> None:
    with pytest.raises(ox.ExportParityError, match="1 label\\(s\\) differ at threshold 0.5000"):
        ox.check_parity(np.array([0.49999, 0.2]), np.array([0.50001, 0.2]), 0.5)


TARGETS = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 25)
FP32 = np.linspace(0.01, 0.99, TARGETS.size) * 0.5 + TARGETS * 0.4


def test_int8_that_matches_is_servable() -> None:
    verdict = ox.judge_int8(FP32, FP32 + 1e-4, TARGETS, 0.5)
    assert verdict["servable"] is True
    assert verdict["label_agreement"] == 1.0
    assert verdict["auroc_drop"] == pytest.approx(0.0, abs=1e-9)


def test_int8_that_flips_labels_is_not_servable() -> None:
    int8 = FP32.copy()
    near = np.argsort(np.abs(FP32 - 0.5))[:4]  # 4 of 200 = 98% agreement
    int8[near] = 1 - int8[near]
    verdict = ox.judge_int8(FP32, int8, TARGETS, 0.5)
    assert verdict["label_agreement"] == pytest.approx(0.98)
    assert verdict["servable"] is False


def test_int8_that_loses_auroc_is_not_servable() -> None:
    rng = np.random.default_rng(0)
    int8 = np.clip(FP32 + rng.normal(0, 0.2, FP32.size), 0, 1)
    verdict = ox.judge_int8(FP32, int8, TARGETS, 0.5)
    assert verdict["auroc_drop"] > 0.005
    assert verdict["servable"] is False


def test_static_int8_quantizes_the_classifier_and_leaves_the_guard_float(tmp_path: Path, caplog) -> None:
    """Per-channel weights and fixed activation scales on the weight MatMuls that ``probability`` needs;
    the guard's whitening MatMul, attention's activation products and the patch Conv stay float32.
    With scales fixed at export, the graph itself gives an image the same answer in any batch (dynamic
    quantization moved a demo image's answer by up to 0.0055 in a batch of 16)."""
    from training.ood import fit_reference

    rng = np.random.default_rng(0)
    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, model_kwargs={"depth": 2}).eval()
    guard = fit_reference(rng.normal(size=(40, 192)), np.r_[np.zeros(20), np.ones(20)])
    path = ox.export_onnx(net, tmp_path / "model.onnx", 224, ood=guard)
    calibration = [rng.normal(size=(4, 3, 224, 224)).astype(np.float32) for _ in range(2)]
    with caplog.at_level(logging.INFO):
        int8 = ox.quantize_int8(path, tmp_path / "model.int8.onnx", calibration)
    assert not [r.getMessage() for r in caplog.records if "pre-processing" in r.getMessage()]
    assert not logging.getLogger().filters  # the silencing ends with the call

    graph = onnx.load(str(int8)).graph
    dequantized = "_DequantizeLinear_Output"
    quantized = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1].endswith(dequantized)]
    weights = {i.name: i for i in graph.initializer}
    assert len(quantized) == 2 * 4 + 1  # qkv, projection, fc1, fc2 per block; the head is a Gemm or MatMul
    assert not {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"} & {n.op_type for n in graph.node}
    for node in quantized:  # one scale per output channel of each weight
        dequantize = next(n for n in graph.node if n.output[0] == node.input[1])
        weight, scale = (numpy_helper.to_array(weights[name]) for name in dequantize.input[:2])
        axis = next(a.i for a in dequantize.attribute if a.name == "axis")
        assert scale.shape == (weight.shape[axis],)
    float_matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    whitening = numpy_helper.to_array(weights[float_matmuls[0].input[1]]) if float_matmuls else None
    np.testing.assert_array_equal(whitening, guard.whitening.numpy())  # the guard's MatMul, untouched

    sess = ox.session(int8)
    images = rng.normal(size=(6, 3, 224, 224)).astype(np.float32)
    together = sess.run(None, {"image": images})
    alone = [sess.run(None, {"image": images[i : i + 1]}) for i in range(6)]
    for k, output in enumerate(together):
        assert np.max(np.abs(output - np.concatenate([a[k] for a in alone]))) <= 1e-6
    reference = ox.session(path).run(None, {"image": images})
    assert np.max(np.abs(together[0] - reference[0])) < 0.05  # quantized, close
    assert int8.stat().st_size < path.stat().st_size


def test_a_vit_exports_its_attention_rollout_beside_the_guard(tmp_path: Path) -> None:
    """The third output is the class token's attention rolled out through the blocks (Abnar and
    Zuidema, 2020), read from timm's own attention matrices; an MLP has none and is explained by occlusion."""
    from training.ood import fit_reference

    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, model_kwargs={"depth": 2}).eval()
    rng = np.random.default_rng(0)
    guard = fit_reference(rng.normal(size=(40, 192)), np.r_[np.zeros(20), np.ones(20)])
    path = ox.export_onnx(net, tmp_path / "model.onnx", 224, ood=guard)
    sess = ox.session(path)
    assert [o.name for o in sess.get_outputs()] == ["probability", "ood_score", "attention_rollout"]
    images = rng.normal(size=(3, 3, 224, 224)).astype(np.float32)
    probability, _, rollout = sess.run(None, {"image": images})
    with torch.no_grad():
        expected = ox.ProbabilityModel(net, ood=guard)(torch.as_tensor(images))
        np.testing.assert_allclose(probability, torch.sigmoid(net(torch.as_tensor(images))).numpy(), atol=1e-5)
    assert rollout.shape == (3, 14, 14)
    np.testing.assert_allclose(rollout, expected[2].numpy(), atol=1e-6)
    np.testing.assert_allclose(rollout.sum(axis=(1, 2)), 1.0, atol=1e-5)
    mlp = ox.export_onnx(
        MlpClassifier(32, hidden_sizes=(8,)),
        tmp_path / "mlp.onnx",
        32,
        ood=fit_reference(rng.normal(size=(20, 8)), np.r_[np.zeros(10), np.ones(10)]),
    )
    assert [o.name for o in ox.session(mlp).get_outputs()] == ["probability", "ood_score"]
