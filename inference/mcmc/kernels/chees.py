"""ChEES-HMC (Hoffman, Radul and Sountsov 2021), a kernel of the vectorised chain method only.

The trajectory length is adapted from all chains together, so the kernel needs
``chain_method="vectorized"`` (its default); the implementation is
:mod:`inference.mcmc.vectorized.chees`.

Usage::

    run_mcmc(model, {"y": y}, kernel="chees", num_chains=32)
"""

from __future__ import annotations

from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import Kernel, KernelSettings


def build(settings: KernelSettings) -> Kernel:
    """Not a per-chain kernel: ChEES adapts across chains (``chain_method="vectorized"``)."""
    raise ValueError("kernel 'chees' adapts its trajectory length across chains and runs only "
                     "with chain_method='vectorized'")


SPEC = KernelSpec(
    name="chees",
    default_target_accept=0.651,
    options=(),
    stats=("diverging", "acceptance_rate", "step_size", "n_steps", "energy", "lp"),
    build=build,
    description=("ChEES-HMC: jittered HMC whose trajectory length adapts across many chains "
                 "(vectorised chains only)"),
    chain_methods=("vectorized",),
)
