"""Bayesian neural nets: priors and KL terms, local reparameterisation, guides, NUTS, pruning.

Budget: the whole file runs in well under two minutes on one core (NUTS on a 3-unit net is the
largest part); every run has a fixed seed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from scipy import integrate, stats

import zoo
from zoo.data.dataset import Dataset
from zoo.models.bnn import BayesianNet, iter_weight_draws
from zoo.models.bnn_guides import compression_summary
from zoo.models.bnn_layers import (K1, LogUniform, ScaleMixtureNormal, linear,
                                   mark_local_reparam, neg_kl_log_uniform_kingma,
                                   neg_kl_log_uniform_molchanov)


def _toy_1d(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=gen) * 2 - 1
    y = torch.sin(2 * x[:, 0]) + 0.2 * torch.randn(n, generator=gen)
    return x, y


X_IN = torch.linspace(-1, 1, 5)[:, None]
X_OUT = torch.tensor([-4.0, -3.0, 3.0, 4.0])[:, None]


# ----------------------------------------------------------------------------- registry
def test_registered_names_and_guides():
    names = {s.name for s in zoo.list_models()}
    assert {"bnn", "bnn_classifier", "lenet300100", "lenet5"} <= names
    assert set(zoo.get("bnn").guides()) == {"bbb", "mc_dropout"}
    assert set(zoo.get("lenet300100").guides()) == {"vd", "sparse_vd"}
    assert zoo.get("bnn").name == "bnn"


def test_bad_configuration_names_the_problem():
    with pytest.raises(ValueError, match="prior 'cauchy'"):
        BayesianNet(prior="cauchy")
    with pytest.raises(ValueError, match="activation"):
        BayesianNet(activation="swish!")
    with pytest.raises(ValueError, match="task"):
        BayesianNet(task="ranking")


# ----------------------------------------------------------------------------- priors, KL
def test_scale_mixture_log_prob_is_the_mixture_density():
    prior = ScaleMixtureNormal(0.25, 1.0, 0.1)
    w = torch.tensor([-2.0, 0.0, 0.05, 1.5])
    expected = np.log(0.25 * stats.norm.pdf(w, 0, 1.0) + 0.75 * stats.norm.pdf(w, 0, 0.1))
    np.testing.assert_allclose(prior.log_prob(w).numpy(), expected, rtol=1e-5)
    draws = prior.expand([200_000]).sample()
    # variance 0.25 * 1 + 0.75 * 0.01 = 0.2575; sd of the sample variance ~ 0.003
    assert abs(float(draws.var()) - 0.2575) < 0.012


def _exact_neg_kl(log_alpha: float) -> float:
    """0.5 log alpha - E[log|eps|], eps ~ N(1, alpha): -KL(q || log-uniform) up to a constant."""
    sd = math.sqrt(math.exp(log_alpha))
    f = lambda e: math.log(abs(e)) * stats.norm.pdf(e, 1.0, sd)  # noqa: E731
    lo, hi = 1 - 14 * sd, 1 + 14 * sd
    if lo < 0:  # integrate on each side of the log singularity at 0
        value = integrate.quad(f, lo, 0, limit=200)[0] + integrate.quad(f, 0, hi, limit=200)[0]
    else:
        value = integrate.quad(f, lo, hi, limit=200)[0]
    return 0.5 * log_alpha - value


def test_sparse_vd_kl_approximation_matches_numerical_integral():
    log_alpha = np.linspace(-8, 8, 33)
    exact = np.array([_exact_neg_kl(la) for la in log_alpha])
    approx = neg_kl_log_uniform_molchanov(torch.tensor(log_alpha)).numpy()
    diff = approx - exact  # should be the constant C of the approximation
    centre = 0.5 * (diff.max() + diff.min())
    # Molchanov et al. report the fit as accurate to about 0.01 nats; the constant is -k1
    # ((gamma + log 2) / 2 = 0.6352 in the alpha -> inf limit of the exact integral)
    assert np.abs(diff - centre).max() < 0.01
    assert abs(centre + K1) < 0.003
    # Kingma et al.'s polynomial is a cruder fit on its range alpha <= 1
    small = log_alpha[log_alpha <= 0]
    kd = neg_kl_log_uniform_kingma(torch.tensor(small)).numpy() - exact[log_alpha <= 0]
    assert kd.max() - kd.min() < 0.05


def test_meanfield_elbo_uses_the_registered_log_uniform_kl():
    q = dist.Normal(torch.tensor([0.5, -1.0]), torch.tensor([0.1, 2.0]))
    kl = torch.distributions.kl_divergence(q.to_event(1), LogUniform().expand([2]).to_event(1))
    la = 2 * torch.log(q.scale) - 2 * torch.log(q.loc.abs())
    assert torch.allclose(kl, -neg_kl_log_uniform_molchanov(la).sum(), atol=1e-6)


# ----------------------------------------------------------------------------- layers
@pytest.mark.parametrize("mode", ["lrt", "flipout"])
def test_local_reparameterisation_has_the_weight_sampling_moments(mode):
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    loc, scale = torch.randn(4, 2), torch.rand(4, 2) + 0.1
    s = 20_000
    with pyro.plate("draws", s, dim=-2):
        w = pyro.sample("w", dist.Normal(loc, scale).to_event(2))
    mark_local_reparam(w, loc, scale, mode)
    out = linear(x, w)  # (s, 3, 2)
    mean, var = x @ loc, x.pow(2) @ scale.pow(2)
    # MC error of the mean: sd / sqrt(s) ~ 0.01 * sd; of the variance ~ sqrt(2 / s) = 1 %
    assert torch.allclose(out.mean(0), mean, atol=5 * float(var.sqrt().max()) / math.sqrt(s))
    assert torch.allclose(out.var(0), var, rtol=0.06)
    plain = linear(x, w.detach().clone())  # untagged: the ordinary forward pass per draw
    assert torch.allclose(plain, x @ w.squeeze(1), atol=1e-5)


def test_local_reparameterisation_reduces_gradient_variance():
    # the point of LRT / Flipout: per-example noise decorrelates the minibatch gradient.
    # Measured per-coordinate variance ratios to plain weight sampling: LRT ~1/11, Flipout
    # ~1/4; a variance estimated from 100 draws is within ~15 % (sqrt(2/100)), so a factor 2
    # leaves a wide margin.
    from zoo.models.bnn_guides import BayesByBackpropGuide

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = x[:, 0] + 0.1 * torch.randn(64, generator=gen)
    variance = {}
    for mode in ("lrt", "flipout", None):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        net = BayesianNet(hidden=(20,), local_reparam=mode)
        guide = BayesByBackpropGuide(net, init_scale=0.3)
        guide(x)
        loc = pyro.param("bbb.w0.loc")
        elbo = TraceMeanField_ELBO()
        grads = torch.stack([
            torch.autograd.grad(elbo.differentiable_loss(net.model, guide, x, y), loc)[0].flatten()
            for _ in range(100)])
        variance[mode] = float(grads.var(0).mean())
    assert variance["lrt"] < 0.5 * variance[None], variance
    assert variance["flipout"] < 0.5 * variance[None], variance


def test_lenet5_forward_shapes_with_batched_weights():
    net = zoo.get("lenet5", image_shape=(28, 28))
    x = torch.rand(2, 784)
    with pyro.plate("draws", 3, dim=-2):
        params = net.sample_params(784)
    assert params["w0"].shape == (3, 1, 20, 1, 5, 5)
    assert net.forward(params, x).shape == (3, 2, 10)
    single = {k: v[1, 0] for k, v in params.items()}
    assert torch.allclose(net.forward(single, x), net.forward(params, x)[1], atol=1e-4)


# ----------------------------------------------------------------------------- inference
def test_nuts_tiny_bnn_mixes_and_widens_outside_the_data():
    import arviz as az

    from inference.mcmc import run_mcmc

    x, y = _toy_1d(12)
    net = BayesianNet(hidden=(3,), activation="tanh", noise_prior=(25.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_mcmc(net.model, {"x": x, "y": y}, num_chains=2, num_warmup=150,
                       num_samples=150, max_tree_depth=4, seed=0, jit_compile=True,
                       progress_bar=False, log_likelihood=False)
    f_in = net.predict(res.posterior, X_IN, num_draws=300)["mean"]
    f_out = net.predict(res.posterior, X_OUT, num_draws=300)["mean"]
    rhat = az.rhat(az.convert_to_dataset({"f": f_in.reshape(2, 150, -1).numpy()}))["f"].values
    assert np.all(rhat < 1.05), rhat
    # measured ratio ~5; "several times" with margin for Monte Carlo error of 300 draws
    assert f_out.std(0).mean() > 3 * f_in.std(0).mean()


def test_bayes_by_backprop_widens_outside_the_data():
    from inference.svi import fit_svi

    x, y = _toy_1d(40)
    net = BayesianNet(hidden=(50,), noise_prior=(25.0, 1.0))
    res = fit_svi(net.model, {"x": x, "y": y}, guide=net.guides()["bbb"], elbo="meanfield",
                  num_steps=800, lr=2e-2, progress_bar=False, num_posterior_draws=200,
                  log_likelihood=False, seed=0)
    f_in = net.predict(res.posterior, X_IN, num_draws=200)["mean"]
    f_out = net.predict(res.posterior, X_OUT, num_draws=200)["mean"]
    assert f_out.std(0).mean() > 3 * f_in.std(0).mean()
    # and it fits the data inside the range (noise sd 0.2)
    assert float((f_in.mean(0) - torch.sin(2 * X_IN[:, 0])).abs().max()) < 0.4


def test_sparse_vd_prunes_the_weights_of_irrelevant_inputs():
    from inference.svi import fit_svi

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, 6, generator=gen)
    y = 1.5 * x[:, 0] - x[:, 1] + 0.1 * torch.randn(300, generator=gen)  # inputs 2..5 irrelevant
    net = BayesianNet(hidden=(8,), prior="log_uniform")
    guide = net.guides()["sparse_vd"]
    # the learning rate must decay (as in the paper) for theta of useless weights to settle at 0
    fit_svi(net.model, {"x": x, "y": y}, guide=guide, elbo="meanfield", num_steps=500, lr=5e-2,
            lr_schedule={"name": "cosine"}, progress_bar=False, num_posterior_draws=0,
            log_likelihood=False, seed=0)
    kept0 = guide.log_alpha(net.layers(6)[0]).detach() <= 3.0  # (6 inputs, 8 hidden)
    # With 300 points an irrelevant input correlates with the residual by ~1/sqrt(300) by
    # chance, worth about as much likelihood as pruning a weight saves in KL (<= k1 = 0.64
    # nats), so a few tiny weights may survive: require most of them pruned and the surviving
    # input -> output effect (sum over paths of |theta0 theta1| in the pruned net) of every
    # irrelevant input to be below 1% of that of every relevant one (measured: < 0.2 %).
    assert (~kept0[2:]).float().mean() >= 0.85
    pm = guide.pruned_means()
    effect = (pm["w0"].abs() @ pm["w1"].abs())[:, 0]
    assert effect[2:].max() < 0.01 * effect[:2].min(), effect
    report = guide.sparsity_report()
    assert list(report["layer"]) == ["w0", "w1", "total"]
    summary = compression_summary(report)
    assert summary["compression"] > 2 and 0 < summary["sparsity"] < 1


def test_minibatch_elbo_is_unbiased_for_the_full_batch_elbo():
    # a deterministic guide (MC dropout with rate 0: Deltas) leaves the subsample as the only
    # randomness, so the full-batch loss is exact and the minibatch mean is compared within
    # its standard error
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=gen)
    y = x[:, 0] + 0.3 * torch.randn(50, generator=gen)
    net = BayesianNet(hidden=(4,), dropout_rate=0.0)
    guide = net.guides()["mc_dropout"]
    guide(x)
    elbo = TraceMeanField_ELBO()
    full = elbo.loss(net.model, guide, x, y)
    mini = np.array([elbo.loss(net.model, guide, x, y, subsample_size=10) for _ in range(600)])
    se = mini.std() / math.sqrt(len(mini))
    assert abs(mini.mean() - full) < 4 * se
    assert mini.std() > 0  # the subsample really varies


@pytest.mark.smoke
@pytest.mark.parametrize("name, steps", [("mc_dropout", 30), ("auto_iaf", 30), ("auto_laplace", 300)])
def test_smoke_other_guides_fit_the_bnn(name, steps):
    # Laplace needs a MAP near a local mode, where the Hessian is positive definite: 300 steps
    # on a 4-unit net (after 30 steps, or on wider nets, Cholesky of H^-1 can fail)
    from inference.svi import fit_svi

    x, y = _toy_1d(30)
    net = BayesianNet(hidden=(4,))
    guide = net.guides()[name] if name in net.guides() else name
    res = fit_svi(net.model, {"x": x, "y": y}, guide=guide, num_steps=steps, lr=2e-2,
                  progress_bar=False, num_posterior_draws=20, log_likelihood=False, seed=0)
    pred = net.predict(res.posterior, X_IN, num_draws=20)
    assert torch.isfinite(pred["mean"]).all() and pred["mean"].shape == (20, 5)


def test_guide_draws_are_reproducible_and_vectorised():
    x, _ = _toy_1d(10)
    net = BayesianNet(hidden=(5,), dropout_rate=0.5)
    guide = net.guides()["mc_dropout"]
    guide(x)
    a = next(iter_weight_draws(guide, {"x": x}, 7, seed=3))
    b = next(iter_weight_draws(guide, {"x": x}, 7, seed=3))
    assert a["w0"].shape == (7, 1, 1, 5) and torch.equal(a["w0"], b["w0"])
    assert "w0_mask" not in a  # auxiliary dropout masks are not weights
    # with dropout rate 0.5 the 7 masks of w1's 5 inputs are not all equal (chance 2^-34)
    assert not all(torch.equal(a["w1"][0], a["w1"][i]) for i in range(1, 7))


@pytest.mark.smoke
def test_smoke_classifier_evaluate_and_plot(tmp_path):
    from inference.svi import fit_svi

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(120, 16, generator=gen)
    y = (x[:, :8].sum(1) > x[:, 8:].sum(1)).long()
    ds = Dataset("toy", {"train": {"x": x[:80], "y": y[:80]}, "test": {"x": x[80:], "y": y[80:]}})
    net = zoo.get("bnn_classifier", hidden=(10,), num_classes=2)
    res = fit_svi(net.model, net.model_kwargs(ds), guide=net.guides()["bbb"], elbo="meanfield",
                  num_steps=60, batch_size=40, progress_bar=False, num_posterior_draws=30,
                  log_likelihood=False, seed=0)
    metrics = net.evaluate(ds, res)
    assert {"accuracy", "test_ll", "ece", "entropy", "mutual_info"} <= set(metrics)
    # 16 = 4 x 4 pixels: noise, inverted and rotated shifts, each with entropy and AUROC
    for shift in ("noise", "inverted", "rotated"):
        assert metrics[f"ood_entropy_{shift}"] >= 0
        assert 0 <= metrics[f"ood_auroc_{shift}"] <= 1
    paths = net.plot(ds, res, tmp_path)
    assert len(paths) == 2 and all(p.exists() and p.stat().st_size > 0 for p in paths)
    from inference.calibration_records import load_ood_entropy, load_reliability

    record = load_reliability(tmp_path)
    assert sum(b["count"] for b in record["bins"]) == 40
    assert record["ece"] == pytest.approx(metrics["ece"], abs=0.2)  # 100 vs 30 draws
    assert set(load_ood_entropy(tmp_path)) == {"test", "noise", "inverted", "rotated"}


def test_regression_net_has_no_shifted_inputs():
    x, y = _toy_1d(10)
    assert BayesianNet(hidden=(3,)).shifted_inputs({"x": x, "y": y}) == {}
