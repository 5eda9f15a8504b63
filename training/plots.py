"""PNG plots for a run: ROC and precision-recall with the operating point, confusion matrix,
reliability diagrams, augmented training images, learning-rate schedule. Matplotlib only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from inference import metrics
from inference.annotations import CLASS_NAMES
from training.thresholds import operating_points


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], threshold: float, title: str, path: Path) -> Path:
    """ROC and precision-recall per split, each with the point the tuned threshold picks."""
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, (probs, targets) in splits.items():
        points = operating_points(probs, targets)  # refuses a split without both classes
        fpr, tpr = metrics.roc_from_counts(points)
        recall, precision = metrics.precision_recall_from_counts(points)
        at = metrics.binary_metrics(probs, targets, threshold)
        (line,) = roc.plot(fpr, tpr, label=f"{name} (AUC {at['auroc']:.3f})")
        pr.plot(recall, precision, color=line.get_color(), label=f"{name} (AP {at['average_precision']:.3f})")
        marker = {"color": line.get_color(), "markersize": 9, "markeredgecolor": "black"}
        roc.plot(1 - at["specificity"], at["sensitivity"], "o", **marker)
        pr.plot(at["sensitivity"], at["precision"], "o", **marker)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity", title="ROC")
    pr.set(xlabel="sensitivity (recall)", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.legend(title=f"o = threshold {threshold:.3f}", loc="lower right" if ax is roc else "lower left")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def reliability(
    splits: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    ece: Mapping[str, Mapping[str, float]],
    title: str,
    path: Path,
) -> Path:
    """One reliability diagram per split, before and after calibration: observed SSA fraction against
    mean P(SSA) per bin, marker area by image count; the diagonal is perfect calibration."""
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 4.8), squeeze=False)
    for ax, (split, tables) in zip(axes.flat, splits.items(), strict=True):
        for stage, table in tables.items():
            counts = np.asarray(table["count"], dtype=float)
            shown = counts > 0
            predicted, observed = np.asarray(table["predicted"])[shown], np.asarray(table["observed"])[shown]
            label = f"{stage} (ECE {ece[split][stage]:.3f})"
            (line,) = ax.plot(predicted, observed, "-", label=label)
            ax.scatter(predicted, observed, s=20 + 200 * counts[shown] / counts.sum(), color=line.get_color())
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="mean P(SSA) in bin", ylabel="observed SSA fraction", title=split, xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(probs: np.ndarray, targets: np.ndarray, threshold: float, title: str, path: Path) -> Path:
    predicted = (probs >= threshold).astype(int)
    matrix = np.array([[np.sum((targets == t) & (predicted == p)) for p in (0, 1)] for t in (0, 1)])
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(matrix, cmap="Blues")
    for (t, p), count in np.ndenumerate(matrix):
        ax.text(p, t, str(count), ha="center", va="center", fontsize=16, color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}\nthreshold {threshold:.3f}")
    return _save(fig, path)


def image_grid(
    images: torch.Tensor, labels: Sequence[int], mean: Sequence[float], std: Sequence[float], path: Path
) -> Path:
    """Augmented training images as the model sees them, de-normalized for display."""
    images = images[:16].float() * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    columns = 4
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels, strict=False):
        ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title("SSA" if label >= 0.5 else "HP", fontsize=10)  # a soft target is SSA from 4 votes of 7
    fig.suptitle("augmented training images")
    return _save(fig, path)


def heatmaps(examples: Sequence[tuple[str, Image.Image]], title: str, path: Path) -> Path:
    """Overlays from ``/explain`` in a grid, each titled with its truth, verdict and probability."""
    columns = 4
    rows = max(1, int(np.ceil(len(examples) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (caption, overlay) in zip(axes.flat, examples, strict=False):
        ax.imshow(overlay)
        ax.set_title(caption, fontsize=9)
    fig.suptitle(f"{title}\nyellow: most evidence for SSA (occlusion) or most attention (rollout)")
    return _save(fig, path)


def lr_schedule(history: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, points in sorted(history.items()):
        steps, values = zip(*points, strict=True) if points else ((), ())
        ax.plot(steps, values, label=name)
    ax.set(xlabel="step", ylabel="learning rate", title="learning-rate schedule", yscale="log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
