"""Posterior predictive draws (and other sites computed from posterior draws) via Pyro's Predictive.

Used by the drivers (posterior predictive group, ``pyro.deterministic`` sites of MCMC runs) and
by model evaluation code. Everything here is ``pyro.infer.Predictive``; this module only adds
what it lacks: chunking over draws so memory stays bounded, ``(chain, draw, ...)`` shapes,
resampling of observed sites even when the observations are in ``model_kwargs`` (Predictive
returns an observed site's data unchanged, so the model is wrapped in ``poutine.uncondition``),
and a per-draw fallback for models that do not broadcast over an extra batch dimension.

Usage::

    from inference.predictive import posterior_predictive
    ppc = posterior_predictive(model, result.posterior, model_kwargs)   # {"y": (chain, draw, n)}
    ppc = posterior_predictive(model, svi_result.fitted["guide"], model_kwargs, num_draws=500)
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from pyro.infer import Predictive
from pyro.poutine.uncondition_messenger import UnconditionMessenger

from inference.sites import model_trace, site_kind, site_kinds

__all__ = ["posterior_predictive", "site_names"]


class _ResampleObserved(UnconditionMessenger):
    """``poutine.uncondition`` for data sites only: ``pyro.deterministic`` and ``pyro.factor``
    sites are left alone.

    Unconditioning a deterministic site would sample its ``Delta``, whose default
    ``event_dim`` (all dims of the value) inside a plate yields a wrongly shaped value; a
    factor is a density term with nothing to resample.
    """

    def _pyro_sample(self, msg: Any) -> None:
        if site_kind(msg) in ("deterministic", "factor"):
            return
        super()._pyro_sample(msg)


def site_names(model: Callable[..., Any], model_kwargs: Mapping[str, Any] | None = None
               ) -> dict[str, list[str]]:
    """Names of the model's sample sites by kind (:func:`inference.sites.site_kinds`).

    Keys: ``latent``, ``observed``, ``factor`` (``pyro.factor`` terms, not data),
    ``deterministic``, ``subsample``.
    Example: ``site_names(m.model, kwargs)["observed"] == ["y"]``.
    """
    return site_kinds(model_trace(model, model_kwargs)).as_dict()


def _value_meta(model: Callable[..., Any], kwargs: Mapping[str, Any]
                ) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    trace = model_trace(model, kwargs)
    return {
        name: (tuple(site["value"].shape), site["value"].dtype)
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and isinstance(site["value"], torch.Tensor)
    }


def _run_chunk(model, guide, samples, num, sites, kwargs, parallel):
    predictive = Predictive(model, posterior_samples=samples, guide=guide,
                            num_samples=num if samples is None else None,
                            return_sites=list(sites), parallel=parallel)
    with torch.no_grad():
        return predictive(**kwargs)


def posterior_predictive(
    model: Callable[..., Any],
    posterior: Mapping[str, np.ndarray] | Callable[..., Any],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    num_draws: int | None = None,
    chunk_size: int = 500,
    return_sites: Iterable[str] | None = None,
    resample_observed: bool = True,
) -> dict[str, np.ndarray]:
    """Draws of ``return_sites`` (default: the observed sites) given posterior draws or a guide.

    ``posterior`` is either a mapping of latent sites to ``(chain, draw, ...)`` arrays or a
    guide callable taking ``model_kwargs`` (then ``num_draws`` draws, default 1000, in one
    chain). With draws, ``num_draws`` keeps only the first draws of each chain. Observed sites
    are resampled even when their data are in ``model_kwargs`` (``resample_observed=False``
    keeps them as data, which is what deterministic sites built from observations need).
    Returns ``{site: (chain, draw, *site_shape)}``.

    Example::

        ppc = posterior_predictive(m.model, {"mu": np.zeros((2, 50))}, {"y": y})
        ppc["y"].shape   # (2, 50, len(y))
    """
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if num_draws is not None and int(num_draws) < 1:
        raise ValueError(f"num_draws must be a positive integer or None, got {num_draws!r}")
    kwargs = dict(model_kwargs or {})
    run_model = _ResampleObserved()(model) if resample_observed else model
    meta = _value_meta(run_model, kwargs)
    shapes = {name: shape for name, (shape, _) in meta.items()}
    kinds = site_names(model, kwargs)
    sites = list(return_sites) if return_sites is not None else list(kinds["observed"])
    unknown = [s for s in sites if s not in shapes]
    if unknown:
        raise KeyError(f"unknown return site(s) {unknown}; the model has {sorted(shapes)}")

    if callable(posterior) and not isinstance(posterior, Mapping):
        guide, chains, draws = posterior, 1, int(num_draws or 1000)
        flat: dict[str, torch.Tensor] | None = None
    else:
        guide = None
        arrays = {k: np.asarray(v) for k, v in posterior.items() if k in kinds["latent"]}
        if not arrays:
            raise ValueError(f"posterior holds none of the model's latent sites {kinds['latent']}")
        chains, draws = next(iter(arrays.values())).shape[:2]
        if num_draws is not None:
            draws = min(draws, int(num_draws))
        flat = {
            k: torch.as_tensor(v[:, :draws].reshape((chains * draws,) + v.shape[2:]),
                               dtype=meta[k][1])
            for k, v in arrays.items()
        }
    total = chains * draws

    def collect(parallel: bool) -> dict[str, list[torch.Tensor]]:
        pieces: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
        for start in range(0, total, int(chunk_size)):
            stop = min(start + int(chunk_size), total)
            samples = None if flat is None else {k: v[start:stop] for k, v in flat.items()}
            out = _run_chunk(run_model, guide, samples, stop - start, sites, kwargs, parallel)
            for s in sites:
                pieces[s].append(out[s].reshape((stop - start,) + shapes[s]))
        return pieces

    try:
        pieces = collect(parallel=True)
    except Exception as error:  # noqa: BLE001 - the model does not broadcast over draws
        warnings.warn(
            f"vectorised Predictive failed ({type(error).__name__}: {error}); "
            "drawing one posterior draw at a time instead",
            RuntimeWarning,
            stacklevel=2,
        )
        pieces = collect(parallel=False)
    return {
        s: torch.cat(parts).detach().cpu().numpy().reshape((chains, draws) + shapes[s])
        for s, parts in pieces.items()
    }
