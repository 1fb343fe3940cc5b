"""The MCMC driver against reference posteriors: posteriordb reference draws, an exact posterior.

Tolerances are those of :mod:`tests.reference_checks` (means within 4 combined Monte Carlo
standard errors, sds within 10% once the run is long enough for that to mean something,
R-hat < 1.01); eight schools' heavy-tailed ``tau`` gets more draws for the sd precondition.

Runs are sized for the one-core test budget: JIT-compiled potential, a dense mass matrix (the
regressions on uncentred predictors are strongly correlated; with it NUTS needs ~5 leapfrog
steps per draw instead of ~30-60; the driver's scale-free shrinkage makes that work for
posteriors with tiny sds), ``max_tree_depth=6`` (bounds the cost of the early warm-up
before the mass matrix is adapted; no sampling draw reaches it), and 2 chains of 500 draws:
the total number of draws sets the Monte Carlo error, and each chain costs a warm-up.
"""

import warnings

import arviz as az
import numpy as np
import pytest
import torch

import zoo
import zoo.registry
from inference.mcmc import ChainFailedError, chain_seeds, run_mcmc
from zoo.data import load

from tests.reference_checks import assert_matches_reference

#: Pyro's NUTS (sequential chains) on four of the six posteriors; mesquite and arK are the
#: vectorised kernels' (``tests/test_mcmc_vectorized_reference.py``), which keeps the suite's
#: time down
REFERENCE_MODELS = [
    "eight_schools-eight_schools_noncentered",
    "kidiq-kidscore_momiq",
    "earnings-logearn_height",
    "sblrc-blr",
]
CENTERED = "eight_schools-eight_schools_centered"
NUM_CHAINS, NUM_WARMUP, NUM_SAMPLES, MAX_TREE_DEPTH = 2, 250, 500, 6
#: runs that need more draws for the sd precondition (tau's heavy tail) or a longer warm-up
#: (earnings' metric adaptation)
OVERRIDES = {
    "eight_schools-eight_schools_noncentered": {"num_samples": 1000},
    "earnings-logearn_height": {"num_warmup": 400},
}


def _setup(name):
    model = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    return model, data, model.model_kwargs(data)


