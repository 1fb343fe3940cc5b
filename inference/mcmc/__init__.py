"""MCMC for Pyro models: NUTS, HMC, random-walk Metropolis and MALA, chain by chain.

``run_mcmc`` returns an :class:`~inference.result.InferenceResult` with constrained draws
(``pyro.deterministic`` sites included), per-draw sample statistics, warm-up and sampling wall
times, settings, per-chain seeds and library versions, pointwise log-likelihoods and the
observed data.

One concern per module:

* :mod:`~inference.mcmc.driver`: ``run_mcmc``, validation, the result record;
* :mod:`~inference.mcmc.protocol`: what a kernel is (``init``/``step``/``constrained``);
* :mod:`~inference.mcmc.kernels`: the kernels by name, one module each, and their registry;
* :mod:`~inference.mcmc.sampler`: one chain's warm-up and sampling loop;
* :mod:`~inference.mcmc.chains`: sequential or parallel (spawned processes) chains, seeds;
* :mod:`~inference.mcmc.initialization`: init strategies (Stan's uniform(-2, 2) by default);
* :mod:`~inference.mcmc.adaptation`: the scale-free dense mass matrix, step-size search.

Usage::

    import zoo
    from zoo.data import load
    from inference.mcmc import run_mcmc
    name = "eight_schools-eight_schools_noncentered"
    m = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    result = run_mcmc(m.model, m.model_kwargs(data), num_chains=4)
    result.to_inference_data()
"""

from __future__ import annotations

from typing import Any

from inference.mcmc.chains import CHAIN_METHODS, ChainFailedError, chain_seeds
from inference.mcmc.driver import run_mcmc
from inference.mcmc.initialization import INIT_STRATEGIES, make_init_strategy
from inference.mcmc.kernels import get_kernel, list_kernels, register_kernel

__all__ = ["run_mcmc", "KERNELS", "INIT_STRATEGIES", "CHAIN_METHODS", "ChainFailedError",
           "chain_seeds", "make_init_strategy", "register_kernel", "get_kernel", "list_kernels"]


def __getattr__(name: str) -> Any:
    """``KERNELS``: the registered kernel names, read from the registry on every access."""
    if name == "KERNELS":
        return list_kernels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
