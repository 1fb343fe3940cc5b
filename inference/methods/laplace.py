"""Laplace approximations as registered methods of the ``laplace`` family.

``laplace``: a mode of the model's potential found with Adam (mini-batches scaled by its data
plate), then ``N(mode, H^-1)`` in unconstrained space with the exact Hessian ``H`` of the
full-data potential, diagonal (``structure="diag"``) or full. ``last_layer_laplace``: the
same mode, then a full-covariance Laplace over ``last_layer_sites`` only, every other site held
at the mode (Kristiadi, Hein and Hennig 2020); a model names its last layer in
``driver_defaults("laplace")`` (the BNN does). See :mod:`inference.laplace` for the curvature
and why it is not ``laplace-torch``'s. Kronecker-factored (KFAC) curvature is the method
``kfac_laplace`` (:mod:`inference.methods.kfac`), for models that offer their network as a
stack of linear layers.

Usage::

    from inference import methods
    result = methods.get("last_layer_laplace").run(
        target, {"last_layer_sites": ["w1", "b1"], "batch_size": 32}, seed=0)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from inference.methods.registry import Target, register
from inference.methods.settings import (MethodSettings, anything, choice, flag, integer, real)

__all__ = ["LaplaceSettings", "LastLayerLaplaceSettings"]


@dataclass(frozen=True)
class LaplaceSettings(MethodSettings):
    """Settings of the Laplace approximation over every latent site."""

    num_steps: int = integer(2000, minimum=1, help="Adam steps to the mode")
    lr: float = real(1e-2, minimum=0.0, exclusive=True, help="Adam rate (per-datum loss)")
    batch_size: int | None = integer(None, minimum=1, optional=True,
                                     help="mini-batch size while finding the mode")
    structure: str = choice("diag", ("diag", "full"), help="Hessian kept: diagonal or full")
    num_posterior_draws: int = integer(200, minimum=1, help="draws from the Gaussian")
    min_precision: float = real(1e-6, minimum=0.0, exclusive=True,
                                help="floor of Hessian entries / eigenvalues")
    max_dim: int = integer(5000, minimum=1, help="largest parameter count for the exact "
                                                 "Hessian")
    init: str = choice("prior", ("prior", "median"), help="start: a prior draw or the median")
    log_likelihood: bool = flag(False, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(False, help="show a progress bar")


@dataclass(frozen=True)
class LastLayerLaplaceSettings(LaplaceSettings):
    """Settings of the last-layer Laplace approximation."""

    structure: str = choice("full", ("diag", "full"), help="Hessian kept: diagonal or full")
    last_layer_sites: Any = anything(None, help="the latent sites of the last layer "
                                                "(default: the model's own)")

    def check(self) -> str | None:
        sites = self.last_layer_sites
        if sites is not None and (isinstance(sites, str) or not all(
                isinstance(s, str) for s in sites)):
            return f"last_layer_sites must be a list of site names, got {sites!r}"
        return None


def _needs(settings: MethodSettings) -> Iterable[str]:
    return ("minibatch",) if getattr(settings, "batch_size", None) is not None else ()


_NEEDS = ("continuous_latents", "differentiable_density", "no_learned_parameters",
          "full_batch")


def _run(target: Target, settings: MethodSettings, seed: int, name: str,
         sites: list[str] | None) -> Any:
    from inference.laplace import hessian, laplace_draws
    from inference.optimize import minimize
    from inference.potential import Potential, result_from_draws

    t0 = time.perf_counter()
    full = Potential(target.model, target.model_kwargs, batch_size=settings.batch_size)
    z_map, losses = minimize(full, full.initial(seed, settings.init), optimizer="adam",
                             lr=settings.lr, num_steps=settings.num_steps,
                             progress_bar=settings.progress_bar, desc=name)
    fit_time = time.perf_counter() - t0
    potential = full
    if sites is not None:
        mode = {k: torch.as_tensor(v[0, 0]) for k, v in full.constrain(
            z_map[None, None]).items()}
        potential = Potential(target.model, target.model_kwargs, sites=tuple(sites),
                              fixed={k: v for k, v in mode.items() if k not in sites})
        z_map = potential.unconstrain(mode)
    t1 = time.perf_counter()
    precision = hessian(potential, z_map, diagonal_only=settings.structure == "diag",
                        max_dim=settings.max_dim)
    draws, info = laplace_draws(z_map, precision, settings.structure,
                                settings.num_posterior_draws,
                                torch.Generator().manual_seed(seed), settings.min_precision)
    curvature_time = time.perf_counter() - t1
    if info["floored"]:
        import warnings

        warnings.warn(f"{name}: {int(info['floored'])} Hessian "
                      f"{'entries' if settings.structure == 'diag' else 'eigenvalues'} were "
                      f"below min_precision={settings.min_precision} (not at a mode yet?) and "
                      "were floored", RuntimeWarning, stacklevel=2)
    return result_from_draws(
        potential, draws.to(torch.get_default_dtype()).unsqueeze(0), method=name,
        family="laplace", seed=seed,
        settings={**settings.as_dict(), "last_layer_sites": sites, **info,
                  "final_loss": float(losses[-max(1, len(losses) // 20):].mean())},
        timings={"fit": fit_time, "curvature": curvature_time,
                 "per_step": fit_time / settings.num_steps},
        log_likelihood=settings.log_likelihood)


@register("laplace", family="laplace", settings=LaplaceSettings, needs=_NEEDS,
          extra_needs=_needs,
          description="Laplace approximation at a mode: exact diagonal or full Hessian of "
                      "the model's log joint")
def run_laplace(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Mode by Adam, then the Laplace approximation over every latent site."""
    return _run(target, settings, seed, "laplace", None)


@register("last_layer_laplace", family="laplace", settings=LastLayerLaplaceSettings,
          needs=_NEEDS, extra_needs=_needs,
          description="last-layer Laplace: full-covariance Laplace over the last layer's "
                      "sites, the rest at the mode (Kristiadi et al. 2020)")
def run_last_layer_laplace(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Mode by Adam, then a Laplace approximation over ``last_layer_sites`` only."""
    if not settings.last_layer_sites:
        raise ValueError(f"last_layer_laplace needs last_layer_sites: model {target.name!r} "
                         "names none (give --set last_layer_sites=[...])")
    return _run(target, settings, seed, "last_layer_laplace", list(settings.last_layer_sites))
