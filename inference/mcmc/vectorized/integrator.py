"""Leapfrog steps, kinetic energy and the U-turn test for C chains at once (diagonal metric).

Positions, momenta and gradients are (C, D) tensors, the inverse mass matrix is (C, D) (one
diagonal per chain), step sizes are (C, 1) and may be negative (integrating backwards).

Usage::

    z, r, energy, grad = leapfrog(potential, z, r, grad, eps[:, None], inv_mass)
    hamiltonian = energy + kinetic(r, inv_mass)
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["leapfrog", "kinetic", "is_turning", "energy_error", "Potential"]

Potential = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def leapfrog(potential: Potential, z: torch.Tensor, r: torch.Tensor, grad: torch.Tensor,
             eps: torch.Tensor, inv_mass: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One velocity-Verlet step of every chain: new position, momentum, potential, gradient."""
    r = r - (0.5 * eps) * grad
    z = z + eps * (inv_mass * r)
    energy, grad = potential(z)
    r = r - (0.5 * eps) * grad
    return z, r, energy, grad


def kinetic(r: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
    """Kinetic energy ``r^T M^-1 r / 2`` per chain, (C,)."""
    return 0.5 * (inv_mass * r * r).sum(-1)


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
    return ((inv_mass * r_left * rho).sum(-1) <= 0) | ((inv_mass * r_right * rho).sum(-1) <= 0)
