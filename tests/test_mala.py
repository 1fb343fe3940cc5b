"""MALA against posteriors known exactly, its acceptance correction, and its determinism.

Tolerances (fixed seeds; all from Monte Carlo error):

* means: within 4 Monte Carlo standard errors (``az.mcse``); a correct sampler misses by 4
  sigma with probability 6e-5 per quantity.
* sds: within 4 Monte Carlo standard errors of the sd (``az.mcse(method="sd")``), after checking
  that the run is long enough for this to mean something: that standard error must be at most
  5% of the true sd, so a sampler whose sd is off by 20% or more cannot pass.
* correlation: within 4.5 / sqrt(ESS) (the sd of a correlation estimate is at most
  (1 - rho^2) / sqrt(ESS)).
* acceptance: the final step size comes from dual averaging over the last warm-up window (50
  iterations, Stan's end buffer) of MALA's very noisy acceptance probabilities, so the
  sampling-phase acceptance lands near, not at, the target. On the 1-D models, seeds 0-3 gave
  single chains between 0.36 and 0.77 and two-chain means between 0.55 and 0.69; a two-chain
  mean within 0.15 of 0.574 ignores that noise but catches a broken adaptation (0.9 or 0.2).
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

from inference.mcmc import get_kernel, run_mcmc
from inference.mcmc.kernels.mala import MALA
from inference.mcmc.protocol import KernelSettings

F64 = torch.float64
NUM_CHAINS, NUM_WARMUP, NUM_SAMPLES = 2, 500, 1000
ACCEPT_TOLERANCE = 0.15  # see the module docstring

# y_i ~ Normal(mu, 1), mu ~ Normal(0, 10): posterior Normal(sum(y) / (n + 0.01), 1 / (n + 0.01))
Y = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1, 1.9, -0.2, 0.7, 0.4, 1.1], dtype=F64)
NORMAL_VAR = 1.0 / (len(Y) + 0.01)
NORMAL_POSTERIOR = {"mu": (float(Y.sum()) * NORMAL_VAR, NORMAL_VAR**0.5)}

# counts ~ Poisson(rate), rate ~ Gamma(2, 1): posterior Gamma(2 + sum, 1 + n); a positive site,
# so the log transform and its Jacobian are exercised
COUNTS = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 2.0], dtype=F64)
GAMMA_POST = stats.gamma(2.0 + float(COUNTS.sum()), scale=1.0 / (1.0 + len(COUNTS)))
POISSON_POSTERIOR = {"rate": (GAMMA_POST.mean(), GAMMA_POST.std())}

# a correlated Gaussian whose scales differ by a factor 100 (the diagonal mass matrix's job)
LOC = np.array([1.0, -2.0])
SCALES, RHO = np.array([10.0, 0.1]), 0.8
COV = np.outer(SCALES, SCALES) * np.array([[1.0, RHO], [RHO, 1.0]])


def normal_mean(y=None):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=F64), 10.0))
    with pyro.plate("data", len(Y)):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def poisson_rate(counts=None):
    rate = pyro.sample("rate", dist.Gamma(torch.tensor(2.0, dtype=F64), 1.0))
    with pyro.plate("data", len(COUNTS)):
        pyro.sample("counts", dist.Poisson(rate), obs=counts)


def gaussian_2d():
    pyro.sample("x", dist.MultivariateNormal(torch.tensor(LOC), torch.tensor(COV)))


def _run(model, kwargs, **overrides):
    settings = dict(kernel="mala", num_chains=NUM_CHAINS, num_warmup=NUM_WARMUP,
                    num_samples=NUM_SAMPLES, seed=0, progress_bar=False)
    settings.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(model, kwargs, **settings)


def _assert_moments(draws: np.ndarray, mean: float, sd: float) -> None:
    """``draws`` of shape (chain, draw) against the exact mean and sd (see module docstring)."""
    assert abs(draws.mean() - mean) < 4 * float(az.mcse(draws))
    sd_error = float(az.mcse(draws, method="sd"))
    assert sd_error <= 0.05 * sd, "run too short for the sd check"
    assert abs(draws.std(ddof=1) - sd) < 4 * sd_error


@pytest.mark.parametrize("model,kwargs,exact", [
    (normal_mean, {"y": Y}, NORMAL_POSTERIOR),
    (poisson_rate, {"counts": COUNTS}, POISSON_POSTERIOR),
], ids=["normal_mean", "poisson_rate"])
def test_mala_recovers_conjugate_posteriors(model, kwargs, exact):
    result = _run(model, kwargs)
    for name, (mean, sd) in exact.items():
        _assert_moments(result.posterior[name], mean, sd)
    assert set(result.sample_stats) == set(get_kernel("mala").stats)
    assert result.method == "mcmc_mala"
    accept = result.sample_stats["acceptance_rate"]
    assert abs(accept.mean() - 0.574) < ACCEPT_TOLERANCE
    assert not result.sample_stats["diverging"].any()
    assert (result.sample_stats["step_size"] == np.array(
        result.settings["adapted_step_size"])[:, None]).all()


def test_mala_recovers_a_correlated_badly_scaled_gaussian():
    result = _run(gaussian_2d, {}, num_warmup=1000, num_samples=2000)
    x = result.posterior["x"]
    for j in range(2):
        _assert_moments(x[..., j], LOC[j], SCALES[j])
    ess = min(float(az.ess(x[..., j])) for j in range(2))
    corr = np.corrcoef(x.reshape(-1, 2), rowvar=False)[0, 1]
    assert abs(corr - RHO) < 4.5 / np.sqrt(ess)
    assert abs(result.sample_stats["acceptance_rate"].mean() - 0.574) < ACCEPT_TOLERANCE
    # the adapted diagonal metric absorbs the 100x scale difference: a unit-scale step size
    assert 0.1 < result.settings["adapted_step_size"][0] < 10


def test_acceptance_ratio_has_the_asymmetric_proposal_correction():
    """log[pi(z') q(z | z')] - log[pi(z) q(z' | z)] against scipy, with a non-unit metric."""
    kernel = MALA(KernelSettings(target_accept_prob=0.574))
    state = kernel.init(gaussian_2d, {}, num_warmup=0)
    inverse_mass = torch.tensor([4.0, 0.25], dtype=F64)
    kernel._adapter.mass_matrix_adapter.inverse_mass_matrix = {("z",): inverse_mass}
    eps, noise = 0.7, torch.tensor([0.3, -1.1], dtype=F64)
    proposal = kernel._state(kernel._propose(state, eps, noise))
    got = kernel._log_accept_ratio(state, proposal, eps, noise)

    target = stats.multivariate_normal(LOC, COV)
    z, z_new = state.z.numpy(), proposal.z.numpy()
    grad = lambda v: np.linalg.solve(COV, v - LOC)  # noqa: E731 - gradient of U = -log pi
    m_inv = inverse_mass.numpy()
    q = lambda to, frm: stats.multivariate_normal(  # noqa: E731 - the Langevin proposal
        frm - 0.5 * eps**2 * m_inv * grad(frm), eps**2 * np.diag(m_inv)).logpdf(to)
    expected = target.logpdf(z_new) + q(z, z_new) - target.logpdf(z) - q(z_new, z)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(  # and the proposal is the documented one
        z_new, z - 0.5 * eps**2 * m_inv * grad(z) + eps * np.sqrt(m_inv) * noise.numpy())


def test_same_seed_same_numbers_and_parallel_matches_sequential():
    quick = dict(num_warmup=30, num_samples=20)
    first = _run(normal_mean, {"y": Y}, seed=5, **quick)
    again = _run(normal_mean, {"y": Y}, seed=5, **quick)
    parallel = _run(normal_mean, {"y": Y}, seed=5, chain_method="parallel", **quick)
    other = _run(normal_mean, {"y": Y}, seed=6, **quick)
    np.testing.assert_array_equal(first.posterior["mu"], again.posterior["mu"])
    np.testing.assert_array_equal(first.posterior["mu"], parallel.posterior["mu"])
    for key in first.sample_stats:
        np.testing.assert_array_equal(first.sample_stats[key], parallel.sample_stats[key])
    assert not np.array_equal(first.posterior["mu"], other.posterior["mu"])
    assert not np.array_equal(first.posterior["mu"][0], first.posterior["mu"][1])


def test_dense_mass_is_rejected_for_mala():
    with pytest.raises(ValueError, match="dense_mass applies to kernel='hmc' or kernel='nuts' "
                                         "only, not 'mala'"):
        run_mcmc(normal_mean, {"y": Y}, kernel="mala", dense_mass=True, progress_bar=False)
