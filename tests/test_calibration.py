"""Temperature scaling, calibration error, bootstrap intervals and agreement strata on known data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.metrics import binary_metrics, bootstrap_intervals, metrics_by_agreement
from training.calibration import calibrated, expected_calibration_error, fit_calibration, reliability, sigmoid


def overconfident(n: int = 4000, temperature: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z); the model reports z * temperature, too sure of itself."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    labels = (rng.random(n) < sigmoid(z)).astype(int)
    return z * temperature, labels


def test_the_fitted_calibration_undoes_overconfidence_and_the_pos_weight_shift() -> None:
    logits, labels = overconfident()
    shifted = logits + np.log(2.2)  # what a loss with pos_weight 2.2 does to every logit
    temperature, bias = fit_calibration(shifted, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert bias == pytest.approx(-np.log(2.2) / 3.0, abs=0.06)
    before = expected_calibration_error(sigmoid(shifted), labels)
    after = expected_calibration_error(calibrated(shifted, temperature, bias), labels)
    assert before > 0.05 > 0.03 > after
    assert fit_calibration(shifted, labels) == (temperature, bias)  # deterministic
    assert fit_calibration(logits, np.zeros_like(labels)) == (1.0, 0.0)  # one class: nothing to fit


def test_reliability_bins_count_every_image_once() -> None:
    table = reliability(np.array([0.05, 0.15, 0.95, 1.0, 0.99]), np.array([0, 0, 1, 1, 0]))
    assert table["count"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert table["observed"][9] == pytest.approx(2 / 3)
    assert table["predicted"][9] == pytest.approx((0.95 + 1.0 + 0.99) / 3)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_images() -> None:
    small = [torch.tensor(a) for a in overconfident(200, 1.0, seed=1)]
    large = [torch.tensor(a) for a in overconfident(3000, 1.0, seed=1)]
    probs_small, probs_large = torch.sigmoid(small[0]), torch.sigmoid(large[0])
    low, high = bootstrap_intervals(probs_small, small[1], 0.5, resamples=300)["auroc"]
    assert low < binary_metrics(probs_small, small[1], 0.5)["auroc"] < high
    low_l, high_l = bootstrap_intervals(probs_large, large[1], 0.5, resamples=300)["auroc"]
    assert high_l - low_l < (high - low) / 2
    assert bootstrap_intervals(probs_small, small[1], 0.5, resamples=300) == bootstrap_intervals(
        probs_small, small[1], 0.5, resamples=300
    )


def test_metrics_by_agreement_split_the_images_by_the_pathologists_votes() -> None:
    votes = torch.tensor([0, 7, 7, 1, 6, 5, 2, 3, 4, 4])
    targets = (votes >= 4).long()
    probs = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.7, 0.4, 0.3, 0.6, 0.55, 0.45])
    strata = metrics_by_agreement(probs, targets, votes, 0.5)
    assert {k: v["images"] for k, v in strata.items()} == {"unanimous": 3, "5-6_of_7": 4, "4_of_7": 3}
    assert strata["unanimous"]["sensitivity"] == 1.0
    assert strata["5-6_of_7"]["sensitivity"] == 0.5  # votes 5 at 0.4 is missed
    assert strata["4_of_7"]["specificity"] == 0.0  # votes 3 at 0.6 is called SSA


def test_the_ood_reference_scores_far_features_above_its_cut_off() -> None:
    from training.ood import cutoff, fit_reference

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    features = rng.normal(0, 1, (600, 16)) + labels[:, None] * 3.0
    score = fit_reference(features, labels)
    inside = score(torch.as_tensor(rng.normal(0, 1, (400, 16)), dtype=torch.float32)).numpy()
    far = score(torch.as_tensor(rng.normal(0, 1, (400, 16)) + 8.0, dtype=torch.float32)).numpy()
    limit = cutoff(inside[:200])
    assert np.mean(inside[200:] > limit) < 0.1  # about the 5% it was set for
    assert np.mean(far > limit) == 1.0
    assert limit == pytest.approx(np.quantile(inside[:200], 0.95))
