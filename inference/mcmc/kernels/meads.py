"""MEADS (Hoffman and Sountsov 2022), a kernel of the vectorised chain method only.

Generalised HMC whose step size, diagonal metric and damping adapt across folds of chains, so
the kernel needs ``chain_method="vectorized"`` (its default) and at least 8 chains (4 folds of
2 or more; 32 or more is what the method is meant for). The implementation is
:mod:`inference.mcmc.vectorized.meads`.

It runs 32 chains unless told otherwise. Its metric is diagonal and it takes one leapfrog
step per iteration, so a strongly correlated posterior (a regression on uncentred
predictors) needs far more warm-up than NUTS with a dense metric: on posteriordb's kidiq,
earnings, sblrc, mesquite and arK, 32 chains x (1500 + 1000) from Stan's uniform(-2, 2)
starts had not converged (R-hat 1.1 to 446, ``benchmarks.vectorized_reference``); R-hat
says so.

Usage::

    run_mcmc(model, {"y": y}, kernel="meads", num_warmup=1000)   # 32 chains
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
                 "folds of chains (vectorised chains only, 8 or more; 32 by default); a "
                 "diagonal metric, so slow on strongly correlated posteriors"),
    chain_methods=("vectorized",),
    default_num_chains=32,
)
