"""Deep exponential families: closed-form conditional posteriors recovered by the guides, an
unbiased score-function gradient against exact enumeration, shapes and positivity, the
AdagradRMSProp optimiser by name, the many-particle ELBO monitor, and the CLI on faces."""

import itertools
import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceGraph_ELBO

import zoo
from inference.schedules import make_optimizer
from inference.svi import fit_svi
from zoo.models.def_guides import MEAN_CLAMP, SHAPE_CLAMP, DEFMeanField, make_def_guide

D = 6  # pixels of the tiny gamma-Poisson model


def _gamma_poisson():
    """One gamma unit per data point, fixed weights: z_n | x_n ~ Gamma(a + sum x_n, b + sum w)."""
    m = zoo.get("def", widths=(1,), x_dim=D, mean_floor=0.0)
    g = torch.Generator().manual_seed(1)
    w = 0.25 + 0.25 * torch.rand(1, D, generator=g)
    z_true = torch.tensor([[2.0], [3.0], [5.0]])
    x = torch.poisson(z_true * w, generator=g)
    shape = m.alpha_z + x.sum(-1)
    rate = m.beta_z + w.sum()
    return m, {"x": x, "weights": {"w1": w}}, shape / rate, shape.sqrt() / rate


def _lognormal_moments(loc, scale):
    mean = torch.exp(loc + scale**2 / 2)
    return mean, mean * torch.sqrt(torch.expm1(scale**2))


@pytest.mark.parametrize("guide_name", ["mean_field", "auto_normal", "grouped"])
def test_gamma_poisson_conditional_posterior_is_recovered(guide_name):
    m, kwargs, exact_mean, exact_sd = _gamma_poisson()
    guide = make_def_guide(guide_name, m)
    result = fit_svi(m.model, kwargs, guide=guide, num_steps=600, optimizer="adam", lr=0.3,
                     lr_schedule={"name": "exponential", "gamma": 0.995}, elbo="trace",
                     num_particles=8, vectorize_particles=True, num_posterior_draws=0,
                     progress_bar=False, seed=0)
    store = pyro.get_param_store()
    if guide_name == "mean_field":
        a = torch.nn.functional.softplus(store["def_q.z1.shape_raw"]).detach().squeeze(-1)
        mean = result.fitted["guide"].mean()["z1"].squeeze(-1)
        sd = mean / a.sqrt()
    elif guide_name == "auto_normal":
        mean, sd = _lognormal_moments(store["AutoNormal.locs.z1"].detach().squeeze(-1),
                                      store["AutoNormal.scales.z1"].detach().squeeze(-1))
    else:
        loc = store["grouped.z_loc"].detach().squeeze(-1)
        scale = torch.nn.functional.softplus(store["grouped.z_scale_raw"]).detach().squeeze(-1)
        mean, sd = _lognormal_moments(loc, scale)
    # no Monte Carlo in the read-out: the tolerance covers the optimiser's last-step jitter at a
    # learning rate decayed to 0.3 * 0.995^600 = 0.015 (1-2 % of each parameter), for the
    # log-normal guides the best log-normal against a gamma of shape 3 to 12 (the KL-optimal
    # log-normal has the exact mean; its sd is up to 8 % too large), and for the gamma guide
    # a shape still growing after 600 steps (the ELBO is flat in it: sd up to 15 % too large
    # in trial runs). A guide fitting the posterior mode instead, Gamma(k - 1, rate), misses
    # the first mean by 32 %.
    assert torch.allclose(mean, exact_mean, rtol=0.05), (mean, exact_mean)
    assert torch.allclose(sd, exact_sd, rtol=0.2), (sd, exact_sd)


