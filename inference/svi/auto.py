"""SVI that needs no tuning: MAP and Hessian start, step-size search, convergence detection.

:func:`fit_svi_auto` fits an autoguide to a model in four stages, on the
:class:`~inference.svi.engine.SVIEngine`:

1. **Start at the Laplace approximation.** L-BFGS finds the MAP of the unconstrained log
   density (:mod:`inference.lbfgs`); the Hessian there gives the scales. The guide is fitted in
   whitened coordinates ``x = MAP + W z``: ``W`` is the diagonal ``1 / sqrt(diag precision)``
   for the mean-field and low-rank guides (so the family is unchanged and the mean-field
   optimum of a Gaussian target is exactly ``z ~ N(0, I)``), and the Cholesky factor of the
   inverse Hessian for the full-rank and flow guides (their start ``N(0, I)`` is then the
   Laplace approximation). Badly scaled posteriors (coefficient sds of 1e-3 next to 1e1) become
   unit-scaled, which is what a fixed Adam step size needs.
2. **Choose the step size** as Stan's ADVI does: a short run from the same start for each
   candidate, keeping the one with the best mean ELBO over the second half of its run.
3. **Run until stationary**: R-hat across windows of the parameter iterates, or no
   significant ELBO gain across the window (:mod:`inference.svi.convergence`), then average
   the iterates of the stationary window.
4. **Record** ``converged``, the steps, and every gradient evaluation (L-BFGS, Hessian,
   step-size trials, main run); a run that reaches ``max_steps`` unconverged warns.

Usage::

    from inference.svi.auto import fit_svi_auto
    result = fit_svi_auto(model, {"x": x, "y": y}, guide="auto_normal", seed=0)
    result.settings["converged"], result.settings["grad_evals"], result.posterior["beta"]
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.infer.autoguide as ag
import torch
from pyro.distributions.transforms import LowerCholeskyAffine
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide.initialization import init_to_value

from inference.errors import DivergenceError
from inference.flat import FlatDensity, InDefaultDtype, posterior_from_flat
from inference.guides import make_guide
from inference.lbfgs import LBFGSPath, lbfgs_path
from inference.pathfinder import single_path
from inference.result import InferenceResult
from inference.schedules import make_optimizer
from inference.svi.convergence import StationarityDetector
from inference.svi.engine import SVIEngine

__all__ = ["fit_svi_auto", "AUTO_GUIDES", "DEFAULT_LRS"]

#: guides the untuned path fits, and how each is whitened ("diag" or "full")
AUTO_GUIDES: dict[str, str] = {"auto_normal": "diag", "auto_diagonal_normal": "diag",
                               "auto_lowrank_mvn": "diag", "auto_mvn": "full",
                               "auto_iaf": "full"}
#: step sizes tried, in the whitened coordinates where the posterior has unit scale
DEFAULT_LRS: tuple[float, ...] = (0.1, 0.03, 0.01, 0.003)


def _laplace(density: FlatDensity, path: LBFGSPath) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """MAP (the path's last iterate) and precision (negative Hessian, eigenvalues floored to
    stay positive definite; ``hessian_eigenvalues_floored`` counts them)."""
    x_map = path.xs[-1]
    precision = -density.hessian(x_map)
    evals, evecs = torch.linalg.eigh(precision)
    floor = max(float(evals.abs().max()) * 1e-10, 1e-12)
    clipped = int((evals < floor).sum())
    precision = (evecs * evals.clamp(min=floor)) @ evecs.T
    info = {"lbfgs_iters": path.num_iters, "lbfgs_converged": path.converged,
            "lbfgs_message": path.message, "map_log_density": float(path.log_probs[-1]),
            "hessian_eigenvalues_floored": clipped}
    return x_map, 0.5 * (precision + precision.T), info


def _gaussian_elbo(density: FlatDensity, loc: torch.Tensor, precision: torch.Tensor,
                   num_draws: int, generator: torch.Generator) -> float:
    """Monte Carlo ELBO of ``N(loc, precision^-1)`` under the density (``-inf`` if not finite)."""
    q = torch.distributions.MultivariateNormal(loc, precision_matrix=precision)
    eps = torch.randn(num_draws, loc.shape[-1], generator=generator, dtype=loc.dtype)
    draws = loc + eps @ q.scale_tril.T
    with torch.no_grad():
        elbo = float((density.log_prob_batch(draws) - q.log_prob(draws)).mean())
    return elbo if math.isfinite(elbo) else -math.inf


def _start(density: FlatDensity, max_iters: int, seed: int, num_elbo_draws: int = 200
           ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The Gaussian the fit starts from: the Laplace approximation at the L-BFGS MAP when it is
    proper, else the best Pathfinder approximation along the same L-BFGS path.

    On a funnel (centred eight schools) the density is unbounded, the "MAP" lies in the neck
    (log tau -> -inf) with a degenerate Hessian there (eigenvalues floored), and a start in the
    neck never leaves it; Pathfinder's best-ELBO approximation is a Gaussian over the bulk
    instead (its Figure 1). Where the Laplace approximation is proper it is kept even when
    Pathfinder's normal has the higher ELBO: its whitening is exact at the mode, while the
    L-BFGS curvature estimate is rough, and fits started from it stopped short of the optimum
    (non-centred eight schools, full-rank: |z| 0.26-1.18 over three seeds against 0.07).
    Both ELBOs are recorded. Returns ``(loc, precision, info)``; ``info["start"]`` names it.
    """
    generator = torch.Generator().manual_seed(int(seed))
    try:
        approx = single_path(density, density.initial_point(), generator=generator,
                             max_iters=max_iters)
    except DivergenceError:  # no finite ELBO along the path: only the Laplace start remains
        approx = None
        path = lbfgs_path(density, density.initial_point(), max_iters=max_iters)
    else:
        path = approx.lbfgs
    x_map, precision, info = _laplace(density, path)
    laplace_elbo = -math.inf
    if info["hessian_eigenvalues_floored"] == 0:  # a proper mode: the Laplace start is defined
        laplace_elbo = _gaussian_elbo(density, x_map, precision, num_elbo_draws, generator)
    path_elbo = -math.inf
    if approx is not None:
        path_precision = torch.cholesky_inverse(approx.scale_tril)
        path_precision = 0.5 * (path_precision + path_precision.T)
        path_elbo = _gaussian_elbo(density, approx.loc, path_precision, num_elbo_draws,
                                   generator)
    info.update({"laplace_elbo": laplace_elbo, "pathfinder_elbo": path_elbo})
    if not math.isfinite(laplace_elbo) and path_elbo > laplace_elbo:
        info["start"] = "pathfinder"
        return approx.loc, path_precision, info
    if not math.isfinite(laplace_elbo):  # neither start has a finite ELBO: the floored Laplace
        info["start"] = "laplace (degenerate)"
    else:
        info["start"] = "laplace"
    return x_map, precision, info


