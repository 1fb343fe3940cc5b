"""Pathfinder (Zhang, Carpenter, Gelman and Vehtari 2022): Gaussian approximations along an
L-BFGS path, the best by ELBO, and multi-path importance resampling with PSIS.

One path: maximise the log density with L-BFGS from a random point (:mod:`inference.lbfgs`);
at every iterate ``x_l`` the L-BFGS curvature pairs give an inverse-Hessian estimate ``H_l``
and a normal approximation ``N(x_l + H_l grad log p(x_l), H_l)``; the one with the highest
Monte Carlo ELBO is the path's approximation. Several paths: pool each path's draws and
importance-resample them by PSIS-smoothed weights ``p / q`` (``arviz.psislw``), where ``q`` is
the equal mixture of the paths' normals; the Pareto k-hat of those weights is recorded.

Why by hand: no maintained Python library for PyTorch models offers Pathfinder (BlackJAX's is
for JAX, Stan's for Stan programs). The inverse-Hessian estimate is the dense BFGS recursion
over the last ``history_size`` pairs, started from the scalar ``s'y / y'y`` (the paper uses a
diagonal start and a low-rank-plus-diagonal factorisation; the dense form is simpler, exact
for the same pairs up to the start, and costs O(history d^2) per iterate, fine to d ~ 1000).

Usage::

    from inference.flat import FlatDensity
    from inference.pathfinder import multi_path
    density = FlatDensity.build(model, {"y": y})
    fit = multi_path(density, num_paths=4, num_draws=1000, seed=0)
    fit.draws.shape, fit.khat, fit.grad_evals        # (1000, d), Pareto k, cost
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pyro.distributions as dist
import torch

from inference.errors import DivergenceError
from inference.flat import FlatDensity
from inference.lbfgs import LBFGSPath, lbfgs_path

__all__ = ["PathApproximation", "PathfinderFit", "single_path", "multi_path",
           "inverse_hessian", "equal_mixture"]


@dataclass(frozen=True)
class PathApproximation:
    """One path's chosen normal approximation ``N(loc, scale_tril scale_tril')`` and its
    draws: ``draws`` ``(M, d)`` with ``log_p`` (target) and ``log_q`` (this normal);
    ``best_iter`` the L-BFGS iterate it came from, ``elbo`` its ELBO estimate, ``elbos`` the
    estimate at every iterate (``-inf`` where no approximation was formed)."""

    loc: torch.Tensor
    scale_tril: torch.Tensor
    draws: torch.Tensor
    log_p: torch.Tensor
    log_q: torch.Tensor
    best_iter: int
    elbo: float
    elbos: tuple[float, ...]
    lbfgs: LBFGSPath

    def normal(self) -> torch.distributions.MultivariateNormal:
        """The approximation as a torch distribution."""
        return torch.distributions.MultivariateNormal(self.loc, scale_tril=self.scale_tril)


@dataclass(frozen=True)
class PathfinderFit:
    """Draws ``(num_draws, d)`` in the flat unconstrained space, the paths they came from,
    the Pareto ``khat`` of the pooled importance weights (``None`` without resampling),
    gradient and density evaluations, and the mixture of the paths' normals (``proposal``)."""

    draws: torch.Tensor
    paths: tuple[PathApproximation, ...]
    khat: float | None
    grad_evals: int
    density_evals: int
    proposal: torch.distributions.Distribution
    failed_paths: int


