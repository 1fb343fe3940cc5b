"""Held-out predictive metrics of any Pyro model from posterior draws, read off its traces.

The model runs on the held-out inputs conditioned on a chunk of posterior draws (vectorised in
an outer plate, one draw at a time for models that do not broadcast); the observed site's
distribution under each draw gives the predictive: a ``Categorical`` (or ``Bernoulli``) site
gives class probabilities and so accuracy, NLL and calibration; a site with a mean and a
variance (``Normal``, ``StudentT`` ...) gives RMSE and the epistemic / aleatoric split; any
site gives the held-out log-likelihood ``log mean_s p(y_i | draw s)``. Which applies is read off
the model itself, so no model needs evaluation code of its own.

Usage::

    from inference.evaluation.predictive import predictive_metrics
    metrics = predictive_metrics(net.model, draws, {"x": x_test, "y": y_test}, y_scale=scaler.std)
    metrics["test_ll"], metrics["rmse"]
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch

from inference.predictive_metrics import (classification_metrics, log_mean_exp,
                                          regression_metrics, shift_metrics)
from inference.guides import init_to_feasible_shape
from inference.log_likelihood import reshape_for_plate
from inference.marginal_likelihood import split_batches
from inference.sites import model_trace, plate_nesting, site_kinds

__all__ = ["predictive_distributions", "predictive_metrics"]

_DRAW_PLATE = "_evaluation_draws"


def _base(fn: Any) -> Any:
    """The distribution under ``Independent`` / masking wrappers."""
    while isinstance(fn, (dist.Independent, dist.MaskedDistribution)) or (
            type(fn).__name__ == "ExpandedDistribution"):
        fn = fn.base_dist
    return fn


def _summaries(site: Mapping[str, Any], draws: int) -> dict[str, torch.Tensor]:
    """``log_prob`` (S, n) and, where defined, ``probs`` (S, n, K) or ``mean``/``var`` (S, n).

    Size-one plate dims between the draw dim and the data dim are folded away.
    """
    fn, value = site["fn"], site["value"]
    log_prob = fn.log_prob(value)
    out = {"log_prob": log_prob.reshape(draws, -1)}
    base = _base(fn)
    if isinstance(base, dist.Categorical):
        probs = base.probs
        out["probs"] = probs.expand(log_prob.shape + probs.shape[-1:]).reshape(
            draws, -1, probs.shape[-1])
    elif isinstance(base, dist.Bernoulli):
        p1 = base.probs.expand(log_prob.shape).reshape(draws, -1)
        out["probs"] = torch.stack([1 - p1, p1], -1)
    else:
        try:
            out["mean"] = base.mean.expand(log_prob.shape).reshape(draws, -1)
            out["var"] = base.variance.expand(log_prob.shape).reshape(draws, -1)
        except (NotImplementedError, RuntimeError):
            pass
    return out


def predictive_distributions(model: Callable[..., Any], draws: Mapping[str, np.ndarray],
                             kwargs: Mapping[str, Any], *, chunk_size: int = 50
                             ) -> dict[str, torch.Tensor]:
    """Per-draw predictive summaries of the model's one observed data site.

    ``draws`` maps latent sites to arrays shaped ``(S, ...)``. Returns ``log_prob`` (S, n),
    the observed values ``y`` (n,) and, by the site's distribution, ``probs`` (S, n, K) or
    ``mean`` and ``var`` (S, n).
    """
    ref = model_trace(model, kwargs, init_strategy=init_to_feasible_shape)
    observed = site_kinds(ref).observed
    if len(observed) != 1:
        raise ValueError(f"predictive evaluation needs exactly one observed site; the model has "
                         f"{sorted(observed) or 'none'} (are the held-out targets in kwargs?)")
    name = observed[0]
    nesting = plate_nesting(ref)
    dtype = {k: s["value"].dtype for k, s in ref.nodes.items() if s["type"] == "sample"}
    tensors = {k: torch.as_tensor(np.asarray(v), dtype=dtype.get(k, torch.get_default_dtype()))
               for k, v in draws.items()}
    total = next(iter(tensors.values())).shape[0] if tensors else 1
    pieces: list[dict[str, torch.Tensor]] = []
    vectorise = True
    start = 0
    while start < total:
        stop = min(start + chunk_size, total) if vectorise else start + 1
        try:
            with torch.no_grad(), poutine.block():
                if vectorise:
                    chunk = {k: reshape_for_plate(v[start:stop], nesting)
                             for k, v in tensors.items()}
                    with pyro.plate(_DRAW_PLATE, stop - start, dim=-(nesting + 1)):
                        trace = poutine.trace(poutine.condition(model, data=chunk)).get_trace(
                            **kwargs)
                else:
                    chunk = {k: v[start] for k, v in tensors.items()}
                    trace = poutine.trace(poutine.condition(model, data=chunk)).get_trace(
                        **kwargs)
            pieces.append(_summaries(trace.nodes[name], stop - start))
        except (RuntimeError, ValueError) as error:
            if not vectorise:
                raise
            warnings.warn(f"vectorised predictive failed ({type(error).__name__}: {error}); "
                          "evaluating draws one at a time", RuntimeWarning, stacklevel=2)
            vectorise, pieces, start = False, [], 0
            continue
        start = stop
    out = {k: torch.cat([p[k] for p in pieces]) for k in pieces[0]}
    out["y"] = ref.nodes[name]["value"].reshape(-1)
    return out


def _batched(model: Callable[..., Any], draws: Mapping[str, np.ndarray],
             kwargs: Mapping[str, Any], chunk_size: int, data_batch: int | None
             ) -> dict[str, torch.Tensor]:
    """:func:`predictive_distributions` over rows of at most ``data_batch`` held-out points
    (memory: draws x rows x the net's activations), joined along the points."""
    has_rows = any(isinstance(v, torch.Tensor) and v.dim() >= 1 for v in kwargs.values())
    batches = split_batches(kwargs, data_batch) if has_rows else [dict(kwargs)]
    parts = [predictive_distributions(model, draws, b, chunk_size=chunk_size) for b in batches]
    return {k: torch.cat([p[k] for p in parts], dim=0 if k == "y" else 1) for k in parts[0]}


def predictive_metrics(model: Callable[..., Any], draws: Mapping[str, np.ndarray],
                       kwargs: Mapping[str, Any], *, y_scale: float = 1.0, y_shift: float = 0.0,
                       chunk_size: int = 50, data_batch: int | None = 1000,
                       shifted: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> dict[str, float]:
    """Held-out metrics of the posterior predictive (see the module docstring).

    ``y = z * y_scale + y_shift`` maps a standardised target back to its original scale, on
    which RMSE and the log-likelihood are reported. Held-out points are evaluated
    ``data_batch`` rows at a time. ``shifted`` maps a shift's name to model keywords of
    out-of-distribution inputs (:meth:`zoo.models.base.ZooModel.shifted_inputs`); for a
    classifier the same draws then give each shift's mean predictive entropy and its AUROC
    against the test inputs (:func:`inference.predictive_metrics.shift_metrics`).
    """
    pred = _batched(model, draws, kwargs, chunk_size, data_batch)
    y = pred["y"]
    num_draws = pred["log_prob"].shape[0]
    if "probs" in pred:
        metrics = classification_metrics(pred["probs"], y)
        if shifted:
            metrics.update(shift_metrics(pred["probs"], {
                name: _batched(model, draws, kw, chunk_size, data_batch)["probs"]
                for name, kw in shifted.items()}))
    elif "mean" in pred:
        metrics = regression_metrics(pred["mean"], pred["var"], y, y_scale=y_scale,
                                     y_shift=y_shift)
    else:
        metrics = {"test_ll": float(log_mean_exp(pred["log_prob"], 0).mean())
                   - float(np.log(y_scale))}
    metrics.pop("nll", None)  # one name per metric: -test_ll
    if "error" in metrics:  # "error" is the benchmark table's failure column
        metrics["test_error"] = metrics.pop("error")
    metrics.pop("num_draws", None)
    metrics["eval_draws"] = float(num_draws)
    metrics["eval_points"] = float(pred["log_prob"].shape[1])
    return metrics