def _whitening(precision: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "diag":
        return torch.diag(precision.diagonal().rsqrt())
    return torch.linalg.cholesky(torch.linalg.inv(precision))


def _whitened_model(density: FlatDensity, shift: torch.Tensor, w: torch.Tensor
                    ) -> Callable[[], None]:
    """A model over ``z`` with density ``p(shift + W z) |W|`` (the same ELBO as the original)."""
    log_det = float(torch.log(w.diagonal().abs()).sum())
    d = density.dim
    # a standard normal site whose density the factor takes back out: the model's density
    # is p(shift + W z) |W| exactly, and guides that initialise from the prior (AutoIAFNormal)
    # can draw from it (an ImproperUniform cannot be sampled)
    base = dist.Normal(torch.zeros(d, dtype=shift.dtype),
                       torch.ones(d, dtype=shift.dtype)).to_event(1)

    def whitened() -> None:
        z = pyro.sample("z", base)
        pyro.factor("log_density",
                    density.log_prob(shift + z @ w.T) + log_det - base.log_prob(z))

    return whitened


def _build_engine(model: Callable, guide_name: str, d: int, dtype: torch.dtype, lr: float,
                  num_particles: int, guide_options: Mapping[str, Any], seed: int,
                  laplace_cov: torch.Tensor | None = None) -> SVIEngine:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    options = dict(guide_options)
    if guide_name in ("auto_normal", "auto_diagonal_normal", "auto_lowrank_mvn", "auto_mvn"):
        options.setdefault("init_scale", 1.0)
    init = init_to_value(values={"z": torch.zeros(d, dtype=dtype)})
    guide = make_guide(guide_name, model, init_loc_fn=init, **options)
    engine = SVIEngine(model, guide, Trace_ELBO(num_particles=num_particles,
                                                max_plate_nesting=0),
                       make_optimizer("adam", lr=lr), {})
    # guides build their networks lazily, at the first call, in torch's default dtype; the
    # density is float64 for the posteriordb ports, so the flow's weights must be too
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        engine.init()
    finally:
        torch.set_default_dtype(previous)
    if isinstance(guide, ag.AutoLowRankMultivariateNormal) and laplace_cov is not None:
        _init_low_rank(guide, laplace_cov)
    return engine


def _init_low_rank(guide: ag.AutoLowRankMultivariateNormal, cov: torch.Tensor) -> None:
    """Start a low-rank guide at the best rank-r-plus-isotropic fit to the Laplace covariance.

    Pyro's covariance is ``diag(s) (F F' + I) diag(s)``; with ``s = sqrt(delta)`` (``delta``
    the mean of the eigenvalues left out) and ``F = V_r sqrt(L_r / delta - 1)`` it equals
    ``V_r L_r V_r' + delta (I - V_r V_r')``: the top ``r`` eigenpairs exactly.
    """
    evals, evecs = torch.linalg.eigh(cov)
    r = int(guide.rank)
    top, vecs = evals[-r:], evecs[:, -r:]
    rest = evals[:-r]
    delta = float(rest.mean()) if rest.numel() else float(evals.min())
    delta = max(delta, 1e-12)
    factor = vecs * (top / delta - 1.0).clamp(min=0.0).sqrt()
    scale = torch.full_like(evals, delta ** 0.5)
    store = pyro.get_param_store()
    with torch.no_grad():
        for name, unconstrained in store.named_parameters():
            if name.endswith("cov_factor"):
                unconstrained.copy_(factor.to(unconstrained.dtype))
            elif name.endswith(".scale"):
                constraint = store._constraints[name]  # Pyro keeps no public accessor
                unconstrained.copy_(torch.distributions.transform_to(constraint).inv(
                    scale.to(unconstrained.dtype)))


def _flat_params() -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for _, p in
                      sorted(pyro.get_param_store().named_parameters())]).numpy().copy()


