"""Held-out evaluation of a fitted zoo model: the zoo's side of :mod:`inference.evaluation`.

It gathers what the model declares (its traits, its held-out data binding
:meth:`~zoo.models.base.ZooModel.evaluation_kwargs`, its evaluation defaults, a closed-form
likelihood where it has one) and what the data set knows (a standardised target's scale), then
lets :func:`inference.evaluation.evaluate` compute the metrics; a guide's own report (sparse
variational dropout's compression) and the error at the guide's median are added. The CLI, the
benchmark cells and :meth:`ZooModel.evaluate` all call :func:`evaluate_fit`.

Usage::

    from zoo.evaluation import evaluate_fit
    result, model, dataset = fit("bnn", "svi", guide="bbb", num_steps=500)
    evaluate_fit(model, dataset, result)              # {"test_ll": ..., "rmse": ...}
    evaluate_fit(model, dataset, result, settings={"num_draws": 50, "max_points": 100})
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from inference.evaluation import EvalSettings, evaluate, first_points

if TYPE_CHECKING:
    from inference.result import InferenceResult
    from zoo.data.dataset import Dataset
    from zoo.models.base import ZooModel

__all__ = ["evaluate_fit", "eval_settings", "target_affine", "representation_and_sample_metrics",
           "reference_agreement"]


def target_affine(dataset: "Dataset") -> tuple[float, float]:
    """``(scale, shift)`` with ``y = z * scale + shift`` for a standardised target, else (1, 0)."""
    scaler = dataset.info.get("y_scaler")
    if scaler is None:
        return 1.0, 0.0
    back = np.asarray(scaler.inverse_transform(np.array([0.0, 1.0])), dtype=float).reshape(-1)
    return float(back[1] - back[0]), float(back[0])


def eval_settings(model: "ZooModel", overrides: Mapping[str, Any] | None = None
                  ) -> EvalSettings:
    """The model's evaluation defaults under ``overrides``, checked."""
    return EvalSettings.from_mapping({**model.evaluation_defaults(), **dict(overrides or {})},
                                     method="evaluation")


def evaluate_fit(model: "ZooModel", dataset: "Dataset", result: "InferenceResult | None",
                 split: str = "test", settings: Mapping[str, Any] | EvalSettings | None = None
                 ) -> dict[str, float]:
    """Held-out metrics of ``result`` on the ``split`` of ``dataset``.

    Names and meanings: :data:`inference.evaluation.metrics.METRICS`. With ``result=None``
    the model is evaluated with its own configured guide as it stands (e.g. PPCA set to its
    closed-form optimum).
    """
    from inference.evaluation.predictive import predictive_metrics
    from inference.guide_protocol import ZooGuide, guide_report
    from zoo.registry import traits_of

    if split not in dataset.splits:
        raise ValueError(f"data set {dataset.name!r} has no {split!r} split; it has "
                         f"{sorted(dataset.splits)}")
    if not isinstance(settings, EvalSettings):
        settings = eval_settings(model, settings)
    kwargs = model.evaluation_kwargs(dataset, split)
    scale, shift = target_affine(dataset)
    own_guide = model.guides().get("model") if result is None else None
    traits = traits_of(model)
    if traits.network:  # a network with its own objective has no density to evaluate
        metrics: dict[str, float] = {}
    else:
        metrics = evaluate(model.model, kwargs, result, local_latents=traits.local_latents,
                           settings=settings, guide=own_guide, y_scale=scale, y_shift=shift,
                           shifted=model.shifted_inputs(first_points(kwargs,
                                                                     settings.max_points)))
    metrics.update(representation_and_sample_metrics(model, dataset, result, split, settings))
    exact = model.exact_log_likelihood_of(first_points(kwargs, settings.max_points))
    if exact is not None:
        metrics["test_ll_exact"] = float(np.mean(np.asarray(exact, dtype=float)))
    metrics.update(model.heldout_extras(first_points(kwargs, settings.max_points)))
    guide = own_guide or (result.fitted or {}).get("guide")
    metrics.update(guide_report(guide))
    if isinstance(guide, ZooGuide) and not guide.amortised and "test_error" in metrics:
        point = {k: v.detach().cpu().numpy()[None]
                 for k, v in guide.point_estimate(**kwargs).items()}
        at_point = predictive_metrics(model.model, point, first_points(kwargs,
                                      settings.max_points), chunk_size=1)
        metrics["point_error"] = at_point["test_error"]
    return metrics