def _bernoulli_def():
    m = zoo.get("def", widths=(2,), layers="bernoulli", observation="bernoulli", x_dim=3,
                top_prob=0.3)
    w = torch.tensor([[2.0, -1.0, 0.5], [-1.5, 1.0, 2.0]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    return m, {"x": x, "weights": {"w1": w}}


def _exact_elbo(m, x, w, logits):
    """ELBO by enumerating all 2^(N*K) values of the local latents."""
    total = 0.0
    n, k = logits.shape
    q = dist.Bernoulli(logits=logits)
    for bits in itertools.product([0.0, 1.0], repeat=n * k):
        z = torch.tensor(bits).reshape(n, k)
        log_q = q.log_prob(z).sum()
        log_p = (dist.Bernoulli(probs=torch.tensor(m.top_prob)).log_prob(z).sum()
                 + dist.Bernoulli(logits=z @ w).log_prob(x).sum())
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_score_function_gradient_is_unbiased_on_a_bernoulli_def():
    m, kwargs = _bernoulli_def()
    guide = DEFMeanField(m)
    guide(**kwargs)  # create the parameters
    logits = pyro.param("def_q.z1.logits")
    with torch.no_grad():
        logits.copy_(torch.tensor([[0.4, -0.8], [1.2, 0.1]]))
    exact_logits = logits.detach().clone().requires_grad_(True)
    (-_exact_elbo(m, kwargs["x"], kwargs["weights"]["w1"], exact_logits)).backward()
    exact = exact_logits.grad
    elbo = TraceGraph_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    estimates = []
    for _ in range(40):
        logits.grad = None
        elbo.loss_and_grads(m.model, guide, **kwargs)
        estimates.append(logits.grad.clone())
    est = torch.stack(estimates)
    mean, se = est.mean(0), est.std(0) / math.sqrt(len(est))
    # 40 independent estimates of 200 particles each: their mean is within 4 standard errors
    # of the exact gradient in every coordinate unless the estimator is biased (chance of a
    # false alarm below 1e-3 for the four coordinates); the exact gradient is far from zero,
    # so an estimator that dropped the score-function term would fail
    assert (mean - exact).abs().max() < 4 * se.max() + 1e-4, (mean, exact, se)
    assert exact.abs().max() > 10 * se.max()


@pytest.mark.parametrize("layers, observation", [
    ("gamma", "poisson"), (("poisson", "gamma"), "poisson"),
    ("bernoulli", "bernoulli"), (("gaussian", "gamma"), "gaussian"),
])
def test_shapes_positivity_and_particles(layers, observation):
    m = zoo.get("def", widths=(4, 3), layers=layers, observation=observation, x_dim=6)
    x = torch.poisson(torch.full((5, 6), 3.0))
    if observation == "bernoulli":
        x = (x > 2).float()
    guide = make_def_guide("mean_field", m)
    elbo = "tracegraph" if m.has_discrete_layers else "trace"
    fit_svi(m.model, {"x": x}, guide=guide, num_steps=5, optimizer="adagrad_rmsprop", lr=4.5,
            elbo=elbo, num_posterior_draws=0, progress_bar=False)
    store = pyro.get_param_store()
    with torch.no_grad():  # drive every raw gamma parameter below its clamp
        for name in store.keys():
            if name.endswith(("shape_raw", "mean_raw")):
                store[name].fill_(-50.0)
    tr = pyro.poutine.trace(guide).get_trace(x=x)
    shapes = {s: tuple(tr.nodes[s]["value"].shape) for s in ("w1", "w2", "z1", "z2")}
    assert shapes == {"w1": (4, 6), "w2": (3, 4), "z1": (5, 4), "z2": (5, 3)}
    for layer in range(2):  # non-negative weights exactly where a positive mean is fed
        w = tr.nodes[m.weight_names[layer]]["value"]
        assert (m.weight_kind(layer) == "gamma") == (m.child_type(layer) in ("gamma", "poisson")
                                                     and m.layers[layer] != "gaussian")
        if m.weight_kind(layer) == "gamma":
            assert (w > 0).all()
    for name in store.keys():  # the guide clamped them before use, as Pyro's example does
        if name.endswith("shape_raw"):
            assert store[name].min() >= SHAPE_CLAMP
        if name.endswith("mean_raw"):
            assert store[name].min() >= MEAN_CLAMP
    for site, value in guide.mean().items():
        if site.startswith("w") and m.weight_kind(int(site[1:]) - 1) == "gamma":
            assert (value > 0).all()
    # 7 vectorised particles broadcast through model and guide: a finite loss per particle set
    loss = pyro.infer.Trace_ELBO(num_particles=7, vectorize_particles=True,
                                 max_plate_nesting=1).loss(m.model, guide, x=x)
    assert math.isfinite(loss)


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="layer type"):
        zoo.get("def", layers="beta")
    with pytest.raises(ValueError, match="observation"):
        zoo.get("def", observation="binomial")
    with pytest.raises(ValueError, match="alpha_w"):
        zoo.get("def", alpha_w=0.0)
    guide = make_def_guide("auto_normal", zoo.get("def", layers="poisson", x_dim=3))
    with pytest.raises(ValueError, match="auto_normal.*discrete"):
        guide(x=torch.ones(2, 3))


def test_adagrad_rmsprop_by_name():
    from pyro.optim.adagrad_rmsprop import AdagradRMSProp

    optim = make_optimizer("adagrad_rmsprop", lr=4.5, optim_args={"t": 0.1})
    assert optim.pt_optim_constructor is AdagradRMSProp
    assert optim.pt_optim_args == {"eta": 4.5, "t": 0.1}
    with pytest.raises(ValueError, match="adagrad_rmsprop.*lr_schedule"):
        make_optimizer("adagrad_rmsprop", lr_schedule={"name": "exponential", "gamma": 0.9})


def _normal_model(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", 4):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_elbo_monitor_is_exact_for_the_exact_posterior_and_leaves_training_alone():
    y = torch.tensor([0.5, 1.0, -0.2, 2.0])
    post_var = 1.0 / (1.0 + len(y))
    post_mean = post_var * y.sum()

    def exact_guide(y=None):
        pyro.sample("mu", dist.Normal(post_mean, post_var**0.5))

    # with the exact posterior as guide every particle's log weight is log p(y): no noise
    log_evidence = dist.MultivariateNormal(torch.zeros(4), torch.eye(4) + 1.0).log_prob(y)
    result = fit_svi(_normal_model, {"y": y}, guide=exact_guide, num_steps=3, elbo_every=2,
                     elbo_particles=20, num_posterior_draws=0, progress_bar=False)
    trace = result.settings["elbo_trace"]
    assert trace["steps"] == [2, 3]
    assert trace["elbo"] == pytest.approx([float(log_evidence)] * 2, rel=1e-5)
    runs = [fit_svi(_normal_model, {"y": y}, num_steps=20, elbo_every=every, seed=3,
                    num_posterior_draws=0, progress_bar=False).loss_history
            for every in (None, 5)]
    assert (runs[0] == runs[1]).all()  # the monitor draws from a saved-and-restored RNG


@pytest.mark.smoke
def test_cli_fit_writes_weight_images(tmp_path):
    from zoo.cli import main

    out = tmp_path / "def"
    code = main(["fit", "def", "--method", "svi", "--guide", "grouped", "--out", str(out),
                 "--set", "num_steps=2", "elbo_particles=2",
                 "--config", "widths=[10]", "eval_samples=4"])
    assert code in (0, None)
    for name in ("def_weights.png", "def_reconstructions.png", "def_elbo_trace.png"):
        assert (out / "plots" / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_points"] == 80 and metrics["eval_fit_steps"] == 2
