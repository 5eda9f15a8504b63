"""Temperature scaling with a bias (Platt, 1999; Guo et al., 2017) and the error it is judged by.

``sigmoid(logit / T + b)``: ``T`` sets how confident the model is, ``b`` undoes the shift that the
loss's ``pos_weight`` puts on every logit (about log(pos_weight)), which no temperature can. Both
keep the order of the images, so AUROC stays and the threshold is re-tuned on the result.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

ECE_BINS = 10


def fit_calibration(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """``(T, b)``, ``T > 0``, minimizing the binary cross-entropy of ``sigmoid(logits / T + b)``.

    The targets are Platt's: ``(n+ + 1) / (n+ + 2)`` for SSA and ``1 / (n- + 2)`` for HP, so a
    validation split the model separates perfectly gives a finite answer, not T -> 0. Fitted on
    ``(log T, b)`` in float64 with L-BFGS from (1, 0): deterministic."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64)).flatten()
    labels = torch.as_tensor(np.asarray(targets, dtype=np.float64)).flatten()
    if x.numel() == 0 or labels.min() == labels.max():
        return 1.0, 0.0  # nothing to learn a confidence from
    positives = float(labels.sum())
    negatives = labels.numel() - positives
    y = torch.where(labels > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=0.5, max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.binary_cross_entropy_with_logits(x / params[0].exp() + params[1], y)
        value.backward()
        return value

    optimizer.step(loss)
    log_t, bias = params.detach().tolist()
    return float(np.exp(log_t)), float(bias)


def calibrated(logits: np.ndarray, temperature: float, bias: float) -> np.ndarray:
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature + bias)


def log_loss(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy, what the calibration minimizes."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(targets, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else 0.0


def reliability(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per equal-width bin of P(SSA): mean predicted probability, observed SSA fraction, image count."""
    probs = np.asarray(probabilities, dtype=np.float64).ravel()
    labels = np.asarray(targets, dtype=np.float64).ravel()
    index = np.minimum((probs * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    confidence = np.bincount(index, weights=probs, minlength=bins) / np.maximum(counts, 1)
    observed = np.bincount(index, weights=labels, minlength=bins) / np.maximum(counts, 1)
    return {"predicted": confidence.tolist(), "observed": observed.tolist(), "count": counts.tolist()}


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |observed SSA fraction - mean P(SSA)| over equal-width bins."""
    table = reliability(probabilities, targets, bins)
    counts = np.asarray(table["count"], dtype=np.float64)
    if counts.sum() == 0:
        return 0.0
    gaps = np.abs(np.asarray(table["observed"]) - np.asarray(table["predicted"]))
    return float(np.sum(gaps * counts) / counts.sum())


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
