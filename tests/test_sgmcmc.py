"""SG-MCMC: SGLD and SGHMC on mini-batches recover a conjugate Gaussian posterior; schedules,
thinning, chains and settings behave as documented."""

from __future__ import annotations

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from inference import methods
from inference.sgmcmc import StepSchedule, kept_steps, run_sgmcmc

N, D, PRIOR_SD = 40, 8, 10.0


def normal_means(y, subsample_size=None):
    """y[i, j] ~ N(mu[j], 1), mu[j] ~ N(0, 10^2): D independent conjugate posteriors."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD).expand([D]).to_event(1))
    with pyro.plate("data", y.shape[0], subsample_size=subsample_size, dim=-1) as idx:
        pyro.sample("y", dist.Normal(mu, 1.0).to_event(1), obs=y.index_select(0, idx))


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(3)
    return 1.0 + torch.randn(N, D, generator=gen)


def exact_posterior(y):
    precision = y.shape[0] + PRIOR_SD ** -2
    return (y.sum(0) / precision).numpy(), 1.0 / precision


@pytest.mark.parametrize("kernel,step_size,extra", [
    ("sgld", 0.5, {}),
    ("sghmc", 0.1, {"friction": 0.2}),
])
def test_decreasing_steps_on_minibatches_recover_the_conjugate_posterior(data, kernel,
                                                                          step_size, extra):
    # mini-batches of 20 of 40 rows: without the plate's N / B scaling the variance would be
    # doubled, without the sqrt(2 h) noise halved, so both checks below could fail
    result = run_sgmcmc(normal_means, {"y": data}, kernel=kernel, num_chains=4, num_steps=500,
                        burn_in=0.25, thin=2, batch_size=20, step_size=step_size,
                        schedule="polynomial", decay_steps=50, decay_power=1.0, seed=0, **extra)
    draws = result.posterior["mu"]
    assert draws.shape == (4, 187, D) and result.family == "sgmcmc"
    mean, var = exact_posterior(data)
    ess = az.ess(az.convert_to_dataset({"mu": draws}))["mu"].values  # (D,)
    # means: within 4 Monte Carlo standard errors sqrt(var / ESS) in every coordinate
    z = (draws.mean((0, 1)) - mean) / np.sqrt(var / ess)
    assert np.abs(z).max() < 4.0, z
    # variance pooled over the D coordinates: its relative MC error is about
    # sqrt(2 / sum(ESS)); 4 of those plus 8 % for the step-size bias left at the end of the
    # schedule (h N (1 + grad-noise) / 2 at the last steps is below 0.05 here)
    ratio = draws.var((0, 1)).mean() / var
    assert abs(ratio - 1.0) < 4.0 * np.sqrt(2.0 / ess.sum()) + 0.08, (ratio, ess.sum())


def test_cyclical_schedule_explores_then_samples_and_keeps_draws_only_when_sampling():
    sched = StepSchedule("cyclical", 0.2, num_steps=100, num_cycles=4, exploration=0.5)
    assert sched(0) == pytest.approx(0.2) and sched(12) < 0.2 and sched(25) == pytest.approx(0.2)
    assert not sched.sampling(10) and sched.sampling(20) and not sched.sampling(30)
    kept = kept_steps(sched, burn_in=0.0, thin=2)
    assert kept and all(sched.sampling(t) for t in kept)
    # cycles of one step never reach a sampling stage: the last step is still kept
    assert kept_steps(StepSchedule("cyclical", 0.2, num_steps=3, num_cycles=3), 0.0, 1) == [2]
    poly = StepSchedule("polynomial", 1.0, num_steps=10, decay_steps=1.0, decay_power=1.0)
    assert [poly(t) for t in (0, 1, 3)] == pytest.approx([1.0, 0.5, 0.25])


def test_same_seed_same_draws_and_chains_differ(data):
    kw = dict(kernel="psgld", num_chains=2, num_steps=30, thin=5, batch_size=10,
              step_size=1e-2, seed=4)
    a = run_sgmcmc(normal_means, {"y": data}, **kw).posterior["mu"]
    b = run_sgmcmc(normal_means, {"y": data}, **kw).posterior["mu"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_bad_settings_and_models_are_refused_naming_the_problem(data):
    spec = methods.get("sghmc")
    with pytest.raises(methods.SettingsError, match="friction"):
        spec.settings_from({"friction": 1.5})
    with pytest.raises(methods.SettingsError, match="num_cycles=9 exceeds num_steps=5"):
        methods.get("csgld").settings_from({"num_cycles": 9, "num_steps": 5})
    target = methods.Target(normal_means, {"y": data}, traits=methods.ModelTraits())
    with pytest.raises(ValueError, match="mini-batch"):
        spec.run(target, {"batch_size": 10})
    with pytest.raises(RuntimeError, match="diverged at step"):
        run_sgmcmc(normal_means, {"y": data}, kernel="sgld", num_chains=1, num_steps=50,
                   step_size=1e6, init="median")
