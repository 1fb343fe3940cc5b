"""Leapfrog steps, kinetic energy and the U-turn test for C chains at once.

Positions, momenta and gradients are (C, D) tensors; the inverse mass matrix is (C, D) (one
diagonal per chain) or (C, D, D) (one dense matrix per chain), told apart by its number of
dimensions; step sizes are (C, 1) and may be negative (integrating backwards).

Usage::

    z, r, energy, grad = leapfrog(potential, z, r, grad, eps[:, None], inv_mass)
    hamiltonian = energy + kinetic(r, inv_mass)
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["leapfrog", "kinetic", "velocity", "sample_momentum", "is_turning", "energy_error",
           "Potential"]

Potential = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def leapfrog(potential: Potential, z: torch.Tensor, r: torch.Tensor, grad: torch.Tensor,
             eps: torch.Tensor, inv_mass: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One velocity-Verlet step of every chain: new position, momentum, potential, gradient."""
    r = r - (0.5 * eps) * grad
    z = z + eps * velocity(r, inv_mass)
    energy, grad = potential(z)
    r = r - (0.5 * eps) * grad
    return z, r, energy, grad


def velocity(r: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
    """``M^-1 r`` per chain: elementwise for a diagonal metric, a batched product for a dense
    one (``inv_mass`` with one more dimension than ``r``; leading dimensions broadcast)."""
    if inv_mass.dim() == r.dim():
        return inv_mass * r
    return torch.matmul(inv_mass, r.unsqueeze(-1)).squeeze(-1)


def kinetic(r: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
    """Kinetic energy ``r^T M^-1 r / 2`` per chain, (C,)."""
    return 0.5 * (velocity(r, inv_mass) * r).sum(-1)


def sample_momentum(inv_mass: torch.Tensor, dim: int, generator: torch.Generator,
                    dtype: torch.dtype) -> torch.Tensor:
    """Momenta ``r ~ N(0, M)`` per chain, (C, D).

    Diagonal: ``eps / sqrt(M^-1)``. Dense: with ``M^-1 = L L^T``, ``r = L^-T eps`` has
    covariance ``(L L^T)^-1 = M``. A diagonal metric draws exactly the normals it always drew,
    so its chains are unchanged for a given seed.
    """
    chains = inv_mass.shape[0]
    eps = torch.randn(chains, dim, generator=generator, dtype=dtype)
    if inv_mass.dim() == 2:
        return eps / inv_mass.sqrt()
    tril = torch.linalg.cholesky(inv_mass)
    return torch.linalg.solve_triangular(tril.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)


def energy_error(hamiltonian: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``H - H_0`` per chain, with NaN counted as +inf (a divergence)."""
    delta = hamiltonian - start
    return torch.where(torch.isnan(delta), torch.full_like(delta, float("inf")), delta)


def is_turning(r_left: torch.Tensor, r_right: torch.Tensor, r_sum: torch.Tensor,
               inv_mass: torch.Tensor) -> torch.Tensor:
    """The generalised U-turn criterion per chain (Betancourt 2017), as NumPyro's ``_is_turning``.

    ``r_sum`` is the sum of the momenta from the left to the right leaf, both included.
    """
    rho = r_sum - 0.5 * (r_left + r_right)
    return (((velocity(r_left, inv_mass) * rho).sum(-1) <= 0)
            | ((velocity(r_right, inv_mass) * rho).sum(-1) <= 0))
