"""Checkpoint selection on a guarded sensitivity score: pure functions.

The seeds found that chasing sensitivity alone overfits to "everything is SSA" while AUROC and
balanced accuracy fall to chance. The guarded score therefore ranks epochs by sensitivity only
while both balanced metrics stay above their floors.
"""

from __future__ import annotations


def guarded_sensitivity(
    sensitivity: float,
    auroc: float,
    balanced_accuracy: float,
    *,
    min_auroc: float,
    min_balanced_accuracy: float,
) -> float:
    """Sensitivity in [0, 1] when both guards hold, else minus the total shortfall (< 0).

    Any epoch that passes the guards beats any epoch that fails them; among failing epochs the
    one closest to the floors ranks highest, so a run where none passes still picks sensibly.
    """
    shortfall = max(0.0, min_auroc - auroc) + max(0.0, min_balanced_accuracy - balanced_accuracy)
    return float(sensitivity) if shortfall == 0 else -float(shortfall)
