"""Held-out evaluation of any inference result, outside the models.

What is computed follows from what the model is: a model with local latents (a VAE, PPCA) gets
the importance-sampled ``log p(x)`` of each held-out point with its guide as the proposal and
the PSIS k-hat of the weights; any other model gets predictive metrics from posterior draws
(the result's own, or fresh ones from its guide), chosen by its observed site's distribution
(classification or regression, :mod:`inference.evaluation.predictive`). Metric names are those
of :mod:`inference.evaluation.metrics`, and a result reloaded from disk is evaluated exactly
like a live one.

Usage::

    from inference.evaluation import EvalSettings, evaluate
    metrics = evaluate(model, test_kwargs, result, local_latents=False,
                       settings=EvalSettings(num_draws=200))
    metrics["test_ll"], metrics["rmse"]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from inference.evaluation.metrics import KHAT_RELIABLE, METRICS, Metric, better
from inference.evaluation.settings import EvalSettings

__all__ = ["EvalSettings", "KHAT_RELIABLE", "METRICS", "Metric", "better", "evaluate",
           "first_points"]


def first_points(kwargs: Mapping[str, Any], max_points: int | None) -> dict[str, Any]:
    """``kwargs`` with every tensor that has the data's leading size cut to ``max_points``."""
    import torch

    kwargs = dict(kwargs)
    if max_points is None:
        return kwargs
    sizes = [v.shape[0] for v in kwargs.values() if isinstance(v, torch.Tensor) and v.dim()]
    if not sizes:
        return kwargs
    n = max(sizes)
    return {k: v[:max_points] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n
            else v for k, v in kwargs.items()}


def evaluate(model: Callable[..., Any], kwargs: Mapping[str, Any], result: Any, *,
             local_latents: bool, settings: EvalSettings | None = None,
             guide: Callable[..., Any] | None = None, y_scale: float = 1.0,
             y_shift: float = 0.0, shifted: Mapping[str, Mapping[str, Any]] | None = None
             ) -> dict[str, float]:
    """Held-out metrics of ``result`` on ``model(**kwargs)`` (observations included).

    ``local_latents``: the model has one latent per data point, so the held-out figure is an
    importance-sampled ``log p(x)`` and ``guide`` (default: the result's fitted guide) must be
    amortised. ``y_scale``/``y_shift`` map a standardised target back to its original scale.
    ``shifted``: out-of-distribution versions of ``kwargs`` by name (cut to the same points),
    scored by the predictive entropy of a classifier (``ood_entropy_<name>``,
    ``ood_auroc_<name>``); models with local latents ignore it.
    """
    from inference.guide_protocol import ZooGuide
    from inference.sites import model_trace, site_kinds

    settings = settings or EvalSettings()
    kwargs = first_points(kwargs, settings.max_points)
    fitted = (result.fitted if result is not None else None) or {}
    if local_latents:
        from inference.evaluation.importance import heldout_importance

        guide = guide or fitted.get("trained_guide") or fitted.get("guide")
        if guide is None:
            raise ValueError("held-out importance sampling needs the fitted guide; load the "
                             "run with zoo.reload.load_run to rebuild it")
        if not (isinstance(guide, ZooGuide) and guide.amortised):
            raise ValueError("held-out log p(x) of a model with local latents needs an "
                             f"amortised guide (an encoder); the fit used {guide!r}")
        return heldout_importance(model, guide, kwargs, is_samples=settings.is_samples,
                                  particle_batch=settings.particle_batch,
                                  data_batch=settings.data_batch, seed=settings.seed,
                                  elbo_particles=settings.elbo_particles)
    from inference.evaluation.draws import posterior_draws
    from inference.evaluation.predictive import predictive_metrics

    sites = list(site_kinds(model_trace(model, kwargs)).latent)
    draws = posterior_draws(result, model, kwargs, sites, num_draws=settings.num_draws,
                            seed=settings.seed, guide=guide, chunk_size=settings.chunk_size)
    shifted = {name: first_points(kw, settings.max_points)
               for name, kw in (shifted or {}).items()}
    return predictive_metrics(model, draws, kwargs, y_scale=y_scale, y_shift=y_shift,
                              chunk_size=settings.chunk_size, data_batch=settings.data_batch,
                              shifted=shifted)
