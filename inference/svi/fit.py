"""The SVI driver: fit a guide to a Pyro model and return an :class:`InferenceResult`.

:func:`fit_svi` builds an :class:`~inference.svi.engine.SVIEngine` (guide, objective,
optimiser with optional learning-rate schedule, gradient clipping and KL annealing), runs it
with the callbacks its settings ask for (:mod:`inference.svi.callbacks`: early stopping on a
validation ELBO, checkpoints with exact resume, a progress bar), then draws from the trained
guide (:mod:`inference.svi.draws`) and scores the draws (:mod:`inference.log_likelihood`). It
supports mini-batches (the model's ``subsample_size`` keyword) and stops with
:class:`~inference.errors.DivergenceError` on a non-finite loss or gradient, keeping the last
finite parameters. To step SVI yourself, use the engine directly.

Usage::

    from inference.svi import fit_svi
    result = fit_svi(m.model, m.model_kwargs(data), guide="auto_mvn", num_steps=2000, lr=0.02)
    result.posterior["beta"].shape        # (1, 1000, d)
    result.loss_history[-10:]
    guide = result.fitted["guide"]        # trained guide (the Laplace Gaussian for auto_laplace)
    engine = result.fitted["engine"]      # to keep training: engine.step()
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from inference.errors import TrainingInterrupted
from inference.guides import init_to_feasible_shape, posterior_guide
from inference.log_likelihood import observed_data, pointwise_log_likelihood
from inference.result import InferenceResult
from inference.schedules import KLAnnealing
from inference.sites import model_trace, site_kinds
from inference.svi.callbacks import (Callback, Checkpointer, EarlyStopping, ELBOMonitor,
                                     KeepBest, ProgressBar, StopOnInterrupt, TimeLimit)
from inference.svi.health import loss_problems
from inference.svi.draws import draw_posterior, guide_params
from inference.svi.engine import SVIEngine
from inference.svi.inputs import accepts_keyword, check_minibatch, resolve_device, to_device

__all__ = ["fit_svi"]


def _check_arguments(num_steps: Any, eval_every: Any, patience: Any, validation_kwargs: Any,
                     checkpoint_path: Any, checkpoint_every: Any, resume: bool,
                     num_posterior_draws: Any) -> None:
    """ValueErrors for settings of :func:`fit_svi` that cannot work (checked before any
    state is touched)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if patience is not None and validation_kwargs is None:
        raise ValueError("patience (early stopping) needs validation_kwargs")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int)
                                         or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if (checkpoint_every is not None or resume) and checkpoint_path is None:
        raise ValueError("checkpoint_every / resume need a checkpoint_path")
    if not isinstance(num_posterior_draws, int) or num_posterior_draws < 0:
        raise ValueError(f"num_posterior_draws must be an integer >= 0, "
                         f"got {num_posterior_draws!r}")


