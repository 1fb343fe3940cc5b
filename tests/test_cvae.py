"""Conditional VAEs: quadrant masking and shapes, importance-sampled log p(y | x) >= ELBO per
image, the CVAE beats its baseline on a short CPU run, label-conditioned samples are recognised
as their class, early stopping on a validation split cut from the training set, and the CLI.

Everything runs on a slice of MNIST (3,000 training and 200 test images) with small networks,
so that the module trains two models for a few hundred steps in all."""

import json
import math

import numpy as np
import pytest
import torch
import pyro

import zoo
from inference.marginal_likelihood import importance_log_likelihood
from zoo.data import load
from zoo.data.dataset import Dataset
from zoo.data.quadrants import fill_hidden, given_mask, hidden_index, mask_inputs
from zoo.fit import fit

N_TRAIN, N_TEST, N_VALID = 3000, 200, 600
CVAE_STEPS = 120
SMALL = {"hidden": (64,), "latent_dim": 16, "validation_size": N_VALID}


@pytest.fixture(scope="module")
def mnist_small():
    full = load("mnist")
    return Dataset("mnist", {"train": {k: v[:N_TRAIN] for k, v in full.train.items()},
                             "test": {k: v[:N_TEST] for k, v in full.test.items()}}, full.info)


@pytest.fixture(scope="module")
def trained_cvae(mnist_small):
    """A CVAE (paper's p(y | x, z)) for 1 given quadrant after CVAE_STEPS steps of batch 64."""
    model = zoo.get("cvae", quadrants=1, **SMALL)
    result, model, _ = fit(model, "svi", data=mnist_small, num_steps=CVAE_STEPS, lr=3e-3,
                           batch_size=64, seed=0, progress_bar=False)
    return model, result


@pytest.mark.parametrize("quadrants", [1, 2, 3])
def test_masking_and_shapes(mnist_small, quadrants):
    given = given_mask(quadrants).reshape(28, 28)
    assert int(given.sum()) == 196 * quadrants
    assert given[14:, :14].all() and not given[:14, :14].any()  # bottom-left always given,
    assert bool(given[:14, 14:].all()) == (quadrants >= 2)      # top-left never
    assert bool(given[14:, 14:].all()) == (quadrants == 3)
    index = hidden_index(quadrants)
    assert len(index) == 196 * (4 - quadrants)

    m = zoo.get("cvae", quadrants=quadrants, hidden=(8,), latent_dim=2, validation_size=N_VALID)
    train, valid = m.model_kwargs(mnist_small, "train"), m.evaluation_kwargs(mnist_small, "valid")
    test = m.evaluation_kwargs(mnist_small, "test")
    images = mnist_small.train["x"]
    assert train["x"].shape == (N_TRAIN - N_VALID, 784) and train["train_baseline"] is True
    assert valid["x"].shape == (N_VALID, 784) and "train_baseline" not in valid
    assert test["x"].shape == (N_TEST, 784) and "train_baseline" not in test
    # the validation rows are the last training images, never test images
    assert torch.equal(fill_hidden(valid["x"], valid["y"], index), images[-N_VALID:])
    x, y = train["x"], train["y"]
    assert y.shape == (N_TRAIN - N_VALID, len(index))
    assert (x[:, index] == -1).all()
    assert torch.equal(x[:, given_mask(quadrants)], images[:len(x)][:, given_mask(quadrants)])
    assert torch.equal(mask_inputs(images[:5], quadrants), x[:5])

    trace = pyro.poutine.trace(m.model).get_trace(x=x, y=y, subsample_size=7)
    assert trace.nodes["z"]["value"].shape == (7, 2)
    assert trace.nodes["y"]["value"].shape == (7, len(index))
    assert "baseline_bce" not in trace.nodes          # only the training keywords add it
    # vectorised importance weights over particles: one per particle and image
    est = importance_log_likelihood(m.model, m.guide, {"x": x[:5], "y": y[:5]},
                                    num_samples=30, particle_batch=10, seed=0)
    assert est.log_likelihood.shape == (5,) and np.isfinite(est.log_likelihood).all()
    assert m.complete(x[:3], num_samples=4).shape == (4, 3, 784)


@pytest.mark.parametrize("config, message", [({"quadrants": 4}, "quadrants"),
                                             ({"generation": "x"}, "generation"),
                                             ({"validation_size": -1}, "validation_size")])
def test_bad_configuration_is_named(config, message):
    with pytest.raises(ValueError, match=message):
        zoo.get("cvae", **config)


def test_importance_sampled_cll_is_at_least_the_elbo(trained_cvae, mnist_small):
    model, result = trained_cvae
    kwargs = model.evaluation_kwargs(mnist_small, "test")
    est = importance_log_likelihood(model.model, model.guide, kwargs, num_samples=100, seed=0)
    # the same 100 draws from q(z | x, y) give both: log-mean-exp >= mean (Jensen), per image
    assert (est.log_likelihood >= est.elbo - 1e-9).all()
    assert (est.gap > 0).mean() > 0.99
    metrics = model.evaluate(mnist_small, result)
    assert metrics["eval_samples"] == 100 and metrics["elbo_particles"] == 10
    assert math.isfinite(metrics["test_ll_khat"])
    assert metrics["test_ll"] >= metrics["test_elbo"]


