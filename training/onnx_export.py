"""ONNX export with metadata, numerical parity checks, and a gated int8 variant.

The ONNX file is the only thing that crosses from training to serving (DESIGN.md): input
``image`` float32 ``[batch, 3, H, W]`` already normalized, output ``probability`` float32
``[batch]`` with the sigmoid inside the graph, and ``metadata_props`` that carry threshold,
normalization and metrics so nothing is configured twice.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

from inference.metrics import auroc
from inference.runtimes import probe_batch

OPSET = 18  # onnxruntime's CPU provider covers it fully
PARITY_ATOL = 1e-4
INT8_MAX_AUROC_DROP = 0.005
INT8_MIN_AGREEMENT = 0.99
POSITIVE_CLASS, NEGATIVE_CLASS = "SSA", "HP"


class ExportParityError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


def attention_dropouts(net: nn.Module) -> list[nn.Module]:
    """The attention-dropout module of each block of a timm ViT with a class token and explicit (not
    fused) attention: its input is the block's attention matrix. Empty for any other network."""
    backbone = getattr(net, "features", None)
    blocks = getattr(backbone, "blocks", None)
    if blocks is None or getattr(backbone, "cls_token", None) is None:
        return []
    attentions = [getattr(block, "attn", None) for block in blocks]
    if not all(hasattr(a, "attn_drop") and getattr(a, "fused_attn", True) is False for a in attentions):
        return []
    return [a.attn_drop for a in attentions]


def attention_rollout(attentions: list[torch.Tensor], prefix_tokens: int, grid: tuple[int, int]) -> torch.Tensor:
    """``[batch, *grid]``: the class token's attention to each patch through every layer (Abnar and
    Zuidema, 2020): heads averaged, the residual added as identity, rows renormalized, layers multiplied."""
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=attentions[0].dtype)
    rollout = None
    for attention in attentions:
        layer = 0.5 * attention.mean(dim=1) + 0.5 * identity
        layer = layer / layer.sum(dim=-1, keepdim=True)
        rollout = layer if rollout is None else layer @ rollout
    patches = rollout[:, 0, prefix_tokens:]
    return (patches / patches.sum(dim=-1, keepdim=True)).reshape(-1, *grid)


class ProbabilityModel(nn.Module):
    """Normalized image -> calibrated P(SSA): the calibration and the sigmoid go inside the graph. With
    an ``ood`` module (features -> score), a second output scores the penultimate features, and a ViT
    adds its attention rollout as a third; ``output_names`` lists them."""

    def __init__(
        self, net: nn.Module, temperature: float = 1.0, bias: float = 0.0, ood: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.net, self.ood = net, ood
        self.temperature, self.bias = float(temperature), float(bias)
        self.attention = attention_dropouts(net) if ood is not None else []

    @property
    def output_names(self) -> list[str]:
        if self.ood is None:
            return ["probability"]
        return ["probability", "ood_score", *(["attention_rollout"] if self.attention else [])]

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.ood is None:
            return torch.sigmoid(self.net(image) / self.temperature + self.bias)
        attentions: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, inputs, _out: attentions.append(inputs[0])) for m in self.attention]
        try:
            features = self.net.features(image).flatten(1)  # BinaryClassifier: features -> head
        finally:
            for hook in hooks:
                hook.remove()
        probability = torch.sigmoid(self.net.head(features).squeeze(-1) / self.temperature + self.bias)
        if not self.attention:
            return probability, self.ood(features)
        backbone = self.net.features
        rollout = attention_rollout(attentions, backbone.num_prefix_tokens, tuple(backbone.patch_embed.grid_size))
        return probability, self.ood(features), rollout


