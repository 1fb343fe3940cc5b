"""Laplace: on a linear-Gaussian model the Laplace approximation is the exact posterior; the
last-layer version is the exact conditional posterior of its sites."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from inference import methods
from inference.laplace import hessian
from inference.potential import Potential

SIGMA = 0.5


def linear(x, y=None, subsample_size=None):
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    c = pyro.sample("c", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("y", dist.Normal(x[idx] @ beta + c, SIGMA), obs=None if y is None else y[idx])


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64) + 0.3 + SIGMA * torch.randn(
        30, generator=gen, dtype=torch.float64)
    design = torch.cat([x, torch.ones(30, 1, dtype=torch.float64)], 1)
    precision = design.T @ design / SIGMA ** 2 + torch.eye(4, dtype=torch.float64)
    mean = torch.linalg.solve(precision, design.T @ y / SIGMA ** 2)
    return {"x": x.float(), "y": y.float()}, precision.numpy(), mean.numpy()


def test_exact_hessian_is_the_posterior_precision(problem):
    kwargs, precision, mean = problem
    pot = Potential(linear, kwargs)
    z = torch.tensor(mean, dtype=torch.float32)  # float32 model: agreement to 1e-5
    np.testing.assert_allclose(hessian(pot, z).numpy(), precision, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(hessian(pot, z, diagonal_only=True).numpy(), np.diag(precision),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="max_dim=2"):
        hessian(pot, z, max_dim=2)


@pytest.mark.parametrize("name,settings", [
    ("laplace", {"structure": "full"}),
    ("last_layer_laplace", {"last_layer_sites": ["beta"]}),
])
def test_laplace_draws_have_the_exact_posterior_moments(problem, name, settings):
    kwargs, precision, mean = problem
    target = methods.Target(linear, kwargs, traits=methods.ModelTraits(minibatch=True))
    result = methods.get(name).run(target, {"num_steps": 400, "lr": 0.05, "init": "median",
                                            "num_posterior_draws": 4000, **settings}, seed=0)
    assert result.family == "laplace"
    beta = result.posterior["beta"][0]
    if name == "laplace":
        cov = np.linalg.inv(precision)
        draws = np.concatenate([beta, result.posterior["c"][0][:, None]], 1)
        expected_mean = mean
    else:  # c fixed at its mode: beta's conditional posterior, precision block [:3, :3]
        cov = np.linalg.inv(precision[:3, :3])
        assert np.ptp(result.posterior["c"]) == 0
        draws = beta
        expected_mean = mean[:3]
    # 4000 draws: each mean within 4 sd / sqrt(4000) (plus 1e-3 for Adam's distance to the
    # mode); each covariance entry within 4 of its standard errors sqrt((s_ij^2 + s_ii s_jj) / n)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - expected_mean) < 4 * sd / np.sqrt(4000) + 1e-3)
    se = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / 4000)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 4 * se)
