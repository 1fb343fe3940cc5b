"""Every MCMC kernel of :mod:`inference.mcmc.kernels` as a registered method of family ``mcmc``.

Each kernel becomes a method of the same name whose settings are those every chain takes
(:class:`MCMCSettings`) plus the kernel's own options (``max_tree_depth`` for NUTS,
``num_steps`` for HMC, ``dense_mass`` ...), so a kernel added to the kernel package is a method
here without touching this file.

Usage::

    from inference import methods
    spec = methods.get("nuts")
    settings = spec.settings_from({"num_chains": 4, "dense_mass": True})
    result = spec.run(methods.Target(model, {"y": y}), settings, seed=1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from inference.methods.registry import Target, register
from inference.methods.settings import (MethodSettings, anything, choice, flag, integer, real)

__all__ = ["MCMCSettings", "KERNEL_OPTION_FIELDS"]

def _init_strategies() -> list[str]:
    from inference.mcmc import INIT_STRATEGIES

    return list(INIT_STRATEGIES)


def _chain_methods() -> list[str]:
    from inference.mcmc import CHAIN_METHODS

    return list(CHAIN_METHODS)


@dataclass(frozen=True)
class MCMCSettings(MethodSettings):
    """Settings every MCMC kernel takes (see :func:`inference.mcmc.run_mcmc`)."""

    num_chains: int = integer(4, minimum=1, help="chains")
    num_warmup: int = integer(500, minimum=0, help="warm-up iterations per chain")
    num_samples: int = integer(500, minimum=1, help="draws kept per chain")
    target_accept_prob: float | None = real(None, minimum=0.0, maximum=1.0, exclusive=True,
                                            optional=True,
                                            help="target acceptance (default: the kernel's)")
    step_size: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                   help="initial step size (adapted in warm-up)")
    init_strategy: Any = choice("uniform", _init_strategies, open_ended=True,
                                help="initialisation, or a dict of initial values")
    jit_compile: bool = flag(False, help="JIT-compile the potential")
    chain_method: str = choice("sequential", _chain_methods, help="how chains run")
    progress_bar: bool = flag(True, help="show progress bars")
    log_likelihood: bool = flag(True, help="pointwise log-likelihood of the draws")


#: the fields of kernel-specific options, by the keyword ``run_mcmc`` takes them as
KERNEL_OPTION_FIELDS: dict[str, tuple[type, Any]] = {
    "max_tree_depth": (int, integer(10, minimum=1, help="NUTS: largest tree depth")),
    "num_steps": (int, integer(None, minimum=1, optional=True,
                               help="HMC: leapfrog steps per transition (default: 2 pi / step)")),
    "dense_mass": (bool, flag(False, help="adapt a dense mass matrix")),
}


def _settings_class(kernel: Any) -> type[MCMCSettings]:
    """``MCMCSettings`` plus the kernel's own options as fields."""
    extra = []
    for option in kernel.options:
        kind, spec = KERNEL_OPTION_FIELDS.get(option, (Any, anything(None)))
        extra.append((option, kind, spec))
    if kernel.default_num_chains != 4:  # a kernel that needs more chains (MEADS's folds)
        extra.append(("num_chains", int, integer(kernel.default_num_chains, minimum=1,
                                                 help="chains")))
    if kernel.chain_methods:  # a kernel that runs with some chain methods only: its default
        extra.append(("chain_method", str, choice(kernel.chain_methods[0],
                                                  list(kernel.chain_methods),
                                                  help="how chains run")))
    name = "".join(part.title() for part in kernel.name.split("_")) + "Settings"
    cls = dataclasses.make_dataclass(name, extra, bases=(MCMCSettings,), frozen=True)
    cls.__doc__ = f"Settings of the {kernel.name!r} kernel: every chain's, plus {kernel.options}."
    cls.__module__ = __name__
    return cls


def _make_run(kernel_name: str) -> Any:
    def run(target: Target, settings: MethodSettings, seed: int) -> Any:
        from inference.mcmc import run_mcmc

        values = settings.as_dict()
        return run_mcmc(target.model, target.model_kwargs, kernel=kernel_name, seed=seed,
                        **values)

    run.__name__ = f"run_{kernel_name}"
    run.__doc__ = f"Sample with the {kernel_name!r} kernel through :func:`run_mcmc`."
    return run


def _register_kernels() -> None:
    from inference.mcmc.kernels import get_kernel, list_kernels

    for entry in list_kernels():
        kernel = get_kernel(entry) if isinstance(entry, str) else entry
        register(kernel.name, family="mcmc", settings=_settings_class(kernel),
                 needs=kernel.needs, description=kernel.description or f"{kernel.name} kernel",
                 )(_make_run(kernel.name))


_register_kernels()
