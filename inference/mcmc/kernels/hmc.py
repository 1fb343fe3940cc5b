"""Hamiltonian Monte Carlo with a fixed number of leapfrog steps (Pyro's HMC).

``num_steps`` stays fixed while the step size adapts (see ``RecordingHMC``); without it the
trajectory length is Pyro's default, 2*pi.

Usage::

    run_mcmc(model, {"y": y}, kernel="hmc", num_steps=10)
"""

from __future__ import annotations

import functools

from inference.mcmc.kernels.pyro_adapter import PyroKernelAdapter, RecordingHMC, hmc_kernel_options
from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import KernelSettings


def build(settings: KernelSettings) -> PyroKernelAdapter:
    """HMC with adapted step size and (diagonal or dense) mass matrix."""
    make = functools.partial(RecordingHMC, num_steps=settings.num_steps,
                             **hmc_kernel_options(settings))
    return PyroKernelAdapter(make, dense_mass=settings.dense_mass)


SPEC = KernelSpec(
    name="hmc",
    default_target_accept=0.8,
    options=("num_steps", "dense_mass"),
    stats=("diverging", "acceptance_rate", "step_size", "n_steps", "energy", "lp"),
    build=build,
    description=("Hamiltonian Monte Carlo (Pyro's HMC) with a fixed number of leapfrog steps or "
                 "a fixed trajectory length"),
)
