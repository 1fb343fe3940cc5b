"""The No-U-Turn sampler (Pyro's NUTS), the default kernel.

Usage::

    run_mcmc(model, {"y": y}, kernel="nuts", max_tree_depth=8, dense_mass=True)
"""

from __future__ import annotations

import functools

from inference.mcmc.kernels.pyro_adapter import PyroKernelAdapter, RecordingNUTS, hmc_kernel_options
from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import KernelSettings


def build(settings: KernelSettings) -> PyroKernelAdapter:
    """NUTS with adapted step size and (diagonal or dense) mass matrix."""
    make = functools.partial(RecordingNUTS, max_tree_depth=settings.max_tree_depth,
                             **hmc_kernel_options(settings))
    return PyroKernelAdapter(make, dense_mass=settings.dense_mass)


SPEC = KernelSpec(
    name="nuts",
    default_target_accept=0.8,
    options=("max_tree_depth", "dense_mass"),
    stats=("diverging", "acceptance_rate", "step_size", "tree_depth", "n_steps", "energy", "lp"),
    build=build,
    description=("the No-U-Turn sampler (Pyro's NUTS): adapted step size and a diagonal or "
                 "dense mass matrix"),
)
