"""The kernel registry: kernel names mapped to :class:`KernelSpec` records.

Kernel modules in this package are found by :mod:`inference.mcmc.kernels` and registered from
their ``SPEC``; other code may also call :func:`register_kernel` directly.

Usage::

    from inference.mcmc.kernels import get_kernel, list_kernels
    list_kernels()                        # ('chees', 'hmc', 'mala', 'meads', 'nuts', 'rw')
    spec = get_kernel("nuts")
    spec.default_target_accept, spec.options, spec.stats
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from inference.methods.capabilities import CAPABILITIES

from inference.mcmc.protocol import KERNEL_OPTIONS, STATISTICS, Kernel, KernelSettings

__all__ = ["KernelSpec", "register_kernel", "registered", "GRADIENT_NEEDS"]

#: what a gradient-based sampler needs of a model: continuous latents, a differentiable
#: density, no parameters left to optimise, and a full-data density at every step
GRADIENT_NEEDS = ("continuous_latents", "differentiable_density", "no_learned_parameters",
                  "full_batch")


@dataclass(frozen=True)
class KernelSpec:
    """What the driver knows about a kernel: its name, defaults, options, statistics, builder.

    ``options`` are the kernel-specific ``run_mcmc`` keywords it accepts (names from
    :data:`~inference.mcmc.protocol.KERNEL_OPTIONS`); ``stats`` the keys of the ``info`` its
    ``step`` returns (names from :data:`~inference.mcmc.protocol.STATISTICS`), which become
    ``result.sample_stats``. ``build`` must be a module-level function (the spec travels to
    worker processes by pickling).

    Example::

        SPEC = KernelSpec(name="mala", default_target_accept=0.574, options=(),
                          stats=("diverging", "acceptance_rate", "step_size", "lp"),
                          build=MALA)
    """

    name: str
    default_target_accept: float
    options: tuple[str, ...]
    stats: tuple[str, ...]
    build: Callable[[KernelSettings], Kernel]
    description: str = ""
    needs: tuple[str, ...] = GRADIENT_NEEDS
    #: the chain methods the kernel runs with, the first being its default; empty: all of them
    #: with ``sequential`` the default
    chain_methods: tuple[str, ...] = ()
    #: chains run when none are asked for (``run_mcmc`` and the kernel's method settings)
    default_num_chains: int = 4

    def __post_init__(self) -> None:
        unknown_needs = set(self.needs) - set(CAPABILITIES)
        if unknown_needs:
            raise ValueError(f"kernel {self.name!r}: unknown capabilities {sorted(unknown_needs)}"
                             f"; known are {sorted(CAPABILITIES)}")
        unknown_options = set(self.options) - set(KERNEL_OPTIONS)
        if unknown_options:
            raise ValueError(f"kernel {self.name!r}: unknown options {sorted(unknown_options)}; "
                             f"run_mcmc has {tuple(KERNEL_OPTIONS)}")
        unknown_stats = set(self.stats) - set(STATISTICS)
        if unknown_stats:
            raise ValueError(f"kernel {self.name!r}: unknown statistics {sorted(unknown_stats)}; "
                             f"known are {tuple(STATISTICS)}")
        if self.default_num_chains < 1:
            raise ValueError(f"kernel {self.name!r}: default_num_chains must be >= 1")
        if not 0.0 < self.default_target_accept < 1.0:
            raise ValueError(f"kernel {self.name!r}: default_target_accept must lie in (0, 1)")


_REGISTRY: dict[str, KernelSpec] = {}


def register_kernel(spec: KernelSpec) -> KernelSpec:
    """Make ``spec`` available as ``run_mcmc(..., kernel=spec.name)``; returns it.

    Registering a different spec under a taken name is an error (registering the same one again
    is not). Kernels registered at run time exist in this process only; worker processes of
    ``chain_method="parallel"`` receive the spec itself, so they need no registration.

    Example::

        register_kernel(KernelSpec("tiny", 0.3, (), ("acceptance_rate", "lp"), TinyMetropolis))
    """
    if not isinstance(spec, KernelSpec):
        raise TypeError(f"register_kernel expects a KernelSpec, got {type(spec).__name__}")
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"a different kernel is already registered as {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def registered() -> dict[str, KernelSpec]:
    """The registered specs by name (a copy)."""
    return dict(_REGISTRY)
