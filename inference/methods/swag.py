"""SWAG (Maddox et al. 2019) as a registered method (family ``laplace``: a Gaussian
approximation, fitted to SGD iterates rather than a curvature).

Pre-training on the model's per-datum potential (mini-batches scaled by its data plate; Adam by
default, as a prior draw of a net's weights is far from any mode and plain SGD from there
diverges) for the first ``swa_start`` fraction of ``num_steps``; then SGD with momentum at the
constant rate ``swa_lr``, every ``collect_every``-th iterate updating the SWAG moments
(:class:`inference.swag.SWAGMoments`); the draws come from the fitted Gaussian (diagonal plus
low-rank, or diagonal only) in the unconstrained space of the latent sites.

Usage::

    from inference import methods
    result = methods.get("swag").run(target, {"batch_size": 32, "num_steps": 4000}, seed=0)

From the command line: ``zoo fit bnn --method swag --set batch_size=32 --out runs/swag``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, choice, flag, integer, real

__all__ = ["SWAGSettings"]


@dataclass(frozen=True)
class SWAGSettings(MethodSettings):
    """Settings of SWAG."""

    num_steps: int = integer(2000, minimum=1, help="SGD steps in all")
    pretrain_optimizer: str = choice("adam", ("adam", "sgd"),
                                     help="optimiser before swa_start (sgd: with momentum)")
    lr: float = real(1e-2, minimum=0.0, exclusive=True, help="rate before swa_start "
                                                              "(on the per-datum potential)")
    swa_lr: float = real(1e-2, minimum=0.0, exclusive=True, help="constant SGD rate while "
                                                                  "collecting")
    momentum: float = real(0.9, minimum=0.0, maximum=1.0, help="SGD momentum")
    swa_start: float = real(0.5, minimum=0.0, maximum=0.99,
                            help="fraction of the steps before collecting starts")
    collect_every: int = integer(10, minimum=1, help="steps between collected iterates")
    rank: int = integer(20, minimum=0, help="rank of the low-rank part (0: diagonal only)")
    covariance: str = choice("lowrank", ("lowrank", "diag"),
                             help="diagonal plus low-rank, or diagonal only")
    batch_size: int | None = integer(None, minimum=1, optional=True,
                                     help="mini-batch size (None: the whole data set)")
    num_posterior_draws: int = integer(100, minimum=1, help="draws from the fitted Gaussian")
    init: str = choice("prior", ("prior", "median"), help="start: a prior draw or the median")
    log_likelihood: bool = flag(False, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(False, help="show a progress bar")


def _needs(settings: MethodSettings) -> Iterable[str]:
    return ("minibatch",) if getattr(settings, "batch_size", None) is not None else ()


@register("swag", family="laplace", settings=SWAGSettings,
          needs=("continuous_latents", "differentiable_density", "no_learned_parameters"),
          extra_needs=_needs,
          description="SWAG: Gaussian of SGD iterates, diagonal plus low-rank "
                      "(Maddox et al. 2019)")
def run_swag(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Run SGD, collect the SWAG moments, draw from the fitted Gaussian."""
    from inference.optimize import minimize
    from inference.potential import Potential, result_from_draws
    from inference.swag import SWAGMoments

    potential = Potential(target.model, target.model_kwargs, batch_size=settings.batch_size)
    start = int(settings.swa_start * settings.num_steps)
    swag = SWAGMoments(potential.dim, rank=settings.rank)

    def collect(t: int, z: torch.Tensor) -> None:
        if t >= start and (t - start + 1) % settings.collect_every == 0:
            swag.update(z)

    t0 = time.perf_counter()
    z_start, losses = potential.initial(seed, settings.init), np.zeros(0)
    if start:
        z_start, losses = minimize(potential, z_start, optimizer=settings.pretrain_optimizer,
                                   lr=settings.lr, momentum=settings.momentum, num_steps=start,
                                   progress_bar=settings.progress_bar, desc="swag pre-training")
    z_last, swa_losses = minimize(
        potential, z_start, optimizer="sgd", lr=settings.swa_lr, momentum=settings.momentum,
        num_steps=settings.num_steps - start, on_step=lambda t, z: collect(t + start, z),
        progress_bar=settings.progress_bar, desc="swag collection")
    losses = np.concatenate([losses, swa_losses])
    if swag.count == 0:  # too few steps to collect: the last iterate alone
        swag.update(z_last)
    fit_time = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(seed)
    draws = swag.sample(settings.num_posterior_draws, gen,
                        low_rank=settings.covariance == "lowrank")
    z = draws.to(torch.get_default_dtype()).unsqueeze(0)
    return result_from_draws(
        potential, z, method="swag", family="laplace",
        settings={**settings.as_dict(), "iterates_collected": swag.count,
                  "final_loss": float(losses[-max(1, len(losses) // 20):].mean())},
        seed=seed, timings={"fit": fit_time, "per_step": fit_time / settings.num_steps},
        log_likelihood=settings.log_likelihood)
