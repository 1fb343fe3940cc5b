"""Evaluation outside the models: exact predictive metrics, honest k-hat, LOO refusal, reload.

A run written by ``zoo fit`` and reloaded in a fresh process must give the same held-out
metrics as the process that fitted it: for a BNN (metrics from stored posterior draws) and for
a VAE (importance sampling with the guide rebuilt from its saved parameters).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from inference.diagnostics import loo
from inference.evaluation import EvalSettings, evaluate
from inference.evaluation.importance import importance_metrics
from inference.evaluation.predictive import predictive_metrics
from inference.result import InferenceResult
from inference.svi import fit_svi

ROOT = Path(__file__).resolve().parents[1]


def _regression(x, y=None):
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], dim=-1):
        pyro.sample("y", dist.Normal(w * x, 0.5), obs=y)


def _classifier(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(2, 3), 1.0).to_event(2))
    with pyro.plate("data", x.shape[0], dim=-1):
        pyro.sample("y", dist.Categorical(logits=x @ w), obs=y)


def test_predictive_metrics_equal_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, generator=gen), torch.randn(30, generator=gen)
    w = np.random.default_rng(1).normal(size=40)
    metrics = predictive_metrics(_regression, {"w": w}, {"x": x, "y": y}, y_scale=2.0,
                                 y_shift=1.0, chunk_size=7, data_batch=11)
    # log p(y_i) = log mean_s N(y_i | w_s x_i, 0.5) on the standardised scale, minus log 2
    logp = stats.norm.logpdf(y.numpy()[None], w[:, None] * x.numpy()[None], 0.5)
    expected = float(np.mean(logsumexp(logp, 0) - np.log(40)) - np.log(2.0))
    assert metrics["test_ll"] == pytest.approx(expected, abs=1e-5)
    rmse = 2.0 * np.sqrt(np.mean((w.mean() * x.numpy() - y.numpy()) ** 2))
    assert metrics["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert metrics["eval_draws"] == 40 and metrics["eval_points"] == 30

    xc = torch.randn(50, 2, generator=gen)
    yc = torch.randint(0, 3, (50,), generator=gen)
    wc = np.random.default_rng(2).normal(size=(25, 2, 3))
    metrics = predictive_metrics(_classifier, {"w": wc}, {"x": xc, "y": yc}, chunk_size=10)
    logits = np.einsum("nd,sdk->snk", xc.numpy(), wc)
    probs = np.exp(logits - logsumexp(logits, -1, keepdims=True)).mean(0)
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == yc.numpy()).mean()))
    assert metrics["test_error"] == pytest.approx(1 - metrics["accuracy"])
    assert metrics["test_ll"] == pytest.approx(
        float(np.log(probs[np.arange(50), yc.numpy()]).mean()), abs=1e-6)


def test_importance_estimate_with_high_khat_is_marked_unreliable():
    def estimate(khat):
        return SimpleNamespace(khat=np.asarray(khat), mean=-90.0, se=0.5, mc_se=0.01,
                               elbo_mean=-95.0, gap_mean=5.0, num_samples=100, num_data=3)

    sound = importance_metrics(estimate([0.2, 0.4, 0.5]))
    assert sound["test_ll_reliable"] == 1.0 and sound["test_ll_se"] == 0.5
    shaky = importance_metrics(estimate([0.6, 0.9, 1.1]))
    assert shaky["test_ll_reliable"] == 0.0 and "test_ll_se" not in shaky
    assert shaky["test_ll_khat"] == pytest.approx(13 / 15)
    assert shaky["test_ll_unreliable_frac"] == pytest.approx(2 / 3)


def test_loo_is_refused_on_variational_draws():
    x = torch.linspace(-1, 1, 20)
    y = 0.7 * x
    result = fit_svi(_regression, {"x": x, "y": y}, num_steps=50, num_posterior_draws=100,
                     progress_bar=False)
    assert result.log_likelihood is not None
    with pytest.raises(ValueError, match="come from the variational approximation q"):
        loo(result)
    assert np.isfinite(loo(result, variational=True).elpd_loo)  # asked for knowingly


def test_evaluate_uses_the_posterior_draws_of_a_result():
    x = torch.linspace(-1, 1, 10)
    y = 0.3 * x
    w = np.full((2, 5), 0.3)
    result = InferenceResult(method="mcmc_nuts", posterior={"w": w})
    metrics = evaluate(_regression, {"x": x, "y": y}, result, local_latents=False,
                       settings=EvalSettings(num_draws=4))
    assert metrics["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["eval_draws"] == 4
    assert metrics["test_ll"] == pytest.approx(stats.norm.logpdf(0.0, 0.0, 0.5), abs=1e-5)


RELOAD = """
import json, sys
from zoo.reload import load_run
from zoo.evaluation import evaluate_fit
for run in sys.argv[1:]:
    result, model, dataset = load_run(run)
    print(json.dumps(evaluate_fit(model, dataset, result)))
"""

RUNS = {
    "bnn": ["bnn", "--method", "svi", "--guide", "bbb", "--steps", "30", "--draws", "40",
            "--config", "hidden=[8]"],
    "vae": ["vae", "--method", "svi", "--guide", "iaf", "--steps", "20", "--batch-size", "100",
            "--config", "latent_dim=2", "hidden=[16]", "num_flows=2", "eval_samples=30"],
}


def test_a_reloaded_run_gives_the_same_heldout_metrics_in_a_new_process(tmp_path):
    """``zoo fit`` here, reloaded in a fresh interpreter: a BNN evaluated from its stored weight
    draws, and a VAE whose amortised IAF guide is rebuilt from its saved parameters."""
    from zoo.cli import main

    outs = []
    for name, args in RUNS.items():
        out = tmp_path / name
        assert main(["fit", *args, "--seed", "2", "--out", str(out)]) == 0
        outs.append(out)
    again = subprocess.run([sys.executable, "-c", RELOAD, *map(str, outs)],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.strip().splitlines()[-len(outs):]
    for out, line in zip(outs, lines):
        written = json.loads((out / "metrics.json").read_text())
        reloaded = json.loads(line)
        assert "test_ll" in written
        for key, value in written.items():
            assert reloaded[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (out.name, key)
