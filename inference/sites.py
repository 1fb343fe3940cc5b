"""Site bookkeeping for Pyro models: one quiet trace, the kind of each site, plate nesting.

Every driver and evaluator needs the same facts about a model: which sample sites are latent,
observed, ``pyro.factor`` terms, ``pyro.deterministic`` values or plate subsample indices; how
deep its vectorised plates nest; which sites lie in the data plate (``dim=-1``). They are read
here, off one trace taken without side effects (no gradient graph, hidden from enclosing
handlers, optionally with latent values from an init strategy so that no prior has to sample).

``pyro.factor`` sites are recorded by Pyro as *observed* sample sites (a ``Unit`` distribution
with ``infer={"is_auxiliary": True}``). They are a term of the joint density -- Pyro's ELBOs and
MCMC potentials include them -- but not data: here they are their own kind, ``factor``, and so
stay out of observed data and pointwise log-likelihoods (and LOO/WAIC).

Usage::

    from inference.guides import init_to_feasible_shape
    from inference.sites import model_trace, site_kinds, plate_nesting, data_plate
    trace = model_trace(model, {"y": y}, init_strategy=init_to_feasible_shape)
    kinds = site_kinds(trace)
    kinds.latent, kinds.observed, kinds.factor      # ("mu",), ("y",), ("penalty",)
    plate_nesting(trace)                            # 1
    data_plate(trace.nodes["y"]).size               # 20
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Container, Literal, Mapping

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample

__all__ = ["KINDS", "SiteKind", "SiteKinds", "model_trace", "site_kind", "site_kinds",
           "plate_nesting", "data_plate", "data_plate_size"]

SiteKind = Literal["latent", "observed", "factor", "deterministic", "subsample"]
KINDS: tuple[SiteKind, ...] = ("latent", "observed", "factor", "deterministic", "subsample")


def model_trace(model: Callable[..., Any], model_kwargs: Mapping[str, Any] | None = None, *,
                init_strategy: Callable[[dict], Any] | None = None) -> Trace:
    """One trace of ``model(**model_kwargs)`` for reading site names, shapes and plates.

    Runs under ``torch.no_grad`` and ``poutine.block`` (enclosing handlers and traces do not see
    it). With ``init_strategy`` (e.g. :func:`inference.guides.init_to_feasible_shape`) latent
    sites take its value instead of a prior draw, so priors that cannot sample
    (``ImproperUniform``) are fine; without it latent sites are drawn from the prior, as in
    ``poutine.trace(model).get_trace``.

    Usage: ``model_trace(m.model, kwargs, init_strategy=init_to_feasible_shape).nodes["mu"]``.
    """
    fn = model if init_strategy is None else InitMessenger(init_strategy)(model)
    with torch.no_grad(), poutine.block():
        return poutine.trace(fn).get_trace(**dict(model_kwargs or {}))


def _is_unit(fn: Any) -> bool:
    """Whether ``fn`` is ``dist.Unit`` (the distribution of ``pyro.factor``), maybe wrapped."""
    while fn is not None:
        if isinstance(fn, dist.Unit):
            return True
        fn = getattr(fn, "base_dist", None)
    return False


def site_kind(site: Mapping[str, Any]) -> SiteKind | None:
    """The kind of one trace node (or handler message); ``None`` for non-sample nodes.

    ``deterministic``: a ``pyro.deterministic`` value; ``subsample``: a plate's subsample
    indices; ``factor``: a ``pyro.factor`` term (an observed ``Unit`` or auxiliary site);
    ``observed``: data; ``latent``: everything else that is sampled.
    Usage: ``site_kind(trace.nodes["y"]) == "observed"``.
    """
    if site.get("type") != "sample":
        return None
    if site_is_subsample(site):
        return "subsample"
    infer = site.get("infer") or {}
    if infer.get("_deterministic", False):
        return "deterministic"
    if site["is_observed"]:
        if infer.get("is_auxiliary", False) or _is_unit(site["fn"]):
            return "factor"
        return "observed"
    return "latent"


@dataclass(frozen=True)
class SiteKinds:
    """The sample-site names of one trace by kind, each in trace order.

    Usage: ``kinds = site_kinds(trace); kinds.observed; kinds.as_dict()["latent"]``.
    """

    latent: tuple[str, ...] = ()
    observed: tuple[str, ...] = ()
    factor: tuple[str, ...] = ()
    deterministic: tuple[str, ...] = ()
    subsample: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        """``{kind: [names]}`` for every kind in :data:`KINDS`."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


def site_kinds(trace: Trace) -> SiteKinds:
    """The sample sites of ``trace`` sorted into :class:`SiteKinds`.

    Usage: ``site_kinds(model_trace(model, kwargs)).observed == ("y",)``.
    """
    names: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for name, site in trace.nodes.items():
        kind = site_kind(site)
        if kind is not None:
            names[kind].append(name)
    return SiteKinds(**{kind: tuple(v) for kind, v in names.items()})


def plate_nesting(*traces: Trace) -> int:
    """The deepest vectorised plate dim over the sample sites of ``traces`` (0 without plates).

    This is the ``max_plate_nesting`` Pyro's ELBOs would guess from the same traces.
    Usage: ``make_elbo("trace", max_plate_nesting=plate_nesting(model_tr, guide_tr))``.
    """
    depth = 0
    for trace in traces:
        for site in trace.nodes.values():
            if site["type"] == "sample":
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized and frame.dim is not None:
                        depth = max(depth, -frame.dim)
    return depth


def data_plate(site: Mapping[str, Any], exclude: Container[str] = ()) -> Any | None:
    """The vectorised plate frame of ``site`` at ``dim=-1`` (the data plate), or ``None``.

    ``exclude`` names plates that do not count (e.g. a particle plate added by the caller).
    Usage: ``frame = data_plate(trace.nodes["y"]); frame.size if frame else 1``.
    """
    for frame in site["cond_indep_stack"]:
        if frame.vectorized and frame.dim == -1 and frame.name not in exclude:
            return frame
    return None


def data_plate_size(trace: Trace, exclude: Container[str] = ()) -> int | None:
    """The size of the data plate (``dim=-1``) of the first sample site inside one, or ``None``.

    Usage: ``n = data_plate_size(model_trace(model, kwargs))``.
    """
    for site in trace.nodes.values():
        if site_kind(site) not in (None, "subsample"):
            frame = data_plate(site, exclude)
            if frame is not None:
                return int(frame.size)
    return None