def _set_flat_params(values: np.ndarray) -> None:
    pos = 0
    with torch.no_grad():
        for _, p in sorted(pyro.get_param_store().named_parameters()):
            n = p.numel()
            p.copy_(torch.as_tensor(values[pos:pos + n], dtype=p.dtype).reshape(p.shape))
            pos += n


def _q_z(guide: Any) -> dist.TorchDistribution:
    """The guide's distribution over the whitened vector ``z``."""
    if isinstance(guide, ag.AutoNormal):
        return dist.Normal(guide.locs.z, guide.scales.z).to_event(1)
    return guide.get_posterior()


#: draws of the ELBO estimates that decide between the fitted and the starting guide
FINAL_ELBO_DRAWS = 2000


def _guide_elbo(guide: Any, log_density: Callable[[torch.Tensor], torch.Tensor], n: int,
                generator: torch.Generator) -> tuple[float, float]:
    """Monte Carlo ELBO of the guide's ``q(z)`` under ``log_density`` and its standard error."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        q = _q_z(guide)
        z = q.sample((n,))
        terms = log_density(z) - q.log_prob(z)
    if not bool(torch.isfinite(terms).all()):
        return -math.inf, math.inf
    return float(terms.mean()), float(terms.std() / math.sqrt(n))


def _safe_steps(engine: SVIEngine, n: int) -> list[float]:
    losses = []
    for _ in range(n):
        losses.append(engine.step())
    return losses


def fit_svi_auto(
    model: Callable[..., Any],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    guide: str = "auto_normal",
    guide_options: Mapping[str, Any] | None = None,
    num_particles: int = 1,
    lrs: Sequence[float] = DEFAULT_LRS,
    adapt_steps: int = 100,
    max_steps: int = 5000,
    window: int = 400,
    rhat_threshold: float = 1.1,
    map_max_iters: int = 1000,
    num_posterior_draws: int = 1000,
    log_likelihood: bool = True,
    time_limit_s: float | None = None,
    seed: int = 0,
) -> InferenceResult:
    """Fit ``guide`` to ``model(**model_kwargs)`` without tuning (see the module docstring).

    ``lrs`` are the Adam step sizes tried for ``adapt_steps`` steps each; the main run checks
    stationarity every ``window // 4`` steps over the last ``window`` iterates and stops at
    R-hat < ``rhat_threshold`` or after ``max_steps`` (then it warns and keeps the average of
    the last window). ``time_limit_s`` (a budget) ends the main run like ``max_steps`` does,
    counted from the start of the fit. A step size whose trial diverges is skipped; when all diverge,
    :class:`~inference.errors.DivergenceError`.

    Usage: ``fit_svi_auto(m.model, m.model_kwargs(data), guide="auto_mvn", seed=0)``.
    """
    if guide not in AUTO_GUIDES:
        raise ValueError(f"guide {guide!r} has no untuned path; choose one of "
                         f"{list(AUTO_GUIDES)} (or method 'svi' with fixed settings)")
    if not lrs or any(not (isinstance(v, (int, float)) and v > 0) for v in lrs):
        raise ValueError(f"lrs must be positive step sizes, got {lrs!r}")
    options = dict(guide_options or {})
    t0 = time.perf_counter()
    density = FlatDensity.build(model, model_kwargs, seed=seed)
    x_map, precision, init_info = _start(density, map_max_iters, seed)
    w = _whitening(precision, AUTO_GUIDES[guide])
    whitened = _whitened_model(density, x_map, w)
    log_det_w = float(torch.log(w.diagonal().abs()).sum())

    def whitened_log_prob(z: torch.Tensor) -> torch.Tensor:
        return density.log_prob_batch(x_map + z @ w.T) + log_det_w
    cov_w = torch.linalg.inv(w.T @ precision @ w)  # the Laplace covariance of z
    d, dtype = density.dim, density.dtype
    grad_evals = density.grad_evals  # L-BFGS and Hessian

    # ---- step size: a short trial from the same start per candidate (Stan's ADVI search);
    # a trial is never longer than the whole run may be
    adapt_steps = max(2, min(int(adapt_steps), int(max_steps)))
    trials: dict[float, float] = {}
    for lr in lrs:
        engine = _build_engine(whitened, guide, d, dtype, float(lr), num_particles, options,
                               seed, cov_w)
        try:
            losses = _safe_steps(engine, adapt_steps)
            trials[float(lr)] = -float(np.mean(losses[adapt_steps // 2:]))
        except DivergenceError:
            trials[float(lr)] = -math.inf
        grad_evals += engine.step_count * num_particles
    finite = {k: v for k, v in trials.items() if math.isfinite(v)}
    if not finite:
        raise DivergenceError(f"every step size diverged in its trial: {sorted(trials)}")
    best_lr = max(finite, key=lambda k: finite[k])

    # ---- main run until the iterates are stationary, then average them; then once more at a
    # tenth of the step size from that average (the step-size decrease of Welandawe et al.
    # 2022), which shrinks the optimiser's noise in the averaged scale parameters
    engine = _build_engine(whitened, guide, d, dtype, best_lr, num_particles, options, seed,
                           cov_w)
    start_params = _flat_params()
    stages: list[dict[str, Any]] = []
    detector = None
    deadline = math.inf if time_limit_s is None else t0 + float(time_limit_s)
    out_of_time = False
    for stage_lr in (best_lr, best_lr / 10.0):
        if engine.step_count >= max_steps or out_of_time:
            break
        for optim in engine.optim.optim_objs.values():
            for group in optim.param_groups:
                group["lr"] = stage_lr
        detector = StationarityDetector(window=window, threshold=rhat_threshold,
                                        check_every=max(1, window // 4))
        start = engine.step_count
        while engine.step_count < max_steps:
            loss = engine.step()
            if detector.update(_flat_params(), loss):
                break
            if time.perf_counter() > deadline:
                out_of_time = True
                break
        _set_flat_params(detector.average())
        stages.append({"lr": stage_lr, "steps": engine.step_count - start,
                       "converged": detector.converged, "converged_by": detector.reason,
                       "rhat": detector.rhat, "loss_z": detector.loss_z})
        if not detector.converged:
            break
    assert detector is not None
    # ---- never end worse than the start: on a near-Gaussian posterior the Laplace start is
    # already close to the optimum, and Adam's noise left in the averaged iterates can exceed
    # the start's error (full-rank on sblrc: |z| 0.26 against the start's 0.05). The final and
    # the starting guide are compared by a many-draw ELBO; with q close to p the estimate's
    # spread is small, so the comparison resolves differences of a hundredth of a nat.
    generator = torch.Generator().manual_seed(int(seed) + 1)
    final_params = _flat_params()
    final_elbo, final_se = _guide_elbo(engine.guide, whitened_log_prob, FINAL_ELBO_DRAWS,
                                       generator)
    _set_flat_params(start_params)
    start_elbo, start_se = _guide_elbo(engine.guide, whitened_log_prob, FINAL_ELBO_DRAWS,
                                       generator)
    kept = "start" if start_elbo > final_elbo else "fit"
    if kept == "fit":
        _set_flat_params(final_params)
    steps = engine.step_count
    grad_evals += steps * num_particles
    converged = all(stage["converged"] for stage in stages)
    fit_time = time.perf_counter() - t0
    if not converged:
        rhat = "not computed" if detector.rhat is None else f"{detector.rhat:.3g}"
        budget = f"{time_limit_s:g} s" if out_of_time else f"{max_steps} steps"
        warnings.warn(f"SVI ({guide}) did not converge in {budget}: largest "
                      f"R-hat of the parameter iterates {rhat} (threshold "
                      f"{rhat_threshold:g}); the average of the last {window} iterates is kept",
                      RuntimeWarning, stacklevel=2)

    # ---- draws: the guide's z pushed through x = MAP + W z, then constrained
    t1 = time.perf_counter()
    with torch.no_grad():
        q_x = InDefaultDtype(dist.TransformedDistribution(
            _q_z(engine.guide), [LowerCholeskyAffine(x_map, w)]), dtype)
        xs = q_x.sample((num_posterior_draws,)) if num_posterior_draws else None
    posterior, loglik, observed = ({}, None, None) if xs is None else posterior_from_flat(
        density, xs, log_likelihood=log_likelihood)
    draw_time = time.perf_counter() - t1
    settings = {
        "guide": guide, "guide_options": options, "num_particles": num_particles,
        "lrs": [float(v) for v in lrs], "adapt_steps": adapt_steps, "max_steps": max_steps,
        "window": window, "rhat_threshold": rhat_threshold,
        "num_posterior_draws": num_posterior_draws, "time_limit_s": time_limit_s,
        "out_of_time": out_of_time,
        "converged": bool(converged), "steps": int(steps), "steps_run": int(steps),
        "adapt_steps_total": int(adapt_steps * len(lrs)), "lr": best_lr,
        "lr_trial_elbos": {str(k): v for k, v in trials.items()},
        "grad_evals": int(grad_evals), "final_rhat": detector.rhat,
        "converged_by": detector.reason, "final_loss_z": detector.loss_z, "stages": stages,
        "rhat_history": detector.history, "whitening": AUTO_GUIDES[guide], **init_info,
        "final_elbo": final_elbo, "final_elbo_se": final_se, "start_elbo": start_elbo,
        "start_elbo_se": start_se, "kept": kept,
    }
    return InferenceResult(
        method="svi_auto",
        posterior=posterior,
        timings={"training": fit_time, "per_step": fit_time / max(1, steps),
                 "posterior_draws": draw_time},
        settings=settings,
        seed=seed,
        log_likelihood=loglik,
        observed_data=observed,
        loss_history=np.asarray(engine.losses, dtype=float),
        fitted={"guide": density.guide(q_x), "model": model, "trained_guide": engine.guide,
                "engine": engine, "density": density, "map": x_map, "whitening": w},
    )
