"""The method registry: settings that check themselves, capabilities, and one dispatch path.

A method registered through ``inference.methods.register`` alone must be usable from
``zoo.fit``, suite validation and the CLI without any other edit; a method that needs a
capability the model lacks must be refused in one line, before anything runs.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pytest

import zoo
from benchmarks.suite import SuiteError, load_suite
from inference import methods
from inference.methods.registry import _REGISTRY
from inference.methods.settings import MethodSettings, integer
from inference.result import InferenceResult
from zoo.fit import fit

ROOT = Path(__file__).resolve().parents[1]


def test_every_method_has_a_family_needs_and_settings():
    specs = {m.name: m for m in methods.list_methods()}
    assert {"nuts", "hmc", "rw", "svi"} <= set(specs)
    assert specs["svi"].family == "vi" and specs["nuts"].family == "mcmc"
    assert "no_learned_parameters" in specs["nuts"].needs
    assert "max_tree_depth" in specs["nuts"].fields and "max_tree_depth" not in specs["hmc"].fields
    assert "num_steps" in specs["hmc"].fields and "guide" in specs["svi"].fields


@pytest.mark.parametrize("method,values,match", [
    ("nuts", {"num_chains": True}, r"num_chains must be an integer >= 1, got True"),
    ("nuts", {"num_warmup": -1}, r"num_warmup must be an integer >= 0, got -1"),
    ("nuts", {"target_accept_prob": 1.0}, r"target_accept_prob must be a finite number in \(0"),
    ("nuts", {"num_steps": 5}, r"method 'nuts' takes no setting\(s\) \['num_steps'\]"),
    ("nuts", {"chain_method": "threads"}, r"chain_method must be one of"),
    ("svi", {"batch_size": 0}, r"batch_size must be an integer >= 1 or None, got 0"),
    ("svi", {"lr": "fast"}, r"lr must be a finite number > 0.0 or None, got 'fast'"),
    ("svi", {"lr": float("nan")}, r"lr must be a finite number"),
    ("svi", {"elbo": "tracee"}, r"elbo must be one of \['trace'"),
    ("svi", {"progress_bar": 1}, r"progress_bar must be true or false, got 1"),
    ("svi", {"resume": True}, r"resume needs checkpoint_path"),
])
def test_settings_name_the_bad_field(method, values, match):
    with pytest.raises(methods.SettingsError, match=match):
        methods.get(method).settings_from(values)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(methods.UnknownMethodError, match=r"unknown inference method 'nutz'.*nuts"):
        methods.get("nutz")


def test_models_declare_traits_and_methods_follow_from_them():
    assert zoo.spec("vae").methods == ("svi",)
    # no full-batch density on MNIST: no NUTS, no exact-Hessian Laplace; mini-batch methods yes
    lenet = set(zoo.spec("lenet300100").methods)
    assert {"svi", "sghmc", "swag", "deep_ensemble"} <= lenet
    assert not {"nuts", "laplace", "last_layer_laplace"} & lenet
    assert {"nuts", "hmc", "svi"} <= set(zoo.spec("bnn").methods)
    assert zoo.spec("vae").traits.learned_parameters


def test_fit_refuses_a_method_the_model_cannot_take_before_loading_data():
    with pytest.raises(ValueError, match=r"method 'nuts' cannot run model 'vae': it needs no "
                                         r"parameters fitted by optimisation"):
        fit("vae", "nuts", data="no-such-data-set")  # refused before the data is looked up
    with pytest.raises(ValueError, match=r"a guide applies to variational methods"):
        fit("eight_schools-eight_schools_noncentered", "nuts", guide="auto_normal")


def test_cli_refuses_in_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)

    done = run("fit", "vae", "--method", "nuts", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "needs no parameters fitted by optimisation" in done.stderr
    assert not (tmp_path / "x").exists()
    done = run("fit", "eight_schools-eight_schools_noncentered", "--method", "nuts",
               "--steps", "5", "--out", str(tmp_path / "y"))
    assert done.returncode == 2 and "--steps does not apply to method 'nuts'" in done.stderr
    listing = run("methods")
    assert listing.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert rows["nuts"] == "mcmc" and rows["svi"] == "vi"


def test_suite_asking_for_an_impossible_cell_fails_at_validation(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text('name = "bad"\n[[cell]]\nmodel = "vae"\nmethod = "nuts"\n')
    with pytest.raises(SuiteError, match=r"method 'nuts' cannot run model 'vae'"):
        load_suite(suite)
    suite.write_text('name = "bad"\n[[cell]]\nmodel = "bnn"\nmethod = "svi"\n'
                     'settings = { num_steps = 0 }\n')
    with pytest.raises(SuiteError, match=r"num_steps must be an integer >= 1 or None, got 0"):
        load_suite(suite)


# ----------------------------------------------------- a new method through the registry alone
@dataclass(frozen=True)
class _PriorSettings(MethodSettings):
    num_draws: int = integer(100, minimum=1)


@pytest.fixture
def prior_method():
    """A toy 'method' drawing from the prior, registered and removed again by the test."""
    @methods.register("prior_draws_test", family="vi", settings=_PriorSettings,
                      description="draws from the prior (a test method)")
    def run(target, settings, seed):
        pyro.set_rng_seed(seed)
        draws = pyro.infer.Predictive(target.model, num_samples=settings.num_draws,
                                      return_sites=["mu"])(**target.model_kwargs)
        return InferenceResult(method="prior_draws_test",
                               posterior={"mu": draws["mu"].reshape(1, -1).numpy()})

    yield methods.get("prior_draws_test")
    del _REGISTRY["prior_draws_test"]


def test_a_registered_method_runs_through_fit_and_suites(prior_method, tmp_path):
    result, _, _ = fit("eight_schools-eight_schools_noncentered", "prior_draws_test",
                       num_draws=4000, seed=3)
    assert result.family == "vi" and result.posterior["mu"].shape == (1, 4000)
    # the model's prior on mu is Normal(0, 5): mean within 4 standard errors of 0
    assert abs(result.posterior["mu"].mean()) < 4 * 5 / np.sqrt(4000)
    assert abs(result.posterior["mu"].std() - 5) < 0.3
    assert "prior_draws_test" in zoo.spec("eight_schools-eight_schools_noncentered").methods
    suite = tmp_path / "prior.toml"
    suite.write_text('name = "prior"\n[[cell]]\nmodel = "eight_schools-eight_schools_noncentered"'
                     '\nmethod = "prior_draws_test"\nsettings = { num_draws = 10 }\n')
    assert load_suite(suite).cells[0].method == "prior_draws_test"
