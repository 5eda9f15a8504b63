"""Binary classification metrics from probabilities: one pure function for every stage."""

from __future__ import annotations

import numpy as np
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


INTERVAL_METRICS = ("auroc", "sensitivity", "specificity", "balanced_accuracy")
# The MHIST paper's measure of difficulty: how many of the 7 pathologists chose the majority label.
AGREEMENT_STRATA = {"unanimous": (0, 7), "5-6_of_7": (1, 2, 5, 6), "4_of_7": (3, 4)}


def bootstrap_intervals(
    probs: torch.Tensor,
    targets: torch.Tensor,
    threshold: float,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (images drawn with replacement, seeded) of ``INTERVAL_METRICS``.
    A draw with one class only has no AUROC and is left out of that metric's interval."""
    probs, targets = probs.detach().float().flatten().cpu(), targets.detach().long().flatten().cpu()
    if targets.numel() == 0:
        return {name: [float("nan"), float("nan")] for name in INTERVAL_METRICS}
    generator = torch.Generator().manual_seed(seed)
    draws = {name: [] for name in INTERVAL_METRICS}
    for _ in range(resamples):
        index = torch.randint(0, targets.numel(), (targets.numel(),), generator=generator)
        metrics = binary_metrics(probs[index], targets[index], threshold)
        for name in INTERVAL_METRICS:
            draws[name].append(metrics[name])
    tail = (1 - level) / 2 * 100
    return {
        name: [round(float(v), 6) for v in np.nanpercentile(values, [tail, 100 - tail])]
        if not np.isnan(values).all()
        else [float("nan"), float("nan")]
        for name, values in ((n, np.asarray(v, dtype=np.float64)) for n, v in draws.items())
    }


def metrics_by_agreement(
    probs: torch.Tensor, targets: torch.Tensor, votes: torch.Tensor, threshold: float
) -> dict[str, dict[str, float]]:
    """``binary_metrics`` per agreement stratum, each with its image count."""
    votes = votes.detach().long().flatten().cpu()
    strata = {}
    for name, members in AGREEMENT_STRATA.items():
        mask = torch.isin(votes, torch.tensor(members))
        strata[name] = {"images": float(mask.sum()), **binary_metrics(probs[mask], targets[mask], threshold)}
    return strata
