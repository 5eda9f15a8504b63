"""After a fit: export the chosen checkpoint, prove it, judge int8, plot, and log it all to MLflow.

Everything here runs on the exported files, so the metrics in the card and the plots describe
the artifact serving will load, not the PyTorch model it came from.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader

from training import onnx_export as ox
from training import plots
from training.classifier import MhistClassifier
from training.datamodule import MhistDataModule
from training.metrics import binary_metrics

log = logging.getLogger(__name__)


def _probabilities(
    loader: DataLoader, sessions: dict[str, Any], net: torch.nn.Module | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Probabilities from each ONNX session (and the PyTorch net, when given) on one pass."""
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in [*sessions, *(["torch"] if net else [])]}
    targets = []
    for images, labels in loader:
        batch = images.float().numpy()
        for name, sess in sessions.items():
            outputs[name].append(ox.run_onnx(sess, batch))
        if net is not None:
            with torch.no_grad():
                outputs["torch"].append(torch.sigmoid(net(images.float())).numpy())
        targets.append(labels.numpy())
    return {k: np.concatenate(v) for k, v in outputs.items()}, np.concatenate(targets)


def export_checkpoint(
    module: MhistClassifier, data: MhistDataModule, out_dir: Path, *, run_id: str | None
) -> dict[str, Any]:
    """Write ``model.onnx``, ``model.int8.onnx``, ``card.json`` and the plots under ``out_dir``."""
    data.setup("fit")
    model_dir, plot_dir = out_dir / "model", out_dir / "plots"
    net = copy.deepcopy(module.net).cpu().float().eval()
    threshold = float(module.decision_threshold)
    size = int(data.hparams.input_size)
    fp32_path = ox.export_onnx(net, model_dir / "model.onnx", size)
    int8_path = ox.quantize_int8(fp32_path, model_dir / "model.int8.onnx")
    sessions = {"fp32": ox.session(fp32_path), "int8": ox.session(int8_path)}

    val, val_targets = _probabilities(data.val_dataloader(), sessions, net)
    parity = ox.check_parity(val["torch"], val["fp32"], threshold)
    int8 = ox.judge_int8(val["fp32"], val["int8"], val_targets, threshold)
    test, test_targets = _probabilities(data.test_dataloader(), {"fp32": sessions["fp32"]})
    metrics = {
        "val": binary_metrics(torch.as_tensor(val["fp32"]), torch.as_tensor(val_targets), threshold),
        "test": binary_metrics(torch.as_tensor(test["fp32"]), torch.as_tensor(test_targets), threshold),
    }
    metadata = ox.base_metadata(
        model_name=module.model_name,
        threshold=threshold,
        mean=module.mean.tolist(),
        std=module.std.tolist(),
        input_size=size,
        run_id=run_id,
        metrics=metrics,
    )
    fp32_meta = {**metadata, "precision": "fp32", "servable": "true", "parity_max_abs_diff": f"{parity:.3g}"}
    int8_meta = {
        **metadata,
        "precision": "int8",
        "quantization": "dynamic int8, MatMul/Gemm weights",
        "int8_auroc_drop": f"{int8['auroc_drop']:.6f}",
        "int8_label_agreement": f"{int8['label_agreement']:.6f}",
        "servable": "true" if int8["servable"] else "false",
    }
    ox.write_metadata(fp32_path, fp32_meta)
    ox.write_metadata(int8_path, int8_meta)
    card = {
        **metadata,
        "threshold": threshold,
        "parity": {"max_abs_diff": parity, "allowed": ox.PARITY_ATOL, "images": int(val_targets.size)},
        "int8": int8,
        "files": {p.name: {"bytes": p.stat().st_size} for p in (fp32_path, int8_path)},
    }
    (model_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")

    name = module.model_name
    splits = {"validation": (val["fp32"], val_targets), "test": (test["fp32"], test_targets)}
    plots.curves(splits, threshold, f"{name}: ROC and precision-recall (exported model)", plot_dir / "curves.png")
    plots.confusion_matrix(test["fp32"], test_targets, threshold, f"{name}: test", plot_dir / "confusion_test.png")
    images, labels = next(iter(DataLoader(data.train_set, batch_size=16, shuffle=True)))
    mean, std = data.normalization
    plots.image_grid(images, labels.tolist(), mean, std, plot_dir / "augmented_train.png")
    log.info(
        "exported %s: parity %.2g, int8 AUROC drop %.4f, servable %s",
        name,
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
    """ONNX files, card and plots as run artifacts; int8 judgement as metrics; LR schedule plot."""
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in client.get_run(run_id).data.metrics
        if key.startswith("lr-")
    }
    if history:
        plots.lr_schedule(history, out_dir / "plots" / "lr_schedule.png")
    client.log_artifacts(run_id, str(out_dir / "model"), "model")
    client.log_artifacts(run_id, str(out_dir / "plots"), "plots")
    for key in ("auroc_drop", "label_agreement"):
        client.log_metric(run_id, f"int8/{key}", card["int8"][key])
    client.log_metric(run_id, "int8/servable", float(card["int8"]["servable"]))
    client.log_metric(run_id, "export/parity_max_abs_diff", card["parity"]["max_abs_diff"])