def representation_and_sample_metrics(model: "ZooModel", dataset: "Dataset",
                                      result: "InferenceResult | None", split: str,
                                      settings: EvalSettings) -> dict[str, float]:
    """The figures of a model's codes and generated images, where the settings ask for them.

    ``settings.linear_probe`` and a model with ``encode(x, result)``: the linear probe
    (:func:`inference.evaluation.representations.probe_metrics`) on labelled data (skipped
    without labels), and the reconstruction error where the model has ``reconstruct(x, result)``.
    ``settings.sample_scores`` and a model with ``generate(n, seed, result)``:
    :func:`inference.evaluation.samples.score_samples` against the raw held-out images.
    """
    import torch

    out: dict[str, float] = {}
    cap = None if settings.max_points is None else 10 * settings.max_points
    if settings.linear_probe and callable(getattr(model, "encode", None)):
        from inference.evaluation.representations import (probe_metrics,
                                                          reconstruction_metrics)

        x_test = first_points(model.evaluation_kwargs(dataset, split),
                              settings.max_points)["x"]
        if callable(getattr(model, "reconstruct", None)):
            out.update(reconstruction_metrics(x_test, model.reconstruct(x_test, result)))
        y_train, y_test = dataset.split("train").get("y"), dataset.split(split).get("y")
        labelled = (isinstance(y_train, torch.Tensor) and isinstance(y_test, torch.Tensor)
                    and not y_train.is_floating_point())
        if labelled:
            n = settings.probe_points if cap is None else min(settings.probe_points, cap)
            x_train = model.evaluation_kwargs(dataset, "train")["x"][:n]
            out.update(probe_metrics(model.encode(x_train, result), y_train[:n],
                                     model.encode(x_test, result), y_test[: len(x_test)],
                                     x_train, x_test, seed=settings.seed))
    if settings.sample_scores and callable(getattr(model, "generate", None)):
        from inference.evaluation.samples import score_samples

        n = settings.scored_samples if cap is None else min(settings.scored_samples, cap)
        reference = dataset.split(split)["x"]
        out.update(score_samples(model.generate(n, settings.seed, result),
                                 reference=reference.reshape(len(reference), -1),
                                 max_samples=n))
    return out


def reference_agreement(model: Any, dataset: Any, result: Any) -> dict[str, float]:
    """How far the posterior is from the model's reference posterior, in reference sds.

    For models with :meth:`~zoo.models.base.ZooModel.reference_posterior` (posteriordb's Stan
    draws, exact conjugate posteriors) and a ``to_stan_draws`` naming of their parameters:
    ``ref_max_abs_z`` is the largest ``|mean - ref mean| / ref sd`` over the reported
    parameters and ``ref_max_log_sd_ratio`` the largest ``|log(sd / ref sd)|``. Empty for
    models without a reference.
    """
    reference = model.reference_posterior(dataset)
    if not reference or "mean" not in reference or not hasattr(model, "to_stan_draws"):
        return {}
    draws = model.to_stan_draws(result.posterior)
    z, log_ratio = [], []
    for name, ref_mean in reference["mean"].items():
        ref_sd = reference["sd"].get(name)
        if name not in draws or not ref_sd or not math.isfinite(ref_sd):
            continue
        values = np.asarray(draws[name], dtype=float).ravel()
        z.append(abs(values.mean() - ref_mean) / ref_sd)
        if len(values) > 1 and values.std(ddof=1) > 0:
            log_ratio.append(abs(math.log(values.std(ddof=1) / ref_sd)))
    out = {}
    if z:
        out["ref_max_abs_z"] = float(max(z))
    if log_ratio:
        out["ref_max_log_sd_ratio"] = float(max(log_ratio))
    return out
