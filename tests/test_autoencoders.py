"""Autoencoders and the GAN (zoo/models/autoencoder.py, zoo/models/gan.py) and the point methods
that train them (inference/methods/autoencoder.py, gan.py): penalties against their closed forms,
the non-saturating loss against the minimax one, codes that beat a random projection, a GAN that
finds its data, determinism and clear errors. Everything runs on sklearn's 8x8 digits or on toy
data, so no MNIST is needed."""

from __future__ import annotations

import math

import pytest
import torch

from inference import methods
from inference.evaluation.representations import probe_metrics
from inference.methods.capabilities import ModelTraits
from inference.methods.gan import discriminator_loss, generator_loss
from inference.point import DivergedError
from zoo.data import load
from zoo.fit import fit
from zoo.models.autoencoder import KINDS, AutoencoderNet, kl_sparsity
from zoo.models.gan import GANNet

NETWORK = ModelTraits(learned_parameters=True, minibatch=True, network=True)


def test_contractive_penalty_closed_form_equals_the_jacobian():
    # Rifai et al.'s closed form for a sigmoid layer against the Jacobian by autograd: exact up
    # to float32 rounding
    torch.manual_seed(0)
    net = AutoencoderNet(12, 5, kind="contractive")
    x = torch.rand(7, 12)
    h = net.encode(x)
    jac = torch.func.vmap(torch.func.jacrev(net.encode))(x)
    assert torch.allclose(net.contraction(x, h), jac.square().sum((-2, -1)), rtol=1e-5)
    deep = AutoencoderNet(12, 5, kind="contractive", hidden=(9,))
    jac = torch.func.vmap(torch.func.jacrev(deep.encode))(x)
    assert torch.allclose(deep.contraction(x, deep.encode(x)), jac.square().sum((-2, -1)))


def test_kl_sparsity_is_the_bernoulli_kl():
    assert float(kl_sparsity(torch.full((4,), 0.05), 0.05)) == pytest.approx(0.0, abs=1e-7)
    expected = 0.05 * math.log(0.05 / 0.2) + 0.95 * math.log(0.95 / 0.8)
    assert float(kl_sparsity(torch.tensor([0.2]), 0.05)) == pytest.approx(expected, rel=1e-6)


def test_non_saturating_generator_loss_keeps_its_gradient_where_minimax_saturates():
    # a rejected sample (logit -8, D = 3.4e-4): d/dlogit of -log D is -(1 - D), of log(1 - D) -D
    logit = torch.tensor([-8.0], requires_grad=True)
    (grad_ns,) = torch.autograd.grad(generator_loss(logit, "non_saturating"), logit)
    (grad_mm,) = torch.autograd.grad(generator_loss(logit, "minimax"), logit)
    d = 1.0 / (1.0 + math.exp(8.0))
    assert float(grad_ns) == pytest.approx(-(1 - d), rel=1e-5)
    assert float(grad_mm) == pytest.approx(-d, rel=1e-4)
    # the discriminator's loss is the Bernoulli cross-entropy: log 4 when D = 1/2 everywhere
    zero = torch.zeros(3)
    assert float(discriminator_loss(zero, zero)) == pytest.approx(2 * math.log(2), rel=1e-6)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def probes(digits):
    """Each kind trained 400 steps (about 36 epochs of 1438 digits) with 8-unit codes."""
    out = {}
    x_tr, y_tr = digits.train["x"], digits.train["y"]
    x_te, y_te = digits.test["x"], digits.test["y"]
    for kind in KINDS:
        result, model, _ = fit("autoencoder", "autoencoder", data=digits, seed=0,
                               config={"kind": kind, "code_dim": 8, "x_dim": 64},
                               num_steps=400, batch_size=64, lr=1e-2, progress_bar=False)
        out[kind] = probe_metrics(model.encode(x_tr), y_tr, model.encode(x_te), y_te,
                                  x_tr, x_te)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_each_autoencoder_beats_a_random_projection_on_the_linear_probe(probes, kind):
    # 359 test digits: the binomial standard error of an accuracy near 0.85 is 0.019, so a
    # margin of 0.04 (about 1.5 standard errors of the difference of two accuracies) is a real
    # difference, not noise of the test split; the seeds are fixed, so the figures are too
    scores = probes[kind]
    assert scores["code_dim"] == 8
    assert scores["probe_accuracy"] > scores["probe_accuracy_random"] + 0.04, scores


def test_autoencoder_fit_is_reproducible_and_leaves_the_global_rng(digits):
    def run():
        return fit("autoencoder", "autoencoder", data=digits, seed=3,
                   config={"kind": "denoising", "code_dim": 4, "x_dim": 64},
                   num_steps=20, batch_size=32, progress_bar=False)[0]

    state = torch.get_rng_state()
    a, b = run(), run()
    assert torch.equal(state, torch.get_rng_state())
    assert a.settings["final_loss"] == b.settings["final_loss"]
    assert a.family == "point" and a.settings["steps_run"] == 20


