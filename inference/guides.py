"""Guides for SVI by name: a small factory over Pyro's autoguides.

Every guide here is a Pyro autoguide (``pyro.infer.autoguide``); nothing is re-implemented.
:func:`make_guide` turns a name (or a callable, used as is) into a guide for a model.

Usage::

    from inference.guides import make_guide, GUIDE_NAMES
    guide = make_guide("auto_lowrank_mvn", model, rank=3)
    guide = make_guide("auto_planar", model, num_flows=4)
    guide = make_guide(my_guide_fn, model)           # a callable is returned unchanged

Names: ``auto_normal``, ``auto_diagonal_normal``, ``auto_lowrank_mvn`` (option ``rank``),
``auto_mvn``, ``auto_laplace`` (MAP fit; draw from ``guide.laplace_approximation(**kwargs)``),
``auto_iaf`` (options ``hidden_dim``, ``num_flows``), ``auto_planar`` / ``auto_radial``
(option ``num_flows``), ``auto_flow`` (options ``flow`` in ``planar``/``radial``/``spline`` or a
sequence of those names stacked in order, and ``num_flows`` repeats of that stack),
``auto_delta`` (MAP point estimate).

Initialisation: ``init_loc_fn`` defaults to :func:`robust_init_to_median` -- Pyro's
``init_to_median``, falling back to ``init_to_feasible`` for sites whose prior cannot be sampled
(``ImproperUniform`` raises ``NotImplementedError``, which ``init_to_median`` does not catch).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import pyro.distributions.transforms as T
import torch
from pyro.infer import autoguide as ag
from pyro.infer.autoguide.initialization import init_to_feasible, init_to_median

__all__ = ["GUIDE_NAMES", "FLOW_NAMES", "make_guide", "robust_init_to_median", "posterior_guide"]

InitFn = Callable[[dict], torch.Tensor]


def robust_init_to_median(site: dict | None = None, num_samples: int = 15) -> Any:
    """``init_to_median`` that falls back to ``init_to_feasible`` when the prior cannot sample.

    Usage: ``AutoNormal(model, init_loc_fn=robust_init_to_median)``.
    """
    if site is None:
        return functools.partial(robust_init_to_median, num_samples=num_samples)
    try:
        return init_to_median(site, num_samples=num_samples)
    except NotImplementedError:  # e.g. ImproperUniform.sample
        return init_to_feasible(site)


#: flow name -> Pyro transform factory taking the latent dimension
FLOW_NAMES: dict[str, Callable[[int], Any]] = {
    "planar": T.planar,
    "radial": T.radial,
    "spline": T.spline,
}


def _flow_stack(flows: Sequence[str], num_flows: int) -> Callable[[int], Any]:
    """An ``init_transform_fn`` for AutoNormalizingFlow: ``num_flows`` repeats of ``flows``."""
    unknown = [f for f in flows if f not in FLOW_NAMES]
    if unknown or not flows:
        raise ValueError(
            f"unknown flow(s) {unknown or flows!r}; known flows: {sorted(FLOW_NAMES)}"
        )
    if num_flows < 1:
        raise ValueError(f"num_flows must be >= 1, got {num_flows}")

    def init_transform_fn(dim: int) -> Any:
        parts = [FLOW_NAMES[f](dim) for _ in range(num_flows) for f in flows]
        return T.ComposeTransformModule(parts)

    return init_transform_fn


def _auto_flow(model: Callable, flow: str | Sequence[str] = "planar", num_flows: int = 2,
               **unused: Any) -> ag.AutoGuide:
    flows = [flow] if isinstance(flow, str) else list(flow)
    return ag.AutoNormalizingFlow(model, _flow_stack(flows, num_flows))


def _reject(name: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ValueError(f"guide {name!r} does not take option(s) {extra}; it takes {list(allowed)}")


def _factory(name: str, model: Callable, init_loc_fn: InitFn, options: dict[str, Any]
             ) -> ag.AutoGuide:
    if name == "auto_normal":
        _reject(name, options, ["init_scale"])
        return ag.AutoNormal(model, init_loc_fn=init_loc_fn, **options)
    if name == "auto_diagonal_normal":
        _reject(name, options, ["init_scale"])
        return ag.AutoDiagonalNormal(model, init_loc_fn=init_loc_fn, **options)
    if name == "auto_lowrank_mvn":
        _reject(name, options, ["init_scale", "rank"])
        return ag.AutoLowRankMultivariateNormal(model, init_loc_fn=init_loc_fn, **options)
    if name == "auto_mvn":
        _reject(name, options, ["init_scale"])
        return ag.AutoMultivariateNormal(model, init_loc_fn=init_loc_fn, **options)
    if name == "auto_laplace":
        _reject(name, options, [])
        return ag.AutoLaplaceApproximation(model, init_loc_fn=init_loc_fn)
    if name == "auto_delta":
        _reject(name, options, [])
        return ag.AutoDelta(model, init_loc_fn=init_loc_fn)
    if name == "auto_iaf":
        _reject(name, options, ["hidden_dim", "num_flows"])
        return ag.AutoIAFNormal(model, hidden_dim=options.get("hidden_dim"),
                                num_transforms=options.get("num_flows", 1))
    if name in ("auto_planar", "auto_radial"):
        _reject(name, options, ["num_flows"])
        return _auto_flow(model, name[len("auto_"):], options.get("num_flows", 2))
    if name == "auto_flow":
        _reject(name, options, ["flow", "num_flows"])
        return _auto_flow(model, **options)
    raise AssertionError(name)


#: the names :func:`make_guide` accepts
GUIDE_NAMES: tuple[str, ...] = (
    "auto_normal", "auto_diagonal_normal", "auto_lowrank_mvn", "auto_mvn", "auto_laplace",
    "auto_iaf", "auto_planar", "auto_radial", "auto_flow", "auto_delta",
)


def make_guide(guide: str | Callable[..., Any], model: Callable[..., Any], *,
               init_loc_fn: InitFn | None = None, **options: Any) -> Callable[..., Any]:
    """A guide for ``model``: an autoguide by name, or ``guide`` itself when it is callable.

    ``options`` go to the autoguide (``rank``, ``init_scale``, ``num_flows``, ``flow``,
    ``hidden_dim``); an option the named guide does not take is a ``ValueError``. Flow guides
    (``auto_iaf``, ``auto_planar``, ``auto_radial``, ``auto_flow``) start from a standard normal
    in the unconstrained space and ignore ``init_loc_fn``, as Pyro's AutoNormalizingFlow does.

    Usage: ``guide = make_guide("auto_mvn", model)``.
    """
    if callable(guide):
        if options:
            raise ValueError(f"guide options {sorted(options)} given with a callable guide")
        return guide
    if guide not in GUIDE_NAMES:
        raise ValueError(f"unknown guide {guide!r}; known guides: {list(GUIDE_NAMES)} "
                         "or a callable guide")
    return _factory(guide, model, init_loc_fn or robust_init_to_median, dict(options))


def posterior_guide(guide: Callable[..., Any], model_kwargs: dict[str, Any]) -> Callable[..., Any]:
    """The guide to draw posterior samples from after training.

    For ``AutoLaplaceApproximation`` this is the Laplace Gaussian
    (``guide.laplace_approximation(**model_kwargs)``, an AutoMultivariateNormal around the MAP
    with the inverse Hessian as covariance); every other guide is returned as is.
    """
    if isinstance(guide, ag.AutoLaplaceApproximation):
        return guide.laplace_approximation(**model_kwargs)
    return guide
