"""After a fit: export the chosen checkpoint, prove it, judge int8, plot, and log it all to MLflow.

Everything here runs on the exported files, so the metrics in the card and the plots describe
the artifact serving will load, not the PyTorch model it came from.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from inference.explain import explain
from inference.metrics import INTERVAL_METRICS, binary_metrics, bootstrap_intervals, metrics_by_agreement
from inference.predictor import STATIC_INT8, Predictor
from inference.store_files import CARD_FILE, MODEL_FILES
from training import calibration, cards, ood, plots
from training import onnx_export as ox
from training.classifier import MhistClassifier
from training.datamodule import MhistDataModule

log = logging.getLogger(__name__)
CALIBRATION_IMAGES = 64  # training images that set int8's activation scales


def _outputs(
    loader: DataLoader, sessions: dict[str, Any], net: torch.nn.Module | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """On one pass: each ONNX session's probabilities (as its name) and OOD scores (``<name>_ood``), and
    the PyTorch net's ``logits`` and penultimate ``features`` when it is given."""
    outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    targets = []
    for images, labels in loader:
        batch = images.float().numpy()
        for name, sess in sessions.items():
            probability, ood_score = sess.run(["probability", "ood_score"], {"image": batch})
            outputs[name].append(probability)
            outputs[f"{name}_ood"].append(ood_score)
        if net is not None:
            with torch.no_grad():
                features = net.features(images.float()).flatten(1)
                outputs["logits"].append(net.head(features).squeeze(-1).double().numpy())
                outputs["features"].append(features.double().numpy())
        targets.append(labels.numpy())
    return {k: np.concatenate(v) for k, v in outputs.items()}, np.concatenate(targets)


def _calibration_images(dataset: Dataset, limit: int = CALIBRATION_IMAGES) -> Iterator[np.ndarray]:
    """A seeded sample of ``limit`` images of ``dataset`` as float32 batches, for int8's activation
    scales. onnxruntime keeps every calibration image's tensors until the end (about 50 MB an image on
    ViT-B: its ``CalibMaxIntermediateOutputs`` drops data in 1.32), hence a sample, not the split."""
    chosen = np.random.default_rng(0).permutation(len(dataset))[:limit]
    for start in range(0, len(chosen), 16):
        yield torch.stack([dataset[int(i)][0] for i in chosen[start : start + 16]]).float().numpy()


def _metrics(probs: np.ndarray, targets: np.ndarray, threshold: float) -> dict[str, float]:
    return binary_metrics(probs, targets, threshold)