def test_gan_moves_its_samples_onto_toy_data():
    # two-pixel "images" near (0.25, 0.75) with sd 0.05. At its initialisation the generator
    # puts its samples near (0.5, 0.5), 0.35 away; the adversarial game then oscillates around
    # the data (over seeds and lengths tried, the generated mean ended 0.05 to 0.17 away), so
    # the test asks for less than 0.15 at this fixed seed and for a spread that has not
    # collapsed to a point. Monte Carlo error of a 1000-sample mean (0.002) is negligible.
    g = torch.Generator().manual_seed(0)
    x = (torch.tensor([0.25, 0.75]) + 0.05 * torch.randn(1024, 2, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    net = GANNet(2, 2, g_hidden=(16,), d_hidden=(16,), d_dropout=0.0)

    def samples():
        with torch.no_grad():
            torch.manual_seed(1)
            return net.generator(net.sample_noise(1000))

    target = torch.tensor([0.25, 0.75])
    assert float((samples().mean(0) - target).norm()) > 0.25
    result = methods.get("gan").run(methods.Target(net, {"x": x}, traits=NETWORK, name="toy"),
                                    {"num_steps": 300, "batch_size": 64, "lr": 5e-3,
                                     "progress_bar": False}, seed=0)
    after = samples()
    assert float((after.mean(0) - target).norm()) < 0.15
    assert 0.005 < float(after.std(0).mean()) < 0.2
    assert set(result.fitted["losses"]) == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_point_methods_refuse_what_they_cannot_train():
    def pyro_model(x=None):
        return None

    target = methods.Target(pyro_model, {"x": torch.zeros(4, 2)}, traits=NETWORK, name="m")
    with pytest.raises(TypeError, match="nn.Module with a loss"):
        methods.get("autoencoder").run(target, {"num_steps": 1, "progress_bar": False})
    with pytest.raises(TypeError, match="generator, discriminator"):
        methods.get("gan").run(target, {"num_steps": 1, "progress_bar": False})
    with pytest.raises(ValueError, match="cannot run model 'vae'"):
        fit("vae", "autoencoder", num_steps=1)
    with pytest.raises(ValueError, match="registered for methods"):
        fit("autoencoder", "svi", num_steps=1)
    with pytest.raises(methods.SettingsError, match="loss must be one of"):
        methods.get("gan").settings_from({"loss": "wasserstein"})
    with pytest.raises(ValueError, match="kind must be one of"):
        AutoencoderNet(4, 2, kind="variational")


def test_a_diverging_loss_stops_with_the_step_named():
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def loss(self, x):
            return self.w * (float("nan") if x.sum() > -1 else 1.0)

    target = methods.Target(Exploding(), {"x": torch.zeros(8, 2)}, traits=NETWORK, name="bad")
    with pytest.raises(DivergedError, match="diverged at step 1: loss = nan"):
        methods.get("autoencoder").run(target, {"num_steps": 5, "batch_size": 4,
                                                "progress_bar": False})


def test_a_saved_autoencoder_run_reloads_with_its_weights(digits, tmp_path):
    from zoo.evaluation import evaluate_fit
    from zoo.reload import load_run

    result, model, _ = fit("autoencoder", "autoencoder", data="digits", seed=0,
                           config={"kind": "sparse_kl", "code_dim": 4, "x_dim": 64},
                           num_steps=30, batch_size=64, progress_bar=False)
    result.save(tmp_path)
    again, rebuilt, data = load_run(tmp_path)
    x = data.test["x"][:5]
    assert torch.equal(rebuilt.encode(x), model.encode(x))  # not a fresh initialisation
    live = evaluate_fit(model, data, result, settings={"max_points": 50})
    assert evaluate_fit(rebuilt, data, again, settings={"max_points": 50}) == live


@pytest.mark.smoke
def test_zoo_fit_autoencoder_writes_metrics_and_figures(tmp_path):
    import json

    from zoo.cli import main

    out = tmp_path / "ae"
    assert main(["fit", "autoencoder", "--method", "autoencoder", "--data", "digits",
                 "--config", "kind=contractive", "x_dim=64", "code_dim=4", "--steps", "5",
                 "--set", "progress_bar=false", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"recon_error", "probe_accuracy", "probe_accuracy_random"} <= set(metrics)
    assert {p.name for p in (out / "plots").iterdir()} == {"reconstructions.png", "filters.png",
                                                           "loss.png"}
