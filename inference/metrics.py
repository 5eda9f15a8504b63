"""Binary classification metrics from probabilities: the project's one implementation, in NumPy so
that training, the batch scorer and the front end's evaluation all use it without torch.

SSA is the positive class; an image is called SSA when ``probability >= threshold``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

INTERVAL_METRICS = ("auroc", "sensitivity", "specificity", "balanced_accuracy")
# The MHIST paper's measure of difficulty: how many of the 7 pathologists chose the majority label.
AGREEMENT_STRATA = {"unanimous": (0, 7), "5-6_of_7": (1, 2, 5, 6), "4_of_7": (3, 4)}


def _arrays(probabilities: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities, dtype=np.float64).ravel()
    labels = np.asarray(targets).ravel().astype(np.int64)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.size} probabilities but {labels.size} targets")
    return probs, labels


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0


def counts_at_each_score(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts when calling SSA every score >= each distinct score, highest score first."""
    order = np.argsort(-probs, kind="stable")
    sorted_probs, sorted_labels = probs[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_probs) != 0), sorted_probs.size - 1]
    tp = np.cumsum(sorted_labels)[last_of_each_score]
    fp = np.cumsum(1 - sorted_labels)[last_of_each_score]
    positives, negatives = int(labels.sum()), int(labels.size - labels.sum())
    return {"scores": sorted_probs[last_of_each_score], "tp": tp, "fp": fp, "fn": positives - tp, "tn": negatives - fp}


def roc_from_counts(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, sensitivity) from (0, 0) through each point of ``counts_at_each_score``."""
    tpr = np.r_[0, points["tp"] / np.maximum(points["tp"] + points["fn"], 1)]
    fpr = np.r_[0, points["fp"] / np.maximum(points["fp"] + points["tn"], 1)]
    return fpr, tpr


def precision_recall_from_counts(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) from (0, 1) through each point of ``counts_at_each_score``."""
    recall = np.r_[0, points["tp"] / np.maximum(points["tp"] + points["fn"], 1)]
    precision = np.r_[1, points["tp"] / np.maximum(points["tp"] + points["fp"], 1)]
    return recall, precision


def roc_curve(probabilities: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, sensitivity) from (0, 0) through every distinct score."""
    return roc_from_counts(counts_at_each_score(*_arrays(probabilities, targets)))


def precision_recall_curve(probabilities: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) from (0, 1) through every distinct score."""
    return precision_recall_from_counts(counts_at_each_score(*_arrays(probabilities, targets)))


def _areas(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(AUROC with ties counted half, average precision without interpolation) from one sort of the
    scores; both NaN without both classes."""
    if not 0 < labels.sum() < labels.size:
        return float("nan"), float("nan")
    points = counts_at_each_score(probs, labels)
    fpr, tpr = roc_from_counts(points)
    recall, precision = precision_recall_from_counts(points)
    return float(np.trapezoid(tpr, fpr)), float(np.sum(np.diff(recall) * precision[1:]))


def auroc(probabilities: ArrayLike, targets: ArrayLike) -> float:
    """The area under the ROC curve (ties count half); NaN without both classes."""
    return _areas(*_arrays(probabilities, targets))[0]


def average_precision(probabilities: ArrayLike, targets: ArrayLike) -> float:
    """Precision summed over each step of recall (no interpolation); NaN without both classes."""
    return _areas(*_arrays(probabilities, targets))[1]


def _mcc(tp: float, fp: float, tn: float, fn: float) -> float:
    """Matthews correlation; +1 when every call is right, -1 when every call is wrong, 0 when undefined."""
    if fp + fn == 0 and tp + tn > 0:
        return 1.0
    if tp + tn == 0 and fp + fn > 0:
        return -1.0
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def binary_metrics(probabilities: ArrayLike, targets: ArrayLike, threshold: float) -> dict[str, float]:
    """AUROC and average precision from the probabilities; the rest at ``probs >= threshold``."""
    probs, labels = _arrays(probabilities, targets)
    called = probs >= threshold
    tp = float(np.sum(called & (labels == 1)))
    fp = float(np.sum(called & (labels == 0)))
    fn = float(np.sum(~called & (labels == 1)))
    tn = float(np.sum(~called & (labels == 0)))
    sensitivity, specificity, precision = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
    area_roc, area_pr = _areas(probs, labels)  # the bootstrap's hot path: the scores sorted once
    return {
        "auroc": area_roc,
        "average_precision": area_pr,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": _ratio(2 * precision * sensitivity, precision + sensitivity),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "mcc": _mcc(tp, fp, tn, fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def bootstrap_intervals(
    probabilities: ArrayLike,
    targets: ArrayLike,
    threshold: float,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (images drawn with replacement, seeded) of ``INTERVAL_METRICS``.
    A draw with one class only has no AUROC and is left out of that metric's interval."""
    probs, labels = _arrays(probabilities, targets)
    if labels.size == 0:
        return {name: [float("nan"), float("nan")] for name in INTERVAL_METRICS}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in INTERVAL_METRICS}
    for _ in range(resamples):
        index = rng.integers(0, labels.size, labels.size)
        metrics = binary_metrics(probs[index], labels[index], threshold)
        for name in INTERVAL_METRICS:
            draws[name].append(metrics[name])
    tail = (1 - level) / 2 * 100
    intervals = {}
    for name, values in draws.items():
        array = np.asarray(values, dtype=np.float64)
        bounds = np.nanpercentile(array, [tail, 100 - tail]) if not np.isnan(array).all() else [np.nan, np.nan]
        intervals[name] = [round(float(v), 6) for v in bounds]
    return intervals


def metrics_by_agreement(
    probabilities: ArrayLike, targets: ArrayLike, votes: ArrayLike, threshold: float
) -> dict[str, dict[str, float]]:
    """``binary_metrics`` per agreement stratum, each with its image count."""
    probs, labels = _arrays(probabilities, targets)
    votes = np.asarray(votes).ravel().astype(np.int64)
    strata = {}
    for name, members in AGREEMENT_STRATA.items():
        mask = np.isin(votes, members)
        strata[name] = {"images": float(mask.sum()), **binary_metrics(probs[mask], labels[mask], threshold)}
    return strata
