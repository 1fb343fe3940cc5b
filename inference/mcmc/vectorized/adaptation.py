"""Warm-up adaptation for C chains at once: dual averaging, Stan's windows, Welford variances.

Pyro has these pieces for one chain with Python-float state (``pyro.ops.dual_averaging``,
``pyro.ops.welford``, ``WarmupAdapter``); here every quantity is a tensor over chains, so one
update serves all of them. The schedule and constants are Stan's: dual averaging of the log step
size with t0 = 10, kappa = 0.75, gamma = 0.05 towards ``target``; a diagonal (or, with
``dense=True``, dense) inverse mass matrix estimated in windows (initial buffer 75, windows 25,
50, 100 ..., terminal buffer 50), each estimate regularised as ``n/(n+5) var + 1e-3 * 5/(n+5)``
(on the diagonal), followed by a new reasonable step size and a restart of dual averaging.

``pooled=False`` (NUTS, HMC) adapts each chain on its own draws, as NumPyro's vectorised chains
do; ``pooled=True`` (ChEES) estimates one diagonal from all chains' draws.

Usage::

    adapter = ChainAdapter(num_warmup=500, num_chains=4, dim=10, target=0.8)
    for i in range(500):
        ...                                        # a transition with adapter.step_size
        adapter.update(i, accept_prob, z)          # returns True at a window end
    adapter.finish()                               # adapter.step_size: the final (C,) step sizes
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from inference.mcmc.vectorized.integrator import (Potential, energy_error, kinetic, leapfrog,
                                                  sample_momentum)

__all__ = ["DualAveraging", "Welford", "adaptation_windows", "find_reasonable_step_size",
           "ChainAdapter"]


class DualAveraging:
    """Nesterov dual averaging of log step sizes, one per chain (Hoffman and Gelman 2014).

    Example::

        da = DualAveraging(torch.full((4,), 0.1), target=0.8)
        log_eps = da.update(torch.full((4,), 0.6))   # smaller step sizes next
    """

    def __init__(self, step_size: torch.Tensor, target: float, t0: float = 10.0,
                 kappa: float = 0.75, gamma: float = 0.05) -> None:
        self.target, self.t0, self.kappa, self.gamma = target, t0, kappa, gamma
        self.reset(step_size)

    def reset(self, step_size: torch.Tensor) -> None:
        """Restart around ``step_size`` (aiming at ten times it, as Stan does)."""
        self.mu = torch.log(10.0 * step_size)
        self.h_bar = torch.zeros_like(step_size)
        self.log_avg = torch.zeros_like(step_size)
        self.t = 0

    def update(self, accept: torch.Tensor) -> torch.Tensor:
        """Take in this iteration's acceptance statistics (C,); returns the next log step sizes."""
        self.t += 1
        eta = 1.0 / (self.t + self.t0)
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept)
        log_eps = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        weight = self.t ** (-self.kappa)
        self.log_avg = weight * log_eps + (1.0 - weight) * self.log_avg
        return log_eps


class Welford:
    """Running means and variances (or, ``dense=True``, covariances) per chain of (C, D) draws;
    ``pooled`` merges the chains when the estimate is read."""

    def __init__(self, num_chains: int, dim: int, dtype: torch.dtype, dense: bool = False
                 ) -> None:
        self.n, self.dense = 0, dense
        self.mean = torch.zeros(num_chains, dim, dtype=dtype)
        shape = (num_chains, dim, dim) if dense else (num_chains, dim)
        self.m2 = torch.zeros(shape, dtype=dtype)

    def update(self, z: torch.Tensor) -> None:
        """Add one draw per chain."""
        self.n += 1
        delta = z - self.mean
        self.mean = self.mean + delta / self.n
        after = z - self.mean
        self.m2 = self.m2 + (delta.unsqueeze(-1) * after.unsqueeze(-2) if self.dense
                             else delta * after)

    def variance(self, pooled: bool) -> torch.Tensor:
        """Stan's regularised estimate: (C, D) variances, or (C, D, D) covariances when dense;
        the same for all chains if pooled."""
        if pooled:
            chains = self.mean.shape[0]
            grand = self.mean.mean(0, keepdim=True)
            n = self.n * chains
            spread = self.mean - grand
            between = (spread.unsqueeze(-1) * spread.unsqueeze(-2) if self.dense
                       else spread ** 2)
            m2 = self.m2.sum(0, keepdim=True) + self.n * between.sum(0, keepdim=True)
            var = (m2 / max(n - 1, 1)).expand_as(self.m2)
        else:
            n = self.n
            var = self.m2 / max(n - 1, 1)
        shrink = 1e-3 * (5.0 / (n + 5.0))
        if self.dense:
            eye = torch.eye(var.shape[-1], dtype=var.dtype)
            return (n / (n + 5.0)) * var + shrink * eye
        return (n / (n + 5.0)) * var + shrink


