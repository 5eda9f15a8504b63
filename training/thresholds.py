"""Choosing the decision threshold on validation probabilities: pure functions.

A sample is called positive (SSA) when ``probability >= threshold``. Every strategy returns
the midpoint between two neighbouring observed scores, so ``>`` and ``>=`` agree on the data
the threshold was chosen on.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from inference.metrics import counts_at_each_score

ThresholdStrategy = Literal["target_sensitivity", "youden", "fbeta"]
STRATEGIES: tuple[str, ...] = ("target_sensitivity", "youden", "fbeta")


def _validated(probabilities: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities, dtype=np.float64).ravel()
    labels = np.asarray(targets).ravel().astype(np.int64)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.size} probabilities but {labels.size} targets")
    if probs.size and (probs.min() < 0 or probs.max() > 1 or np.isnan(probs).any()):
        raise ValueError("probabilities must lie in [0, 1]")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("targets must be 0 (HP) or 1 (SSA)")
    if labels.sum() == 0 or labels.sum() == labels.size:
        raise ValueError(
            "threshold tuning needs both classes in the validation split "
            f"(got {int(labels.sum())} positives of {labels.size})"
        )
    return probs, labels


def _midpoint_below(scores_desc: np.ndarray, index: int) -> float:
    """Threshold between the index-th highest distinct score and the next lower one."""
    upper = scores_desc[index]
    lower = scores_desc[index + 1] if index + 1 < scores_desc.size else 0.0
    return float((upper + lower) / 2)


def operating_points(probabilities: ArrayLike, targets: ArrayLike) -> dict[str, np.ndarray]:
    """Confusion counts when predicting positive for every score >= each distinct score."""
    return counts_at_each_score(*_validated(probabilities, targets))


def choose_threshold(
    probabilities: ArrayLike,
    targets: ArrayLike,
    strategy: ThresholdStrategy = "target_sensitivity",
    *,
    target_sensitivity: float = 0.9,
    beta: float = 2.0,
) -> float:
    """The threshold that a strategy prefers on validation data.

    - ``target_sensitivity``: the highest threshold whose sensitivity reaches the target (as
      few false positives as that sensitivity allows);
    - ``youden``: maximises sensitivity + specificity - 1 (Youden, 1950);
    - ``fbeta``: maximises F-beta; beta > 1 weighs recall (missed SSAs) above precision.
    Ties go to the highest threshold.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown threshold strategy {strategy!r}; choose one of {STRATEGIES}")
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    points = operating_points(probabilities, targets)
    tp, fp, fn, tn = points["tp"], points["fp"], points["fn"], points["tn"]
    sensitivity = tp / (tp + fn)
    if strategy == "target_sensitivity":
        index = int(np.flatnonzero(sensitivity >= target_sensitivity - 1e-12)[0])
    elif strategy == "youden":
        index = int(np.argmax(sensitivity + tn / (tn + fp) - 1))
    else:
        b2 = beta * beta
        fbeta = (1 + b2) * tp / np.maximum((1 + b2) * tp + b2 * fn + fp, 1)
        index = int(np.argmax(fbeta))
    return _midpoint_below(points["scores"], index)
