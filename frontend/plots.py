"""The app's figures, apart from Streamlit so that they can be drawn and checked on their own.

The probability bar is HTML, so that its text keeps the page's size on a phone; the curves are
bare ``Figure`` objects, not pyplot's, so a long Streamlit session keeps no figure alive.
"""

from __future__ import annotations

import html

import numpy as np
from matplotlib.figure import Figure

from inference import metrics


def probability_bar(probability: float, threshold: float) -> str:
    """Where P(SSA) sits against the model's threshold: left of the line is HP, right is SSA."""
    p, t = f"{probability * 100:.1f}%", f"{threshold * 100:.1f}%"
    return (
        '<div class="probability-bar" role="img" '
        f'aria-label="{html.escape(f"P(SSA) {probability:.3f}, threshold {threshold:.3f}")}" '
        'style="font-size:0.9rem;margin:0.25rem 0 0.75rem">'
        f'<div style="position:relative;height:1.6rem;border-radius:4px;background:linear-gradient(to right,'
        f'#dfe9f5 {t},#f7dfee {t})">'
        f'<div style="position:absolute;left:0;top:0.35rem;height:0.9rem;width:{p};background:#b04a9b"></div>'
        f'<div style="position:absolute;left:{t};top:-0.2rem;height:2rem;border-left:3px solid #000"></div></div>'
        '<div style="display:flex;justify-content:space-between">'
        f"<span>HP (P(SSA) below {threshold:.2f})</span><span>SSA (at or above)</span></div></div>"
    )


def curves(probs: np.ndarray, truth: np.ndarray, thresholds: dict[str, float]) -> Figure:
    """ROC and precision-recall with their areas, and a point for each named threshold."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    roc, pr = fig.subplots(1, 2)
    fpr, tpr = metrics.roc_curve(probs, truth)
    recall, precision = metrics.precision_recall_curve(probs, truth)
    roc.plot(fpr, tpr, color="#b04a9b", label=f"AUC {metrics.auroc(probs, truth):.3f}")
    pr.plot(recall, precision, color="#b04a9b", label=f"AP {metrics.average_precision(probs, truth):.3f}")
    for (name, threshold), marker in zip(thresholds.items(), ("o", "s"), strict=False):
        at = metrics.binary_metrics(probs, truth, threshold)
        label = f"{name} {threshold:.3f}"
        roc.plot(1 - at["specificity"], at["sensitivity"], marker, markersize=9, markeredgecolor="k", label=label)
        pr.plot(at["sensitivity"], at["precision"], marker, markersize=9, markeredgecolor="k", label=label)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    pr.set(xlabel="sensitivity (recall)", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    return fig
