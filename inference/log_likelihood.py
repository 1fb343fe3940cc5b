"""Pointwise log-likelihoods of observed sites under posterior draws, and the observed data.

Used by the MCMC and SVI drivers (for ``InferenceResult.log_likelihood``, which ArviZ's LOO and
WAIC read) and by model evaluation code. Pyro has no public function that evaluates a model's
pointwise log-likelihood over many draws at once (``Predictive`` samples, it does not score), so
this module does it by hand with Pyro's handlers: the model is conditioned on a chunk of draws
inside an extra outer ``pyro.plate`` and each observed site's ``fn.log_prob(value)`` is read off
the trace. Models that do not broadcast over that extra dimension are evaluated one draw at a
time instead (with one warning per call).

Usage::

    from inference.log_likelihood import pointwise_log_likelihood, observed_data
    ll = pointwise_log_likelihood(model, result.posterior, model_kwargs)   # {"y": (chain, draw, n)}
    obs = observed_data(model, model_kwargs)                               # {"y": (n,)}
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from inference.sites import data_plate, model_trace, plate_nesting, site_kinds

__all__ = ["pointwise_log_likelihood", "observed_data", "reshape_for_plate"]

#: default bound on the number of tensor elements (one draw's sample values times draws) per chunk
_DEFAULT_CHUNK_ELEMENTS = 2**23
_DRAW_PLATE = "_draws"


def observed_data(model: Callable[..., Any], model_kwargs: Mapping[str, Any] | None = None
                  ) -> dict[str, np.ndarray]:
    """The values of every observed site in one trace of ``model(**model_kwargs)``.

    ``pyro.factor`` sites are terms of the density, not data, and are left out
    (:mod:`inference.sites`).
    Example: ``observed_data(m.model, m.model_kwargs(ds))["y"].shape == (n,)``.
    """
    trace = model_trace(model, model_kwargs)
    return {
        name: trace.nodes[name]["value"].detach().cpu().numpy().copy()
        for name in site_kinds(trace).observed
    }


def _flatten_draws(
    posterior: Mapping[str, np.ndarray], latent_names: list[str]
) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
    missing = [name for name in latent_names if name not in posterior]
    if missing:
        raise KeyError(
            f"posterior lacks latent site(s) {missing} of the model; it holds {sorted(posterior)}"
        )
    lead: tuple[int, int] | None = None
    flat = {}
    for name in latent_names:
        arr = np.asarray(posterior[name])
        if arr.ndim < 2:
            raise ValueError(
                f"posterior site {name!r} has shape {arr.shape}; expected (chain, draw, ...)"
            )
        if lead is None:
            lead = arr.shape[:2]
        elif arr.shape[:2] != lead:
            raise ValueError(
                f"posterior site {name!r} has (chain, draw) = {arr.shape[:2]}, others {lead}"
            )
        flat[name] = arr.reshape((-1,) + arr.shape[2:])
    if lead is None:  # a model without latent sites: one "draw"
        lead = (1, 1)
    return lead, flat


def _reduce_to_data_dim(log_prob: torch.Tensor, nesting: int, in_data_plate: bool,
                        leading: int) -> torch.Tensor:
    """Sum every batch dim except the ``leading`` draw dims and the data plate dim (-1).

    ``log_prob`` has batch dims right-aligned to ``nesting`` plate dims after ``leading`` dims.
    The result is ``(*draw_dims, n_obs)`` with ``n_obs = 1`` when the site has no data plate.
    """
    while log_prob.dim() < leading + nesting:
        log_prob = log_prob.unsqueeze(leading if log_prob.dim() >= leading else 0)
    if in_data_plate:
        inner = tuple(range(leading, log_prob.dim() - 1))
        return log_prob.sum(inner) if inner else log_prob
    inner = tuple(range(leading, log_prob.dim()))
    return (log_prob.sum(inner) if inner else log_prob).unsqueeze(-1)


def _site_log_prob(site: Mapping[str, Any]) -> torch.Tensor:
    log_prob = site["fn"].log_prob(site["value"])
    mask = site.get("mask")
    if isinstance(mask, torch.Tensor):  # masked-out observations contribute nothing
        log_prob = torch.where(mask, log_prob, torch.zeros_like(log_prob))
    elif mask is False:
        log_prob = torch.zeros_like(log_prob)
    return log_prob


def _vectorised_chunk(model, kwargs, draws: dict[str, torch.Tensor], size: int, nesting: int,
                      observed: list[str], in_plate: dict[str, bool]) -> dict[str, torch.Tensor]:
    with torch.no_grad(), poutine.block():
        with pyro.plate(_DRAW_PLATE, size, dim=-(nesting + 1)):
            trace = poutine.trace(poutine.condition(model, data=draws)).get_trace(**kwargs)
    out = {}
    for name in observed:
        log_prob = _site_log_prob(trace.nodes[name])
        # right-align to (draws, *plates): the outer plate is at dim -(nesting + 1)
        while log_prob.dim() < nesting + 1:
            log_prob = log_prob.unsqueeze(0)
        log_prob = log_prob.expand((size,) + log_prob.shape[1:])
        out[name] = _reduce_to_data_dim(log_prob, nesting, in_plate[name], leading=1)
    return out


def _single_draw(model, kwargs, draw: dict[str, torch.Tensor], nesting: int,
                 observed: list[str], in_plate: dict[str, bool]) -> dict[str, torch.Tensor]:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(poutine.condition(model, data=draw)).get_trace(**kwargs)
    return {
        name: _reduce_to_data_dim(_site_log_prob(trace.nodes[name]), nesting, in_plate[name],
                                  leading=0)
        for name in observed
    }


def reshape_for_plate(value: torch.Tensor, nesting: int) -> torch.Tensor:
    """(S, *shape) -> (S, 1, ..., 1, *shape) with ``shape`` right-aligned to ``nesting`` dims.

    This is the rule ``pyro.infer.Predictive(parallel=True)`` uses: a global latent with an
    event dimension (regression weights ``(k,)``) keeps its event dim rightmost, so a model
    written to broadcast over leading batch dims (``(x * beta.unsqueeze(-2)).sum(-1)``) puts
    the draw dimension at the outer plate's position.
    """
    per_draw = tuple(value.shape[1:])
    pad = max(0, nesting - len(per_draw))
    return value.reshape((value.shape[0],) + (1,) * pad + per_draw)


def pointwise_log_likelihood(
    model: Callable[..., Any],
    posterior: Mapping[str, np.ndarray],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    chunk_size: int | None = None,
    vectorize: bool = True,
) -> dict[str, np.ndarray]:
    """Log-likelihood of each observation under each posterior draw, for every observed site.

    ``pyro.factor`` sites are not observations and get no entry (:mod:`inference.sites`).

    ``posterior`` maps latent sites to arrays shaped ``(chain, draw, ...)`` (extra entries such
    as deterministic sites are ignored). Returns ``{site: (chain, draw, n_obs)}`` where ``n_obs``
    is the size of the site's data plate (``dim=-1``); other batch and event dimensions are
    summed, and a site outside any ``dim=-1`` plate gets ``n_obs = 1``. ``chunk_size`` bounds
    the draws evaluated at once (default: sized so a chunk holds about 8M elements);
    ``vectorize=False`` evaluates one draw at a time (the fallback, also used for checking).

    Example::

        ll = pointwise_log_likelihood(m.model, {"mu": np.zeros((2, 100))}, {"y": y})
        ll["y"].shape   # (2, 100, len(y))
    """
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    kwargs = dict(model_kwargs or {})
    ref = model_trace(model, kwargs)
    nesting = plate_nesting(ref)
    kinds = site_kinds(ref)
    observed = list(kinds.observed)
    if not observed:
        raise ValueError("the model has no observed sites: were the observations passed in "
                         f"model_kwargs? (keywords given: {sorted(kwargs)})")
    latents = list(kinds.latent)
    (num_chains, num_draws), flat = _flatten_draws(posterior, latents)
    total = num_chains * num_draws
    sites = {name: ref.nodes[name] for name in kinds.latent + kinds.observed + kinds.factor}
    in_data_plate = {name: data_plate(sites[name]) is not None for name in observed}
    tensors = {
        name: torch.as_tensor(flat[name], dtype=sites[name]["value"].dtype,
                              device=sites[name]["value"].device)
        for name in latents
    }
    if chunk_size is None:
        per_draw = sum(max(1, s["value"].numel()) for s in sites.values())
        chunk_size = max(1, _DEFAULT_CHUNK_ELEMENTS // per_draw)
    chunk_size = min(int(chunk_size), total)

    def vectorised() -> dict[str, list[torch.Tensor]]:
        pieces: dict[str, list[torch.Tensor]] = {name: [] for name in observed}
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            draws = {name: reshape_for_plate(value[start:stop], nesting)
                     for name, value in tensors.items()}
            chunk = _vectorised_chunk(model, kwargs, draws, stop - start, nesting, observed,
                                      in_data_plate)
            for name in observed:
                pieces[name].append(chunk[name])
        return pieces

    def looped() -> dict[str, list[torch.Tensor]]:
        pieces: dict[str, list[torch.Tensor]] = {name: [] for name in observed}
        for index in range(total):
            draw = {name: value[index] for name, value in tensors.items()}
            single = _single_draw(model, kwargs, draw, nesting, observed, in_data_plate)
            for name in observed:
                pieces[name].append(single[name].unsqueeze(0))
        return pieces

    pieces = None
    if vectorize:
        try:
            pieces = vectorised()
        except Exception as error:  # noqa: BLE001 - any failure: the model does not broadcast
            warnings.warn(
                "vectorised log-likelihood failed "
                f"({type(error).__name__}: {error}); evaluating draws one at a time instead",
                RuntimeWarning,
                stacklevel=2,
            )
    if pieces is None:
        pieces = looped()
    return {
        name: torch.cat(parts).cpu().numpy().reshape((num_chains, num_draws, -1))
        for name, parts in pieces.items()
    }
