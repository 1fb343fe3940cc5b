"""MEADS (Hoffman and Sountsov 2022), a kernel of the vectorised chain method only.

Generalised HMC whose step size, diagonal metric and damping adapt across folds of chains, so
the kernel needs ``chain_method="vectorized"`` (its default) and at least 8 chains (4 folds of
2 or more; 32 or more is what the method is meant for). The implementation is
:mod:`inference.mcmc.vectorized.meads`.

Usage::

    run_mcmc(model, {"y": y}, kernel="meads", num_chains=32, num_warmup=1000)
"""

from __future__ import annotations

from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import Kernel, KernelSettings


def build(settings: KernelSettings) -> Kernel:
    """Not a per-chain kernel: MEADS adapts across chains (``chain_method="vectorized"``)."""
    raise ValueError("kernel 'meads' adapts its step size and damping across folds of chains "
                     "and runs only with chain_method='vectorized'")


SPEC = KernelSpec(
    name="meads",
    # MEADS has no acceptance target; the registry needs a value, which nothing uses
    default_target_accept=0.5,
    options=(),
    stats=("diverging", "acceptance_rate", "step_size", "n_steps", "energy", "lp"),
    build=build,
    description=("MEADS: generalised HMC (one leapfrog step, persistent momentum) tuned across "
                 "folds of chains (vectorised chains only, 8 or more)"),
    chain_methods=("vectorized",),
)
