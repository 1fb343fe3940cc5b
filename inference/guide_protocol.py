"""One interface for the zoo's own guides, so drivers and evaluators need not probe attributes.

Pyro's autoguides share :class:`pyro.infer.autoguide.AutoGuide`; the guides the zoo's models
define themselves (the VAE's amortised encoders and flows, PPCA's encoder and exact posterior,
the Bayesian nets' Bayes-by-Backprop, dropout and MC-dropout families) share :class:`ZooGuide`:

* ``kind`` -- a short name of the variational family (``"encoder"``, ``"iaf"``, ``"planar"``,
  ``"radial"``, ``"exact"``, ``"bbb"``, ``"vd"``, ``"sparse_vd"``, ``"mc_dropout"``); a model's
  :meth:`~zoo.models.base.ZooModel.guides` lists each guide under its kind (and the configured
  one also under ``"model"``);
* ``amortised`` -- whether the guide maps each data point to its local posterior (the VAE and
  PPCA guides) rather than holding one posterior of global latents (the BNN guides);
* ``guide(*args, **kwargs)`` -- the Pyro guide itself, called with the model's arguments;
* ``median(**model_kwargs)`` -- a point summary of the posterior as ``{site: tensor}``: the
  global latents' medians, or for amortised guides the per-point medians of the local latents
  for the data in ``model_kwargs`` (each guide's docstring says exactly what it returns);
* ``point_estimate(**model_kwargs)`` -- the latent values used for point predictions (the
  median, or the pruned means of variational dropout);
* ``report()`` -- numbers the guide can report about itself (the dropout guides' sparsity and
  compression), ``{}`` when it has none.

:func:`guide_kind` and :func:`guide_report` accept any guide, autoguides and plain functions
included, so a caller never needs to know which kind of guide a fit used.

Usage::

    from inference.guide_protocol import ZooGuide, guide_kind, guide_report
    guide = net.guides()["sparse_vd"]                 # a ZooGuide
    result = fit_svi(net.model, kwargs, guide=guide, elbo="meanfield")
    guide_kind(result.fitted["guide"])                # "sparse_vd" ("AutoNormal" for an autoguide)
    guide_report(result.fitted["guide"])              # {"sparsity": 0.97, "compression": 33.1}
    guide.median(**kwargs)                            # {"w0": ..., "b0": ..., ...}

Implementing it::

    class MyGuide(ZooGuide):
        kind = "my_family"
        amortised = False

        def __call__(self, x, y=None, subsample_size=None): ...   # the Pyro guide
        def median(self, **model_kwargs): return {"theta": ...}
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

__all__ = ["ZooGuide", "guide_kind", "guide_report"]


class ZooGuide:
    """Base class of the guides the zoo's models define: a Pyro guide that names its family.

    Subclasses set ``kind`` and ``amortised`` (class or instance attributes) and define
    ``__call__`` with the model's signature (drivers inspect it, e.g. for ``subsample_size``)
    and :meth:`median`; :meth:`report` defaults to ``{}``.

    Usage::

        guide = zoo.get("ppca").guides()["encoder"]
        isinstance(guide, ZooGuide), guide.kind, guide.amortised   # True, "encoder", True
    """

    #: short name of the variational family, e.g. ``"encoder"`` or ``"sparse_vd"``
    kind: str = ""
    #: whether the guide maps each data point to its local posterior
    amortised: bool = False
    #: whether, besides global latents, the guide holds free (not amortised) variational
    #: factors for each training point's local latents (deep exponential families)
    local_factors: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the guide (sample every latent site of the model) for the model's arguments."""
        raise NotImplementedError

    def median(self, *args: Any, **model_kwargs: Any) -> dict[str, torch.Tensor]:
        """Posterior medians (or modes, as each guide documents) by site name, detached.

        Global-latent guides return one tensor per global site, shaped like the site; amortised
        guides return the local latents of the data in ``model_kwargs``, one row per point.
        Usage: ``guide.median(x=x)["z"]``.
        """
        raise NotImplementedError(f"the {self.kind!r} guide has no median")

    def point_estimate(self, *args: Any, **model_kwargs: Any) -> dict[str, torch.Tensor]:
        """The single set of latent values used for point predictions: :meth:`median` unless
        the method prescribes another (variational dropout: the pruned means).

        Usage: ``guide.point_estimate(**kwargs)["w0"]``.
        """
        return self.median(*args, **model_kwargs)

    def report(self) -> dict[str, float]:
        """What the guide reports about itself (e.g. ``{"sparsity", "compression"}``); ``{}``.

        Usage: ``metrics.update(guide.report())``.
        """
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind!r}>"


def guide_kind(guide: Any) -> str:
    """A short name for any guide: a :class:`ZooGuide`'s ``kind``, else a readable name.

    Autoguides (and other guide objects) give their class name, plain functions and methods
    their ``__name__`` (a ``functools.partial`` that of the function it wraps).

    Usage::

        guide_kind(net.guides()["bbb"])        # "bbb"
        guide_kind(AutoNormal(model))          # "AutoNormal"
    """
    if isinstance(guide, ZooGuide):
        return guide.kind
    if isinstance(guide, functools.partial):
        return guide_kind(guide.func)
    if inspect.isfunction(guide) or inspect.ismethod(guide):
        return guide.__name__
    return type(guide).__name__


def guide_report(guide: Any) -> dict[str, float]:
    """What any guide reports about itself: :meth:`ZooGuide.report`, ``{}`` for other guides.

    Usage: ``metrics.update(guide_report(result.fitted["guide"]))``.
    """
    if isinstance(guide, ZooGuide):
        return dict(guide.report())
    return {}
