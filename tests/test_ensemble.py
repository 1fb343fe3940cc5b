"""Deep ensembles: members trained from different seeds differ, and the mixture's predictive
variance is the sum of its aleatoric and epistemic parts (law of total variance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from inference import methods
from inference.predictive_metrics import variance_decomposition


@pytest.fixture(scope="module")
def fitted():
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 48).unsqueeze(1)
    y = torch.sin(2 * x[:, 0]) + (0.05 + 0.3 * (x[:, 0] > 0)) * torch.randn(48, generator=gen)
    net = zoo.get("bnn", hidden=(8,), noise="heteroscedastic")
    target = methods.Target(net.model, {"x": x, "y": y}, traits=zoo.spec("bnn").traits)
    result = methods.get("deep_ensemble").run(
        target, {"num_members": 3, "num_steps": 200, "lr": 0.03, "batch_size": 16}, seed=0)
    return net, x, result


def test_members_differ_and_are_the_draws(fitted):
    net, x, result = fitted
    w0 = result.posterior["w0"]
    assert w0.shape == (1, 3, 1, 8) and result.family == "ensemble"
    assert "precision" not in result.posterior  # the mean-variance head replaces it
    flat = w0.reshape(3, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(3) for j in range(i)) > 0.1
    again = methods.get("deep_ensemble").run(
        methods.Target(net.model, {"x": x, "y": torch.zeros(48)}), {"num_members": 1,
                                                                   "num_steps": 2}, seed=5)
    assert again.posterior["w0"].shape == (1, 1, 1, 8)


def test_mixture_variance_is_aleatoric_plus_epistemic(fitted):
    net, x, result = fitted
    pred = net.predict(result.posterior, x)
    mean, noise_var = pred["mean"], pred["noise_var"]  # (members, points)
    epistemic, aleatoric = variance_decomposition(mean, noise_var)
    assert (epistemic > 0).all()  # members disagree everywhere a little
    assert noise_var.std(1).min() > 0  # the head gives each point its own noise variance
    # sample the mixture: a member uniformly, then its Gaussian; 200k draws per point give
    # a variance with relative sd sqrt((kurtosis - 1) / n) < 1 % for these light-tailed
    # mixtures, so 5 % is a safe bound
    gen = torch.Generator().manual_seed(1)
    n = 200_000
    idx = torch.randint(0, mean.shape[0], (n,), generator=gen)
    points = [0, 20, 47]
    draws = (mean[idx][:, points] + noise_var[idx][:, points].sqrt()
             * torch.randn(n, len(points), generator=gen, dtype=mean.dtype))
    total = (epistemic + aleatoric)[points]
    np.testing.assert_allclose(draws.double().var(0).numpy(), total.numpy(), rtol=0.05)
