"""Inference methods behind one contract: a registry of named methods with validated settings.

Every method (NUTS, HMC, random-walk Metropolis, MALA, SVI, ...) is an entry with a family,
a settings dataclass, the capabilities it needs of a model and a ``run`` that returns an
:class:`~inference.result.InferenceResult`. The modules of this package are imported on first
use, so a new method is one new file here (an MCMC kernel: one file in
:mod:`inference.mcmc.kernels`, which is registered as a method of the ``mcmc`` family).

Usage::

    from inference import methods
    for spec in methods.list_methods():
        print(spec.name, spec.family, sorted(spec.needs))
    result = methods.get("nuts").run(methods.Target(model, {"y": y}), {"num_chains": 2})
"""

from __future__ import annotations

import importlib
import pkgutil

from inference.methods.capabilities import CAPABILITIES, ModelTraits, missing_capabilities
from inference.methods.registry import (FAMILIES, MethodSpec, Target, UnknownMethodError, get,
                                        list_methods, register)
from inference.methods.settings import MethodSettings, SettingsError

__all__ = ["CAPABILITIES", "FAMILIES", "MethodSettings", "MethodSpec", "ModelTraits",
           "SettingsError", "Target", "UnknownMethodError", "discover", "get", "list_methods",
           "missing_capabilities", "register"]

#: modules of this package that hold the machinery rather than methods
_INFRASTRUCTURE = frozenset({"capabilities", "inputs", "registry", "settings"})
_discovered = False


def discover() -> None:
    """Import every method module of this package once (each registers its methods)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
