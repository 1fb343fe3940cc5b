"""Pointwise log-likelihood, observed data and posterior predictive draws (no sampling needed).

Exact checks: log-likelihoods are compared with closed-form Normal densities (scipy) and the
vectorised evaluation with the per-draw loop, to float rounding (rtol 1e-5 for float32).
"""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

import zoo
import zoo.registry
from inference.log_likelihood import observed_data, pointwise_log_likelihood
from inference.predictive import posterior_predictive, site_names
from zoo.data import load


def regression(x, y=None):
    """Broadcasting regression with a group effect in a second plate and a deterministic site."""
    beta = pyro.sample("beta", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("groups", 2, dim=-2):
        g = pyro.sample("g", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], dim=-1):
        mu = pyro.deterministic("mu", (x * beta.unsqueeze(-2)).sum(-1), event_dim=0)
        pyro.sample("y", dist.Normal(mu + g, sigma), obs=y)


def regression_no_broadcast(x, y=None):
    """The same model written with ``x @ beta``: fails under an extra batch dim."""
    beta = pyro.sample("beta", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("groups", 2, dim=-2):
        g = pyro.sample("g", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], dim=-1):
        pyro.sample("y", dist.Normal(x @ beta + g, sigma), obs=y)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(10, 3)), dtype=torch.float32)
    y = torch.as_tensor(rng.normal(size=10), dtype=torch.float32)
    posterior = {
        "beta": rng.normal(size=(2, 5, 3)),
        "sigma": np.abs(rng.normal(size=(2, 5))) + 0.5,
        "g": rng.normal(size=(2, 5, 2, 1)),
    }
    return x, y, posterior


def _exact(x, y, posterior):
    mu = np.einsum("nk,cdk->cdn", x.numpy(), posterior["beta"])
    loc = mu[:, :, None, :] + posterior["g"]  # (c, d, groups, n)
    dens = stats.norm.logpdf(y.numpy(), loc, posterior["sigma"][:, :, None, None])
    return dens.sum(axis=2)  # the group plate is summed; the data plate is kept


def test_log_likelihood_matches_closed_form_with_shape_chain_draw_obs(problem):
    x, y, posterior = problem
    ll = pointwise_log_likelihood(regression, posterior, {"x": x, "y": y})
    assert set(ll) == {"y"}
    assert ll["y"].shape == (2, 5, 10)
    np.testing.assert_allclose(ll["y"], _exact(x, y, posterior), rtol=1e-5, atol=1e-4)


def test_vectorised_equals_loop_and_chunking_changes_nothing(problem):
    x, y, posterior = problem
    kwargs = {"x": x, "y": y}
    full = pointwise_log_likelihood(regression, posterior, kwargs)
    loop = pointwise_log_likelihood(regression, posterior, kwargs, vectorize=False)
    chunked = pointwise_log_likelihood(regression, posterior, kwargs, chunk_size=3)
    np.testing.assert_allclose(full["y"], loop["y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full["y"], chunked["y"], rtol=1e-6, atol=1e-6)


def test_non_broadcasting_model_falls_back_to_loop_with_one_warning(problem):
    x, y, posterior = problem
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ll = pointwise_log_likelihood(regression_no_broadcast, posterior, {"x": x, "y": y},
                                      chunk_size=2)
    messages = [str(w.message) for w in caught if "vectorised log-likelihood" in str(w.message)]
    assert len(messages) == 1
    np.testing.assert_allclose(ll["y"], _exact(x, y, posterior), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["eight_schools-eight_schools_noncentered",
                                  "kidiq-kidscore_momiq", "arK-arK"])
def test_zoo_models_vectorised_equals_loop(name):
    model = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    kwargs = model.model_kwargs(data)
    # random draws in the model's own latent shapes (read from one trace); positive sites > 0
    latent = site_names(model.model, kwargs)["latent"]
    trace = pyro.poutine.trace(model.model).get_trace(**kwargs)
    rng = np.random.default_rng(1)
    posterior = {}
    for site in latent:
        shape = tuple(trace.nodes[site]["value"].shape)
        posterior[site] = rng.normal(size=(2, 4) + shape)
        support = trace.nodes[site]["fn"].support
        if support is not dist.constraints.real:
            posterior[site] = np.abs(posterior[site]) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the zoo's models must broadcast
        fast = pointwise_log_likelihood(model.model, posterior, kwargs)
    slow = pointwise_log_likelihood(model.model, posterior, kwargs, vectorize=False)
    for site, value in fast.items():
        n_obs = observed_data(model.model, kwargs)[site].shape[0]
        assert value.shape == (2, 4, n_obs)
        np.testing.assert_allclose(value, slow[site], rtol=1e-6, atol=1e-6)


def test_observed_data_returns_observations(problem):
    x, y, _ = problem
    obs = observed_data(regression, {"x": x, "y": y})
    assert set(obs) == {"y"}
    np.testing.assert_array_equal(obs["y"], y.numpy())


def test_bad_input_gives_clear_errors(problem):
    x, y, posterior = problem
    with pytest.raises(KeyError, match="lacks latent site"):
        pointwise_log_likelihood(regression, {"beta": posterior["beta"]}, {"x": x, "y": y})
    with pytest.raises(ValueError, match="no observed sites"):
        pointwise_log_likelihood(regression, posterior, {"x": x})
    with pytest.raises(ValueError, match="chunk_size"):
        pointwise_log_likelihood(regression, posterior, {"x": x, "y": y}, chunk_size=0)
    with pytest.raises(ValueError, match="chain, draw"):
        pointwise_log_likelihood(regression, {**posterior, "sigma": np.ones(5)},
                                 {"x": x, "y": y})


def simple_regression(x, y=None):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], dim=-1):
        mu = pyro.deterministic("mu", (x * beta.unsqueeze(-2)).sum(-1), event_dim=0)
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


def test_posterior_predictive_resamples_observed_sites(problem):
    x, y, posterior = problem
    posterior = {"beta": posterior["beta"], "sigma": np.full((2, 5), 1e-3)}
    ppc = posterior_predictive(simple_regression, posterior, {"x": x, "y": y}, chunk_size=3)
    assert ppc["y"].shape == (2, 5, 10)
    loc = np.einsum("nk,cdk->cdn", x.numpy(), posterior["beta"])
    # drawn from the model (noise sd 1e-3), not copied from the data: within 10 noise sds of
    # each draw's regression line, and far from the observations
    assert np.abs(ppc["y"] - loc).max() < 1e-2
    assert np.abs(ppc["y"] - y.numpy()).max() > 0.1


def test_posterior_predictive_deterministic_sites_and_guide(problem):
    x, y, posterior = problem
    posterior = {"beta": posterior["beta"], "sigma": posterior["sigma"]}
    kwargs = {"x": x, "y": y}
    det = posterior_predictive(simple_regression, posterior, kwargs, return_sites=["mu"],
                               resample_observed=False)
    np.testing.assert_allclose(det["mu"], np.einsum("nk,cdk->cdn", x.numpy(), posterior["beta"]),
                               rtol=1e-5, atol=1e-5)
    guide = pyro.infer.autoguide.AutoNormal(simple_regression)
    guide(**kwargs)
    ppc = posterior_predictive(simple_regression, guide, kwargs, num_draws=7, chunk_size=3)
    assert ppc["y"].shape == (1, 7, 10)
    with pytest.raises(KeyError, match="unknown return site"):
        posterior_predictive(simple_regression, posterior, kwargs, return_sites=["nope"])
