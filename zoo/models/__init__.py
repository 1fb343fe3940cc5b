"""Built-in models; importing this package registers every one of them.

Every module (or sub-package) of this package is imported once, and each registers its models
with :func:`zoo.registry.register`, so a new model is one new file here plus its tests.

Usage::

    import zoo.models          # registers eight_schools-*, vae, bnn, ...
    import zoo
    zoo.get("vae", latent_dim=10)
"""

import importlib
import pkgutil

from zoo.models.base import ZooModel

__all__ = ["ZooModel"]

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
