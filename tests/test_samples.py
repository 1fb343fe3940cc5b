"""Scores of generated images (inference/evaluation/samples.py): the MMD estimator against its
closed form, the classifier scores against hand-computed values, and clear input errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from inference.evaluation.samples import classifier_scores, mmd2_unbiased, score_samples


def _mmd2_gaussians(mu: float, h: float) -> float:
    """Exact MMD^2 of N(0, 1) and N(mu, 1) in 1-D under k = exp(-d^2 / (2 h^2)).

    x - x' ~ N(0, 2) gives E k = c = sqrt(h^2 / (h^2 + 2)); x - y ~ N(-mu, 2) gives
    c exp(-mu^2 / (2 (h^2 + 2))); MMD^2 = E k(x,x') + E k(y,y') - 2 E k(x,y)."""
    c = math.sqrt(h * h / (h * h + 2.0))
    return 2.0 * c * (1.0 - math.exp(-mu * mu / (2.0 * (h * h + 2.0))))


@pytest.mark.parametrize("mu", [0.0, 0.5, 1.5])
def test_unbiased_mmd_matches_the_closed_form(mu):
    # 20 repeats of n = m = 400: the estimator is unbiased, and its standard deviation at this
    # size is below 0.01 (measured over the repeats themselves), so the mean of 20 lies within
    # 4 standard errors of the exact value computed from the spread of the repeats
    g = torch.Generator().manual_seed(1)
    h = 1.0
    values = torch.tensor([mmd2_unbiased(torch.randn(400, 1, generator=g),
                                         mu + torch.randn(400, 1, generator=g), h)
                           for _ in range(20)], dtype=torch.float64)
    se = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - _mmd2_gaussians(mu, h)) < 4 * se + 1e-4


class _PixelClassifier(nn.Module):
    """Class k when pixel k is lit: logits 20 * x[:, :10] (a near-certain prediction)."""

    def forward(self, x):
        return 20.0 * x[:, :10]


def test_classifier_scores_of_confident_and_uniform_predictions():
    eye = torch.zeros(10, 784)
    eye[torch.arange(10), torch.arange(10)] = 1.0
    # every class once, each predicted with p = e^20 / (e^20 + 9) ~ 1: entropies ~ 0 and log 10
    s = classifier_scores(eye, _PixelClassifier())
    assert s["sample_confidence"] == pytest.approx(1.0, abs=1e-6)
    assert s["sample_entropy"] == pytest.approx(0.0, abs=1e-5)
    assert s["sample_label_entropy"] == pytest.approx(math.log(10), abs=1e-5)
    assert s["inception_score"] == pytest.approx(10.0, rel=1e-4)
    # one class only: no diversity, the Inception-style score is 1
    s = classifier_scores(eye[[3, 3, 3]], _PixelClassifier())
    assert s["sample_label_entropy"] == pytest.approx(0.0, abs=1e-5)
    assert s["inception_score"] == pytest.approx(1.0, abs=1e-4)
    # blank images: uniform prediction, per-image entropy log 10, score 1
    s = classifier_scores(torch.zeros(4, 784), _PixelClassifier())
    assert s["sample_entropy"] == pytest.approx(math.log(10), abs=1e-6)
    assert s["sample_confidence"] == pytest.approx(0.1, abs=1e-6)


def test_score_samples_ranks_data_above_noise_and_refuses_bad_input():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(3, 784, generator=g)
    reference = (centres[torch.randint(0, 3, (300,), generator=g)]
                 + 0.05 * torch.randn(300, 784, generator=g)).clamp(0, 1)
    like = (centres[torch.randint(0, 3, (200,), generator=g)]
            + 0.05 * torch.randn(200, 784, generator=g)).clamp(0, 1)
    noise = torch.rand(200, 784, generator=g)
    near = score_samples(like, reference=reference, classifier=_PixelClassifier())
    far = score_samples(noise, reference=reference, classifier=_PixelClassifier())
    assert abs(near["mmd2"]) < 0.02 < far["mmd2"]
    assert "classifier_test_accuracy" not in near  # only reported for the cached classifier
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        score_samples(noise * 2, reference=reference, classifier=_PixelClassifier())
    with pytest.raises(ValueError, match="784 pixels"):
        score_samples(torch.rand(5, 100), reference=reference, classifier=_PixelClassifier())