def _calibration(
    logits: dict[str, np.ndarray], targets: dict[str, np.ndarray], temperature: float, bias: float
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """ECE and log loss before and after calibration, and the reliability tables, per split."""
    ece: dict[str, dict[str, float]] = {}
    loss: dict[str, dict[str, float]] = {}
    tables: dict[str, dict[str, Any]] = {}
    for split, raw in logits.items():
        stages = {"before": calibration.sigmoid(raw), "after": calibration.calibrated(raw, temperature, bias)}
        y = targets[split]
        ece[split] = {k: round(calibration.expected_calibration_error(p, y), 6) for k, p in stages.items()}
        loss[split] = {k: round(calibration.log_loss(p, y), 6) for k, p in stages.items()}
        tables[split] = {k: calibration.reliability(p, y) for k, p in stages.items()}
    summary = {"method": "temperature and bias (Platt scaling of the logit), fitted on validation"}
    summary |= {"temperature": round(temperature, 6), "bias": round(bias, 6), "bins": calibration.ECE_BINS}
    return {**summary, "ece": ece, "log_loss": loss}, tables


def _example_heatmaps(
    predictor: Predictor,
    data: MhistDataModule,
    probs: np.ndarray,
    targets: np.ndarray,
    threshold: float,
    per_case: int = 2,
) -> list[tuple[str, Image.Image]]:
    """``/explain``'s overlays, as serving computes them, for a few test images of each class, right and wrong."""
    records, examples = data.test_set.records, []
    for truth in (1, 0):
        for correct in (True, False):
            chosen = [
                i for i in range(len(records)) if targets[i] == truth and ((probs[i] >= threshold) == truth) == correct
            ]
            for i in chosen[:per_case]:
                answer = explain(predictor, (data.root / "images" / records[i].image).read_bytes())
                overlay = Image.open(io.BytesIO(base64.b64decode(answer["explanation"]["overlay_png"])))
                verdict = "right" if correct else "wrong"
                examples.append((f"{records[i].class_name}, {verdict}: P(SSA) {answer['probability']:.2f}", overlay))
    return examples


def export_checkpoint(
    module: MhistClassifier, data: MhistDataModule, out_dir: Path, *, run_id: str | None
) -> dict[str, Any]:
    """Calibrate, then write ``model.onnx``, ``model.int8.onnx``, ``card.json`` and the plots under ``out_dir``.

    The calibration is fitted on the validation logits and goes into the graph; the threshold is
    tuned again on the calibrated validation probabilities (the same labels, a calibrated number)."""
    data.setup("fit")
    model_dir, plot_dir = out_dir / "model", out_dir / "plots"
    net = copy.deepcopy(module.net).cpu().float().eval()
    size = data.input_size
    reference, reference_targets = _outputs(data.reference_dataloader(), {}, net)
    guard = ood.fit_reference(reference["features"], reference_targets)
    raw_val, val_targets = _outputs(data.val_dataloader(), {}, net)
    temperature, bias = calibration.fit_calibration(raw_val["logits"], val_targets)
    calibrated_val = calibration.calibrated(raw_val["logits"], temperature, bias)
    threshold = module.tune_threshold(calibrated_val, val_targets)
    fp32_path = ox.export_onnx(net, model_dir / MODEL_FILES["fp32"], size, calibration=(temperature, bias), ood=guard)
    scales_from = _calibration_images(data.reference_dataloader().dataset)
    int8_path = ox.quantize_int8(fp32_path, model_dir / MODEL_FILES["int8"], scales_from)
    sessions = {"fp32": ox.session(fp32_path), "int8": ox.session(int8_path)}

    val, _ = _outputs(data.val_dataloader(), sessions)
    parity = ox.check_parity(calibrated_val, val["fp32"], threshold)
    int8 = ox.judge_int8(val["fp32"], val["int8"], val_targets, threshold)
    test, test_targets = _outputs(data.test_dataloader(), {"fp32": sessions["fp32"]}, net)
    test_votes = np.array([r.annotators_ssa for r in data.test_set.records])
    calibrated, reliability_tables = _calibration(
        {"validation": raw_val["logits"], "test": test["logits"]},
        {"validation": val_targets, "test": test_targets},
        temperature,
        bias,
    )
    metrics = {
        "val": _metrics(val["fp32"], val_targets, threshold),
        "test": _metrics(test["fp32"], test_targets, threshold),
    }
    metadata = ox.base_metadata(
        model_name=module.model_name,
        threshold=threshold,
        mean=module.mean.tolist(),
        std=module.std.tolist(),
        input_size=size,
        interpolation=data.interpolation,
        run_id=run_id,
        metrics=metrics,
    )
    metadata["calibration"] = {k: calibrated[k] for k in ("temperature", "bias")}
    cutoffs = {name: f"{ood.cutoff(val[f'{name}_ood']):.6g}" for name in sessions}  # each file on its own scores
    fp32_meta = {**metadata, "precision": "fp32", "servable": "true", "parity_max_abs_diff": f"{parity:.3g}"}
    fp32_meta["ood_cutoff"] = cutoffs["fp32"]
    fp32_record, int8_record = ox.probe_records(fp32_path, (fp32_path, int8_path), size)
    fp32_meta |= fp32_record
    int8_meta = {
        **metadata,
        "ood_cutoff": cutoffs["int8"],
        "precision": "int8",
        "quantization": STATIC_INT8,
        "int8_auroc_drop": f"{int8['auroc_drop']:.6f}",
        "int8_label_agreement": f"{int8['label_agreement']:.6f}",
        "servable": "true" if int8["servable"] else "false",
        **int8_record,
    }
    ox.write_metadata(fp32_path, fp32_meta)
    ox.write_metadata(int8_path, int8_meta)
    served = Predictor.load(fp32_path)  # serving's own code, for the guard's rates and the heatmaps
    guard_rates = ood.measure_guard(
        served, [(data.root / "images" / r.image).read_bytes() for r in data.test_set.records]
    )
    card = {
        **metadata,
        **cards.description(data),
        "threshold": threshold,
        "metrics_at": f"the threshold {threshold:.4f} tuned on validation ({module.hparams.threshold_strategy})",
        "intervals_95": {"test": bootstrap_intervals(test["fp32"], test_targets, threshold)},
        "test_by_agreement": metrics_by_agreement(test["fp32"], test_targets, test_votes, threshold),
        "calibration": calibrated,
        "out_of_distribution": guard_rates,
        "parity": {"max_abs_diff": parity, "allowed": ox.PARITY_ATOL, "images": int(val_targets.size)},
        "int8": int8,
    }
    card = cards.finite(card)
    summary = cards.summary(card)  # what /metadata serves: the card, less its long tables
    ox.write_metadata(fp32_path, {**fp32_meta, "card": summary})
    ox.write_metadata(int8_path, {**int8_meta, "card": summary})
    card["files"] = {p.name: {"bytes": p.stat().st_size} for p in (fp32_path, int8_path)}
    (model_dir / CARD_FILE).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")

    name = module.model_name
    splits = {"validation": (val["fp32"], val_targets), "test": (test["fp32"], test_targets)}
    plots.curves(splits, threshold, f"{name}: ROC and precision-recall (exported model)", plot_dir / "curves.png")
    plots.confusion_matrix(test["fp32"], test_targets, threshold, f"{name}: test", plot_dir / "confusion_test.png")
    title = f"{name}: reliability, calibrated by temperature {temperature:.3f} and bias {bias:.3f}"
    plots.reliability(reliability_tables, calibrated["ece"], title, plot_dir / "reliability.png")
    images, labels = next(iter(DataLoader(data.train_set, batch_size=16, shuffle=True)))
    mean, std = data.normalization
    plots.image_grid(images, labels.tolist(), mean, std, plot_dir / "augmented_train.png")
    examples = _example_heatmaps(served, data, test["fp32"], test_targets, threshold)
    plots.heatmaps(examples, f"{name}: where test answers came from (/explain)", plot_dir / "heatmaps_test.png")
    log.info(
        "exported %s: calibration T %.3f b %.3f, OOD false alarms %s on test and detection %.2f, parity %.2g, "
        "int8 AUROC drop %.4f, servable %s",
        name,
        temperature,
        bias,
        guard_rates["test_false_alarm_rate"],
        guard_rates["detection_rate"],
        parity,
        int8["auroc_drop"],
        int8["servable"],
    )
    return card


def register(client: MlflowClient, run_id: str, name: str) -> str:
    """Optional: a model-registry version whose source is the run's ``model/`` artifacts.

    The run's artifacts stay the primary record (the seeds' author preferred them); the registry
    only adds a name and a version number on top.
    """
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="MHIST HP-vs-SSA classifier (ONNX fp32 + int8)")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source=source, run_id=run_id)
    return version.version


