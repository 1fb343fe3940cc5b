"""Calibration and predictive metrics: ECE on known cases, entropy, test log-likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from inference.calibration import (expected_calibration_error, mutual_information,
                                   ood_auroc, predictive_entropy, reliability_diagram_data)
from inference.predictive_metrics import (classification_metrics, log_mean_exp,
                                          regression_metrics, shift_metrics,
                                          variance_decomposition)


def test_ece_of_a_calibrated_predictor_is_near_zero():
    rng = np.random.default_rng(0)
    n = 100_000
    p1 = rng.uniform(size=n)
    labels = (rng.uniform(size=n) < p1).astype(int)  # P(label 1) = p1 exactly
    probs = np.stack([1 - p1, p1], axis=1)
    # with ~8 occupied bins of ~12500 points, each bin's |acc - conf| is ~0.4 * 0.5/sqrt(12500)
    # by chance, so E[ECE] ~ 0.002; 0.01 is five times that
    assert expected_calibration_error(probs, labels) < 0.01


def test_ece_of_a_constant_overconfident_predictor_is_known():
    probs = np.tile([0.9, 0.1], (1000, 1))
    labels = np.r_[np.zeros(600, int), np.ones(400, int)]  # accuracy 0.6, confidence 0.9
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3, abs=1e-12)
    table = reliability_diagram_data(probs, labels)
    assert len(table) == 15 and table["count"].sum() == 1000
    full = table[table["count"] > 0]
    assert len(full) == 1 and full["lower"].iloc[0] == pytest.approx(13 / 15)
    assert full["accuracy"].iloc[0] == pytest.approx(0.6)


def test_ece_bins_are_right_closed():
    # confidence exactly 2/3 = 10/15 belongs to bin (9/15, 10/15]
    probs = np.array([[2 / 3, 1 / 3]])
    table = reliability_diagram_data(probs, [0])
    assert int(np.flatnonzero(table["count"].to_numpy())[0]) == 9


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="rows"):
        expected_calibration_error(np.full((3, 2), 0.5), [0, 1])
    with pytest.raises(ValueError, match="labels must lie"):
        expected_calibration_error(np.full((2, 2), 0.5), [0, 2])


def test_entropy_and_mutual_information():
    assert predictive_entropy(np.full((2, 4), 0.25)) == pytest.approx([math.log(4)] * 2)
    assert predictive_entropy(np.array([1.0, 0.0])) == pytest.approx(0.0)
    # two confident draws that disagree: all uncertainty is epistemic, MI = log 2
    draws = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert mutual_information(draws)[0] == pytest.approx(math.log(2))


def test_log_mean_exp_and_regression_test_ll():
    v = torch.tensor([[0.0, 1000.0], [math.log(3.0), 1000.0]])
    assert log_mean_exp(v, 0).tolist() == pytest.approx([math.log(2.0), 1000.0])
    mu = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    var = torch.tensor([[1.0, 0.25], [1.0, 0.25]])
    y = torch.tensor([0.5, 0.0])
    m = regression_metrics(mu, var, y, y_scale=2.0, y_shift=10.0)
    dens = 0.5 * (stats.norm.pdf(0.5, 0, 1) + stats.norm.pdf(0.5, 1, 1))
    expected = 0.5 * (math.log(dens) + stats.norm.logpdf(0.0, 1, 0.5)) - math.log(2.0)
    assert m["test_ll"] == pytest.approx(expected, rel=1e-9)
    assert m["rmse"] == pytest.approx(2.0 * math.sqrt((0.0**2 + 1.0**2) / 2))
    epi, alea = variance_decomposition(mu, var)
    assert epi.tolist() == pytest.approx([0.25, 0.0]) and alea.tolist() == pytest.approx([1.0, 0.25])
    assert m["epistemic_var"] == pytest.approx(4 * 0.125)


def test_classification_metrics_known_values():
    probs = torch.tensor([[[0.8, 0.2], [0.3, 0.7]], [[0.6, 0.4], [0.5, 0.5]]])
    m = classification_metrics(probs, torch.tensor([0, 0]))
    # mean probs [[0.7, 0.3], [0.4, 0.6]]: first right, second wrong
    assert m["accuracy"] == 0.5
    assert m["nll"] == pytest.approx(-0.5 * (math.log(0.7) + math.log(0.4)))
    assert m["ece"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.6)


def test_ood_auroc_is_one_when_every_shifted_entropy_is_higher():
    rng = np.random.default_rng(0)
    h_in = rng.uniform(0.0, 1.0, size=500)
    h_ood = rng.uniform(1.5, 2.0, size=300)
    assert ood_auroc(h_in, h_ood) == 1.0
    assert ood_auroc(h_ood, h_in) == 0.0  # the other way round: every OOD score is lower


def test_ood_auroc_of_identically_distributed_entropies_is_one_half():
    # AUROC = P(H_ood > H_in) estimated by a Mann-Whitney statistic; for m = n = 2000 draws
    # from one continuous law its sd is sqrt((m + n + 1) / (12 m n)) = 0.0065, and 0.026 is
    # four sds
    rng = np.random.default_rng(1)
    h_in, h_ood = rng.gamma(2.0, size=2000), rng.gamma(2.0, size=2000)
    assert ood_auroc(h_in, h_ood) == pytest.approx(0.5, abs=0.026)
    with pytest.raises(ValueError, match="scores of both kinds"):
        ood_auroc(h_in, [])


def test_shift_metrics_from_probability_draws():
    # test inputs: confident draws (entropy ~0); shifted inputs: uniform over 4 classes
    sure = np.zeros((3, 50, 4))
    sure[..., 0] = 1.0
    flat = np.full((3, 20, 4), 0.25)
    out = shift_metrics(sure, {"noise": flat})
    assert out["ood_entropy_noise"] == pytest.approx(math.log(4))
    assert out["ood_auroc_noise"] == 1.0
    # draws that disagree: each draw is sure, but of a different class; their mean is uniform
    split = np.zeros((4, 20, 4))
    for s in range(4):
        split[s, :, s] = 1.0
    assert shift_metrics(sure, {"rotated": split})["ood_entropy_rotated"] == pytest.approx(
        math.log(4))