def inverse_hessian(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense BFGS inverse-Hessian estimate from curvature pairs (rows of ``s`` and ``y``,
    oldest first, each with ``s'y > 0``) of a function being *minimised*.

    Usage: ``H = inverse_hessian(xs[1:] - xs[:-1], grad_f[1:] - grad_f[:-1])``.
    """
    d = s.shape[-1]
    gamma = float(s[-1] @ y[-1]) / float(y[-1] @ y[-1])
    h = gamma * torch.eye(d, dtype=s.dtype)
    eye = torch.eye(d, dtype=s.dtype)
    for sk, yk in zip(s, y):
        rho = 1.0 / float(sk @ yk)
        v = eye - rho * torch.outer(yk, sk)
        h = v.T @ h @ v + rho * torch.outer(sk, sk)
    return 0.5 * (h + h.T)


def _normal_draws(loc: torch.Tensor, scale_tril: torch.Tensor, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    eps = torch.randn(n, loc.shape[-1], generator=generator, dtype=loc.dtype)
    draws = loc + eps @ scale_tril.T
    log_q = torch.distributions.MultivariateNormal(loc, scale_tril=scale_tril).log_prob(draws)
    return draws, log_q


def single_path(density: FlatDensity, x0: torch.Tensor, *, generator: torch.Generator,
                history_size: int = 6, max_iters: int = 1000, num_elbo_draws: int = 25,
                num_draws: int = 1000) -> PathApproximation:
    """One Pathfinder path from ``x0`` (see the module docstring); evaluations are counted
    on ``density`` (``grad_evals``, ``density_evals``).

    Usage: ``single_path(density, x0, generator=torch.Generator().manual_seed(0))``.
    """
    path = lbfgs_path(density, x0, history_size=history_size, max_iters=max_iters)
    xs, grads = path.xs, path.grads
    s_all = xs[1:] - xs[:-1]
    y_all = -(grads[1:] - grads[:-1])  # gradient differences of f = -log p
    # curvature condition (as Stan's Pathfinder): keep pairs with s'y > eps |y|^2
    keep = (s_all * y_all).sum(-1) > 2.2e-16 * (y_all * y_all).sum(-1)
    best: tuple[float, int, torch.Tensor, torch.Tensor] | None = None
    elbos = [-math.inf]
    for l in range(1, xs.shape[0]):
        idx = [k for k in range(l) if bool(keep[k])][-history_size:]
        if not idx:
            elbos.append(-math.inf)
            continue
        h = inverse_hessian(s_all[idx], y_all[idx])
        try:
            chol = torch.linalg.cholesky(h)
        except RuntimeError:  # not positive definite in floating point
            elbos.append(-math.inf)
            continue
        loc = xs[l] + h @ grads[l]
        z, log_q = _normal_draws(loc, chol, num_elbo_draws, generator)
        log_p = density.log_prob_batch(z)
        elbo = float((log_p - log_q).mean())
        elbo = elbo if math.isfinite(elbo) else -math.inf
        elbos.append(elbo)
        if best is None or elbo > best[0]:
            best = (elbo, l, loc, chol)
    if best is None or not math.isfinite(best[0]):
        raise DivergenceError(f"Pathfinder found no approximation with a finite ELBO along its "
                              f"{path.num_iters} L-BFGS iterations ({path.message})")
    elbo, l, loc, chol = best
    draws, log_q = _normal_draws(loc, chol, num_draws, generator)
    log_p = density.log_prob_batch(draws)
    return PathApproximation(loc, chol, draws, log_p, log_q, l, elbo, tuple(elbos), path)


def equal_mixture(paths: list[PathApproximation]) -> dist.MixtureSameFamily:
    """The equal-weight mixture of the paths' normals, as a Pyro distribution (a proposal for
    PSIS and the base of the method's guide)."""
    locs = torch.stack([q.loc for q in paths])
    trils = torch.stack([q.scale_tril for q in paths])
    mix = dist.Categorical(logits=torch.zeros(len(paths), dtype=locs.dtype))
    return dist.MixtureSameFamily(mix, dist.MultivariateNormal(locs, scale_tril=trils))


def multi_path(density: FlatDensity, *, num_paths: int = 4, num_draws: int = 1000,
               draws_per_path: int = 1000, psis_resample: bool = True, history_size: int = 6,
               max_iters: int = 1000, num_elbo_draws: int = 25, init_radius: float = 2.0,
               seed: int = 0) -> PathfinderFit:
    """Pathfinder with ``num_paths`` paths from uniform points in ``(-init_radius,
    init_radius)`` (Stan's and Pyro's default radius 2), pooled and importance-resampled with
    PSIS when ``psis_resample``.

    A path that fails (no finite ELBO, non-finite start) is dropped with a warning; when all
    fail, :class:`~inference.errors.DivergenceError`. Without resampling the draws are the
    first ``num_draws`` of the pooled paths' own draws.

    Usage: ``fit = multi_path(density, num_paths=4, seed=0)``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    start_grads, start_density = density.grad_evals, density.density_evals
    paths: list[PathApproximation] = []
    failures: list[str] = []
    for p in range(num_paths):
        x0 = (torch.rand(density.dim, generator=generator, dtype=density.dtype) * 2 - 1) \
            * init_radius
        try:
            paths.append(single_path(density, x0, generator=generator,
                                     history_size=history_size, max_iters=max_iters,
                                     num_elbo_draws=num_elbo_draws,
                                     num_draws=draws_per_path))
        except (DivergenceError, ValueError) as err:
            failures.append(f"path {p}: {err}")
    if not paths:
        raise DivergenceError("every Pathfinder path failed: " + "; ".join(failures))
    if failures:
        warnings.warn(f"{len(failures)} of {num_paths} Pathfinder paths failed and were "
                      f"dropped: {'; '.join(failures)}", RuntimeWarning, stacklevel=2)
    proposal = equal_mixture(paths)
    pooled = torch.cat([q.draws for q in paths])
    log_p = torch.cat([q.log_p for q in paths])
    khat = None
    if psis_resample:
        import arviz as az

        with torch.no_grad():
            log_q = proposal.log_prob(pooled)
        log_w = (log_p - log_q).numpy()
        log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
        with warnings.catch_warnings():  # ArviZ warns when k-hat is high; k-hat is reported
            warnings.simplefilter("ignore")
            smoothed, k = az.psislw(log_w)
        khat = float(k)
        weights = torch.as_tensor(np.exp(smoothed - smoothed.max()), dtype=torch.float64)
        weights = torch.where(torch.isfinite(weights), weights, torch.zeros_like(weights))
        idx = torch.multinomial(weights, num_draws, replacement=True, generator=generator)
        draws = pooled[idx]
    else:
        if pooled.shape[0] < num_draws:
            raise ValueError(f"num_draws={num_draws} exceeds the {pooled.shape[0]} draws of "
                             "the paths; raise draws_per_path or resample")
        draws = pooled[:num_draws]
    return PathfinderFit(draws, tuple(paths), khat, density.grad_evals - start_grads,
                         density.density_evals - start_density, proposal, len(failures))
