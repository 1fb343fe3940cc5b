"""ppl-zoo: deep probabilistic models on Pyro, with shared inference drivers and diagnostics.

Usage::

    import zoo
    for spec in zoo.list_models():
        print(spec.name, "-", spec.description)
    model = zoo.get("eight_schools-eight_schools_noncentered")
"""

from inference.methods.capabilities import ModelTraits
from zoo.registry import ModelSpec, UnknownModelError, get, list_models, register, spec

__all__ = ["ModelSpec", "ModelTraits", "UnknownModelError", "get", "list_models", "register",
           "spec"]
__version__ = "0.1.0"
