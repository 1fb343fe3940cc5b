"""The SVI driver: exactness on a conjugate model, divergence handling, checkpoint/resume,
mini-batch unbiasedness, KL annealing, early stopping, bad-input errors and ArviZ output."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import zoo
from inference.checkpoint import load_checkpoint
from inference.errors import DivergenceError
from inference.guides import init_to_feasible_shape
from inference.schedules import KLAnnealing, LatentScaleMessenger, make_optimizer
from inference.svi import fit_svi

QUIET = dict(progress_bar=False)
N_OBS = 20


def normal_model(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def subsample_model(y, subsample_size=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0], subsample_size=subsample_size, dim=-1) as idx:
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y.index_select(0, idx))


@pytest.fixture(scope="module")
def y20():
    return 1.5 + torch.randn(N_OBS, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ exactness
def test_full_rank_svi_recovers_exact_conjugate_regression_posterior():
    gen = torch.Generator().manual_seed(3)
    n = 200
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = (0.5 + x @ torch.tensor([1.0, -0.7], dtype=torch.float64)
         + 0.8 * torch.randn(n, generator=gen, dtype=torch.float64))
    m = zoo.get("conjugate_linear_regression")
    exact = m.exact_posterior(x, y)
    mean, cov = exact.beta_mean.numpy(), exact.beta_cov.numpy()
    sd = np.sqrt(np.diag(cov))

    # init at the zero of the unconstrained space (beta = 0, sigma2 = 1): the prior-median init
    # can start beta several units away, more than the decaying lr can travel
    result = fit_svi(m.model, {"x": x, "y": y}, guide="auto_mvn", num_steps=1000, lr=0.05,
                     num_particles=8, vectorize_particles=True,
                     guide_options={"init_loc_fn": init_to_feasible_shape},
                     lr_schedule={"name": "exponential", "gamma": 0.995},
                     num_posterior_draws=10000, log_likelihood=False, **QUIET)
    draws = result.posterior["beta"][0]
    assert draws.shape == (10000, 3)
    # Why SVI is (nearly) exact here: beta | sigma2 is Gaussian and sigma2 is concentrated
    # (a_n = a0 + N/2 = 102, coefficient of variation 1/sqrt(a_n - 2) = 10%), so a full-rank
    # Gaussian over (beta, log sigma2) matches the beta marginal (Student-t, 204 dof) up to
    # O(1/a_n) ~ 1%. What remains is optimisation noise (the lr decays to 0.05 * 0.995^1000 =
    # 3e-4; seeds 0-3 gave guide covariances within 2-5% and means within 0.03 sd of exact)
    # and Monte Carlo error of the draws: a 10000-draw mean has sd 0.01 posterior sd, a
    # 10000-draw covariance has relative (Frobenius) error of about 2%.
    guide = result.fitted["guide"]
    names = [n for n in guide.prototype_trace.nodes if n in ("sigma2", "beta")]
    assert names == ["sigma2", "beta"]  # latent vector = (log sigma2, beta)
    q = guide.get_posterior()
    q_mean = q.loc[1:].detach().numpy()
    q_cov = q.covariance_matrix[1:, 1:].detach().numpy()
    assert np.all(np.abs(q_mean - mean) < 0.1 * sd), (q_mean, mean, sd)
    assert np.linalg.norm(q_cov - cov) / np.linalg.norm(cov) < 0.08, (q_cov, cov)
    assert np.all(np.abs(draws.mean(0) - mean) < 0.1 * sd), (draws.mean(0), mean, sd)
    rel = np.linalg.norm(np.cov(draws.T) - cov) / np.linalg.norm(cov)
    assert rel < 0.12, (np.cov(draws.T), cov)
    assert result.loss_history.shape == (1000,)
    assert result.timings["training"] > 0


# ------------------------------------------------------------------ divergence
def _flaky_model(calls):
    def model(y=None):
        calls["n"] += 1
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        hazard = calls["value"] if calls["bad_from"] and calls["n"] >= calls["bad_from"] else 0.0
        pyro.factor("hazard", torch.tensor(hazard))
        with pyro.plate("data", N_OBS, dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    return model


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_non_finite_loss_raises_divergence_and_keeps_last_finite_params(bad, y20, tmp_path):
    calls = {"n": 0, "bad_from": 30, "value": bad}
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(DivergenceError, match=r"step \d+: loss = (nan|inf)") as info:
        fit_svi(_flaky_model(calls), {"y": y20}, num_steps=100, lr=0.05,
                checkpoint_path=str(ckpt), **QUIET)
    err = info.value
    assert 0 < err.step < 100 and not math.isfinite(err.loss)
    after_divergence = {k: pyro.param(k).detach().clone() for k in pyro.get_param_store()}
    assert all(torch.isfinite(v).all() for v in after_divergence.values())
    # the same run stopped cleanly before the bad step has exactly these parameters
    clean = fit_svi(_flaky_model({"n": 0, "bad_from": None, "value": 0.0}), {"y": y20},
                    num_steps=err.step, lr=0.05, num_posterior_draws=0, **QUIET)
    for name, value in after_divergence.items():
        np.testing.assert_array_equal(value.numpy(), clean.guide_params[name])
    state = load_checkpoint(ckpt)
    assert state["step"] == err.step and len(state["loss_history"]) == err.step
    for name, value in state["params"].items():
        assert torch.isfinite(value).all()


# ------------------------------------------------------------------ checkpoint / resume
def test_checkpoint_and_resume_equals_uninterrupted_run(y20, tmp_path):
    opts = dict(guide="auto_mvn", lr=0.05, lr_schedule={"name": "step", "step_size": 20,
                                                        "gamma": 0.5},
                kl_anneal={"start": 0.2, "end": 1.0, "steps": 80}, num_posterior_draws=50,
                num_particles=2, vectorize_particles=True,
                log_likelihood=False, seed=7, **QUIET)
    straight = fit_svi(normal_model, {"y": y20}, num_steps=100,
                       checkpoint_path=str(tmp_path / "a.pt"), checkpoint_every=50, **opts)
    first = fit_svi(normal_model, {"y": y20}, num_steps=50,
                    checkpoint_path=str(tmp_path / "b.pt"), **opts)
    assert first.loss_history.shape == (50,)
    # something else runs in between and disturbs every RNG and the param store
    pyro.set_rng_seed(123)
    pyro.clear_param_store()
    resumed = fit_svi(normal_model, {"y": y20}, num_steps=100,
                      checkpoint_path=str(tmp_path / "b.pt"), resume=True, **opts)
    assert resumed.settings["resumed_from_step"] == 50
    np.testing.assert_array_equal(resumed.loss_history, straight.loss_history)
    assert set(resumed.guide_params) == set(straight.guide_params)
    for name in straight.guide_params:
        np.testing.assert_allclose(resumed.guide_params[name], straight.guide_params[name],
                                   rtol=0, atol=1e-6)
    np.testing.assert_array_equal(resumed.posterior["mu"], straight.posterior["mu"])
    # plain tensors only: loads with weights_only=True
    state = torch.load(tmp_path / "b.pt", weights_only=True)
    assert state["step"] == 100 and set(state) >= {"params", "optim", "rng", "loss_history"}


# ------------------------------------------------------------------ mini-batches
def test_minibatch_elbo_is_unbiased_for_full_data_elbo():
    gen = torch.Generator().manual_seed(5)
    y = 2.0 + torch.randn(100, generator=gen)
    result = fit_svi(subsample_model, {"y": y}, batch_size=10, num_steps=300, lr=0.05,
                     num_posterior_draws=500, **QUIET)
    # the fitted posterior is right: N(sum(y) / (n + 1/100), 1 / (n + 1/100)); sd 0.1,
    # tolerance 0.05 = half a posterior sd for the noise of 300 mini-batch steps
    assert abs(result.posterior["mu"].mean() - float(y.mean())) < 0.05
    guide = result.fitted["guide"]
    elbo = pyro.infer.Trace_ELBO(num_particles=20, vectorize_particles=True)
    calls = 300
    with torch.no_grad():
        full = np.array([elbo.loss(subsample_model, guide, y=y) for _ in range(calls)])
        mini = np.array([elbo.loss(subsample_model, guide, y=y, subsample_size=10)
                         for _ in range(calls)])
    # each call is an independent estimate (fresh subsample and guide draws), so the standard
    # error of the difference of the two averages is computed from their spreads
    se = math.sqrt(full.var(ddof=1) / calls + mini.var(ddof=1) / calls)
    assert abs(mini.mean() - full.mean()) < 4 * se, (mini.mean(), full.mean(), se)
    # and the test has power: without the N / B rescaling the likelihood term would be 10x
    # smaller, a shift of about 0.9 * full.mean(), far beyond 4 se
    assert 0.9 * abs(full.mean()) > 20 * se


def test_minibatch_errors_name_the_problem(y20):
    with pytest.raises(ValueError, match="does not accept|subsample_size"):
        fit_svi(normal_model, {"y": y20}, batch_size=5, num_steps=1, **QUIET)
    with pytest.raises(ValueError, match="batch_size=500 is larger than the data"):
        fit_svi(subsample_model, {"y": y20}, batch_size=500, num_steps=1, **QUIET)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fit_svi(subsample_model, {"y": y20}, batch_size=0, num_steps=1, **QUIET)


# ------------------------------------------------------------------ KL annealing
def test_kl_annealing_scales_latent_sites_only():
    y = torch.randn(100)
    with LatentScaleMessenger(0.25):
        trace = pyro.poutine.trace(subsample_model).get_trace(y, subsample_size=10)
    assert trace.nodes["mu"]["scale"] == 0.25
    assert trace.nodes["y"]["scale"] == pytest.approx(10.0)  # the plate's N / B, untouched

    anneal = KLAnnealing(start=0.0, end=1.0, steps=10)
    guide = pyro.infer.autoguide.AutoNormal(normal_model)
    guide(y=y[:N_OBS])
    model_a, guide_a = anneal.wrap(normal_model), anneal.wrap(guide)

    def loss_at(weight_step):
        anneal.set_step(weight_step)
        pyro.set_rng_seed(11)  # the same guide draw every time
        return pyro.infer.Trace_ELBO().loss(model_a, guide_a, y=y[:N_OBS])

    # at weight 0 the loss is exactly -log p(y | mu) at the guide's draw of mu
    pyro.set_rng_seed(11)
    mu = pyro.poutine.trace(guide).get_trace(y=y[:N_OBS]).nodes["mu"]["value"].detach()
    expected = -float(dist.Normal(mu, 1.0).log_prob(y[:N_OBS]).sum())
    assert loss_at(0) == pytest.approx(expected, rel=1e-5)
    # the loss is affine in the weight: L(w) = L(0) + w * (log q(mu) - log p(mu))
    assert loss_at(5) == pytest.approx(0.5 * (loss_at(0) + loss_at(10)), rel=1e-5)


def test_kl_annealing_schedules_and_config_errors(y20):
    lin = KLAnnealing.from_config({"start": 0.1, "end": 1.0, "steps": 100})
    assert lin.weight(0) == 0.1 and lin.weight(50) == pytest.approx(0.55)
    assert lin.weight(100) == lin.weight(1000) == 1.0
    sig = KLAnnealing(start=0.0, end=1.0, steps=100, shape="sigmoid")
    weights = [sig.weight(s) for s in range(0, 101, 10)]
    assert weights[0] == pytest.approx(0.0, abs=1e-12) and weights[-1] == pytest.approx(1.0)
    assert weights[5] == pytest.approx(0.5) and np.all(np.diff(weights) > 0)
    for bad in ({"start": 0.1}, {"steps": 10, "shape": "cosine"}, {"steps": 10, "end": 0.0},
                {"steps": 10, "warmup": 3}, {"steps": -1}, "linear"):
        with pytest.raises(ValueError, match="kl_anneal"):
            fit_svi(normal_model, {"y": y20}, kl_anneal=bad, num_steps=1, **QUIET)
    result = fit_svi(normal_model, {"y": y20}, kl_anneal={"start": 0.01, "steps": 50},
                     num_steps=100, lr=0.05, num_posterior_draws=10, **QUIET)
    assert result.settings["kl_anneal"]["steps"] == 50


# ------------------------------------------------------------------ early stopping
def shifted_model(y=None):
    mu = pyro.sample("mu", dist.Normal(5.0, 1.0))
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_early_stopping_keeps_best_parameters():
    train = torch.zeros(N_OBS)      # pulls mu from the prior median (5) towards 0.24
    valid = torch.full((N_OBS,), 5.0)  # ... which makes the validation ELBO worse every time
    result = fit_svi(shifted_model, {"y": train}, validation_kwargs={"y": valid},
                     eval_every=10, patience=2, num_steps=500, lr=0.05,
                     num_posterior_draws=10, **QUIET)
    stop = result.settings["early_stopping"]
    assert stop["stopped_early"] and stop["best_step"] == 10
    assert result.settings["steps_run"] == 30 and len(stop["val_history"]) == 3
    # validation does not disturb the training RNG stream, so the kept parameters are those
    # of a plain run of 10 steps
    ten = fit_svi(shifted_model, {"y": train}, num_steps=10, lr=0.05, num_posterior_draws=0,
                  **QUIET)
    for name, value in ten.guide_params.items():
        np.testing.assert_array_equal(result.guide_params[name], value)


# ------------------------------------------------------------------ options and errors
def test_bad_arguments_give_clear_errors(y20):
    cases = [
        (dict(elbo="trace_elbo"), "unknown elbo 'trace_elbo'"),
        (dict(optimizer="adamw"), "unknown optimizer 'adamw'.*adam"),
        (dict(num_steps=0), "num_steps must be an integer >= 1"),
        (dict(lr_schedule={"name": "warm"}), "unknown lr_schedule name 'warm'"),
        (dict(patience=3), "patience .* needs validation_kwargs"),
        (dict(resume=True), "need a checkpoint_path"),
        (dict(posterior_sites=["sigma"]), r"posterior_sites \['sigma'\].*available: \['mu'\]"),
        (dict(device="tpu"), "device 'tpu'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            fit_svi(normal_model, {"y": y20}, **{"num_steps": 2, **kwargs}, **QUIET)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            fit_svi(normal_model, {"y": y20}, device="cuda", num_steps=1, **QUIET)


def test_optimizer_options_schedules_and_clipping(y20):
    optim = make_optimizer("adam", lr=0.1, lr_schedule={"name": "exponential", "gamma": 0.9},
                           clip_norm=1.0)
    result = fit_svi(normal_model, {"y": y20}, num_steps=10, optimizer="clipped_adam",
                     lr=0.1, clip_norm=0.5, lr_schedule={"name": "cosine"},
                     num_posterior_draws=0, **QUIET)
    assert result.posterior == {} and result.settings["optimizer"] == "clipped_adam"
    sched = result.fitted["optimizer"]
    lrs = [s.get_last_lr()[0] for s in sched.optim_objs.values()]
    assert lrs and all(lr == pytest.approx(0.0, abs=1e-12) for lr in lrs)  # cosine ends at 0
    assert optim.pt_clip_args == {"clip_norm": 1.0}
    with pytest.raises(ValueError, match="clip_norm must be > 0"):
        make_optimizer("adam", clip_norm=0.0)


def test_posterior_sites_and_deterministic_sites(y20):
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        tau = pyro.sample("tau", dist.HalfNormal(1.0))
        pyro.deterministic("mu_plus_tau", mu + tau)
        with pyro.plate("data", N_OBS, dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0 + tau), obs=y)

    result = fit_svi(model, {"y": y20}, num_steps=20, num_posterior_draws=100, **QUIET)
    post = result.posterior
    assert set(post) == {"mu", "tau", "mu_plus_tau"} and post["tau"].shape == (1, 100)
    np.testing.assert_allclose(post["mu_plus_tau"], post["mu"] + post["tau"], rtol=1e-6)
    only = fit_svi(model, {"y": y20}, num_steps=20, num_posterior_draws=100,
                   posterior_sites=["tau"], **QUIET)
    assert set(only.posterior) == {"tau"}
    assert only.log_likelihood["y"].shape == (1, 100, N_OBS)  # computed from all latents


# ------------------------------------------------------------------ ArviZ
@pytest.mark.smoke
def test_smoke_arviz_summary_loo_and_plot_trace_on_svi_result(y20):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = fit_svi(normal_model, {"y": y20}, num_steps=200, lr=0.05, num_posterior_draws=400,
                     **QUIET)
    assert result.log_likelihood["y"].shape == (1, 400, N_OBS)
    np.testing.assert_array_equal(result.observed_data["y"], y20.numpy())
    idata = result.to_inference_data()
    summary = az.summary(idata)
    assert "mu" in summary.index
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    az.plot_trace(idata)
    plt.close("all")
