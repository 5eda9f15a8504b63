"""The app's figures, apart from Streamlit so that they can be drawn and checked on their own.

Built as bare ``Figure`` objects, not through pyplot, so a long Streamlit session keeps no
figure alive after it has been drawn.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def probability_bar(probability: float, threshold: float) -> Figure:
    """Where P(SSA) sits against the model's threshold: left of the line is HP, right is SSA."""
    fig = Figure(figsize=(7, 1.5), layout="constrained")  # room for the ticks, the label and the note
    ax = fig.subplots()
    ax.axvspan(0, threshold, color="#dfe9f5")
    ax.axvspan(threshold, 1, color="#f7dfee")
    ax.barh([0], [probability], height=0.5, color="#b04a9b")
    ax.axvline(threshold, color="black", linewidth=2.5)
    ax.text(threshold, 1.02, f"threshold {threshold:.2f}", transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(-0.5, 0.5), yticks=[], xlabel="P(SSA)   (HP left of the line, SSA right)")
    return fig