def fit_svi(
    model: Callable[..., Any],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    guide: str | Callable[..., Any] = "auto_normal",
    elbo: str = "trace",
    num_particles: int = 1,
    vectorize_particles: bool = False,
    renyi_alpha: float = 0.0,
    num_steps: int = 1000,
    optimizer: str = "adam",
    lr: float = 1e-2,
    lr_schedule: Mapping[str, Any] | None = None,
    clip_norm: float | None = None,
    kl_anneal: Mapping[str, Any] | KLAnnealing | None = None,
    batch_size: int | None = None,
    validation_kwargs: Mapping[str, Any] | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    checkpoint_path: str | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_posterior_draws: int = 1000,
    posterior_sites: Sequence[str] | None = None,
    log_likelihood: bool = True,
    progress_bar: bool = True,
    guide_options: Mapping[str, Any] | None = None,
    max_plate_nesting: int | None = None,
    time_limit_s: float | None = None,
    elbo_every: int | None = None,
    elbo_particles: int = 20,
    compile_elbo: bool = False,
    callbacks: Sequence[Callback] = (),
) -> InferenceResult:
    """Fit ``guide`` to ``model(**model_kwargs)`` by SVI; return draws, losses and the guide.

    Arguments beyond the shared driver signature (see the project brief):

    * ``guide_options`` -- passed to :func:`inference.guides.make_guide` (``rank``,
      ``init_scale``, ``num_flows``, ``flow``, ``hidden_dim``, ``init_loc_fn``);
    * ``max_plate_nesting`` -- given to the ELBO (default: read off one model and one guide
      trace before training, as Pyro's ELBO would guess it);
    * ``time_limit_s`` -- stop training after this many wall-clock seconds (a budget: the
      run keeps what it reached, records ``stopped_by_time_limit`` and warns);
    * ``elbo_every`` / ``elbo_particles`` -- estimate the training ELBO with that many
      vectorised particles every ``elbo_every`` steps and at the end
      (:class:`~inference.svi.callbacks.ELBOMonitor`); recorded as ``settings["elbo_trace"]``
      (``{"steps": [...], "elbo": [...]}``) and ``settings["train_elbo"]`` (the last value);
    * ``compile_elbo`` -- compute the loss and its gradients with a graph traced once and
      compiled by ``torch.compile`` (:mod:`inference.svi.compiled`: ``Trace_ELBO``, a
      reparameterised guide, a model of fixed structure, no KL annealing). The compilation
      costs seconds up front; the steps then skip Pyro's per-step tracing and draw the same
      random numbers. A model that cannot be compiled runs Pyro's ELBO after one warning.
      ``settings["elbo_path"]`` records which ran (``"compiled"`` or ``"plain"``) and
      ``settings["compile_error"]`` why the compilation was not used;
    * ``callbacks`` -- more :class:`~inference.svi.callbacks.Callback` objects for the
      training loop, run after the driver's own (e.g. a timer).

    Behaviour: the param store is cleared and the seed set at the start (``resume=True``
    restores everything from ``checkpoint_path`` when that file exists, else starts fresh);
    ``batch_size`` is passed as ``subsample_size`` to model and guide; with
    ``validation_kwargs`` the ELBO on them is evaluated every ``eval_every`` steps (without KL
    annealing, without disturbing the training RNG stream), training stops after ``patience``
    evaluations without improvement and the best parameters are kept; a non-finite loss or
    gradient raises :class:`DivergenceError` with the parameters of the last finite step kept
    (and checkpointed). ``loss_history`` holds the per-step training loss (the annealed
    objective while ``kl_anneal`` is active). Posterior draws come from the trained guide
    (the Laplace Gaussian for ``auto_laplace``) for the latent and deterministic sites,
    restricted to ``posterior_sites`` when given, shaped (1, draws, ...); ``pyro.factor``
    sites are part of the objective but not of ``observed_data`` or ``log_likelihood``.
    """
    _check_arguments(num_steps, eval_every, patience, validation_kwargs, checkpoint_path,
                     checkpoint_every, resume, num_posterior_draws)
    dev = resolve_device(device)
    anneal = KLAnnealing.from_config(kl_anneal) if kl_anneal is not None else None
    kwargs = to_device(model_kwargs, dev)
    val_kwargs = to_device(validation_kwargs, dev) if validation_kwargs is not None else None

    # a device context makes factory functions in models/guides default to ``dev``; it costs a
    # Python hook on every torch call, so it is used only off the CPU
    with (torch.device(dev) if dev.type != "cpu" else contextlib.nullcontext()):
        # which sites are which: a one-row trace when mini-batching (the names are the same,
        # and a full pass of a convolutional net over all of MNIST takes minutes)
        cheap = batch_size is not None and accepts_keyword(model, "subsample_size")
        probe = {**kwargs, "subsample_size": 1} if cheap else kwargs
        kinds = site_kinds(model_trace(model, probe, init_strategy=init_to_feasible_shape))
        latent, deterministic = list(kinds.latent), list(kinds.deterministic)
        keep = latent + deterministic
        if posterior_sites is not None:
            unknown = sorted(set(posterior_sites) - set(keep))
            if unknown:
                raise ValueError(f"posterior_sites {unknown} are not latent or deterministic "
                                 f"sites of the model; available: {keep}")
            keep = list(posterior_sites)
        train_kwargs = dict(kwargs)
        if batch_size is not None:
            check_minibatch(model, guide if callable(guide) else None, kwargs, batch_size)
            train_kwargs["subsample_size"] = batch_size
        engine = SVIEngine.build(
            model, train_kwargs, guide=guide, guide_options=guide_options, elbo=elbo,
            num_particles=num_particles, vectorize_particles=vectorize_particles,
            renyi_alpha=renyi_alpha, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
            clip_norm=clip_norm, num_steps=num_steps, kl_anneal=anneal,
            max_plate_nesting=max_plate_nesting, seed=seed, compile_elbo=compile_elbo)

        early = (EarlyStopping(val_kwargs, eval_every=eval_every, patience=patience)
                 if val_kwargs is not None else None)
        if resume and checkpoint_path is not None and os.path.exists(checkpoint_path):
            extra = engine.restore(checkpoint_path)
            if early is not None:
                early.load_state(extra)
        start = engine.step_count
        interrupt = StopOnInterrupt()
        keep_best = KeepBest(every=max(1, num_steps // 100)) if early is None else None
        hooks: list[Callback] = [interrupt] + [c for c in (early, keep_best) if c is not None]
        if checkpoint_path is not None:
            hooks.append(Checkpointer(checkpoint_path, every=checkpoint_every,
                                      extra=early.state if early is not None else None))
        monitor = (ELBOMonitor(train_kwargs, every=elbo_every, num_particles=elbo_particles)
                   if elbo_every is not None else None)
        if monitor is not None:
            hooks.append(monitor)
        limit = TimeLimit(time_limit_s) if time_limit_s is not None else None
        if limit is not None:
            hooks.append(limit)
        hooks.append(ProgressBar(num_steps, initial=start, disable=not progress_bar))
        hooks.extend(callbacks)

        t0 = time.perf_counter()
        engine.run(num_steps, hooks)
        training_time = time.perf_counter() - t0
        if interrupt.interrupted:
            raise TrainingInterrupted(engine.step_count, num_steps,
                                      str(checkpoint_path) if checkpoint_path else None)
        if early is not None:
            early.restore_best()
        # the annealed objective rises while the KL weight grows: judge the loss after it
        settled = engine.losses[max(start, anneal.steps if anneal is not None else 0):]
        problems = loss_problems(settled)
        kept_best_step = None
        if problems and problems[0].startswith("the loss ended") and keep_best is not None \
                and keep_best.best_params:
            keep_best.restore()
            kept_best_step = keep_best.best_step
            problems[0] += f"; the parameters as of step {kept_best_step} were kept"
        for problem in problems:
            warnings.warn(f"SVI: {problem}", RuntimeWarning, stacklevel=2)
        if limit is not None and limit.reached:
            warnings.warn(f"SVI stopped by its time limit of {time_limit_s:g} s after "
                          f"{engine.step_count} of {num_steps} steps", RuntimeWarning,
                          stacklevel=2)

        # ---- after training: posterior draws, log-likelihood, observed data
        t1 = time.perf_counter()
        post_guide = posterior_guide(engine.guide, kwargs)
        draws: dict[str, np.ndarray] = {}
        if num_posterior_draws > 0:
            draws = draw_posterior(model, post_guide, kwargs, latent,
                                   [s for s in deterministic if s in keep], num_posterior_draws)
        draw_time = time.perf_counter() - t1
        loglik, observed = None, None
        t2 = time.perf_counter()
        if log_likelihood and draws and kinds.observed:
            loglik = pointwise_log_likelihood(model, {s: draws[s] for s in latent}, kwargs)
            observed = observed_data(model, kwargs) or None
        loglik_time = time.perf_counter() - t2

    losses = engine.losses
    settings = {
        "guide": guide if isinstance(guide, str) else getattr(guide, "__qualname__", repr(guide)),
        "guide_options": {k: v for k, v in (guide_options or {}).items()},
        "elbo": elbo, "num_particles": num_particles,
        "vectorize_particles": vectorize_particles, "renyi_alpha": renyi_alpha,
        "num_steps": num_steps, "steps_run": len(losses), "optimizer": optimizer, "lr": lr,
        "lr_schedule": dict(lr_schedule) if lr_schedule else None, "clip_norm": clip_norm,
        "kl_anneal": (None if anneal is None else {"start": anneal.start, "end": anneal.end,
                                                   "steps": anneal.steps,
                                                   "shape": anneal.shape}),
        "batch_size": batch_size, "eval_every": eval_every, "patience": patience,
        "early_stopping": (None if early is None else
                           {"best_step": early.best_step, "best_value": early.best_value,
                            "stopped_early": early.stopped_early,
                            "val_history": list(early.val_history)}),
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
        "checkpoint_every": checkpoint_every, "resumed_from_step": start if resume else None,
        "device": str(dev), "num_posterior_draws": num_posterior_draws,
        "posterior_sites": list(posterior_sites) if posterior_sites is not None else None,
        "time_limit_s": time_limit_s,
        "stopped_by_time_limit": bool(limit is not None and limit.reached),
        "loss_problems": problems, "kept_best_step": kept_best_step,
        "elbo_every": elbo_every, "elbo_particles": elbo_particles,
        "elbo_trace": (None if monitor is None else
                       {"steps": list(monitor.steps), "elbo": list(monitor.elbos)}),
        "train_elbo": None if monitor is None or not monitor.elbos else monitor.elbos[-1],
        "compile_elbo": bool(compile_elbo), "elbo_path": engine.elbo_path,
        "compile_error": engine.compile_error,
    }
    return InferenceResult(
        method="svi",
        posterior={s: draws[s] for s in keep if s in draws},
        timings={"training": training_time,
                 "per_step": training_time / max(1, len(losses) - start),
                 "posterior_draws": draw_time, "log_likelihood": loglik_time},
        settings=settings,
        seed=seed,
        log_likelihood=loglik,
        observed_data=observed,
        loss_history=np.asarray(losses, dtype=float),
        guide_params=guide_params(post_guide),
        fitted={"guide": post_guide, "model": model, "elbo": engine.elbo,
                "trained_guide": engine.guide, "optimizer": engine.optim, "engine": engine},
    )
