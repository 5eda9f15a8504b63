import numpy as np
import pytest
import torch

from inference.metrics import binary_metrics, roc_curve

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn_and_torchmetrics(seed: int) -> None:
    """Our NumPy implementation against two independent ones, on scores with ties."""
    from sklearn import metrics as sk
    from torchmetrics.functional.classification import binary_average_precision, binary_matthews_corrcoef

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(np.clip(rng.random(300) * 0.8 + labels * 0.25, 0, 1), 2)  # with ties
    m = binary_metrics(scores, labels, 0.5)
    called = (scores >= 0.5).astype(int)
    assert m["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert m["average_precision"] == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)
    tm_ap = binary_average_precision(torch.as_tensor(scores), torch.as_tensor(labels))
    assert m["average_precision"] == pytest.approx(float(tm_ap), abs=1e-6)
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, called), abs=1e-12)
    tm_mcc = binary_matthews_corrcoef(torch.as_tensor(called), torch.as_tensor(labels))
    assert m["mcc"] == pytest.approx(float(tm_mcc), abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(labels, called), abs=1e-12)
    assert m["sensitivity"] == pytest.approx(sk.recall_score(labels, called), abs=1e-12)
    assert m["f1"] == pytest.approx(sk.f1_score(labels, called), abs=1e-12)
    fpr, tpr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr)
    assert np.allclose(tpr, sk_tpr)


def test_mcc_of_all_right_and_all_wrong_calls() -> None:
    assert binary_metrics(np.array([0.9, 0.1]), np.array([1, 0]), 0.5)["mcc"] == 1.0
    assert binary_metrics(np.array([0.1, 0.9]), np.array([1, 0]), 0.5)["mcc"] == -1.0
    assert binary_metrics(np.array([0.9, 0.9]), np.array([1, 0]), 0.5)["mcc"] == 0.0
