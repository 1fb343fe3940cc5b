"""SWAG: the fitted moments are the moments of the SGD iterates; its Gaussian has them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.swag import SWAGMoments

# a quadratic loss 0.5 (z - m)^T A (z - m) with noisy gradients, as SGD sees a mini-batched one
A = torch.tensor([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
M = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


@pytest.fixture(scope="module")
def iterates():
    gen = torch.Generator().manual_seed(0)
    z, out = torch.zeros(3, dtype=torch.float64), []
    for t in range(3000):
        grad = A @ (z - M) + 0.5 * torch.randn(3, generator=gen, dtype=torch.float64)
        z = z - 0.1 * grad
        if t >= 500:
            out.append(z.clone())
    return torch.stack(out)  # (2500, 3): stationary SGD iterates around M


def test_fitted_mean_and_diagonal_are_the_iterate_moments(iterates):
    swag = SWAGMoments(dim=3, rank=10)
    for z in iterates:
        swag.update(z)
    it = iterates.numpy()
    np.testing.assert_allclose(swag.mean.numpy(), it.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(swag.variance.numpy(), it.var(0), rtol=1e-8)
    assert swag.deviations.shape == (3, 10)
    # the last deviation is the last iterate minus the mean after it was added
    np.testing.assert_allclose(swag.deviations[:, -1].numpy(), it[-1] - it.mean(0), atol=1e-12)
    # SGD with a constant rate circles the minimum: for small rates the mean of n iterates has
    # covariance about sigma^2 A^-2 / n (the long-run variance of an AR(1) with drift A), so the
    # SWA mean is within 4 of its standard errors of the minimum
    se = np.sqrt(np.diag(0.25 * np.linalg.inv(A.numpy() @ A.numpy())) / len(it))
    assert (np.abs(it.mean(0) - M.numpy()) < 4 * se).all(), (it.mean(0), se)


def test_low_rank_part_and_draws_match_the_iterate_covariance(iterates):
    # every iterate kept (rank = count): D D^T / (K - 1) is the iterates' covariance up to the
    # running-mean centring, which differs from the final mean by O(1/sqrt(K)) late in the run
    thinned = iterates[::5]  # 500 nearly independent iterates
    swag = SWAGMoments(dim=3, rank=len(thinned))
    for z in thinned:
        swag.update(z)
    cov_it = np.cov(thinned.numpy().T)
    lowrank = (swag.deviations @ swag.deviations.T / (len(thinned) - 1)).numpy()
    assert np.abs(lowrank - cov_it).max() < 0.15 * np.abs(cov_it).max()
    # draws from N(mean, (diag + D D^T/(K-1)) / 2): 20000 draws give moments within a few
    # per cent (relative sd of a variance estimate: sqrt(2 / 20000) = 1 %)
    draws = swag.sample(20000, torch.Generator().manual_seed(1)).numpy()
    expected = swag.covariance().numpy()
    np.testing.assert_allclose(draws.mean(0), swag.mean.numpy(), atol=4 * np.sqrt(
        np.diag(expected).max() / 20000))
    np.testing.assert_allclose(np.cov(draws.T), expected, atol=0.05 * np.abs(expected).max())
    # and that Gaussian has the iterates' covariance (half diagonal, half low rank)
    np.testing.assert_allclose(expected, 0.5 * (np.diag(np.diag(cov_it)) + lowrank), rtol=0.05,
                               atol=0.05 * np.abs(cov_it).max())
    diag_only = swag.sample(20000, torch.Generator().manual_seed(2), scale=1.0,
                            low_rank=False).numpy()
    np.testing.assert_allclose(diag_only.var(0), thinned.numpy().var(0), rtol=0.08)


def test_swag_refuses_bad_input():
    with pytest.raises(ValueError, match="dim must be >= 1"):
        SWAGMoments(dim=0)
    swag = SWAGMoments(dim=2)
    with pytest.raises(ValueError, match="no iterates"):
        swag.sample(3, torch.Generator())
    with pytest.raises(ValueError, match="expected 2"):
        swag.update(torch.zeros(3))
