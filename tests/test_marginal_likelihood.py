"""Importance-sampled log p(x) against PPCA's closed-form marginal likelihood."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import zoo
from inference.marginal_likelihood import importance_log_likelihood, split_batches


@pytest.fixture(scope="module")
def ppca_setup():
    """PPCA (3 factors) at its maximum-likelihood solution on 200 digits rows."""
    from zoo.data import load

    m = zoo.get("ppca", latent_dim=3)
    x_all = m.model_kwargs(load("digits"))["x"]
    m.fit_closed_form(x_all)
    return m, x_all[:120]


def test_exact_posterior_guide_gives_exact_log_likelihood(ppca_setup):
    m, x = ppca_setup
    exact = m.exact_log_likelihood(x).double().numpy()
    est = importance_log_likelihood(m.model, m.exact_guide, {"x": x}, num_samples=8, seed=0)
    # with q = p(z|x) every weight equals p(x): zero variance, only float32 rounding remains
    # (log densities of ~64 dims summed in float32: ~1e-5 relative)
    np.testing.assert_allclose(est.log_likelihood, exact, atol=5e-4)
    np.testing.assert_allclose(est.elbo, exact, atol=5e-4)
    assert est.mc_se < 1e-4


def test_importance_estimate_agrees_with_exact_within_mc_error(ppca_setup):
    m, x = ppca_setup
    m.set_encoder_to_posterior(noise=0.15, seed=1)  # a slightly-off amortised encoder
    exact = m.exact_log_likelihood(x).double().numpy()
    est = importance_log_likelihood(m.model, m.encoder_guide, {"x": x}, num_samples=1000,
                                    particle_batch=300, data_batch=50, seed=0)
    # the mean over points is within 3 delta-method Monte Carlo standard errors of the exact
    # mean (the across-point SE est.se measures data spread, not estimator error)
    assert abs(est.mean - exact.mean()) < 3 * est.mc_se + 1e-4
    # per point: standardised errors look like N(0, 1) draws (|z| < 4 for all 120 points;
    # P(any |z| > 4) ~ 120 * 6e-5 < 1%)
    z = (est.log_likelihood - exact) / np.maximum(est.mc_se_points, 1e-6)
    assert np.all(np.abs(z) < 4)
    # the ELBO is a lower bound, strictly below log p(x) (its gap = KL(q || p) > 0 exceeds its
    # sampling error, sd(log w)/sqrt(K), at every point here)
    assert np.all(est.elbo < exact)
    assert est.gap_mean > 0
    assert est.khat_max < 0.7  # a near-exact guide: PSIS says the weights are trustworthy


def test_too_narrow_guide_is_flagged_by_khat(ppca_setup):
    m, x = ppca_setup
    m.set_encoder_to_posterior(noise=0.0)
    with torch.no_grad():
        m.enc_log_s.sub_(1.5)  # scales 4.5x too small: heavy-tailed weights
    est = importance_log_likelihood(m.model, m.encoder_guide, {"x": x[:40]}, num_samples=1000,
                                    seed=0)
    exact = m.exact_log_likelihood(x[:40]).double().numpy()
    assert est.khat_mean > 0.7
    assert est.mean < exact.mean()  # IS with a too-narrow proposal underestimates log p(x)


def test_batching_over_particles_and_data_is_consistent(ppca_setup):
    m, x = ppca_setup
    x = x[:30]
    m.set_encoder_to_posterior(noise=0.15, seed=1)
    one = importance_log_likelihood(m.model, m.encoder_guide, {"x": x}, num_samples=400,
                                    particle_batch=400, data_batch=None, seed=3)
    many = importance_log_likelihood(m.model, m.encoder_guide, {"x": x}, num_samples=400,
                                     particle_batch=70, data_batch=7, seed=3)
    assert one.num_data == many.num_data == 30 and many.num_samples == 400
    # different random streams, same target: both within MC error of each other (5 joint SEs)
    joint = math.hypot(one.mc_se, many.mc_se)
    assert abs(one.mean - many.mean) < 5 * joint
    # a given seed gives the same numbers; the global RNG is not consumed
    state = torch.get_rng_state()
    again = importance_log_likelihood(m.model, m.encoder_guide, {"x": x}, num_samples=400,
                                      particle_batch=70, data_batch=7, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(again.log_likelihood, many.log_likelihood)


def test_global_latent_is_rejected():
    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x), dim=-1):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'mu'"):
        importance_log_likelihood(model, guide, {"x": torch.zeros(5)}, num_samples=10)


def test_split_batches_errors():
    with pytest.raises(ValueError, match="no data tensor"):
        split_batches({"a": 1}, 10)
    with pytest.raises(KeyError, match="nope"):
        split_batches({"x": torch.zeros(4, 2)}, 2, ["nope"])
    parts = split_batches({"x": torch.zeros(5, 2), "scale": 2.0}, 2)
    assert [len(p["x"]) for p in parts] == [2, 2, 1] and parts[0]["scale"] == 2.0


def test_ppca_evaluate_reports_exact_and_importance_estimates():
    from zoo.data import load

    digits = load("digits")
    m = zoo.get("ppca", latent_dim=3, guide="exact", eval_samples=16)
    m.fit_closed_form(m.model_kwargs(digits)["x"])
    metrics = m.evaluate(digits)
    # the exact posterior as guide: IS equals the closed form up to float32 rounding
    assert abs(metrics["test_ll"] - metrics["test_ll_exact"]) < 1e-3
    assert metrics["gap"] < 1e-3


def test_delta_method_mc_error_matches_the_spread_over_seeds(ppca_setup):
    m, x = ppca_setup
    x = x[:20]
    m.set_encoder_to_posterior(noise=0.3, seed=1)  # a visibly imperfect guide
    runs = [importance_log_likelihood(m.model, m.encoder_guide, {"x": x}, num_samples=100,
                                      seed=s) for s in range(60)]
    spread = np.stack([r.log_likelihood for r in runs]).std(0, ddof=1)
    delta = np.stack([r.mc_se_points for r in runs]).mean(0)
    # the sd over 60 seeds has ~9% relative error per point; averaged over 20 points ~2%
    # (measured ratio 0.98), so [0.8, 1.2] only fails if the formula is wrong
    assert 0.8 < float(np.mean(spread / delta)) < 1.2
