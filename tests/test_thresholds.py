import numpy as np
import pytest

from training.thresholds import choose_threshold, operating_points

# Hand-made validation scores: 4 positives, 6 negatives.
PROBS = np.array([0.95, 0.80, 0.70, 0.60, 0.55, 0.40, 0.30, 0.20, 0.10, 0.05])
TARGETS = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])


def sensitivity_at(threshold: float) -> float:
    return float(((PROBS >= threshold) & (TARGETS == 1)).sum() / TARGETS.sum())


def test_operating_points_count_each_distinct_score() -> None:
    points = operating_points(PROBS, TARGETS)
    assert points["tp"].tolist() == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    assert points["fp"].tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 6]
    assert (points["tp"] + points["fn"] == 4).all()
    assert (points["fp"] + points["tn"] == 6).all()


def test_target_sensitivity_takes_the_highest_threshold_that_reaches_it() -> None:
    # 75% needs the 3rd positive (0.60): midway to the next lower score 0.55.
    assert choose_threshold(PROBS, TARGETS, "target_sensitivity", target_sensitivity=0.75) == pytest.approx(0.575)
    # 100% needs the last positive (0.30): midway to 0.20.
    assert choose_threshold(PROBS, TARGETS, "target_sensitivity", target_sensitivity=1.0) == pytest.approx(0.25)
    assert sensitivity_at(0.575) == 0.75
    assert sensitivity_at(0.25) == 1.0


def test_youden_maximises_sensitivity_plus_specificity() -> None:
    # J at each cut: 0.95:.25 0.80:.5 0.70:.333 0.60:.583 0.55:.417 0.40:.25 0.30:.5 ...
    assert choose_threshold(PROBS, TARGETS, "youden") == pytest.approx(0.575)


def test_fbeta_weighs_recall_by_beta() -> None:
    # F2 is best when every positive is caught (cut below 0.30); F0.5 prefers the precise top 2.
    assert choose_threshold(PROBS, TARGETS, "fbeta", beta=2.0) == pytest.approx(0.25)
    assert choose_threshold(PROBS, TARGETS, "fbeta", beta=0.5) == pytest.approx(0.75)


def test_threshold_below_the_lowest_score_is_half_of_it() -> None:
    probs, targets = np.array([0.9, 0.2]), np.array([0, 1])
    assert choose_threshold(probs, targets, "target_sensitivity", target_sensitivity=1.0) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("probs", "targets", "message"),
    [
        ([0.2, 0.8], [0, 0], "both classes"),
        ([0.2, 0.8], [0, 1, 1], "2 probabilities but 3 targets"),
        ([0.2, 1.5], [0, 1], r"\[0, 1\]"),
        ([0.2, 0.8], [0, 2], "0 \\(HP\\) or 1"),
    ],
)
def test_bad_inputs_are_named(probs: list, targets: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_threshold(probs, targets)


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown threshold strategy 'best'"):
        choose_threshold(PROBS, TARGETS, "best")  # type: ignore[arg-type]
