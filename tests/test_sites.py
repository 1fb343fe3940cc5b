"""Site bookkeeping (inference.sites): kinds, plate nesting, quiet traces, and pyro.factor
sites kept out of the data while their density still reaches the objective."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer.mcmc.util import initialize_model

from inference.guides import init_to_feasible_shape
from inference.log_likelihood import observed_data, pointwise_log_likelihood
from inference.predictive import posterior_predictive, site_names
from inference.sites import (data_plate, data_plate_size, model_trace, plate_nesting,
                             site_kinds)
from inference.svi import fit_svi

N_OBS = 20
#: the factor is a Normal(FACTOR_MEAN, 1 / sqrt(FACTOR_PRECISION)) pseudo-likelihood for mu
FACTOR_MEAN, FACTOR_PRECISION = 10.0, 4.0


def factor_model(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.factor("pull", -0.5 * FACTOR_PRECISION * (mu - FACTOR_MEAN) ** 2)
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def y20():
    return 1.5 + torch.randn(N_OBS, generator=torch.Generator().manual_seed(2))


# ------------------------------------------------------------------ pyro.factor
def test_factor_is_its_own_kind_and_not_data(y20):
    kinds = site_kinds(model_trace(factor_model, {"y": y20}))
    assert kinds.latent == ("mu",) and kinds.observed == ("y",) and kinds.factor == ("pull",)
    assert site_names(factor_model, {"y": y20})["observed"] == ["y"]
    assert set(observed_data(factor_model, {"y": y20})) == {"y"}
    ll = pointwise_log_likelihood(factor_model, {"mu": np.zeros((2, 5))}, {"y": y20})
    assert set(ll) == {"y"} and ll["y"].shape == (2, 5, N_OBS)
    ppc = posterior_predictive(factor_model, {"mu": np.zeros((1, 5))}, {"y": y20})
    assert set(ppc) == {"y"}


def test_handwritten_unit_site_counts_as_factor():
    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("term", dist.Unit(-mu**2), obs=torch.empty(0))

    assert site_kinds(model_trace(model)).factor == ("term",)


def test_factor_density_reaches_svi_and_the_mcmc_potential(y20):
    # conjugate: the posterior of mu is Normal with precision 1 + N + P and mean
    # (sum(y) + P * m) / (1 + N + P); without the factor the mean would be sum(y) / (1 + N)
    precision = 1.0 + N_OBS + FACTOR_PRECISION
    exact = (float(y20.sum()) + FACTOR_PRECISION * FACTOR_MEAN) / precision
    without = float(y20.sum()) / (1.0 + N_OBS)
    assert abs(exact - without) > 1.0  # the check below has power
    result = fit_svi(factor_model, {"y": y20}, guide="auto_normal", num_steps=600, lr=0.05,
                     lr_schedule={"name": "exponential", "gamma": 0.995},
                     num_posterior_draws=2000, progress_bar=False)
    # posterior sd is 0.2; half an sd covers optimisation noise (MC error of the mean 0.005)
    assert result.posterior["mu"].mean() == pytest.approx(exact, abs=0.1)
    assert set(result.observed_data) == {"y"} and set(result.log_likelihood) == {"y"}

    # the potential energy MCMC uses includes the factor: -log p(mu, y) at mu = 0
    _, potential_fn, transforms, _ = initialize_model(factor_model, model_kwargs={"y": y20})
    mu = torch.tensor(0.0)
    expected = -(dist.Normal(0.0, 1.0).log_prob(mu) + dist.Normal(mu, 1.0).log_prob(y20).sum()
                 - 0.5 * FACTOR_PRECISION * (mu - FACTOR_MEAN) ** 2)
    assert float(potential_fn({"mu": mu})) == pytest.approx(float(expected), rel=1e-5)


# ------------------------------------------------------------------ kinds
def test_kinds_with_deterministic_and_subsample_plate():
    def model(y=None, subsample_size=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.deterministic("twice_mu", 2 * mu)
        with pyro.plate("data", 10, subsample_size=subsample_size, dim=-1) as idx:
            pyro.sample("y", dist.Normal(mu, 1.0), obs=None if y is None else y[idx])

    y = torch.randn(10)
    kinds = site_kinds(model_trace(model, {"y": y, "subsample_size": 4}))
    assert kinds.latent == ("mu",) and kinds.observed == ("y",)
    assert kinds.deterministic == ("twice_mu",) and kinds.subsample == ("data",)
    assert kinds.factor == ()
    assert site_names(model, {"y": y}) == kinds.as_dict()
    # without data the likelihood site is latent
    assert site_kinds(model_trace(model)).latent == ("mu", "y")


# ------------------------------------------------------------------ plates
def test_plate_nesting_of_nested_plates_and_the_data_plate():
    def model():
        with pyro.plate("groups", 3, dim=-2):
            a = pyro.sample("a", dist.Normal(0.0, 1.0))
            with pyro.plate("data", 4, dim=-1):
                pyro.sample("y", dist.Normal(a, 1.0), obs=torch.zeros(3, 4))
        for i in pyro.plate("sequential", 2):  # not vectorised: no dim
            pyro.sample(f"s{i}", dist.Normal(0.0, 1.0))

    def deeper_guide():
        with pyro.plate("outer", 2, dim=-3):
            pyro.sample("b", dist.Normal(0.0, 1.0))

    trace = model_trace(model)
    assert plate_nesting(trace) == 2
    assert plate_nesting(trace, model_trace(deeper_guide)) == 3
    assert plate_nesting(model_trace(lambda: pyro.sample("x", dist.Normal(0.0, 1.0)))) == 0
    assert data_plate(trace.nodes["y"]).size == 4 and data_plate(trace.nodes["a"]) is None
    assert data_plate(trace.nodes["y"], exclude=("data",)) is None
    assert data_plate_size(trace) == 4


# ------------------------------------------------------------------ quiet traces
def test_model_trace_is_blocked_without_grad_and_can_avoid_sampling():
    def improper(y=None):
        rate = pyro.sample("rate", dist.ImproperUniform(constraints.positive, (), ()))
        with pyro.plate("data", 3, dim=-1):
            pyro.sample("y", dist.Normal(rate, 1.0), obs=y)

    with pytest.raises(NotImplementedError):
        model_trace(improper, {"y": torch.zeros(3)})
    rng = torch.get_rng_state()
    with pyro.poutine.trace() as outer:
        trace = model_trace(improper, {"y": torch.zeros(3)}, init_strategy=init_to_feasible_shape)
    assert torch.equal(torch.get_rng_state(), rng)  # no random numbers drawn
    assert len(outer.trace.nodes) == 0  # hidden from enclosing handlers
    assert float(trace.nodes["rate"]["value"]) == pytest.approx(1.0)  # exp(0)
    assert not trace.nodes["rate"]["value"].requires_grad
