"""The lean SVI step and the compiled ELBO: the same numbers as Pyro's loop, divergences still
stop with the last finite state, and a model that cannot be compiled falls back with one
warning line."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal

import inference.svi.engine as engine_module
from inference.checkpoint import snapshot_params
from inference.errors import DivergenceError
from inference.grouped_optim import GroupedOptim
from inference.schedules import make_optimizer
from inference.svi import SVIEngine, fit_svi
from inference.svi.compiled import NotCompilable, compile_elbo

N_OBS = 20


def normal_model(y=None, h=None):
    """``y_i ~ N(mu, 1 + tau)``; ``h`` (a one-element tensor, default absent) adds the factor
    ``sqrt(mu - mu + h)``: value ``sqrt(h)``, gradient ``inf`` at ``h = 0``, NaN for ``h < 0``."""
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    tau = pyro.sample("tau", dist.HalfNormal(1.0))
    if h is not None:
        pyro.factor("hazard", torch.sqrt(mu - mu.detach() + h[0]))
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0 + tau), obs=y)


def branching_model(y=None):
    """A Python branch on a random value: cannot be traced into a fixed graph."""
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    if float(mu.detach()) > 50.0:
        mu = mu + 1.0
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def y20():
    return 1.5 + torch.randn(N_OBS, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def fx_backend(monkeypatch):
    """The engine compiles with the traced graph replayed as is (no inductor: fast tests)."""
    monkeypatch.setattr(engine_module, "compile_elbo",
                        functools.partial(compile_elbo, backend="fx"))


def _pyro_parts(optim):
    pyro.clear_param_store()
    guide = AutoNormal(normal_model)
    pyro.set_rng_seed(2)
    return guide, Trace_ELBO(max_plate_nesting=1), optim


def test_one_optimiser_for_all_parameters_steps_exactly_as_pyro(y20, tmp_path):
    guide, elbo, optim = _pyro_parts(make_optimizer("adam", lr=0.05))
    assert isinstance(optim, GroupedOptim)
    engine = SVIEngine(normal_model, guide, elbo, optim, {"y": y20}).init()
    mine = [engine.step() for _ in range(15)]
    # Pyro's parameter -> optimiser map stays walkable (svi_auto sets learning rates with it)
    assert len(optim.optim_objs) == 4
    assert all(o is optim.optimizer for o in optim.optim_objs.values())
    params = snapshot_params()
    engine.save(tmp_path / "grouped.pt")

    guide, elbo, optim = _pyro_parts(pyro.optim.Adam({"lr": 0.05}))
    with torch.no_grad(), pyro.poutine.block():
        guide(y=y20)  # what init() does: create the parameters
    svi = pyro.infer.SVI(normal_model, guide, optim, elbo)
    theirs = [svi.step(y=y20) for _ in range(15)]
    assert mine == theirs
    for name, value in snapshot_params().items():
        assert torch.equal(value, params[name]), name

    # the checkpoint is in Pyro's per-parameter format: a PyroOptim engine continues from it
    # exactly as the grouped one does
    losses = {}
    for kind, opt in (("grouped", make_optimizer("adam", lr=0.05)),
                      ("pyro", pyro.optim.Adam({"lr": 0.05}))):
        guide, elbo, opt = _pyro_parts(opt)
        resumed = SVIEngine(normal_model, guide, elbo, opt, {"y": y20}).init()
        resumed.restore(tmp_path / "grouped.pt")
        losses[kind] = [resumed.step() for _ in range(5)]
    assert losses["grouped"] == losses["pyro"]


def test_compiled_elbo_gives_pyros_numbers(y20, fx_backend):
    runs = {}
    for compiled in (False, True):
        result = fit_svi(normal_model, {"y": y20}, num_steps=40, lr=0.05, seed=3,
                         num_posterior_draws=0, progress_bar=False, compile_elbo=compiled)
        runs[compiled] = (result.loss_history, snapshot_params(), result.settings)
    assert runs[True][2]["elbo_path"] == "compiled" and runs[False][2]["elbo_path"] == "plain"
    # the same random numbers, the same estimator: equal up to float rounding
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for name, value in runs[False][1].items():
        torch.testing.assert_close(runs[True][1][name], value, rtol=1e-5, atol=1e-6)


def test_inductor_compiled_elbo_matches_pyro_loss_and_gradients(y20):
    """The one torch.compile test: loss and gradients at one random state."""
    pyro.clear_param_store()
    guide = AutoNormal(normal_model)
    with torch.no_grad(), pyro.poutine.block():
        guide(y=y20)
    elbo = Trace_ELBO(max_plate_nesting=1)
    compiled = compile_elbo(normal_model, guide, elbo, {"y": y20})
    assert compiled.backend == "inductor" and len(compiled.params) == 4
    pyro.set_rng_seed(7)
    loss, ok, grads = compiled()
    pyro.set_rng_seed(7)
    want = elbo.loss_and_grads(normal_model, guide, y=y20)
    assert ok is True
    assert loss == pytest.approx(want, rel=1e-5)
    for p, g in zip(compiled.params, grads):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", ["loss", "grad"])
def test_compiled_divergence_keeps_the_last_finite_state(bad, y20, fx_backend):
    h = torch.ones(1)  # read by the compiled graph at every call
    engine = SVIEngine.build(normal_model, {"y": y20, "h": h}, lr=0.05, compile_elbo=True)
    assert engine.elbo_path == "compiled"
    for _ in range(5):
        engine.step()
    good = snapshot_params()
    moments = {k: v["state"][0]["exp_avg"].clone() for k, v in engine.optim.get_state().items()}
    h.fill_(-1.0 if bad == "loss" else 0.0)
    with pytest.raises(DivergenceError, match="non-finite gradient" if bad == "grad" else "nan"
                       ) as info:
        engine.run(50)
    assert info.value.step == 5 and engine.step_count == 5 and len(engine.losses) == 5
    for name, value in snapshot_params().items():
        assert torch.equal(value, good[name]), name
    for k, v in engine.optim.get_state().items():
        assert int(v["state"][0]["step"]) == 5 and torch.equal(v["state"][0]["exp_avg"],
                                                                  moments[k])
    h.fill_(1.0)
    assert np.isfinite(engine.step()) and engine.step_count == 6


def test_model_that_cannot_be_compiled_warns_once_and_fits(y20, capsys):
    from zoo.console import routed_warnings

    with pytest.raises(NotCompilable, match="tracing failed"):
        pyro.clear_param_store()
        guide = AutoNormal(branching_model)
        with torch.no_grad(), pyro.poutine.block():
            guide(y=y20)
        compile_elbo(branching_model, guide, Trace_ELBO(max_plate_nesting=1), {"y": y20},
                     backend="fx")
    with routed_warnings():
        result = fit_svi(branching_model, {"y": y20}, num_steps=300, lr=0.05, seed=0,
                         num_posterior_draws=200, progress_bar=False, compile_elbo=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "compiled" in line]
    assert len(lines) == 1 and lines[0].startswith("zoo: warning: SVI: the ELBO could not be "
                                                   "compiled (tracing failed")
    assert result.settings["elbo_path"] == "plain"
    assert "tracing failed" in result.settings["compile_error"]
    # it still fits: the posterior mean of mu is sum(y) / (N + 1) (prior N(0, 1), unit noise)
    exact = float(y20.sum()) / (N_OBS + 1)
    assert float(result.posterior["mu"].mean()) == pytest.approx(exact, abs=0.1)


def test_kl_annealing_is_not_compiled(y20):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = SVIEngine.build(normal_model, {"y": y20}, lr=0.05, compile_elbo=True,
                                 kl_anneal={"start": 0.1, "end": 1.0, "steps": 10})
    assert engine.elbo_path == "plain" and "KL annealing" in engine.compile_error
    assert sum("could not be compiled" in str(w.message) for w in caught) == 1
    assert np.isfinite(engine.step())


def test_vae_with_minibatches_compiles_and_repeats_the_plain_run(fx_backend):
    """The zoo's VAE (subsampling plate, dynamic binarisation shared by guide and model)
    traces into a fixed graph that draws the same numbers as Pyro's path."""
    import zoo

    x = torch.rand(60, 12, generator=torch.Generator().manual_seed(0))
    runs = {}
    for compiled in (False, True):
        vae = zoo.get("vae", latent_dim=2, hidden=(8,), x_dim=12)
        result = fit_svi(vae.model, {"x": x}, guide=vae.guide, num_steps=25, lr=1e-2,
                         batch_size=10, seed=1, num_posterior_draws=0, log_likelihood=False,
                         progress_bar=False, compile_elbo=compiled)
        runs[compiled] = result
    assert runs[True].settings["elbo_path"] == "compiled"
    np.testing.assert_allclose(runs[True].loss_history, runs[False].loss_history, rtol=1e-5)