def _atomic_save(model: onnx.ModelProto, path: Path) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        onnx.save_model(model, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; serving reads as another user
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(sess: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    return sess.run(["probability"], {"image": images.astype(np.float32, copy=False)})[0]


def run_ood(sess: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    return sess.run(["ood_score"], {"image": images.astype(np.float32, copy=False)})[0]


def export_onnx(
    net: nn.Module,
    path: Path,
    input_size: int,
    *,
    calibration: tuple[float, float] = (1.0, 0.0),
    ood: nn.Module | None = None,
    trace_batch: int = 2,
) -> Path:
    """Export ``net`` (logits) as ``image -> probability`` (``sigmoid(logit / T + b)``, ``calibration``
    being ``(T, b)``), and ``ood_score`` when ``ood`` is given, with a dynamic batch axis.

    The graph is then run at another batch size: a known exporter pitfall fixes the batch size
    silently, and that must fail here, not in production.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    model = ProbabilityModel(net, *calibration, ood=ood).eval().cpu().float()
    example = torch.randn(trace_batch, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    tmp = path.with_suffix(".export.onnx")
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["image"],
            output_names=model.output_names,
            dynamic_shapes={"image": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    program.save(str(tmp))
    os.replace(tmp, path)
    probe = torch.randn(trace_batch + 3, 3, input_size, input_size)
    got = run_onnx(session(path), probe.numpy())
    with torch.no_grad():
        expected = model.net(probe).numpy()  # one value per image, as the probability must be
    if got.shape != expected.shape:
        raise ExportParityError(
            f"{path}: batch of {len(probe)} gave output shape {got.shape}, expected {expected.shape}"
        )
    return path


@contextmanager
def without_root_messages(prefix: str) -> Iterator[None]:
    """Drops the root logger's records whose message starts with ``prefix``, for the block only."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefix)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


class _Images(CalibrationDataReader):
    """onnxruntime's calibration feed: one ``image`` batch at a time."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"image": np.asarray(batch, dtype=np.float32)}


def classifier_weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """The MatMul/Gemm nodes with a constant weight that ``probability`` depends on. The guard's
    whitening MatMul and the rollout feed other outputs only, and attention's activation-by-activation
    products have no weight to quantize: those stay float32."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    producer = {out: node for node in model.graph.node for out in node.output}
    needed: set[str] = set()
    pending = ["probability"]
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.name not in needed:
            needed.add(node.name)
            pending.extend(node.input)
    return [
        node.name
        for node in model.graph.node
        if node.op_type in ("MatMul", "Gemm") and node.name in needed and node.input[1] in constants
    ]


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 (QDQ) of the classifier's weight MatMuls: weights per output channel, activation
    scales from ``calibration`` (normalized training images), so an image's answer does not depend on
    the other images in its run. MatMul outputs stay float: onnxruntime then runs each as one
    MatMulIntegerToFloat, and OpenVINO reads the same file as int8. The patch embedding's Conv stays
    float32 (measured: no faster as int8 on the CPU provider).

    onnxruntime advises its ``quant_pre_process`` first, on the root logger, in every fit. Measured
    on the ViT-B/16, it changes none of the quantized nodes and runs no faster, for seconds more per
    export, so the advice is silenced here rather than shown to every user.
    """
    nodes = classifier_weight_matmuls(onnx.load_model(str(fp32_path)))
    handle, tmp = tempfile.mkstemp(dir=int8_path.parent, suffix=".onnx")
    os.close(handle)
    try:
        with without_root_messages("Please consider"):
            quantize_static(
                fp32_path,
                tmp,
                _Images(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_quantize=nodes,
                extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]},
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, int8_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return int8_path


def probe_records(fp32_path: Path, paths: Sequence[Path], input_size: int) -> list[dict[str, object]]:
    """What serving judges each runtime by (``inference.runtimes``), one record per file of ``paths``: the
    fp32 file's probabilities on the probe batch, run once, and that file's largest distance from them
    here, in onnxruntime (0 for the fp32 file)."""
    probe = probe_batch(input_size)
    reference = run_onnx(session(fp32_path), probe)
    answers = [float(p) for p in reference]
    records: list[dict[str, object]] = []
    for path in paths:
        distance = 0.0 if path == fp32_path else float(np.max(np.abs(run_onnx(session(path), probe) - reference)))
        records.append({"probe_fp32": answers, "probe_distance": f"{distance:.6g}"})
    return records


def check_parity(reference: np.ndarray, exported: np.ndarray, threshold: float, *, atol: float = PARITY_ATOL) -> float:
    """Raise with the numbers unless probabilities agree within ``atol`` and labels agree exactly."""
    diff = float(np.max(np.abs(reference - exported))) if reference.size else 0.0
    flipped = int(np.sum((reference >= threshold) != (exported >= threshold)))
    if diff > atol or flipped:
        raise ExportParityError(
            f"ONNX and PyTorch disagree on {reference.size} validation images: max |probability difference| "
            f"{diff:.3g} (allowed {atol:g}), {flipped} label(s) differ at threshold {threshold:.4f}"
        )
    return diff


def judge_int8(
    fp32: np.ndarray,
    int8: np.ndarray,
    targets: np.ndarray,
    threshold: float,
    *,
    max_auroc_drop: float = INT8_MAX_AUROC_DROP,
    min_agreement: float = INT8_MIN_AGREEMENT,
) -> dict[str, float | bool]:
    """Servable only if AUROC drops by at most ``max_auroc_drop`` and labels agree on ``min_agreement``."""
    auroc_fp32, auroc_int8 = auroc(fp32, targets), auroc(int8, targets)
    agreement = float(np.mean((fp32 >= threshold) == (int8 >= threshold))) if fp32.size else 1.0
    drop = float(auroc_fp32 - auroc_int8)
    return {
        "auroc_fp32": float(auroc_fp32),
        "auroc_int8": float(auroc_int8),
        "auroc_drop": drop,
        "label_agreement": agreement,
        "servable": bool(drop <= max_auroc_drop and agreement >= min_agreement),
    }


def write_metadata(path: Path, metadata: Mapping[str, object]) -> None:
    """Replace the file's ``metadata_props``; non-string values are stored as JSON."""
    model = onnx.load_model(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    _atomic_save(model, path)


def read_metadata(path: Path) -> dict[str, str]:
    return dict(session(path).get_modelmeta().custom_metadata_map)


def base_metadata(
    *,
    model_name: str,
    threshold: float,
    mean: Iterable[float],
    std: Iterable[float],
    input_size: int,
    interpolation: str,
    run_id: str | None,
    metrics: Mapping[str, Mapping[str, float]],
) -> dict[str, object]:
    """DESIGN.md's metadata contract, in one place."""
    return {
        "model_name": model_name,
        "threshold": f"{threshold:.6f}",
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "input_size": [3, input_size, input_size],
        "interpolation": interpolation,
        "positive_class": POSITIVE_CLASS,
        "negative_class": NEGATIVE_CLASS,
        "mlflow_run_id": run_id or "",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": {split: {k: round(float(v), 6) for k, v in m.items()} for split, m in metrics.items()},
    }
