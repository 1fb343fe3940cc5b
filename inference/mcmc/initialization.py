"""Where chains start: Pyro init strategies by name, robust to priors that cannot be sampled.

The default, ``"uniform"``, is Stan's: each chain starts at its own point drawn in (-2, 2) on the
unconstrained scale, so R-hat can detect chains that disagree. Every strategy also works for flat
priors (``ImproperUniform``), whose ``sample`` Pyro's own strategies would call.

Usage::

    from pyro.infer.mcmc import NUTS
    from inference.mcmc import make_init_strategy
    kernel = NUTS(model, init_strategy=make_init_strategy("median"))
    kernel = NUTS(model, init_strategy=make_init_strategy({"mu": 0.5}))  # others drawn uniformly
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np
import torch
from pyro.infer.autoguide.initialization import (
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_uniform,
)
from torch.distributions import transform_to

__all__ = ["INIT_STRATEGIES", "make_init_strategy"]

INIT_STRATEGIES = ("uniform", "median", "feasible", "mean")


def _without_sampling(site: Mapping[str, Any], spread: bool) -> torch.Tensor:
    """A point of the site's support for distributions that cannot sample (``ImproperUniform``).

    Pyro's init strategies all call ``site["fn"].sample()`` to get a prototype, which flat
    priors (``ImproperUniform``) do not support; here the prototype is built from the shape.
    """
    fn = site["fn"]
    transform = transform_to(fn.support)
    proto = transform.inv(transform(torch.zeros(fn.shape())))
    unconstrained = torch.rand_like(proto) * 4.0 - 2.0 if spread else torch.zeros_like(proto)
    value = transform(unconstrained)
    value._pyro_custom_init = False
    return value


def _robust_init(site: Mapping[str, Any], *, base: Callable[..., Any], spread: bool) -> Any:
    """``base(site)``, falling back to a point built from the shape, or to the median."""
    try:
        value = base(site)
    except NotImplementedError:  # e.g. ImproperUniform.sample
        return _without_sampling(site, spread)
    if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
        # init_to_mean gives inf for heavy tails (HalfCauchy's mean): use the median instead
        return _robust_init(site, base=init_to_median, spread=False)
    return value


def _init_from_values(site: Mapping[str, Any], *, values: Mapping[str, Any],
                      fallback: Callable[..., Any]) -> Any:
    """``init_to_value`` that casts (and broadcasts) a given value to the site's dtype and shape."""
    proto = fallback(site)
    if site["name"] not in values:
        return proto
    value = torch.as_tensor(np.asarray(values[site["name"]]), dtype=proto.dtype,
                            device=proto.device)
    try:
        value = value.expand(proto.shape).clone()
    except RuntimeError as error:
        raise ValueError(f"initial value of {site['name']!r} has shape {tuple(value.shape)}; "
                         f"the site has shape {tuple(proto.shape)}") from error
    value._pyro_custom_init = True
    return value


def make_init_strategy(init: str | Mapping[str, Any]) -> Callable[..., Any]:
    """A Pyro init strategy from a name in :data:`INIT_STRATEGIES` or a dict of site values.

    ``uniform`` draws each site uniformly in (-2, 2) in the unconstrained space (Stan's
    default: over-dispersed starting points, which R-hat needs); ``median``/``mean`` use
    the prior's; ``feasible`` the unconstrained zero. All four also work for flat
    ``ImproperUniform`` priors. A dict fixes the given sites and draws the others uniformly.

    Example::

        strategy = make_init_strategy("uniform")   # give it to NUTS(..., init_strategy=...)
    """
    uniform = functools.partial(_robust_init, base=init_to_uniform, spread=True)
    if isinstance(init, Mapping):
        return functools.partial(_init_from_values, values=dict(init), fallback=uniform)
    bases = {"uniform": (init_to_uniform, True), "median": (init_to_median, False),
             "feasible": (init_to_feasible, False), "mean": (init_to_mean, False)}
    if init not in bases:
        raise ValueError(
            f"unknown init_strategy {init!r}; expected one of {INIT_STRATEGIES} or a dict of values"
        )
    base, spread = bases[init]
    return functools.partial(_robust_init, base=base, spread=spread)
