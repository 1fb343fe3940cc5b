"""Guides for SVI by name: a small factory over Pyro's autoguides.

Every guide here is a Pyro autoguide (``pyro.infer.autoguide``) or, for the planar/radial
flows, a small subclass of one (:class:`AutoFlowNormal`). :func:`make_guide` turns a name (or a
callable, used as is) into a guide for a model.

Usage::

    from inference.guides import make_guide, GUIDE_NAMES
    guide = make_guide("auto_lowrank_mvn", model, rank=3)
    guide = make_guide("auto_planar", model, num_flows=4)
    guide = make_guide(my_guide_fn, model)           # a callable is returned unchanged

Names: ``auto_normal``, ``auto_diagonal_normal``, ``auto_lowrank_mvn`` (option ``rank``),
``auto_mvn``, ``auto_laplace`` (MAP fit; draw from ``guide.laplace_approximation(**kwargs)``),
``auto_iaf`` (Pyro's AutoIAFNormal; options ``hidden_dim``, ``num_flows``), ``auto_planar`` /
``auto_radial`` (option ``num_flows``, default 2), ``auto_flow`` (options ``flow`` in
``planar``/``radial``/``spline`` or a sequence of those names stacked in order, and
``num_flows`` repeats of that stack) -- these three are :class:`AutoFlowNormal`, a normalising
flow on a learnable diagonal Normal base -- and ``auto_delta`` (MAP point estimate).

Initialisation: ``init_loc_fn`` defaults to :func:`robust_init_to_median` -- Pyro's
``init_to_median``, falling back to a feasible point for sites whose prior cannot be sampled
(``ImproperUniform`` raises ``NotImplementedError``, which ``init_to_median`` does not catch);
see :func:`init_to_feasible_shape`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.distributions import constraints
from pyro.infer import autoguide as ag
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch.distributions import transform_to

__all__ = ["GUIDE_NAMES", "FLOW_NAMES", "make_guide", "posterior_guide", "AutoFlowNormal",
           "robust_init_to_median", "init_to_feasible_shape"]

InitFn = Callable[[dict], torch.Tensor]


def init_to_feasible_shape(site: dict | None = None) -> Any:
    """The point that maps to zero in the unconstrained space, built without sampling.

    Pyro's ``init_to_feasible`` draws a sample to learn the site's shape, which an
    ``ImproperUniform`` prior cannot give; this builds the same point from the declared batch and
    event shapes and the support's bijection (``transform_to(support)`` at zeros). Discrete
    sites, which have no such bijection, get a prior draw.
    Usage: ``AutoNormal(model, init_loc_fn=init_to_feasible_shape)``.
    """
    if site is None:
        return init_to_feasible_shape
    fn = site["fn"]
    if fn.support.is_discrete:  # no bijection to an unconstrained space: a prior draw
        value = fn.sample().detach()
        value._pyro_custom_init = False
        return value
    transform = transform_to(fn.support)
    shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    unconstrained = torch.zeros(transform.inverse_shape(torch.Size(shape)))
    value = transform(unconstrained).detach()
    value._pyro_custom_init = False
    return value


def robust_init_to_median(site: dict | None = None, num_samples: int = 15) -> Any:
    """``init_to_median`` that falls back to a feasible point when the prior cannot sample.

    Pyro's ``init_to_median`` catches ``RuntimeError``/``ValueError`` and falls back to
    ``init_to_feasible``, but ``ImproperUniform.sample`` raises ``NotImplementedError`` (and
    ``init_to_feasible`` samples too), so such sites go to :func:`init_to_feasible_shape`.
    Usage: ``AutoNormal(model, init_loc_fn=robust_init_to_median)``.
    """
    if site is None:
        return functools.partial(robust_init_to_median, num_samples=num_samples)
    try:
        return init_to_median(site, num_samples=num_samples)
    except NotImplementedError:  # e.g. ImproperUniform.sample
        return init_to_feasible_shape(site)


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


class AutoFlowNormal(ag.AutoNormalizingFlow):
    """Pyro's AutoNormalizingFlow with a *learnable* diagonal Normal base distribution.

    Pyro's AutoNormalizingFlow pushes a fixed standard normal through the flow; planar and
    radial flows are not affine, so they cannot move and rescale that base to a posterior far
    from N(0, I) (a 1-D posterior N(1.4, 0.2^2) is out of reach of a few planar layers). This
    subclass gives the flow the learnable initial density q0 = N(loc, diag(scale^2)) of Rezende
    & Mohamed (2015), with ``loc`` initialised by ``init_loc_fn`` like AutoDiagonalNormal. Pyro
    has no autoguide with that combination, hence this small subclass.

    Usage: ``AutoFlowNormal(model, functools.partial(T.iterated, 4, T.planar))``.
    """

    def __init__(self, model: Callable[..., Any], init_transform_fn: Callable[[int], Any],
                 init_loc_fn: InitFn | None = None, init_scale: float = 0.1) -> None:
        # AutoContinuous.__init__ (not AutoNormalizingFlow's) so that init_loc_fn is honoured
        ag.AutoContinuous.__init__(self, model, init_loc_fn=init_loc_fn or robust_init_to_median)
        self._init_transform_fn = init_transform_fn
        self.transform = None
        self._prototype_tensor = torch.tensor(0.0)
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
        self._init_scale = float(init_scale)

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        loc = self._init_loc()
        self.base_loc = torch.nn.Parameter(loc)
        self.base_scale = PyroParam(torch.full_like(loc, self._init_scale),
                                    constraints.softplus_positive)

    def get_base_dist(self) -> Any:
        return dist.Normal(self.base_loc, self.base_scale).to_event(1)


def _auto_flow(model: Callable, init_loc_fn: InitFn, flow: str | Sequence[str] = "planar",
               num_flows: int = 2, init_scale: float = 0.1) -> ag.AutoGuide:
    flows = [flow] if isinstance(flow, str) else list(flow)
    return AutoFlowNormal(model, _flow_stack(flows, num_flows), init_loc_fn=init_loc_fn,
                          init_scale=init_scale)


def _reject(name: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ValueError(f"guide {name!r} does not take option(s) {extra}; "
                         f"it takes {list(allowed)}")


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
        _reject(name, options, ["num_flows", "init_scale"])
        return _auto_flow(model, init_loc_fn, name[len("auto_"):], **options)
    if name == "auto_flow":
        _reject(name, options, ["flow", "num_flows", "init_scale"])
        return _auto_flow(model, init_loc_fn, **options)
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
    ``hidden_dim``); an option the named guide does not take is a ``ValueError``. ``auto_iaf``
    starts from a standard normal in the unconstrained space and ignores ``init_loc_fn``, as
    Pyro's AutoIAFNormal does.

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
