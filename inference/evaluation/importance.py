"""Held-out importance-sampled log-likelihood for models with local latents, marked honestly.

Wraps :func:`inference.marginal_likelihood.importance_log_likelihood` and turns its estimate
into the zoo's metric names (:mod:`inference.evaluation.metrics`). When the mean PSIS k-hat of
the importance weights exceeds 0.7 the estimate is not trusted: ``test_ll_reliable`` is 0 and
no standard error is given (a standard error would suggest a precision the estimate lacks).

Usage::

    from inference.evaluation.importance import heldout_importance
    metrics = heldout_importance(vae.model, guide, {"x": x_test}, is_samples=5000)
    metrics["test_ll"], metrics["test_ll_khat"], metrics.get("test_ll_se")
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from inference.evaluation.metrics import KHAT_RELIABLE

__all__ = ["heldout_importance", "importance_metrics"]

#: below this many importance samples PSIS has too short a tail to fit k-hat (a NaN k-hat
#: then means "unknown"); above it a NaN k-hat comes from non-finite weights: unreliable
MIN_SAMPLES_FOR_KHAT = 50


def importance_metrics(estimate: Any) -> dict[str, float]:
    """The zoo's metrics of an :class:`~inference.marginal_likelihood.ImportanceEstimate`."""
    khat = np.asarray(estimate.khat, dtype=float)
    known = np.isfinite(khat)
    khat_mean = float(khat[known].mean()) if known.any() else math.nan
    metrics = {
        "test_ll": estimate.mean,
        "test_ll_mc_se": estimate.mc_se,
        "test_ll_khat": khat_mean,
        "test_ll_khat_max": float(khat[known].max()) if known.any() else math.nan,
        "test_ll_unreliable_frac": (float((khat[known] > KHAT_RELIABLE).mean())
                                    if known.any() else math.nan),
        "test_elbo": estimate.elbo_mean,
        "gap": estimate.gap_mean,
        "eval_samples": float(estimate.num_samples),
        "eval_points": float(estimate.num_data),
    }
    if math.isnan(khat_mean) and estimate.num_samples < MIN_SAMPLES_FOR_KHAT:
        metrics["test_ll_se"] = estimate.se  # too few samples for k-hat: reliability unknown
    elif math.isnan(khat_mean):  # enough samples, yet no k-hat: non-finite weights
        metrics["test_ll_reliable"] = 0.0
    elif khat_mean <= KHAT_RELIABLE:
        metrics["test_ll_reliable"] = 1.0
        metrics["test_ll_se"] = estimate.se
    else:
        metrics["test_ll_reliable"] = 0.0
    return metrics


def heldout_importance(model: Callable[..., Any], guide: Callable[..., Any],
                       kwargs: Mapping[str, Any], *, is_samples: int = 1000,
                       particle_batch: int = 500, data_batch: int = 100, seed: int = 0,
                       elbo_particles: int | None = None) -> dict[str, float]:
    """Importance-sampled ``log p(x)`` per held-out point with ``guide`` as the proposal.

    With ``elbo_particles`` a second, independent estimate of the ELBO from that many draws
    per point is added as ``test_elbo_k`` (seeded with ``seed + 1``), with its standard error
    across points ``test_elbo_k_se``.
    """
    from inference.marginal_likelihood import importance_log_likelihood

    estimate = importance_log_likelihood(model, guide, kwargs, num_samples=is_samples,
                                         particle_batch=min(particle_batch, is_samples),
                                         data_batch=data_batch, seed=seed)
    metrics = importance_metrics(estimate)
    if elbo_particles is not None:
        few = importance_log_likelihood(model, guide, kwargs, num_samples=elbo_particles,
                                        particle_batch=min(particle_batch, elbo_particles),
                                        data_batch=data_batch, seed=seed + 1)
        metrics["test_elbo_k"] = few.elbo_mean
        metrics["test_elbo_k_se"] = few.elbo_se
        metrics["elbo_particles"] = float(elbo_particles)
    return metrics