def test_early_stopping_uses_a_validation_split_from_training(trained_cvae):
    _, result = trained_cvae
    settings = result.settings
    assert settings["patience"] == 3
    assert settings["eval_every"] == math.ceil((N_TRAIN - N_VALID) / 64)  # one epoch
    assert len(settings["early_stopping"]["val_history"]) == CVAE_STEPS // settings["eval_every"]


def test_early_stopping_follows_the_configuration_and_can_be_off(mnist_small):
    tiny = {"hidden": (8,), "latent_dim": 2}
    model = zoo.get("cvae", validation_size=N_VALID, patience=5, **tiny)
    result, _, _ = fit(model, "svi", data=mnist_small, num_steps=2, eval_every=1,
                       progress_bar=False)
    assert result.settings["patience"] == 5 and result.settings["eval_every"] == 1
    assert len(result.settings["early_stopping"]["val_history"]) == 2  # the model's split
    off = zoo.get("cvae", validation_size=0, **tiny)
    result, _, _ = fit(off, "svi", data=mnist_small, num_steps=2, progress_bar=False)
    assert result.settings["patience"] is None and result.settings["early_stopping"] is None
    with pytest.raises(ValueError, match="validation_size=0"):
        off.evaluation_kwargs(mnist_small, "valid")


def test_cvae_beats_the_baseline_on_one_quadrant(trained_cvae, mnist_small):
    model, _ = trained_cvae
    kwargs = model.evaluation_kwargs(mnist_small, "test")
    est = importance_log_likelihood(model.model, model.guide, kwargs, num_samples=100, seed=1)
    baseline = model.baseline_bce(kwargs["x"], kwargs["y"]).double().numpy()
    diff = baseline - (-est.log_likelihood)      # per image: baseline BCE - CVAE NCLL
    # paired over the same 200 test images; the IS Monte Carlo error (est.mc_se, ~0.02 nats)
    # is negligible next to the spread over images, so 3 standard errors of the mean paired
    # difference make a chance win of the CVAE unlikely (one-sided ~0.1%)
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert est.mc_se < 0.1 * se
    print("baseline - CVAE per image", diff.mean(), "se", se)
    assert diff.mean() > 3 * se, (diff.mean(), se)


def test_label_cvae_samples_are_recognised_as_their_class(mnist_small):
    m = zoo.get("label_cvae", hidden=(64,), latent_dim=4, validation_size=N_VALID)
    fit(m, "svi", data=mnist_small, num_steps=200, lr=3e-3, batch_size=64, seed=0,
        progress_bar=False)
    # the simple classifier: nearest class mean, trained on the training slice
    x, c = mnist_small.train["x"], mnist_small.train["y"]
    means = torch.stack([x[c == k].mean(0) for k in range(10)])

    def classify(images: torch.Tensor) -> torch.Tensor:
        return torch.cdist(images.reshape(-1, 784), means).argmin(-1)

    test_x, test_c = mnist_small.test["x"], mnist_small.test["y"]
    assert (classify(test_x) == test_c).float().mean() > 0.6   # the classifier works
    per_class = 20
    samples = m.sample_per_class(per_class, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (10, per_class, 784)
    wanted = torch.arange(10).repeat_interleave(per_class)
    acc = (classify(samples) == wanted).float().mean()
    # chance is 0.1: with 200 samples, P(Binomial(200, 0.1) >= 60) < 1e-12, so 0.3 is far
    # beyond what a class-blind generator would reach
    assert acc > 0.3, acc
    transfer = m.style_transfer(test_x[:10], test_c[:10])
    assert transfer.shape == (10, 10, 784)
    acc_transfer = (classify(transfer) == torch.arange(10).repeat(10)).float().mean()
    assert acc_transfer > 0.3, acc_transfer   # 100 images, chance 0.1: P(>= 30) < 1e-8


def test_cli_fit_writes_metrics_and_completion_images(tmp_path):
    from zoo.cli import main

    out = tmp_path / "cvae"
    code = main(["fit", "cvae", "--method", "svi", "--steps", "3", "--out", str(out),
                 "--config", "quadrants=1", "hidden=[16]", "latent_dim=4",
                 "eval_max_points=20", "eval_samples=50"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("test_ll", "test_ll_khat", "test_elbo", "test_elbo_k", "baseline_bce"):
        assert name in metrics and math.isfinite(metrics[name])
    assert metrics["eval_points"] == 20 and metrics["test_ll"] >= metrics["test_elbo"]
    assert (out / "plots" / "completions_q1.png").is_file()
    # the saved run reloads with its recognition network and evaluates to the same numbers
    from zoo.evaluation import evaluate_fit
    from zoo.reload import load_run

    result, model, dataset = load_run(out)
    again = evaluate_fit(model, dataset, result)
    assert again["test_ll"] == pytest.approx(metrics["test_ll"], abs=1e-6)
    assert again["baseline_bce"] == pytest.approx(metrics["baseline_bce"], abs=1e-6)
