"""Kronecker-factored Laplace (Ritter, Botev and Barber 2018) as the method ``kfac_laplace``.

A mode of the model's potential found with Adam (mini-batches scaled by its data plate), as in
``laplace``; then the network's weights get the KFAC Laplace approximation of
:mod:`inference.kfac` (exact-GGN Kronecker factors per linear layer, the model's Gaussian
prior precision added), and every other latent site (a regression's noise precision) a
full-covariance Laplace approximation with the exact Hessian of the full-data potential, the
weights held at the mode: the posterior covariance is block-diagonal, one block per layer and
one for the rest. The layer structure comes from the model (``ZooModel.network_view``, the
capability ``layered_network``); this file knows nothing of particular models.

Usage::

    from inference import methods
    result = methods.get("kfac_laplace").run(target, {"batch_size": 32}, seed=0)
    result.posterior["w0"].shape      # (1, 200, in, out), like every other method's draws
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, choice, flag, integer, real

__all__ = ["KfacLaplaceSettings"]


@dataclass(frozen=True)
class KfacLaplaceSettings(MethodSettings):
    """Settings of the Kronecker-factored Laplace approximation."""

    num_steps: int = integer(2000, minimum=1, help="Adam steps to the mode")
    lr: float = real(1e-2, minimum=0.0, exclusive=True, help="Adam rate (per-datum loss)")
    batch_size: int | None = integer(None, minimum=1, optional=True,
                                     help="mini-batch size while finding the mode")
    num_posterior_draws: int = integer(200, minimum=1, help="draws from the Gaussian")
    chunk_size: int = integer(1024, minimum=1, help="data rows per pass of the curvature")
    curvature_points: int | None = integer(None, minimum=1, optional=True,
                                           help="rows the Kronecker factors are estimated "
                                                "from (default: all), scaled to the data")
    min_precision: float = real(1e-6, minimum=0.0, exclusive=True,
                                help="floor of the other sites' Hessian eigenvalues")
    init: str = choice("prior", ("prior", "median"), help="start: a prior draw or the median")
    log_likelihood: bool = flag(False, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(False, help="show a progress bar")


def _needs(settings: MethodSettings) -> Iterable[str]:
    return ("minibatch",) if getattr(settings, "batch_size", None) is not None else ("full_batch",)


@register("kfac_laplace", family="laplace", settings=KfacLaplaceSettings,
          needs=("continuous_latents", "differentiable_density", "no_learned_parameters",
                 "layered_network"),
          extra_needs=_needs,
          description="Kronecker-factored Laplace of a network of linear layers (exact-GGN "
                      "KFAC, Ritter et al. 2018); other latents by an exact Hessian")
def run_kfac_laplace(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Mode by Adam, then KFAC over the network's layers and a full Laplace over the rest."""
    from inference.kfac import kron_draws, kron_factors
    from inference.laplace import hessian, laplace_draws
    from inference.optimize import minimize
    from inference.potential import Potential, result_from_draws

    view = target.network
    if view is None:
        raise ValueError(f"kfac_laplace needs the network of model {target.name!r} as a stack "
                         "of linear layers (Target.network, from ZooModel.network_view); this "
                         "model or configuration offers none (for a BNN: an MLP with the "
                         "'normal' prior and a homoscedastic or categorical likelihood)")
    t0 = time.perf_counter()
    full = Potential(target.model, target.model_kwargs, batch_size=settings.batch_size)
    names = [b.name for b in full.blocks]
    unknown = sorted(set(view.site_names) - set(names))
    if unknown:
        raise ValueError(f"the network view names sites {unknown} that are not latent sites "
                         f"of model {target.name!r} (its latent sites: {names})")
    z_map, losses = minimize(full, full.initial(seed, settings.init), optimizer="adam",
                             lr=settings.lr, num_steps=settings.num_steps,
                             progress_bar=settings.progress_bar, desc="kfac_laplace")
    fit_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    mode = {k: torch.as_tensor(v[0, 0]) for k, v in full.constrain(z_map[None, None]).items()}
    x = torch.as_tensor(target.model_kwargs[view.inputs])
    gen = torch.Generator().manual_seed(seed)
    factors = kron_factors(view, mode, x, chunk_size=settings.chunk_size,
                           max_rows=settings.curvature_points, generator=gen)
    num = settings.num_posterior_draws
    net_draws, log_det_cov = kron_draws(view, mode, factors, num, gen)
    unconstrained: dict[str, torch.Tensor] = {
        b.name: b.transform.inv(net_draws[b.name]) for b in full.blocks if b.name in net_draws}
    rest = [n for n in names if n not in net_draws]
    floored = 0.0
    if rest:  # the noise precision and any other latent: exact Hessian, weights at the mode
        other = Potential(target.model, target.model_kwargs, sites=tuple(rest),
                          fixed={k: v for k, v in mode.items() if k in net_draws})
        z_rest = other.unconstrain(mode)
        draws, info = laplace_draws(z_rest, hessian(other, z_rest), "full", num, gen,
                                    settings.min_precision)
        unconstrained.update(other.unpack(draws))
        floored, log_det_cov = info["floored"], log_det_cov + info["log_det_cov"]
        if floored:
            warnings.warn(f"kfac_laplace: {int(floored)} Hessian eigenvalues of sites {rest} "
                          f"were below min_precision={settings.min_precision} (not at a mode "
                          "yet?) and were floored", RuntimeWarning, stacklevel=2)
    z = torch.cat([unconstrained[b.name].reshape(num, b.size) for b in full.blocks], -1)
    curvature_time = time.perf_counter() - t1
    return result_from_draws(
        full, z.to(torch.get_default_dtype()).unsqueeze(0), method="kfac_laplace",
        family="laplace", seed=seed,
        settings={**settings.as_dict(), "floored": floored, "log_det_cov": log_det_cov,
                  "final_loss": float(losses[-max(1, len(losses) // 20):].mean())},
        timings={"fit": fit_time, "curvature": curvature_time,
                 "per_step": fit_time / settings.num_steps},
        log_likelihood=settings.log_likelihood)
