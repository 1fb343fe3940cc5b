"""Stochastic-gradient MCMC transitions on a flat vector: SGLD, SGHMC and preconditioned SGLD.

Each kernel is an ``init(z) -> state`` / ``step(state, grad, h, noise, gen) -> state`` pair over
a small state record; the driver (:mod:`inference.sgmcmc.driver`) computes the stochastic
gradient of the potential ``U`` (mini-batch, plate-scaled) and the step size ``h`` and never
looks inside a kernel. ``noise`` is false during the exploration stage of cyclical SG-MCMC,
where a kernel is its optimiser (SGD, SGD with momentum, RMSprop). ``temperature`` scales the
injected noise variance (1: the posterior; below 1: a cold posterior).

* SGLD (Welling and Teh 2011): ``z <- z - h grad + sqrt(2 h T) xi``.
* SGHMC (Chen, Fox and Guestrin 2014), in its SGD-with-momentum form with friction ``alpha``
  (momentum ``1 - alpha``) and the gradient-noise estimate ``beta_hat = 0``:
  ``v <- (1 - alpha) v - h grad + sqrt(2 alpha h T) xi``, ``z <- z + v``; here ``h`` plays
  the paper's ``eta`` (the squared leapfrog step, a learning rate).
* pSGLD (Li, Chen, Carlson and Carin 2016): RMSprop's diagonal preconditioner
  ``G = 1 / (lambda + sqrt(V))`` with ``V <- beta V + (1 - beta) g_bar^2`` of the per-datum
  mean gradient ``g_bar = grad / N``; ``z <- z - h G grad + sqrt(2 h G T) xi`` (the paper's
  ``Gamma`` correction term is dropped, as the paper does in practice).

Why by hand: Pyro has no SG-MCMC, and the maintained PyTorch packages either wrap
``torch.optim`` optimisers around ``nn.Module`` parameters (not a Pyro potential on a flat
vector) or are unmaintained; each transition is two lines.

Usage::

    from inference.sgmcmc.kernels import KERNELS
    kernel = KERNELS["sghmc"](friction=0.1)
    state = kernel.init(z0)
    state = kernel.step(state, grad, h=1e-4, noise=True, gen=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["SGState", "SGLD", "SGHMC", "PSGLD", "KERNELS"]


class SGState(NamedTuple):
    """Position ``z``; ``aux`` is SGHMC's velocity or pSGLD's squared-gradient average."""

    z: torch.Tensor
    aux: torch.Tensor | None = None


def _noise(z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(z.shape, generator=gen, dtype=z.dtype, device=z.device)


@dataclass(frozen=True)
class SGLD:
    """Stochastic-gradient Langevin dynamics."""

    temperature: float = 1.0

    def init(self, z: torch.Tensor) -> SGState:
        return SGState(z.detach().clone())

    def step(self, state: SGState, grad: torch.Tensor, h: float, noise: bool,
             gen: torch.Generator, num_data: int = 1) -> SGState:
        z = state.z - h * grad
        if noise:
            z = z + (2.0 * h * self.temperature) ** 0.5 * _noise(z, gen)
        return SGState(z)


@dataclass(frozen=True)
class SGHMC:
    """Stochastic-gradient Hamiltonian Monte Carlo with friction ``friction`` (alpha)."""

    friction: float = 0.1
    temperature: float = 1.0

    def init(self, z: torch.Tensor) -> SGState:
        return SGState(z.detach().clone(), torch.zeros_like(z))

    def step(self, state: SGState, grad: torch.Tensor, h: float, noise: bool,
             gen: torch.Generator, num_data: int = 1) -> SGState:
        v = (1.0 - self.friction) * state.aux - h * grad
        if noise:
            v = v + (2.0 * self.friction * h * self.temperature) ** 0.5 * _noise(v, gen)
        return SGState(state.z + v, v)


@dataclass(frozen=True)
class PSGLD:
    """Preconditioned SGLD with RMSprop's preconditioner (``beta`` decay, ``eps`` lambda)."""

    beta: float = 0.99
    eps: float = 1e-5
    temperature: float = 1.0

    def init(self, z: torch.Tensor) -> SGState:
        return SGState(z.detach().clone(), torch.zeros_like(z))

    def step(self, state: SGState, grad: torch.Tensor, h: float, noise: bool,
             gen: torch.Generator, num_data: int = 1) -> SGState:
        g_bar = grad / num_data
        v = self.beta * state.aux + (1.0 - self.beta) * g_bar * g_bar
        precond = 1.0 / (self.eps + v.sqrt())
        z = state.z - h * precond * grad
        if noise:
            z = z + (2.0 * h * self.temperature * precond).sqrt() * _noise(z, gen)
        return SGState(z, v)


#: kernel name -> class
KERNELS: dict[str, Any] = {"sgld": SGLD, "sghmc": SGHMC, "psgld": PSGLD}
