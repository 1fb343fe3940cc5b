"""Budgets and smoke runs: every built-in suite runs at a tiny size, and budgets cap what they
say they cap (steps with their schedules, wall-clock time, draws, seeds and splits)."""

from __future__ import annotations

import warnings

import pytest
import torch

from benchmarks.budget import SMOKE, Budget, apply_budget
from benchmarks.runner import run_suite
from benchmarks.suite import SuiteError, builtin_suites, load_suite, parse_suite
from inference.methods import SettingsError
from inference.svi import fit_svi

SUITE = {
    "name": "b",
    "methods": {"long": {"method": "svi", "guide": "auto_normal", "num_steps": 10000,
                         "kl_anneal": {"start": 0.0, "end": 1.0, "steps": 5000},
                         "eval_every": 2000},
                "nuts": {"method": "nuts", "num_warmup": 1000, "num_samples": 1000}},
    "cell": [{"model": "eight_schools-eight_schools_noncentered", "method": ["long", "nuts"],
              "seed": [0, 1, 2]}],
}


def test_budget_caps_steps_with_their_schedules_and_draws():
    suite = parse_suite(SUITE)
    small = apply_budget(suite, Budget(max_steps=100, mcmc_draws=50, seeds=2, minutes=1.5))
    assert len(small.cells) == 4 and {c.seed for c in small.cells} == {0, 1}
    svi = next(c for c in small.cells if c.method == "svi")
    assert svi.settings["num_steps"] == 100
    assert svi.settings["kl_anneal"]["steps"] == 50  # half the fit, as before the cap
    assert svi.settings["eval_every"] == 100 and svi.settings["time_limit_s"] == 90.0
    nuts = next(c for c in small.cells if c.method == "nuts")
    assert nuts.settings["num_warmup"] == 50 and nuts.settings["num_samples"] == 50
    full_ids = {c.cell_id for c in suite.cells}
    assert not full_ids & {c.cell_id for c in small.cells}  # budgeted cells never mix with full


def test_budget_keeps_as_many_sgmcmc_draws_and_swag_snapshots():
    # the MNIST suite's full run keeps a draw every 2000 of 100000 SGHMC steps and a SWAG
    # snapshot every 500; at 1500 steps (ratio 0.015) those become 30 and 8, not one draw
    suite = apply_budget(load_suite("bbb-mnist"), Budget(max_steps=1500,
                                                        methods="sghmc,swag"))
    sghmc = next(c for c in suite.cells if c.label == "sghmc")
    swag = next(c for c in suite.cells if c.label == "swag")
    assert sghmc.settings["thin"] == 30 and sghmc.settings["pretrain_steps"] == 75
    assert swag.settings["collect_every"] == 8


def test_smoke_keeps_one_cell_per_model_and_method():
    tiny = apply_budget(parse_suite(SUITE), SMOKE)
    assert [(c.method, c.seed) for c in tiny.cells] == [("svi", 0), ("nuts", 0)]
    assert all(not c.plots for c in tiny.cells)


def test_bad_budgets_are_refused():
    with pytest.raises(SettingsError, match="max_steps must be an integer >= 1"):
        Budget.from_mapping({"max_steps": 0})
    with pytest.raises(SettingsError, match="takes no setting"):
        Budget.from_mapping({"steps": 10})
    with pytest.raises(SuiteError, match=r"\[budget\]"):
        load_suite_with_budget({"max_steps": -1})


def load_suite_with_budget(budget):
    from benchmarks.suite import validate_suite

    validate_suite(parse_suite({**SUITE, "budget": budget}))


def test_time_limit_stops_svi_and_says_so():
    def model(y=None):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_svi(model, {"y": torch.zeros(3)}, num_steps=10**7, time_limit_s=0.5,
                         num_posterior_draws=10, progress_bar=False)
    assert result.settings["stopped_by_time_limit"]
    assert 0 < result.settings["steps_run"] < 10**7
    assert any("time limit" in str(w.message) for w in caught)


@pytest.mark.smoke
@pytest.mark.parametrize("name", builtin_suites())
def test_smoke_every_builtin_suite(name, tmp_path):
    table = run_suite(name, tmp_path / name, smoke=True, progress=False)
    failed = table[table["status"] != "ok"]
    assert len(table) and failed.empty, failed["error"].tolist()
