"""Binary classification metrics from probabilities: one pure function for every stage."""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_confusion_matrix,
    binary_matthews_corrcoef,
)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0


def binary_metrics(probs: torch.Tensor, targets: torch.Tensor, threshold: float) -> dict[str, float]:
    """AUROC and average precision from the probabilities; the rest at ``probs >= threshold``."""
    probs = probs.detach().float().flatten().cpu()
    targets = targets.detach().long().flatten().cpu()
    labels = (probs >= threshold).long()
    (tn, fp), (fn, tp) = binary_confusion_matrix(labels, targets, threshold=0.5)
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    precision = _ratio(tp, tp + fp)
    both_classes = 0 < int(targets.sum()) < targets.numel()
    return {
        "auroc": float(binary_auroc(probs, targets)) if both_classes else float("nan"),
        "average_precision": float(binary_average_precision(probs, targets)) if both_classes else float("nan"),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": _ratio(torch.tensor(2 * precision * sensitivity), torch.tensor(precision + sensitivity)),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "mcc": float(binary_matthews_corrcoef(labels, targets, threshold=0.5)),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
    }
