"""Diagnostics, the ArviZ bridge, plots and persistence of MCMC results.

One small NUTS run of a conjugate normal-mean model (known posterior) is shared by the module;
the warning logic is checked on hand-made results whose statistics are known exactly.
"""

import math
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from inference.diagnostics import loo, psis_khat, summarize, waic, warnings_for
from inference.mcmc import run_mcmc
from inference.plots import save_standard_plots
from inference.result import InferenceResult

# y_i ~ Normal(mu, 1), mu ~ Normal(0, 10): posterior Normal(sum(y) / (n + 0.01), 1 / (n + 0.01))
Y = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1, 1.9, -0.2, 0.7, 0.4, 1.1], dtype=torch.float64)
POST_VAR = 1.0 / (len(Y) + 0.01)
POST_MEAN = float(Y.sum()) * POST_VAR


def normal_mean(y=None):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0))
    pyro.deterministic("mu_sq", mu**2)
    with pyro.plate("data", len(Y), dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def result():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(normal_mean, {"y": Y}, num_chains=2, num_warmup=150, num_samples=200,
                        seed=3, jit_compile=True, progress_bar=False)


def test_summarize_matches_the_known_posterior(result):
    table = summarize(result)
    for column in ("mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "ess_bulk", "ess_tail",
                   "r_hat", "ess_bulk_per_s"):
        assert column in table.columns
    row = table.loc["mu"]
    # 4 Monte Carlo standard errors: a false alarm probability below 1e-4 for a correct sampler
    assert abs(row["mean"] - POST_MEAN) < 4 * row["mcse_mean"] + 1e-3
    assert row["ess_bulk_per_s"] == pytest.approx(row["ess_bulk"] / result.timings["sampling"],
                                                  rel=1e-3)
    with pytest.raises(KeyError, match="unknown variable"):
        summarize(result, ["nope"])


def test_loo_and_waic_run_on_the_mcmc_result(result):
    elpd_loo = loo(result)
    elpd_waic = waic(result)
    assert elpd_loo.n_data_points == len(Y)
    assert np.isfinite(elpd_loo.elpd_loo) and np.isfinite(elpd_waic.elpd_waic)
    # p_waic is the summed posterior variance of log p(y_i | mu); for mu ~ Normal(m, v) that is
    # v * sum((y_i - m)^2) + n v^2 / 2 exactly. A variance estimated from ESS ~ 400 draws has
    # relative sd sqrt(2 / 400) ~ 7%, so 25% is a 3.5 sigma tolerance. LOO and WAIC agree
    # closely for one well-identified parameter.
    expected = POST_VAR * float(((Y - POST_MEAN) ** 2).sum()) + len(Y) * POST_VAR**2 / 2
    assert elpd_waic.p_waic == pytest.approx(expected, rel=0.25)
    assert abs(elpd_loo.elpd_loo - elpd_waic.elpd_waic) < 0.1
    no_ll = result.with_updates(log_likelihood=None)
    with pytest.raises(ValueError, match="no log_likelihood"):
        loo(no_ll)


def test_inference_data_has_every_group_with_arviz_names(result):
    idata = result.to_inference_data()
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.groups()
    for stat in ("diverging", "acceptance_rate", "step_size", "tree_depth", "n_steps", "energy",
                 "lp"):
        assert idata.sample_stats[stat].shape == (2, 200)
    assert idata.log_likelihood["y"].shape == (2, 200, len(Y))
    assert "mu_sq" in idata.posterior
    # ArviZ's own diagnostics read our statistics: E-BFMI needs the energy
    assert np.all(az.bfmi(idata) > 0.3)
    ppc = result.with_updates(posterior_predictive={"y": np.zeros((2, 200, len(Y)))})
    assert "posterior_predictive" in ppc.to_inference_data().groups()


def test_plots_are_written(result, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    az.plot_trace(result.to_inference_data())
    svi_like = result.with_updates(loss_history=np.linspace(10.0, 1.0, 50))
    paths = save_standard_plots(svi_like, tmp_path)
    assert {p.name for p in paths} == {"trace.png", "rank.png", "pair.png", "elbo.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_save_load_round_trip_keeps_draws_and_sample_stats(result, tmp_path):
    result.save(tmp_path / "run")
    back = InferenceResult.load(tmp_path / "run")
    assert back.method == result.method and back.seed == result.seed
    for name, value in result.posterior.items():
        np.testing.assert_array_equal(back.posterior[name], value)
    for name, value in result.sample_stats.items():
        np.testing.assert_array_equal(back.sample_stats[name], value)
    np.testing.assert_array_equal(back.log_likelihood["y"], result.log_likelihood["y"])
    assert back.settings["chain_seeds"] == list(result.settings["chain_seeds"])
    assert back.timings["sampling"] == pytest.approx(result.timings["sampling"])


def _fake(posterior, **stats):
    return InferenceResult(method="mcmc_nuts", posterior=posterior, sample_stats=stats,
                           settings={"max_tree_depth": 10}, timings={"sampling": 1.0})


def test_warnings_name_divergences_tree_depth_rhat_and_ess():
    rng = np.random.default_rng(0)
    good = {"a": rng.normal(size=(4, 1000))}
    assert warnings_for(_fake(good, diverging=np.zeros((4, 1000), bool))) == []
    diverging = np.zeros((4, 1000), bool)
    diverging[2, :7] = True
    depth = np.full((4, 1000), 3)
    depth[0, :5] = 10
    messages = warnings_for(_fake(good, diverging=diverging, tree_depth=depth))
    assert any("7 of 4000" in m and "diverged" in m and "[2]" in m for m in messages)
    assert any("5 of 4000" in m and "max_tree_depth=10" in m for m in messages)
    shifted = {"a": rng.normal(size=(4, 1000)) + np.arange(4)[:, None]}  # chains disagree
    assert any("R-hat" in m and "'a'" in m for m in warnings_for(_fake(shifted)))
    walk = {"a": np.cumsum(rng.normal(size=(4, 1000)), axis=1)}  # random walk: tiny ESS
    assert any("effective sample size" in m for m in warnings_for(_fake(walk)))
    svi = InferenceResult(method="svi", posterior=walk)
    assert warnings_for(svi) == []


def test_psis_khat_separates_good_and_bad_guides():
    # the exact posterior as a guide has bounded weights (k-hat well below 0.5); a guide 10x too
    # narrow has heavy-tailed weights (k-hat above 0.7) -- both far from the thresholds
    def exact_guide(y=None):
        pyro.sample("mu", dist.Normal(torch.tensor(POST_MEAN, dtype=torch.float64),
                                      math.sqrt(POST_VAR)))

    def narrow_guide(y=None):
        pyro.sample("mu", dist.Normal(torch.tensor(POST_MEAN, dtype=torch.float64),
                                      0.1 * math.sqrt(POST_VAR)))

    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0))
        with pyro.plate("data", len(Y), dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    pyro.set_rng_seed(0)
    assert psis_khat(model, exact_guide, {"y": Y}, num_particles=1000) < 0.5
    assert psis_khat(model, narrow_guide, {"y": Y}, num_particles=1000) > 0.7
    with pytest.raises(ValueError, match="num_particles"):
        psis_khat(model, exact_guide, {"y": Y}, num_particles=1)


def test_log_likelihood_outside_a_data_plate_gets_its_own_dimension():
    # a site without a dim=-1 plate has one log-likelihood value per draw (n_obs = 1) while its
    # observed value has 4 entries: the groups must not share a dimension of two lengths
    result = InferenceResult(method="mcmc_nuts", posterior={"mu": np.zeros((2, 5))},
                             log_likelihood={"y": np.zeros((2, 5, 1))},
                             observed_data={"y": np.zeros(4)})
    idata = result.to_inference_data()
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "y_ll_dim_0")
    assert idata.observed_data["y"].shape == (4,)
