"""Pathfinder as a registered method (family ``vi``): single- and multi-path.

``num_paths = 1`` is single-path Pathfinder (its draws are the best normal's own unless
``psis_resample``); more paths pool their draws and resample them by PSIS weights
(:mod:`inference.pathfinder`). The result carries ``psis_khat``, the L-BFGS cost
(``grad_evals``) and the density evaluations of the ELBO estimates and draws, and a Pyro guide
for the model (``fitted["guide"]``: the mixture of the paths' normals pushed through the
constraining transforms) for PSIS diagnostics and predictive checks.

Usage::

    from inference import methods
    result = methods.get("pathfinder").run(methods.Target(model, {"y": y}),
                                           {"num_paths": 4, "num_posterior_draws": 1000}, seed=0)
    result.posterior["beta"].shape, result.settings["psis_khat"], result.settings["grad_evals"]
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, flag, integer, real

__all__ = ["PathfinderSettings"]


@dataclass(frozen=True)
class PathfinderSettings(MethodSettings):
    """Settings of Pathfinder (defaults are Stan's, except 25 ELBO draws as Stan's too)."""

    num_paths: int = integer(4, minimum=1, help="independent L-BFGS paths (1: single-path)")
    num_posterior_draws: int = integer(1000, minimum=1, help="draws returned")
    draws_per_path: int = integer(1000, minimum=1, help="draws from each path's normal")
    psis_resample: bool = flag(True, help="importance-resample the pooled draws with PSIS")
    history_size: int = integer(6, minimum=1, help="L-BFGS curvature pairs kept")
    num_steps: int = integer(1000, minimum=1, help="most L-BFGS iterations per path (a "
                                                    "budget caps it like SVI's num_steps)")
    num_elbo_draws: int = integer(25, minimum=2, help="draws per ELBO estimate along the path")
    init_radius: float = real(2.0, minimum=0.0, exclusive=True,
                              help="paths start uniform in (-r, r) (unconstrained)")
    log_likelihood: bool = flag(True, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(False, help="accepted for the CLI; Pathfinder shows none")


@register("pathfinder", family="vi", settings=PathfinderSettings,
          needs=("continuous_latents", "differentiable_density", "no_learned_parameters",
                 "full_batch"),
          description="Pathfinder (Zhang et al. 2022): normal approximations along L-BFGS "
                      "paths, the best by ELBO; several paths pooled by PSIS resampling")
def run_pathfinder(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Run :func:`inference.pathfinder.multi_path` on the model's flat density."""
    from inference.flat import FlatDensity, posterior_from_flat
    from inference.pathfinder import multi_path
    from inference.result import InferenceResult

    values = settings.as_dict()
    t0 = time.perf_counter()
    density = FlatDensity.build(target.model, target.model_kwargs, seed=seed)
    fit = multi_path(density, num_paths=values["num_paths"],
                     num_draws=values["num_posterior_draws"],
                     draws_per_path=values["draws_per_path"],
                     psis_resample=values["psis_resample"],
                     history_size=values["history_size"], max_iters=values["num_steps"],
                     num_elbo_draws=values["num_elbo_draws"],
                     init_radius=values["init_radius"], seed=seed)
    fit_time = time.perf_counter() - t0
    if fit.khat is not None and fit.khat > 0.7:
        warnings.warn(f"Pathfinder's PSIS k-hat is {fit.khat:.2f} (> 0.7): the pooled "
                      "normals are a poor importance proposal; the draws may be biased",
                      RuntimeWarning, stacklevel=2)
    t1 = time.perf_counter()
    posterior, loglik, observed = posterior_from_flat(density, fit.draws,
                                                      log_likelihood=values["log_likelihood"])
    record = {
        **{k: v for k, v in values.items() if k != "progress_bar"},
        "psis_khat": fit.khat,
        "grad_evals": int(fit.grad_evals),
        "density_evals": int(fit.density_evals),
        "failed_paths": int(fit.failed_paths),
        "paths": [{"lbfgs_iters": q.lbfgs.num_iters, "lbfgs_converged": q.lbfgs.converged,
                   "lbfgs_message": q.lbfgs.message, "best_iter": q.best_iter,
                   "elbo": q.elbo} for q in fit.paths],
        "converged": all(q.lbfgs.converged for q in fit.paths),
    }
    return InferenceResult(
        method="pathfinder",
        posterior=posterior,
        timings={"training": fit_time, "posterior_draws": time.perf_counter() - t1},
        settings=record,
        seed=seed,
        log_likelihood=loglik,
        observed_data=observed,
        loss_history=np.asarray([-q.elbo for q in fit.paths], dtype=float),
        fitted={"guide": density.guide(fit.proposal), "model": target.model,
                "density": density, "pathfinder": fit},
    )