def log_export(client: MlflowClient, run_id: str, out_dir: Path, card: dict[str, Any]) -> None:
    """ONNX files, card and plots as run artifacts; the card's figures (int8 gate, calibration,
    intervals, agreement strata) as metrics, in one call; LR schedule plot."""
    timestamp_ms = int(time.time() * 1000)
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in client.get_run(run_id).data.metrics
        if key.startswith("lr-")
    }
    if history:
        plots.lr_schedule(history, out_dir / "plots" / "lr_schedule.png")
    client.log_artifacts(run_id, str(out_dir / "model"), "model")
    client.log_artifacts(run_id, str(out_dir / "plots"), "plots")
    figures = {f"int8/{key}": card["int8"][key] for key in ("auroc_drop", "label_agreement")}
    figures |= {"int8/servable": float(card["int8"]["servable"]), "export/threshold": card["threshold"]}
    figures["export/parity_max_abs_diff"] = card["parity"]["max_abs_diff"]
    figures |= {f"calibration/{k}": card["calibration"][k] for k in ("temperature", "bias")}
    for measure in ("ece", "log_loss"):
        for split, stages in card["calibration"][measure].items():
            figures |= {f"calibration/{split}_{measure}_{stage}": value for stage, value in stages.items()}
    for name, (low, high) in card["intervals_95"]["test"].items():
        figures |= {f"test_ci95/{name}_low": low, f"test_ci95/{name}_high": high}
    guard = card["out_of_distribution"]
    figures |= {f"ood/{k}": guard[k] for k in ("cutoff", "test_false_alarm_rate", "detection_rate")}
    figures |= {f"ood/detection_{source}": d["detected"] for source, d in guard["detection_by_source"].items()}
    for stratum, metrics in card["test_by_agreement"].items():
        figures |= {f"test_agreement/{stratum}/{k}": metrics[k] for k in ("images", *INTERVAL_METRICS)}
    metrics = [Metric(k, float(v), timestamp_ms, 0) for k, v in figures.items() if v is not None]  # None: undefined
    client.log_batch(run_id, metrics=metrics)