def _run(name, **overrides):
    model, data, kwargs = _setup(name)
    settings = dict(num_chains=NUM_CHAINS, num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES,
                    max_tree_depth=MAX_TREE_DEPTH, dense_mass=True, seed=0, jit_compile=True,
                    progress_bar=False)
    settings.update(overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_mcmc(model.model, kwargs, **settings)
    return model, data, result, [str(w.message) for w in caught]


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_nuts_matches_posteriordb_reference(name):
    model, data, result, _ = _run(name, **OVERRIDES.get(name, {}))
    assert_matches_reference(model, data, result)
    if name == "eight_schools-eight_schools_noncentered":
        assert int(result.sample_stats["diverging"].sum()) == 0


def test_centered_eight_schools_reports_divergences():
    _, _, result, messages = _run(CENTERED, num_warmup=150, num_samples=150, dense_mass=False)
    count = int(result.sample_stats["diverging"].sum())
    assert count > 0  # the funnel: NUTS cannot follow small tau at this step size
    assert any(f"{count} of 300" in m and "diverged" in m for m in messages)


def test_nuts_recovers_exact_conjugate_regression_posterior():
    model, data, result, _ = _run("conjugate_linear_regression")
    x, y = model.model_kwargs(data)["x"], model.model_kwargs(data)["y"]
    exact = model.exact_posterior(x, y)
    beta = result.posterior["beta"].reshape(-1, result.posterior["beta"].shape[-1])
    mean, cov = exact.beta_mean.numpy(), exact.beta_cov.numpy()
    sd = np.sqrt(np.diag(cov))
    mcse = np.array([float(az.mcse(result.posterior["beta"][..., j]))
                     for j in range(beta.shape[1])])
    # means: 4 MCSE per coefficient (exact reference, so no reference error term)
    assert np.all(np.abs(beta.mean(0) - mean) < 4 * mcse)
    # covariance: sds within 10% (see module docstring) and correlations within 4.5 sds of a
    # correlation estimate, which is at most (1 - rho^2) / sqrt(ESS) <= 1 / sqrt(ESS); with
    # p(p-1)/2 = 55 pairs a 4.5-sigma false alarm has probability below 55 * 7e-6 = 4e-4
    ess = min(float(az.ess(result.posterior["beta"][..., j])) for j in range(len(mean)))
    assert ess > 400
    est = np.cov(beta, rowvar=False)
    np.testing.assert_allclose(np.sqrt(np.diag(est)), sd, rtol=0.10)
    corr_est = est / np.outer(np.sqrt(np.diag(est)), np.sqrt(np.diag(est)))
    corr = cov / np.outer(sd, sd)
    np.testing.assert_allclose(corr_est, corr, atol=4.5 / np.sqrt(ess))
    sigma2 = result.posterior["sigma2"]
    assert abs(sigma2.mean() - float(exact.sigma2_mean)) < 4 * float(az.mcse(sigma2))


# ------------------------------------------------------------------ driver behaviour (cheap)
def _tiny(y=None):
    import pyro
    import pyro.distributions as dist

    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    pyro.deterministic("mu2", 2 * mu)
    with pyro.plate("data", 6, dim=-1):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


Y = torch.tensor([0.1, 0.5, -0.3, 1.1, 0.7, 0.2])


def _quick(**kw):
    settings = dict(num_chains=2, num_warmup=30, num_samples=20, progress_bar=False)
    settings.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(_tiny, {"y": Y}, **settings)


def test_result_shapes_stats_deterministic_sites_and_log_likelihood():
    result = _quick()
    assert result.posterior["mu"].shape == (2, 20)
    np.testing.assert_allclose(result.posterior["mu2"], 2 * result.posterior["mu"], rtol=1e-6)
    assert (result.posterior["sigma"] > 0).all()
    assert result.log_likelihood["y"].shape == (2, 20, 6)
    np.testing.assert_array_equal(result.observed_data["y"], Y.numpy())
    stats = result.sample_stats
    assert set(stats) == {"diverging", "acceptance_rate", "step_size", "tree_depth", "n_steps",
                          "energy", "lp"}
    assert all(v.shape == (2, 20) for v in stats.values())
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    # a tree of depth d has at most 2^d - 1 leapfrog steps, and at least d
    assert (stats["n_steps"] <= 2 ** stats["tree_depth"] - 1).all()
    assert (stats["n_steps"] >= stats["tree_depth"]).all()
    assert result.timings["warmup"] > 0 and result.timings["sampling"] > 0
    assert result.settings["chain_seeds"] == chain_seeds(0, 2)
    assert "torch" in result.versions and "pyro" in result.versions


def test_same_seed_same_numbers_and_parallel_matches_sequential():
    first, again = _quick(seed=5), _quick(seed=5)
    parallel = _quick(seed=5, chain_method="parallel")
    other = _quick(seed=6)
    for name in ("mu", "sigma"):
        np.testing.assert_array_equal(first.posterior[name], again.posterior[name])
        np.testing.assert_array_equal(first.posterior[name], parallel.posterior[name])
        assert not np.array_equal(first.posterior[name], other.posterior[name])
    np.testing.assert_array_equal(first.sample_stats["energy"], parallel.sample_stats["energy"])
    # chains are independent: different seeds give different draws
    assert not np.array_equal(first.posterior["mu"][0], first.posterior["mu"][1])


@pytest.mark.parametrize("kernel,stats", [
    ("hmc", {"diverging", "acceptance_rate", "step_size", "n_steps", "energy", "lp"}),
    ("rw", {"acceptance_rate", "step_size", "lp"}),
])
def test_hmc_and_random_walk_kernels(kernel, stats):
    result = _quick(kernel=kernel, num_steps=5 if kernel == "hmc" else None)
    assert set(result.sample_stats) == stats
    assert result.method == f"mcmc_{kernel}"
    if kernel == "hmc":
        assert (result.sample_stats["n_steps"] == 5).all()


@pytest.mark.parametrize("init", ["uniform", "median", "feasible", "mean",
                                  {"beta": [26.0, 0.6], "sigma": 18.0}])
def test_init_strategies_work_with_flat_priors(init):
    model, _, kwargs = _setup("kidiq-kidscore_momiq")  # flat priors on the coefficients
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_mcmc(model.model, kwargs, num_chains=1, num_warmup=5, num_samples=2,
                          init_strategy=init, progress_bar=False, log_likelihood=False)
    assert np.isfinite(result.sample_stats["lp"]).all()
    if isinstance(init, dict):  # started at the posterior mean (slope sd 0.06): it stays near
        assert result.posterior["beta"].dtype == np.float64
        assert abs(result.posterior["beta"][0, 0, 1] - 0.6) < 0.3


@pytest.mark.parametrize("kwargs,match", [
    ({"kernel": "gibbs"}, "unknown kernel 'gibbs'"),
    ({"num_chains": 0}, "num_chains must be an integer >= 1"),
    ({"num_warmup": -1}, "num_warmup must be an integer >= 0"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1"),
    ({"target_accept_prob": 1.0}, r"target_accept_prob must lie in \(0, 1\)"),
    ({"target_accept_prob": 0.0}, r"target_accept_prob must lie in \(0, 1\)"),
    ({"init_strategy": "prior"}, "unknown init_strategy 'prior'"),
    ({"chain_method": "threads"}, "unknown chain_method 'threads'"),
    ({"max_tree_depth": 0}, "max_tree_depth"),
    ({"step_size": -0.1}, "step_size must be positive"),
    ({"kernel": "nuts", "num_steps": 5}, "num_steps applies to kernel='hmc'"),
])
def test_bad_arguments_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_mcmc(_tiny, {"y": Y}, progress_bar=False, **kwargs)


def _broken(y=None):
    raise RuntimeError("model exploded")


@pytest.mark.parametrize("chain_method", ["sequential", "parallel"])
def test_failing_chain_is_reported_by_number(chain_method):
    with pytest.raises(ChainFailedError, match=r"chain 0\b.*model exploded") as info:
        run_mcmc(_broken, {"y": torch.tensor(0.0)}, num_chains=2, num_warmup=2, num_samples=2,
                 chain_method=chain_method, progress_bar=False)
    if chain_method == "parallel":  # every worker reports; both chains fail here
        assert "chain 1:" in str(info.value)
