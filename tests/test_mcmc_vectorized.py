"""The vectorised chain method: kernels against an exact posterior, the batched potential against
Pyro's, reproducibility, and the errors that send a user back to ``sequential``.

The target is conjugate, so the posterior is known exactly: ``mu`` (2 components in a plate)
with a Normal(0, 2) prior and unit-variance Normal data is Normal; ``lam`` with a Gamma(2, 1)
prior and Poisson counts is Gamma(2 + sum y, 1 + n), a positive site whose log-Jacobian the
potential must get right. Tolerances come from Monte Carlo error: means within 4 MCSE
(``az.mcse``), sds within 4 MCSE of the sd (``az.mcse(method="sd")``); for a correct sampler a
4-sigma miss has probability 6e-5 per check (9 checks per kernel), and the seed is fixed.
ChEES runs 200 + 400: its first 100 warm-up iterations leave the trajectory length short, and
with 100 draws per chain R-hat reached 1.02-1.04 at three of four seeds (bulk ESS 750-1750);
with 400 it is 1.004-1.007 (ESS 2000-3000). MEADS takes one leapfrog step per draw and needs many chains (its folds estimate scales from
them), so it runs 32 chains of 200 + 600 iterations: about 3000 bulk ESS per component (a
per-chain ESS near 100, which R-hat < 1.02 needs), in about 4 s.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from inference.mcmc import run_mcmc
from inference.mcmc.vectorized.adaptation import Welford, adaptation_windows
from inference.mcmc.vectorized.chees import halton
from inference.mcmc.vectorized.meads import (VectorizedMEADS, fold_max_eigenvalue,
                                             fold_parameters)
from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.potential import BatchedPotential, NotVectorizableError

Y = torch.tensor([[0.3, 1.2], [1.1, 0.4], [0.8, 1.5], [-0.2, 0.9], [0.6, 1.8]])
COUNTS = torch.tensor([3.0, 5.0, 2.0, 4.0, 6.0, 3.0])
PRIOR_SD, LAM_A, LAM_B = 2.0, 2.0, 1.0


def conjugate(y=None, counts=None):
    with pyro.plate("components", 2, dim=-1):
        mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    lam = pyro.sample("lam", dist.Gamma(LAM_A, LAM_B))
    with pyro.plate("rows", y.shape[0], dim=-2):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    with pyro.plate("count_data", counts.shape[0], dim=-1):
        pyro.sample("counts", dist.Poisson(lam), obs=counts)


def _exact():
    n = Y.shape[0]
    precision = 1.0 / PRIOR_SD**2 + n
    mu_mean, mu_sd = (Y.sum(0) / precision).numpy(), np.full(2, precision**-0.5)
    a, b = LAM_A + float(COUNTS.sum()), LAM_B + COUNTS.shape[0]
    return {"mu": (mu_mean, mu_sd), "lam": (np.array(a / b), np.array(np.sqrt(a) / b))}


def _run(kernel, seed=0, **kw):
    settings = dict(kernel=kernel, chain_method="vectorized", num_chains=8, num_warmup=100,
                    num_samples=100, seed=seed, progress_bar=False, log_likelihood=False)
    settings.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(conjugate, {"y": Y, "counts": COUNTS}, **settings)


#: settings of the exact-posterior runs other than the defaults of ``_run``
RUN_SETTINGS = {"nuts": {}, "hmc": {}, "chees": {"num_warmup": 200, "num_samples": 400},
                "meads": {"num_chains": 32, "num_warmup": 200, "num_samples": 600}}


@pytest.fixture(scope="module")
def runs():
    # HMC without num_steps: jittered trajectories (see inference.mcmc.vectorized.hmc)
    return {kernel: _run(kernel, **kw) for kernel, kw in RUN_SETTINGS.items()}


@pytest.mark.parametrize("kernel", list(RUN_SETTINGS))
def test_vectorized_kernels_recover_the_exact_posterior(runs, kernel):
    result = runs[kernel]
    shape = (RUN_SETTINGS[kernel].get("num_chains", 8), RUN_SETTINGS[kernel].get("num_samples",
                                                                                 100))
    for name, (mean, sd) in _exact().items():
        draws = result.posterior[name]
        draws = draws[..., None] if draws.ndim == 2 else draws
        assert draws.shape[:2] == shape
        for j in range(draws.shape[-1]):
            x = draws[..., j]
            est_mean, est_sd = x.mean(), x.std(ddof=1)
            assert abs(est_mean - np.ravel(mean)[j]) < 4 * float(az.mcse(x)), (name, j)
            assert abs(est_sd - np.ravel(sd)[j]) < 4 * float(az.mcse(x, method="sd")), (name, j)
            assert float(az.rhat(x)) < 1.02, (name, j)
    assert result.settings["chain_method"] == "vectorized"
    assert int(result.sample_stats["diverging"].sum()) == 0


def test_nuts_statistics_are_recorded_per_chain(runs):
    stats = runs["nuts"].sample_stats
    assert set(stats) == {"diverging", "acceptance_rate", "step_size", "tree_depth", "n_steps",
                          "energy", "lp"}
    assert all(v.shape == (8, 100) for v in stats.values())
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    # a tree of depth d has between d and 2^d - 1 leapfrog steps
    assert (stats["n_steps"] <= 2 ** stats["tree_depth"] - 1).all()
    assert (stats["n_steps"] >= stats["tree_depth"]).all()
    # per-chain step sizes, fixed after warm-up
    assert (stats["step_size"] == stats["step_size"][:, :1]).all()
    assert len(set(runs["nuts"].settings["adapted_step_size"])) == 8
    # the averaged acceptance probability is near the 0.8 dual averaging aims at
    assert 0.6 < float(stats["acceptance_rate"].mean()) < 0.97


def test_chees_shares_one_step_size_and_trajectory():
    result = _run("chees", num_chains=4, num_warmup=30, num_samples=10)
    stats = result.sample_stats
    assert (stats["step_size"] == stats["step_size"][0, 0]).all()
    assert (stats["n_steps"] == stats["n_steps"][:1]).all()  # jittered, shared by all chains


@pytest.mark.parametrize("kernel", ["nuts", "meads"])
def test_same_seed_same_draws(kernel):
    first, again = (_run(kernel, num_warmup=20, num_samples=5) for _ in range(2))
    other = _run(kernel, seed=1, num_warmup=20, num_samples=5)
    np.testing.assert_array_equal(first.posterior["mu"], again.posterior["mu"])
    np.testing.assert_array_equal(first.sample_stats["energy"], again.sample_stats["energy"])
    assert not np.array_equal(other.posterior["lam"], first.posterior["lam"])


def test_batched_potential_matches_pyros_for_every_chain():
    from pyro.infer.mcmc.util import initialize_model

    kwargs = {"y": Y, "counts": COUNTS}
    pot = BatchedPotential(conjugate, kwargs, num_chains=3)
    assert pot.traced
    z = torch.randn(3, pot.dim, generator=torch.Generator().manual_seed(0))
    energy, grad = pot(z)
    _, potential_fn, _, _ = initialize_model(conjugate, model_kwargs=kwargs)
    for c in range(3):
        params = {k: v[c].clone().requires_grad_(True) for k, v in pot.unpack(z).items()}
        want = potential_fn(params)
        want_grad = torch.autograd.grad(want, [params[s.name] for s in pot.sites])
        assert float(energy[c]) == pytest.approx(float(want.detach()), rel=1e-5)
        np.testing.assert_allclose(grad[c].numpy(), torch.cat([g.reshape(-1) for g in want_grad]
                                                                ).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel,chains", [("chees", 2), ("meads", 8)])
def test_cross_chain_kernels_default_to_vectorized_chains_and_refuse_sequential(kernel, chains):
    result = run_mcmc(conjugate, {"y": Y, "counts": COUNTS}, kernel=kernel, num_chains=chains,
                      num_warmup=5, num_samples=3, progress_bar=False, log_likelihood=False)
    assert result.settings["chain_method"] == "vectorized"
    with pytest.raises(ValueError, match=f"kernel '{kernel}' runs with chain_method "
                                         "'vectorized'"):
        run_mcmc(conjugate, {"y": Y, "counts": COUNTS}, kernel=kernel,
                 chain_method="sequential", num_chains=chains, num_warmup=5, num_samples=3)


def test_meads_runs_its_own_default_number_of_chains():
    from inference import methods

    result = run_mcmc(conjugate, {"y": Y, "counts": COUNTS}, kernel="meads", num_warmup=5,
                      num_samples=3, progress_bar=False, log_likelihood=False)
    assert result.posterior["mu"].shape[0] == 32
    assert methods.get("meads").settings_from({}).num_chains == 32
    assert methods.get("nuts").settings_from({}).num_chains == 4


def _unplated(y=None):
    x = pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))  # batch dims outside any plate
    pyro.sample("y", dist.Normal(x.sum(-1), 1.0), obs=y)


@pytest.mark.parametrize("model,kwargs,match", [
    (conjugate, dict(kernel="rw"), "kernel 'rw' has no vectorised form.*sequential"),
    (conjugate, dict(kernel="chees", dense_mass=True), "dense_mass applies to kernel=.hmc. or kernel=.nuts. only"),
    (conjugate, dict(kernel="meads", num_chains=7),
     r"kernel 'meads' splits the chains into 4 folds .* needs num_chains >= 8, got num_chains=7"),
    (conjugate, dict(kernel="meads", num_chains=8, step_size=0.1),
     "kernel 'meads' sets its step sizes from the gradients.*leave step_size unset"),
    (_unplated, dict(), "site 'x' has batch shape.*chain_method='sequential'"),
])
def test_what_cannot_be_vectorised_says_so(model, kwargs, match):
    data = {"y": Y, "counts": COUNTS} if model is conjugate else {"y": torch.tensor(0.5)}
    settings = dict(chain_method="vectorized", num_chains=2, num_warmup=5, num_samples=3,
                    progress_bar=False)
    settings.update(kwargs)
    with pytest.raises((ValueError, NotVectorizableError), match=match):
        run_mcmc(model, data, **settings)


def test_meads_statistics_one_leapfrog_step_and_fixed_shared_parameters(runs):
    stats = runs["meads"].sample_stats
    assert set(stats) == {"diverging", "acceptance_rate", "step_size", "n_steps", "energy", "lp"}
    assert (stats["n_steps"] == 1).all()
    # after warm-up one step size for every chain and draw, and 0 < eps <= 1
    assert (stats["step_size"] == stats["step_size"][0, 0]).all()
    assert 0.0 < stats["step_size"][0, 0] <= 1.0
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    # eps = 0.5 / sqrt(lambda_max) of scaled gradients is a small step on a near-Gaussian
    # target: GHMC rejections reverse the momentum, so MEADS aims at very few of them
    assert float(stats["acceptance_rate"].mean()) > 0.9


def test_fold_max_eigenvalue_is_exact_for_rank_one_rows():
    # rows all equal to v within a fold: E[x x^T] = v v^T, whose largest eigenvalue is |v|^2;
    # two folds kept apart (v and 2v)
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    x = torch.stack([v, 2 * v, v, 2 * v, v])
    fold = torch.tensor([0, 1, 0, 1, 0])
    torch.testing.assert_close(fold_max_eigenvalue(x, fold, 2),
                               torch.tensor([25.0, 100.0], dtype=torch.float64))


@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_fold_parameters_on_a_gaussian_follow_the_paper(scale):
    # four chains of N(0, scale^2 I) at scale * (+-1, +-1): sd exactly `scale`, potential
    # gradient z / scale^2, so both the scaled gradients and the scaled positions are the +-1
    # rows R, whose estimate is (sum_{i != j} (R R^T)_ij^2 / 12) / (trace / 4) = (16/12) / 2
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]],
                         dtype=torch.float64)
    z = scale * signs
    fold = torch.zeros(4, dtype=torch.long)
    eps = 0.5 / (2.0 / 3.0) ** 0.5
    early = fold_parameters(z, z / scale**2, fold, 1, iteration=0)
    torch.testing.assert_close(early.sigma, torch.full((1, 2), scale, dtype=torch.float64))
    torch.testing.assert_close(early.step_size, torch.tensor([eps], dtype=torch.float64))
    # t = 0: the floor 1 / ((t + 1) eps) binds, alpha = 1 - exp(-2)
    torch.testing.assert_close(early.alpha, torch.tensor([1 - np.exp(-2.0)],
                                                         dtype=torch.float64))
    # t = 9: gamma = 1 / sqrt(2/3), so 2 eps gamma = 1.5; delta = alpha / 2
    late = fold_parameters(z, z / scale**2, fold, 1, iteration=9)
    torch.testing.assert_close(late.alpha, torch.tensor([1 - np.exp(-1.5)], dtype=torch.float64))
    torch.testing.assert_close(late.delta, late.alpha / 2)


def test_meads_warm_up_freezes_one_fold_and_hands_each_fold_the_previous_ones_parameters():
    chains = 12
    pot = BatchedPotential(conjugate, {"y": Y, "counts": COUNTS}, chains)
    z0 = pot.initial_positions("uniform", list(range(chains)))
    kernel = VectorizedMEADS(KernelSettings(target_accept_prob=0.5))
    state = kernel.init(pot, z0, num_warmup=10, generator=torch.Generator().manual_seed(0))
    fold = kernel.fold.clone()
    assert torch.bincount(fold).tolist() == [3, 3, 3, 3]
    before, _ = kernel.step(state, 0)
    params = fold_parameters(before.z, before.grad, fold, 4, iteration=1)
    after, info = kernel.step(before, 1)  # iteration 1: fold 1 frozen
    torch.testing.assert_close(info["step_size"], params.step_size[(fold - 1) % 4])
    frozen = fold == 1
    for field in ("z", "momentum", "slice"):
        torch.testing.assert_close(getattr(after, field)[frozen], getattr(before, field)[frozen])
    assert not torch.equal(after.momentum[~frozen], before.momentum[~frozen])
    assert torch.equal(kernel.fold, fold)  # reshuffled after iterations 3, 7 ... only
    kernel.step(*kernel.step(after, 2)[:1], 3)
    assert not torch.equal(kernel.fold, fold) and torch.bincount(kernel.fold).tolist() == [3] * 4


def test_schedules_follow_stan_and_halton():
    assert adaptation_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450),
                                        (450, 950)]
    assert adaptation_windows(10) == []
    assert [halton(t) for t in (1, 2, 3, 4)] == [0.5, 0.25, 0.75, 0.125]


# ------------------------------------------------------------------ dense metric
CORR_MEAN = torch.tensor([1.0, -2.0, 0.5])
CORR_COV = torch.tensor([[1.0, 0.099, 0.0], [0.099, 0.01, 0.0], [0.0, 0.0, 4.0]])  # corr 0.99


def correlated():
    pyro.sample("x", dist.MultivariateNormal(CORR_MEAN, covariance_matrix=CORR_COV))


def test_dense_welford_is_statns_regularised_sample_covariance():
    gen = torch.Generator().manual_seed(0)
    draws = torch.randn(3, 40, 4, generator=gen, dtype=torch.float64)  # 3 chains x 40 draws
    welford = Welford(3, 4, torch.float64, dense=True)
    for z in draws.unbind(1):
        welford.update(z)
    n = 40
    shrink = 1e-3 * 5 / (n + 5) * np.eye(4)
    for c in range(3):
        expected = n / (n + 5) * np.cov(draws[c].numpy(), rowvar=False) + shrink
        np.testing.assert_allclose(welford.variance(pooled=False)[c].numpy(), expected,
                                   rtol=1e-10, atol=1e-12)
    pooled = np.cov(draws.reshape(-1, 4).numpy(), rowvar=False)
    np.testing.assert_allclose(welford.variance(pooled=True)[0].numpy(),
                               3 * n / (3 * n + 5) * pooled + 1e-3 * 5 / (3 * n + 5) * np.eye(4),
                               rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def correlated_runs():
    def run(kernel, dense):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_mcmc(correlated, {}, kernel=kernel, chain_method="vectorized",
                            num_chains=4, num_warmup=200, num_samples=250 if dense else 50,
                            seed=1, dense_mass=dense, progress_bar=False, log_likelihood=False,
                            # NUTS's trees capped at depth 6 (63 steps); HMC at 8 fixed steps,
                            # plenty once the dense metric whitens the target
                            **({"max_tree_depth": 6} if kernel == "nuts" else {"num_steps": 8}))
    return {(k, d): run(k, d) for k in ("nuts", "hmc") for d in (True, False)
            if k == "nuts" or d}


@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_dense_metric_recovers_a_strongly_correlated_gaussian(correlated_runs, kernel):
    x = correlated_runs[(kernel, True)].posterior["x"]  # (4, 250, 3)
    for j in range(3):
        xj = x[..., j]
        assert abs(xj.mean() - float(CORR_MEAN[j])) < 4 * float(az.mcse(xj)), j
        sd = float(CORR_COV[j, j].sqrt())
        assert abs(xj.std(ddof=1) - sd) < 4 * float(az.mcse(xj, method="sd")), j
    # the 0.99 correlation from 1000 draws: its sampling sd is (1 - 0.99^2) / sqrt(n_eff),
    # about 0.001 for n_eff ~ 400; 0.01 is ten of those
    corr = np.corrcoef(x[..., 0].ravel(), x[..., 1].ravel())[0, 1]
    assert abs(corr - 0.99) < 0.01, corr


def test_dense_metric_shortens_nuts_trajectories_on_a_correlated_target(correlated_runs):
    # a diagonal metric leaves the 0.99 correlation (condition number ~ 200 after scaling), so
    # NUTS needs long trajectories (here capped at depth 6, 63 steps); the dense metric whitens
    # the target and a few leapfrog steps suffice: a known ordering, by a wide margin
    steps = {dense: float(np.asarray(correlated_runs[("nuts", dense)].sample_stats["n_steps"])
                          .mean()) for dense in (True, False)}
    assert steps[True] * 2 < steps[False], steps