def adaptation_windows(num_warmup: int) -> list[tuple[int, int]]:
    """Stan's slow windows ``[(start, end), ...]`` of warm-up iterations (0-based, end excluded).

    Example: ``adaptation_windows(1000)`` is ``[(75, 100), (100, 150), (150, 250), (250, 450),
    (450, 950)]``; fewer than 20 iterations adapt the step size only.
    """
    if num_warmup < 20:
        return []
    init, term, base = 75, 50, 25
    if init + term + base > num_warmup:
        init, term = int(0.15 * num_warmup), int(0.1 * num_warmup)
        base = num_warmup - init - term
    windows, start, size, end_all = [], init, base, num_warmup - term
    while start < end_all:
        end = start + size
        if end + 2 * size > end_all:
            end = end_all
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def find_reasonable_step_size(potential: Potential, z: torch.Tensor, energy: torch.Tensor,
                              grad: torch.Tensor, inv_mass: torch.Tensor, step_size: torch.Tensor,
                              generator: torch.Generator, threshold: float = math.log(0.8),
                              max_iter: int = 60) -> torch.Tensor:
    """Per chain, double or halve the step size until one leapfrog step's acceptance crosses
    ``threshold`` (Hoffman and Gelman 2014, Algorithm 4; Pyro's rule), all chains together."""
    r = sample_momentum(inv_mass, z.shape[1], generator, z.dtype)
    start = energy + kinetic(r, inv_mass)

    def log_ratio(eps: torch.Tensor) -> torch.Tensor:
        _, r1, e1, _ = leapfrog(potential, z, r, grad, eps[:, None], inv_mass)
        return -energy_error(e1 + kinetic(r1, inv_mass), start)

    direction = torch.where(log_ratio(step_size) > threshold, 2.0, 0.5).to(z.dtype)
    done = torch.zeros_like(step_size, dtype=torch.bool)
    eps = step_size
    for _ in range(max_iter):
        trial = torch.where(done, eps, eps * direction)
        above = log_ratio(trial) > threshold
        crossed = torch.where(direction > 1, ~above, above)
        eps = trial
        done = done | crossed | (eps < 1e-10) | (eps > 1e10)
        if bool(done.all()):
            break
    return eps.clamp(1e-10, 1e10)


class ChainAdapter:
    """Step size by dual averaging and an inverse mass matrix in Stan's windows.

    ``step_size`` (C,) and ``inv_mass`` ((C, D) diagonal, or (C, D, D) with ``dense=True``) are
    what the next transition uses; call :meth:`update` after every warm-up transition and
    :meth:`finish` after the last.
    """

    def __init__(self, num_warmup: int, num_chains: int, dim: int, target: float,
                 dtype: torch.dtype, pooled: bool = False, dense: bool = False) -> None:
        self.num_warmup, self.target, self.pooled, self.dense = num_warmup, target, pooled, dense
        self.windows = adaptation_windows(num_warmup)
        self.step_size = torch.ones(num_chains, dtype=dtype)
        self.inv_mass = (torch.eye(dim, dtype=dtype).expand(num_chains, dim, dim).clone()
                         if dense else torch.ones(num_chains, dim, dtype=dtype))
        self.dual = DualAveraging(self.step_size, target)
        self.welford = Welford(num_chains, dim, dtype, dense)

    def start(self, step_size: torch.Tensor) -> None:
        """Begin warm-up at ``step_size`` (C,)."""
        self.step_size = step_size
        self.dual.reset(step_size)

    def update(self, iteration: int, accept: torch.Tensor, z: torch.Tensor,
               reset: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> bool:
        """Adapt after warm-up transition ``iteration`` (0-based) with acceptance stats ``accept``
        and new positions ``z``; at a window end set the mass matrix and call
        ``reset(step_size, inv_mass) -> new step size``. Returns whether a window ended."""
        accept = torch.nan_to_num(accept, nan=0.0)
        self.step_size = torch.exp(self.dual.update(accept))
        for start, end in self.windows:
            if start <= iteration < end:
                self.welford.update(z)
                if iteration == end - 1:
                    self.inv_mass = self.welford.variance(self.pooled)
                    self.welford = Welford(z.shape[0], z.shape[1], z.dtype, self.dense)
                    eps = reset(self.step_size, self.inv_mass) if reset else self.step_size
                    self.step_size = eps
                    self.dual.reset(eps)
                    return True
        return False

    def finish(self) -> None:
        """End of warm-up: the averaged step sizes from now on."""
        if self.dual.t > 0:
            self.step_size = torch.exp(self.dual.log_avg)
