"""Gaussian random-walk Metropolis in the unconstrained space (Pyro's ``RandomWalkKernel``).

The step size starts at ``step_size`` (default 0.1) and adapts towards the target acceptance,
0.234 by default (optimal for random walks in many dimensions).

Usage::

    run_mcmc(model, {"y": y}, kernel="rw", num_warmup=2000, num_samples=2000)
"""

from __future__ import annotations

import functools

from inference.mcmc.initialization import make_init_strategy
from inference.mcmc.kernels.pyro_adapter import PyroKernelAdapter, RecordingRandomWalk
from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import KernelSettings


def build(settings: KernelSettings) -> PyroKernelAdapter:
    """Random-walk Metropolis with an adapted isotropic step size."""
    make = functools.partial(RecordingRandomWalk,
                             init_strategy=make_init_strategy(settings.init_strategy),
                             init_step_size=float(settings.step_size or 0.1),
                             target_accept_prob=float(settings.target_accept_prob))
    return PyroKernelAdapter(make)


SPEC = KernelSpec(
    name="rw",
    default_target_accept=0.234,
    options=(),
    stats=("acceptance_rate", "step_size", "lp"),
    build=build,
    description="Gaussian random-walk Metropolis in the unconstrained space (no gradients)",
    needs=("continuous_latents", "no_learned_parameters", "full_batch"),
)
