"""MCMC kernels by name: one module per kernel, found automatically.

Adding a kernel is one new module here that defines ``SPEC = KernelSpec(...)`` (and its tests):
the module is imported the first time the registry is consulted, and ``run_mcmc(...,
kernel=SPEC.name)`` works from then on. Modules without ``SPEC`` (helpers such as
``pyro_adapter``) are skipped.

Usage::

    from inference.mcmc.kernels import get_kernel, list_kernels
    list_kernels()                                   # ('chees', 'hmc', 'mala', 'meads', 'nuts', 'rw')
    get_kernel("mala").default_target_accept         # 0.574
    get_kernel("nuts").options                       # ('max_tree_depth', 'dense_mass')
"""

from __future__ import annotations

import importlib
import pkgutil

from inference.mcmc.kernels.registry import KernelSpec, register_kernel, registered

__all__ = ["KernelSpec", "register_kernel", "get_kernel", "list_kernels"]

_discovered = False


def _discover() -> None:
    """Import every module of this package once and register the ``SPEC`` each defines."""
    global _discovered
    if _discovered:
        return
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module == "registry":
            continue
        spec = getattr(importlib.import_module(f"{__name__}.{module}"), "SPEC", None)
        if spec is not None:
            register_kernel(spec)
    _discovered = True


def get_kernel(name: str) -> KernelSpec:
    """The :class:`KernelSpec` registered as ``name``; ``ValueError`` names the known kernels.

    Example::

        spec = get_kernel("nuts")
        spec.name, spec.default_target_accept, spec.options, spec.stats
    """
    _discover()
    specs = registered()
    if name not in specs:
        raise ValueError(f"unknown kernel {name!r}; expected one of {list_kernels()}")
    return specs[name]


def list_kernels() -> tuple[str, ...]:
    """The registered kernel names, sorted.

    Example::

        "nuts" in list_kernels()   # True
    """
    _discover()
    return tuple(sorted(registered()))
