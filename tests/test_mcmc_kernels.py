"""The kernel registry, kernel-specific options, and what the chain methods require of a model."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

import inference.mcmc
import inference.mcmc.kernels.registry as registry
from inference.mcmc import (
    CHAIN_METHODS,
    KERNELS,
    ChainFailedError,
    get_kernel,
    list_kernels,
    register_kernel,
    run_mcmc,
)
from inference.mcmc.kernels import KernelSpec

Y = torch.tensor([0.1, 0.5, -0.3, 1.1, 0.7, 0.2])


def normal(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(Y)):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


class _State(NamedTuple):
    position: dict
    potential: torch.Tensor


class TinyMetropolis:
    """A random-walk Metropolis kernel written on the protocol, registered at run time."""

    def __init__(self, settings):
        self.scale = float(settings.step_size or 0.5)
        self.final_step_size = self.scale

    def init(self, model, model_kwargs, num_warmup):
        params, self.potential_fn, self.transforms, _ = initialize_model(
            model, model_kwargs=dict(model_kwargs))
        return _State(params, self.potential_fn(params))

    def step(self, state):
        proposal = {k: v + self.scale * torch.randn_like(v) for k, v in state.position.items()}
        potential = self.potential_fn(proposal)
        accept = math.exp(min(0.0, float(state.potential - potential)))
        if float(torch.rand(())) < accept:
            state = _State(proposal, potential)
        return state, {"acceptance_rate": accept, "lp": -float(state.potential)}

    def constrained(self, positions):
        return {k: self.transforms[k].inv(v).numpy() for k, v in positions.items()}

    def cleanup(self):
        pass


class Misreporting(TinyMetropolis):
    def step(self, state):
        state, info = super().step(state)
        return state, {**info, "energy": 0.0}


TINY = KernelSpec("tiny", 0.3, (), ("acceptance_rate", "lp"), TinyMetropolis)


@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    list_kernels()  # discover the package's kernels first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _quick(model=normal, **kw):
    settings = dict(num_chains=2, num_warmup=10, num_samples=15, progress_bar=False)
    settings.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(model, {"y": Y}, **settings)


def test_registry_lists_the_package_kernels_with_their_specs():
    assert list_kernels() == ("chees", "hmc", "mala", "meads", "nuts", "rw")
    assert KERNELS == list_kernels()
    expected = {
        "chees": (0.651, (), 6),
        "meads": (0.5, (), 6),
        "nuts": (0.8, ("max_tree_depth", "dense_mass"), 7),
        "hmc": (0.8, ("num_steps", "dense_mass"), 6),
        "rw": (0.234, (), 3),
        "mala": (0.574, (), 4),
    }
    for name, (target, options, num_stats) in expected.items():
        spec = get_kernel(name)
        assert (spec.name, spec.default_target_accept, spec.options) == (name, target, options)
        assert isinstance(spec.stats, tuple) and len(spec.stats) == num_stats
    with pytest.raises(ValueError, match="unknown kernel 'gibbs'; expected one of"):
        get_kernel("gibbs")


def test_a_kernel_registered_at_run_time_runs_sequentially_and_in_workers(clean_registry):
    register_kernel(TINY)
    assert "tiny" in list_kernels() and "tiny" in inference.mcmc.KERNELS
    result = _quick(kernel="tiny", seed=2)
    assert result.method == "mcmc_tiny"
    assert set(result.sample_stats) == {"acceptance_rate", "lp"}
    assert result.settings["target_accept_prob"] == 0.3
    assert result.settings["max_tree_depth"] is None
    parallel = _quick(kernel="tiny", seed=2, chain_method="parallel")
    np.testing.assert_array_equal(result.posterior["mu"], parallel.posterior["mu"])


def test_registry_rejects_conflicts_and_unknown_names(clean_registry):
    register_kernel(TINY)
    register_kernel(TINY)  # the same spec again is fine
    with pytest.raises(ValueError, match="already registered as 'tiny'"):
        register_kernel(KernelSpec("tiny", 0.5, (), ("lp",), TinyMetropolis))
    with pytest.raises(ValueError, match="unknown options"):
        KernelSpec("x", 0.5, ("leapfrogs",), ("lp",), TinyMetropolis)
    with pytest.raises(ValueError, match="unknown statistics"):
        KernelSpec("x", 0.5, (), ("lp", "temperature"), TinyMetropolis)


def test_statistics_that_differ_from_the_spec_fail_loudly(clean_registry):
    register_kernel(KernelSpec("liar", 0.3, (), ("acceptance_rate", "lp"), Misreporting))
    with pytest.raises(ChainFailedError, match="returned statistics"):
        _quick(kernel="liar", num_chains=1)


@pytest.mark.parametrize("kwargs,match", [
    ({"kernel": "mala", "num_steps": 3}, "num_steps applies to kernel='hmc' only, not 'mala'"),
    ({"kernel": "rw", "dense_mass": True},
     "dense_mass applies to kernel='hmc' or kernel='nuts' only, not 'rw'"),
])
def test_kernel_specific_options_name_their_kernels(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_mcmc(normal, {"y": Y}, progress_bar=False, **kwargs)


def test_max_tree_depth_is_accepted_and_ignored_by_other_kernels():
    result = _quick(kernel="hmc", num_chains=1, num_samples=2, max_tree_depth=4)
    assert result.settings["max_tree_depth"] is None


def test_chain_methods_and_models_that_cannot_reach_worker_processes():
    assert CHAIN_METHODS == ("sequential", "parallel", "vectorized")

    def closure(y=None):
        normal(y)

    for model in (closure, lambda y=None: normal(y)):
        with pytest.raises(ValueError, match="must pickle.*chain_method='sequential'"):
            _quick(model, chain_method="parallel")
    assert _quick(closure, num_chains=1, num_samples=2).posterior["mu"].shape == (1, 2)
