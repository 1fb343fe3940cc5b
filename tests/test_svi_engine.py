"""The steppable SVI engine: stepping by hand equals fit_svi, callbacks stop a run, a
divergence keeps the last finite parameters, save/restore continues exactly."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from inference.checkpoint import load_checkpoint, snapshot_params
from inference.errors import DivergenceError
from inference.svi import SVIEngine, fit_svi
from inference.svi.callbacks import Callback, Checkpointer, EarlyStopping

N_OBS = 20


def normal_model(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    tau = pyro.sample("tau", dist.HalfNormal(1.0))
    with pyro.plate("data", N_OBS, dim=-1):
        pyro.sample("y", dist.Normal(mu, 1.0 + tau), obs=y)


def hazard_model(flags):
    """``normal_model`` plus a factor that turns bad (NaN loss, or an infinite gradient with a
    finite loss) once ``flags["bad"]`` is set."""
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        if flags["bad"] == "loss":
            pyro.factor("hazard", torch.tensor(float("nan")))
        elif flags["bad"] == "grad":
            pyro.factor("hazard", torch.sqrt(mu - mu.detach()))  # value 0, gradient inf
        with pyro.plate("data", N_OBS, dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    return model


@pytest.fixture(scope="module")
def y20():
    return 1.5 + torch.randn(N_OBS, generator=torch.Generator().manual_seed(1))


SETTINGS = dict(guide="auto_normal", lr=0.05, num_particles=2, vectorize_particles=True,
                lr_schedule={"name": "step", "step_size": 10, "gamma": 0.5},
                kl_anneal={"start": 0.1, "end": 1.0, "steps": 20}, seed=4)


def test_stepping_by_hand_equals_fit_svi(y20):
    engine = SVIEngine.build(normal_model, {"y": y20}, num_steps=30, **SETTINGS)
    losses = [engine.step() for _ in range(30)]
    by_hand = {k: v.numpy() for k, v in snapshot_params().items()}
    assert engine.step_count == 30 and engine.losses == losses

    result = fit_svi(normal_model, {"y": y20}, num_steps=30, num_posterior_draws=0,
                     progress_bar=False, **SETTINGS)
    np.testing.assert_array_equal(result.loss_history, np.asarray(losses))
    store = pyro.get_param_store()
    assert set(by_hand) == set(store.keys())
    for name, value in by_hand.items():
        np.testing.assert_array_equal(store[name].unconstrained().detach().numpy(), value)


def test_callback_stops_the_run_and_run_counts_total_steps(y20):
    class StopAt(Callback):
        def __init__(self, at):
            self.at, self.events = at, []

        def on_run_start(self, engine):
            self.events.append("start")

        def on_step_end(self, engine, loss):
            if engine.step_count == self.at:
                engine.request_stop()

        def on_run_end(self, engine):
            self.events.append("end")

        def close(self):
            self.events.append("close")

    engine = SVIEngine.build(normal_model, {"y": y20}, lr=0.05)
    stopper = StopAt(7)
    ran = engine.run(100, callbacks=[stopper])
    assert engine.step_count == 7 and len(ran) == 7 and len(engine.losses) == 7
    assert stopper.events == ["start", "end", "close"]
    assert engine.run(10) == engine.losses[7:] and engine.step_count == 10


@pytest.mark.parametrize("bad", ["loss", "grad"])
def test_divergence_updates_nothing_and_checkpoints_the_last_good_state(bad, y20, tmp_path):
    flags = {"bad": None}
    engine = SVIEngine.build(hazard_model(flags), {"y": y20}, lr=0.05)
    for _ in range(5):
        engine.step()
    good = snapshot_params()
    moments = {k: (int(v["state"][0]["step"]), v["state"][0]["exp_avg"].clone())
               for k, v in engine.optim.get_state().items()}
    flags["bad"] = bad
    ckpt = tmp_path / "diverged.pt"
    with pytest.raises(DivergenceError, match="non-finite gradient" if bad == "grad" else "nan"
                       ) as info:
        engine.run(50, callbacks=[Checkpointer(ckpt)])
    assert info.value.step == 5 and engine.step_count == 5 and len(engine.losses) == 5
    for name, value in snapshot_params().items():
        assert torch.equal(value, good[name]), name
    # the optimiser did not take the step either
    for k, v in engine.optim.get_state().items():
        assert int(v["state"][0]["step"]) == moments[k][0] == 5
        assert torch.equal(v["state"][0]["exp_avg"], moments[k][1])
    state = load_checkpoint(ckpt)
    assert state["step"] == 5
    for name, value in state["params"].items():
        assert torch.equal(value, good[name])
    # the error is recoverable: with the hazard gone the engine steps on
    flags["bad"] = None
    assert np.isfinite(engine.step()) and engine.step_count == 6


def test_save_and_restore_continue_exactly(y20, tmp_path):
    engine = SVIEngine.build(normal_model, {"y": y20}, **SETTINGS)
    engine.run(10)
    engine.save(tmp_path / "ten.pt")
    engine.run(25)
    straight = snapshot_params()

    pyro.set_rng_seed(99)  # disturb the RNG; the restore brings it back
    other = SVIEngine.build(normal_model, {"y": y20}, **{**SETTINGS, "seed": 5})
    other.restore(tmp_path / "ten.pt")
    assert other.step_count == 10 and other.losses == engine.losses[:10]
    other.run(25)
    assert other.losses == engine.losses
    for name, value in snapshot_params().items():
        assert torch.equal(value, straight[name]), name


def test_engine_from_pyro_parts_and_early_stopping(y20):
    guide = AutoNormal(normal_model)
    engine = SVIEngine(normal_model, guide, Trace_ELBO(), pyro.optim.Adam({"lr": 0.05}),
                       {"y": y20}).init()
    assert engine.elbo.max_plate_nesting == 1  # fixed from traces, not left to guess
    early = EarlyStopping({"y": y20 - 5.0}, eval_every=5, patience=1)
    engine.run(200, callbacks=[early])
    assert early.stopped_early and engine.step_count == 10 and early.best_step == 5
    early.restore_best()
    for name, value in early.best_params.items():
        assert torch.equal(pyro.get_param_store()[name].unconstrained().detach(), value)


def test_guarded_step_is_pyro_svi_step(y20):
    def pyro_parts():
        pyro.clear_param_store()
        guide = AutoNormal(normal_model)
        pyro.set_rng_seed(2)
        return guide, Trace_ELBO(max_plate_nesting=1), pyro.optim.Adam({"lr": 0.05})

    guide, elbo, optim = pyro_parts()
    engine = SVIEngine(normal_model, guide, elbo, optim, {"y": y20}).init()
    mine = [engine.step() for _ in range(15)]
    params = snapshot_params()

    guide, elbo, optim = pyro_parts()
    with torch.no_grad(), pyro.poutine.block():
        guide(y=y20)  # what init() does: create the parameters
    svi = pyro.infer.SVI(normal_model, guide, optim, elbo)
    theirs = [svi.step(y=y20) for _ in range(15)]
    assert mine == theirs
    for name, value in snapshot_params().items():
        assert torch.equal(value, params[name]), name
