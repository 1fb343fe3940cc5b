"""VAE / DLGM models: registry, binarisation, particle broadcasting, training via fit_svi."""

import pyro
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO

import zoo
from inference.svi import fit_svi
from zoo.data import load


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def test_registry_names_and_guides():
    names = {spec.name for spec in zoo.list_models()}
    assert {"vae", "dlgm2", "ppca"} <= names
    vae = zoo.get("vae")
    assert set(vae.guides()) == {"model", "encoder", "planar", "radial", "iaf"}
    assert zoo.get("vae", flow="radial").guides()["model"].vae_guide_kind == "radial"
    assert zoo.get("dlgm2").latent_names == ("z1", "z2")
    assert zoo.get("vae", stochastic_layers=2, latent_dim=4).latent_dims == (8, 4)
    assert set(zoo.get("ppca").guides()) == {"model", "encoder", "exact"}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"likelihood": "poisson"}, "poisson"),
        ({"guide": "spline"}, "spline"),
        ({"activation": "swish"}, "swish"),
        ({"num_flows": -1}, "num_flows"),
        ({"binarize": "static"}, "static"),
        ({"stochastic_layers": 3}, "stochastic_layers"),
        ({"obs_scale": -1.0, "likelihood": "gaussian"}, "obs_scale"),
    ],
)
def test_bad_configuration_is_named(config, message):
    with pytest.raises((ValueError, TypeError), match=message):
        zoo.get("vae", **config)


def test_data_width_mismatch_is_an_error(digits):
    vae = zoo.get("vae", x_dim=10, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="x_dim=10"):
        vae.model_kwargs(digits)


def test_dynamic_binarisation_is_shared_by_guide_and_model_within_a_step(digits):
    vae = zoo.get("vae", latent_dim=2, hidden=(8,))
    x = vae.model_kwargs(digits)["x"][:50]
    guide_trace = pyro.poutine.trace(vae.guide).get_trace(x=x)
    stashed = vae._stash[2].clone()
    model_trace = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide_trace)).get_trace(x=x)
    observed = model_trace.nodes["x"]["value"]
    assert torch.equal(observed, stashed)
    assert set(observed.unique().tolist()) <= {0.0, 1.0}
    # grey levels strictly between 0 and 1 make a fresh draw differ between steps
    pyro.poutine.trace(vae.guide).get_trace(x=x)
    assert not torch.equal(vae._stash[2], stashed)
    # and a seed fixes the draw
    pyro.set_rng_seed(5)
    pyro.poutine.trace(vae.guide).get_trace(x=x)
    first = vae._stash[2].clone()
    pyro.set_rng_seed(5)
    pyro.poutine.trace(vae.guide).get_trace(x=x)
    assert torch.equal(vae._stash[2], first)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("guide", ["encoder", "planar", "radial", "iaf"])
def test_vectorised_particles_broadcast(digits, layers, guide):
    latent = 3 if layers == 1 else (4, 2)
    vae = zoo.get("vae", latent_dim=latent, hidden=(16,), guide=guide, num_flows=2)
    x = vae.model_kwargs(digits)["x"][:30]
    iwae = RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    loss = iwae.loss(vae.model, vae.guide, x=x, subsample_size=10)
    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    loss2 = elbo.loss(vae.model, vae.guide, x=x, subsample_size=10)
    assert torch.isfinite(torch.tensor([loss, loss2])).all()


def test_gaussian_likelihood_prior_samples(digits):
    vae = zoo.get("vae", likelihood="gaussian", obs_scale="learned", latent_dim=2, hidden=(8,))
    vae.model_kwargs(digits)
    x = vae.model(num_data=7)
    assert x.shape == (7, 64) and x.dtype == torch.float32
    fixed = zoo.get("vae", likelihood="gaussian", obs_scale=0.1, latent_dim=2, hidden=(8,), x_dim=5)
    assert fixed.model(num_data=3).shape == (3, 5)


def test_training_on_digits_reaches_threshold(digits):
    """300 Adam steps (batch 100, about 21 epochs) of a 64-64-[8] VAE through fit_svi.

    Measured (seeds 0 and 1): test negative ELBO 24.4 and IS NLL 24.0 nats; the untrained model
    scores about 45. The 27-nat threshold leaves a 2.6-nat margin (seed-to-seed spread 0.05).
    """
    vae = zoo.get("vae", latent_dim=8, hidden=(64,), eval_samples=200)
    kwargs = vae.model_kwargs(digits)
    result = fit_svi(vae.model, kwargs, guide=vae.guide, num_steps=300, lr=1e-2, batch_size=100,
                     num_posterior_draws=0, log_likelihood=False, progress_bar=False, seed=0)
    metrics = vae.evaluate(digits, result)
    assert -metrics["test_elbo"] < 27.0
    assert -metrics["test_ll"] < 27.0
    assert metrics["test_ll"] >= metrics["test_elbo"]  # log-mean-exp >= mean, exactly
    assert metrics["test_ll_mc_se"] < 0.05 and metrics["eval_points"] == len(digits.test["x"])


@pytest.mark.smoke
def test_smoke_iwae_flow_two_layers_fit_evaluate_plot(digits, tmp_path):
    vae = zoo.get("dlgm2", latent_dim=(2, 2), hidden=(16,), guide="iaf", num_flows=2,
                  eval_samples=30, eval_max_points=20)
    kwargs = vae.model_kwargs(digits)
    result = fit_svi(vae.model, kwargs, guide=vae.guide, elbo="iwae", num_particles=3,
                     vectorize_particles=True, num_steps=5, batch_size=32,
                     kl_anneal={"start": 0.1, "end": 1.0, "steps": 5},
                     num_posterior_draws=0, log_likelihood=False, progress_bar=False)
    metrics = vae.evaluate(digits, result)
    assert metrics["eval_points"] == 20 and metrics["eval_samples"] == 30
    paths = vae.plot(digits, result, tmp_path)
    assert len(paths) == 4 and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_evaluate_rejects_a_non_amortised_guide(digits):
    vae = zoo.get("vae", latent_dim=2, hidden=(8,))
    vae.model_kwargs(digits)

    class FakeResult:
        fitted = {"guide": lambda **kw: None}

    with pytest.raises(ValueError, match="amortised"):
        vae.evaluate(digits, FakeResult())


def test_ppca_trained_by_svi_approaches_the_closed_form_optimum(digits):
    """PPCA fitted by SVI with its amortised encoder nears the maximum-likelihood log p(x).

    Measured: SVI reaches within ~1 nat/point of the closed-form MLE on train; the bound of 3
    nats is loose enough for optimiser noise but far below the ~40-nat gap of the start.
    """
    m = zoo.get("ppca", latent_dim=2)
    kwargs = m.model_kwargs(digits)
    x = kwargs["x"]
    start = m.exact_log_likelihood(x).mean()
    fit_svi(m.model, kwargs, guide=m.encoder_guide, num_steps=400, lr=0.05,
            num_posterior_draws=0, log_likelihood=False, progress_bar=False, seed=0)
    fitted = m.exact_log_likelihood(x).mean()
    best = zoo.get("ppca", latent_dim=2)
    best.model_kwargs(digits)
    best.fit_closed_form(x)
    optimum = best.exact_log_likelihood(x).mean()
    assert fitted <= optimum + 1e-3  # the MLE is the maximum
    assert fitted > optimum - 3.0
    assert fitted > start + 10.0
