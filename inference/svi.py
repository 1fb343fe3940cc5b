"""The SVI driver: fit a guide to a Pyro model and return an :class:`InferenceResult`.

:func:`fit_svi` builds a guide (:mod:`inference.guides`), an objective
(:mod:`inference.objectives`) and an optimiser with optional learning-rate schedule, gradient
clipping and KL annealing (:mod:`inference.schedules`), trains with ``pyro.infer.SVI``, and
then draws from the trained guide. It supports mini-batches (the model's ``subsample_size``
keyword), early stopping on a validation ELBO, checkpoints with exact resume
(:mod:`inference.checkpoint`) and stops with :class:`~inference.errors.DivergenceError` on a
non-finite loss or gradient, keeping the last finite parameters.

Usage::

    from inference.svi import fit_svi
    result = fit_svi(m.model, m.model_kwargs(data), guide="auto_mvn", num_steps=2000, lr=0.02)
    result.posterior["beta"].shape        # (1, 1000, d)
    result.loss_history[-10:]
    guide = result.fitted["guide"]        # trained guide (the Laplace Gaussian for auto_laplace)
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import SVI, Predictive
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.infer.util import zero_grads
from pyro.poutine.util import site_is_subsample

from inference.checkpoint import (get_rng, load_checkpoint, restore_params, save_checkpoint,
                                  set_rng, snapshot_params)
from inference.errors import DivergenceError
from inference.guides import init_to_feasible_shape, make_guide, posterior_guide
from inference.log_likelihood import observed_data, pointwise_log_likelihood
from inference.objectives import make_elbo
from inference.result import InferenceResult
from inference.schedules import KLAnnealing, is_scheduler, make_optimizer

__all__ = ["fit_svi", "latent_and_deterministic_sites"]

#: posterior draws are taken from the guide this many at a time (bounds memory)
_DRAW_CHUNK = 500


# ------------------------------------------------------------------------ helpers
def _to_device(kwargs: Mapping[str, Any] | None, device: torch.device) -> dict[str, Any]:
    """A copy of ``kwargs`` with every tensor value moved to ``device``."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in (kwargs or {}).items()}


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device (use 'cpu' or 'cuda')") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def _accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins / C callables: cannot tell, assume yes
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _model_trace(model: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """One trace of the model for site names and shapes.

    Latent sites take a feasible value instead of a prior draw, so priors that cannot be sampled
    (``ImproperUniform``) are fine and no random numbers are consumed by latent sites.
    """
    with torch.no_grad(), poutine.block():
        return poutine.trace(InitMessenger(init_to_feasible_shape)(model)).get_trace(**kwargs)


def _plate_nesting(*traces: Any) -> int:
    """The deepest vectorised plate dim in the traces (what Pyro's ELBO would guess)."""
    depth = 0
    for trace in traces:
        for site in trace.nodes.values():
            if site["type"] == "sample":
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized and frame.dim is not None:
                        depth = max(depth, -frame.dim)
    return depth


def latent_and_deterministic_sites(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                                   trace: Any = None) -> tuple[list[str], list[str]]:
    """Names of the latent (non-observed) and deterministic sample sites of one model trace."""
    if trace is None:
        trace = _model_trace(model, model_kwargs)
    latent, deterministic = [], []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site.get("infer", {}).get("_deterministic", False):
            deterministic.append(name)
        elif not site["is_observed"]:
            latent.append(name)
    return latent, deterministic


def _check_minibatch(model: Callable[..., Any], guide: Callable[..., Any],
                     model_kwargs: Mapping[str, Any], batch_size: Any) -> None:
    """Errors naming the problem when mini-batching cannot work as asked."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    for what, fn in (("model", model), ("guide", guide)):
        if not _accepts_keyword(fn, "subsample_size"):
            raise ValueError(f"batch_size={batch_size} needs the {what} to accept a "
                             f"'subsample_size' keyword (it is passed to the data plate), but "
                             f"{getattr(fn, '__qualname__', fn)!r} does not")
    # with subsample_size > size pyro.plate would silently use every row and scale by
    # size / subsample_size < 1, so compare against the plate sizes first
    trace = _model_trace(model, {**model_kwargs, "subsample_size": None})
    sizes = {name: site["fn"].size for name, site in trace.nodes.items()
             if site["type"] == "sample" and site_is_subsample(site)}
    if not sizes:
        raise ValueError(f"batch_size={batch_size} given but the model has no pyro.plate to "
                         "subsample (it should pass subsample_size to its data plate)")
    too_big = {name: size for name, size in sizes.items() if batch_size > size}
    if too_big and len(too_big) == len(sizes):
        raise ValueError(f"batch_size={batch_size} is larger than the data: plate sizes "
                         f"{too_big}")


def _optim_state(optim: Any) -> dict[str, Any]:
    """``optim.get_state()`` plus state loaded from a checkpoint but not yet consumed.

    Pyro's optimisers load a restored state lazily, when a parameter is first stepped; a
    checkpoint written before that must still carry it.
    """
    state = dict(getattr(optim, "_state_waiting_to_be_consumed", {}))
    state.update(optim.get_state())
    return state


class _Checkpointer:
    """Writes the driver's state when a checkpoint path is configured."""

    def __init__(self, path: str | None, optim: Any) -> None:
        self.path, self.optim = path, optim

    def save(self, step: int, losses: Sequence[float], extra: Mapping[str, Any],
             params: Mapping[str, torch.Tensor] | None = None) -> None:
        if self.path is None:
            return
        save_checkpoint(self.path, step=step, optim=_StateView(_optim_state(self.optim)),
                        loss_history=losses, params=params, extra=extra)


class _StateView:
    """Adapter so :func:`save_checkpoint` can read a precomputed optimiser state."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self._state = state

    def get_state(self) -> Mapping[str, Any]:
        return self._state


def _guarded_step(svi: SVI, step: int, kwargs: Mapping[str, Any]) -> float:
    """One ``SVI.step`` that refuses to update on a non-finite loss or gradient.

    This is ``pyro.infer.SVI.step`` with a finiteness check between computing gradients and
    stepping the optimiser, so after a :class:`DivergenceError` the parameters and optimiser
    moments are exactly those from before the bad step (no snapshot copy per step needed).
    """
    try:
        with poutine.trace(param_only=True) as param_capture:
            loss = svi.loss_and_grads(svi.model, svi.guide, **kwargs)
    except (ValueError, torch.linalg.LinAlgError) as err:
        # with distribution validation on (Pyro's default) a parameter driven out of its support
        # (NaN, inf, a zero scale, a covariance that is no longer positive definite) is reported
        # as "Expected parameter ... but found invalid values"; a failed Cholesky raises
        # LinAlgError. Both are divergences of the optimisation; other ValueErrors are bugs.
        message = str(err)
        if isinstance(err, torch.linalg.LinAlgError) or "found invalid values" in message:
            for p in pyro.get_param_store().values():
                if p.unconstrained().grad is not None:
                    p.unconstrained().grad = None
            raise DivergenceError(step, float("nan"), message.splitlines()[0]) from err
        raise
    params = {site["value"].unconstrained() for site in param_capture.trace.nodes.values()}
    loss = float(loss)
    detail = ""
    if math.isfinite(loss):
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            store = pyro.get_param_store()
            bad = sorted(store.param_name(p) or "?" for p in params
                         if p.grad is not None and not torch.isfinite(p.grad).all())
            detail = f"non-finite gradient for {bad}"
    if not math.isfinite(loss) or detail:
        zero_grads(params)
        raise DivergenceError(step, loss, detail)
    svi.optim(params)
    zero_grads(params)
    if is_scheduler(svi.optim):
        svi.optim.step()
    return loss


def _draw_posterior(model: Callable[..., Any], guide: Callable[..., Any],
                    kwargs: Mapping[str, Any], latent: Sequence[str],
                    deterministic: Sequence[str], num_draws: int) -> dict[str, np.ndarray]:
    """``num_draws`` joint draws shaped (1, draws, ...): latents from the guide, then
    deterministic sites from the model conditioned on each draw.

    Latent draws run only the *guide* under a vectorised particle plate
    (``pyro.infer.Predictive(guide, parallel=True)``); the model is not run over all draws at
    once because models broadcast over leading batch dims by the zoo's own convention, which
    need not agree with Pyro's padding of particle dims. Deterministic sites (when asked for)
    are computed by ``Predictive(model, posterior_samples=...)`` one draw at a time.
    """
    ref = _model_trace(model, kwargs)
    shapes = {s: tuple(ref.nodes[s]["value"].shape) for s in list(latent) + list(deterministic)}
    pieces: dict[str, list[torch.Tensor]] = {s: [] for s in latent}
    parallel = True
    done = 0
    while done < num_draws and latent:
        n = min(_DRAW_CHUNK, num_draws - done)
        try:
            with torch.no_grad():
                out = Predictive(guide, num_samples=n, parallel=parallel,
                                 return_sites=list(latent))(**kwargs)
        except (RuntimeError, ValueError, IndexError) as err:
            if not parallel:
                raise
            warnings.warn(f"vectorised guide draws failed ({type(err).__name__}: {err}); "
                          "drawing one at a time", RuntimeWarning, stacklevel=3)
            parallel = False
            continue
        missing = [s for s in latent if s not in out]
        if missing:
            raise ValueError(f"the guide does not sample the model's latent site(s) {missing}; "
                             "a guide must cover every latent site of the model")
        for s in latent:
            value = out[s].detach()
            # Predictive pads the draw dimension with singleton plate dims: drop them
            if value.numel() == n * math.prod(shapes[s]):
                value = value.reshape((n,) + shapes[s])
            pieces[s].append(value)
        done += n
    draws = {s: torch.cat(v) for s, v in pieces.items()}
    if deterministic:
        with torch.no_grad():
            det = Predictive(model, posterior_samples=draws, parallel=False,
                             return_sites=list(deterministic))(**kwargs)
        for s in deterministic:
            value = det[s].detach()
            if value.numel() == num_draws * math.prod(shapes[s]):
                value = value.reshape((num_draws,) + shapes[s])
            draws[s] = value
    return {s: v.cpu().numpy()[None] for s, v in draws.items()}


def _guide_params(post_guide: Callable[..., Any]) -> dict[str, np.ndarray]:
    store = pyro.get_param_store()
    params = {name: store[name].detach().cpu().numpy() for name in store.keys()}
    if isinstance(post_guide, torch.nn.Module):  # e.g. the Laplace Gaussian's buffers
        for name, buf in post_guide.named_buffers():
            params[f"{type(post_guide).__name__}.{name}"] = buf.detach().cpu().numpy()
    return params


# ------------------------------------------------------------------------ driver
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
) -> InferenceResult:
    """Fit ``guide`` to ``model(**model_kwargs)`` by SVI; return draws, losses and the guide.

    Arguments beyond the shared driver signature (see the project brief):

    * ``guide_options`` -- passed to :func:`inference.guides.make_guide` (``rank``,
      ``init_scale``, ``num_flows``, ``flow``, ``hidden_dim``, ``init_loc_fn``);
    * ``max_plate_nesting`` -- given to the ELBO (default: read off one model and one guide
      trace before training, as Pyro's ELBO would guess it).

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
    restricted to ``posterior_sites`` when given, shaped (1, draws, ...).
    """
    # ---- argument checks (before any state is touched)
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
    dev = _resolve_device(device)
    anneal = KLAnnealing.from_config(kl_anneal) if kl_anneal is not None else None
    elbo_obj = make_elbo(elbo, num_particles=num_particles,
                         vectorize_particles=vectorize_particles, renyi_alpha=renyi_alpha,
                         max_plate_nesting=(float("inf") if max_plate_nesting is None
                                            else max_plate_nesting))
    optim = make_optimizer(optimizer, lr=lr, lr_schedule=lr_schedule, clip_norm=clip_norm,
                           num_steps=num_steps)
    kwargs = _to_device(model_kwargs, dev)
    val_kwargs = _to_device(validation_kwargs, dev) if validation_kwargs is not None else None

    # a device context makes factory functions in models/guides default to ``dev``; it costs a
    # Python hook on every torch call, so it is used only off the CPU
    with (torch.device(dev) if dev.type != "cpu" else contextlib.nullcontext()):
        ref_trace = _model_trace(model, kwargs)
        latent, deterministic = latent_and_deterministic_sites(model, kwargs, ref_trace)
        keep = list(latent) + list(deterministic)
        if posterior_sites is not None:
            unknown = sorted(set(posterior_sites) - set(keep))
            if unknown:
                raise ValueError(f"posterior_sites {unknown} are not latent or deterministic "
                                 f"sites of the model; available: {keep}")
            keep = list(posterior_sites)
        pyro.clear_param_store()
        guide_obj = make_guide(guide, model, **dict(guide_options or {}))
        train_kwargs = dict(kwargs)
        if batch_size is not None:
            _check_minibatch(model, guide_obj, kwargs, batch_size)
            train_kwargs["subsample_size"] = batch_size
        pyro.set_rng_seed(seed)
        # create every parameter (and its constraint) by running the guide once; a resumed
        # run does the same so that the restored values land in identically built parameters
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(guide_obj).get_trace(**train_kwargs)
        if max_plate_nesting is None:
            # fix it now: with vectorised particles Pyro would otherwise guess it at the first
            # step by running model and guide once, consuming random numbers after a resume
            elbo_obj = make_elbo(elbo, num_particles=num_particles,
                                 vectorize_particles=vectorize_particles, renyi_alpha=renyi_alpha,
                                 max_plate_nesting=_plate_nesting(ref_trace, guide_trace))
        train_model = anneal.wrap(model) if anneal else model
        train_guide = anneal.wrap(guide_obj) if anneal else guide_obj
        svi = SVI(train_model, train_guide, optim, loss=elbo_obj)

        losses: list[float] = []
        start = 0
        es: dict[str, Any] = {"best_value": math.inf, "best_step": -1, "bad_evals": 0,
                              "stopped_early": False, "val_history": [], "best_params": {}}
        if resume and checkpoint_path is not None and os.path.exists(checkpoint_path):
            state = load_checkpoint(checkpoint_path)
            restore_params(state["params"])
            optim.set_state(state["optim"])
            set_rng(state["rng"])
            start = int(state["step"])
            losses = [float(x) for x in state["loss_history"].tolist()]
            es.update(state["extra"])
        checkpointer = _Checkpointer(checkpoint_path, optim)

        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        smoothed = None
        with tqdm(total=num_steps, initial=start, disable=not progress_bar,
                  desc="svi", dynamic_ncols=True) as bar:
            for step in range(start, num_steps):
                if es["stopped_early"]:
                    break
                if anneal:
                    anneal.set_step(step)
                try:
                    loss = _guarded_step(svi, step, train_kwargs)
                except DivergenceError:
                    checkpointer.save(step, losses, es)
                    raise
                losses.append(loss)
                smoothed = loss if smoothed is None else 0.9 * smoothed + 0.1 * loss
                if step % 10 == 0 or step == num_steps - 1:
                    bar.set_postfix_str(f"loss {smoothed:.4g}", refresh=False)
                bar.update(1)
                done = step + 1
                if val_kwargs is not None and done % eval_every == 0:
                    _evaluate(elbo_obj, model, guide_obj, val_kwargs, done, es, patience)
                if checkpoint_every is not None and done % checkpoint_every == 0:
                    checkpointer.save(done, losses, es)
        checkpointer.save(len(losses), losses, es)
        training_time = time.perf_counter() - t0
        if val_kwargs is not None and es["best_params"]:
            restore_params(es["best_params"])

        # ---- after training: posterior draws, log-likelihood, observed data
        t1 = time.perf_counter()
        post_guide = posterior_guide(guide_obj, kwargs)
        draws: dict[str, np.ndarray] = {}
        if num_posterior_draws > 0:
            draws = _draw_posterior(model, post_guide, kwargs, latent,
                                    [s for s in deterministic if s in keep],
                                    num_posterior_draws)
        draw_time = time.perf_counter() - t1
        loglik, observed = None, None
        t2 = time.perf_counter()
        if log_likelihood and draws:
            loglik = pointwise_log_likelihood(model, {s: draws[s] for s in latent}, kwargs)
            observed = observed_data(model, kwargs) or None
        loglik_time = time.perf_counter() - t2

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
        "early_stopping": ({"best_step": es["best_step"], "best_value": es["best_value"],
                            "stopped_early": es["stopped_early"],
                            "val_history": list(es["val_history"])}
                           if val_kwargs is not None else None),
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
        "checkpoint_every": checkpoint_every, "resumed_from_step": start if resume else None,
        "device": str(dev), "num_posterior_draws": num_posterior_draws,
        "posterior_sites": list(posterior_sites) if posterior_sites is not None else None,
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
        guide_params=_guide_params(post_guide),
        fitted={"guide": post_guide, "model": model, "elbo": elbo_obj,
                "trained_guide": guide_obj, "optimizer": optim},
    )


def _evaluate(elbo_obj: Any, model: Callable[..., Any], guide: Callable[..., Any],
              val_kwargs: Mapping[str, Any], done: int, es: dict[str, Any],
              patience: int | None) -> None:
    """Validation ELBO (loss) on ``val_kwargs``; update the early-stopping record ``es``.

    The RNG state is saved and restored around the evaluation so that validating does not
    change the training trajectory.
    """
    rng = get_rng()
    try:
        with torch.no_grad():
            value = float(elbo_obj.loss(model, guide, **val_kwargs))
    finally:
        set_rng(rng)
    es["val_history"] = list(es["val_history"]) + [[done, value]]
    if value < es["best_value"]:
        es.update(best_value=value, best_step=done, bad_evals=0, best_params=snapshot_params())
    else:
        es["bad_evals"] = int(es["bad_evals"]) + 1
        if patience is not None and es["bad_evals"] >= patience:
            es["stopped_early"] = True
