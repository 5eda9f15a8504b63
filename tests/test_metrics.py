import pytest
import torch

from training.metrics import binary_metrics

PROBS = torch.tensor([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
TARGETS = torch.tensor([1, 1, 1, 0, 0, 0])


def test_thresholded_metrics_match_hand_counts() -> None:
    m = binary_metrics(PROBS, TARGETS, threshold=0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 2)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["mcc"] == pytest.approx(1 / 3, abs=1e-6)


def test_auroc_comes_from_probabilities_not_labels() -> None:
    # 8 of the 9 positive/negative pairs are ordered right.
    m = binary_metrics(PROBS, TARGETS, threshold=0.5)
    assert m["auroc"] == pytest.approx(8 / 9)
    # Moving the threshold changes the labels but never AUROC or average precision.
    low = binary_metrics(PROBS, TARGETS, threshold=0.05)
    assert low["auroc"] == m["auroc"]
    assert low["average_precision"] == m["average_precision"]
    assert low["sensitivity"] == 1.0


def test_probability_equal_to_threshold_is_positive() -> None:
    m = binary_metrics(torch.tensor([0.4, 0.4]), torch.tensor([1, 0]), threshold=0.4)
    assert m["tp"] == 1
    assert m["fp"] == 1


def test_one_class_gives_nan_auroc_not_an_error() -> None:
    m = binary_metrics(torch.tensor([0.4, 0.6]), torch.tensor([0, 0]), threshold=0.5)
    assert m["auroc"] != m["auroc"]
    assert m["specificity"] == 0.5
