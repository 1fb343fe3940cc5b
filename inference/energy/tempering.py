"""Parallel tempering for the negative phase: replica swaps between neighbouring temperatures.

Replica ``i`` runs Gibbs sampling under ``p_{beta_i}`` (``beta_0 = 1`` is the model); after
each sweep, neighbours ``(i, i+1)`` exchange states with the Metropolis probability
``min(1, exp(E_i(x_i) + E_j(x_j) - E_i(x_j) - E_j(x_i)))`` (Desjardins et al. 2010), which
leaves the product of the tempered distributions invariant. Pairs alternate between even and
odd starting indices so that every neighbour pair is proposed every second sweep.

Usage::

    replicas = [model.chain_state(v) for _ in betas]
    replicas = [model.gibbs_step(s, b) for s, b in zip(replicas, betas)]
    replicas, accepted = swap_step(model, replicas, betas, parity=step % 2)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from inference.energy.protocol import State

__all__ = ["swap_step", "temperature_ladder"]


def temperature_ladder(num_temperatures: int, lowest_beta: float = 0.0) -> list[float]:
    """``num_temperatures`` inverse temperatures from 1 down to ``lowest_beta``, evenly spaced.

    Example: ``temperature_ladder(3)`` is ``[1.0, 0.5, 0.0]``.
    """
    if num_temperatures < 1:
        raise ValueError(f"num_temperatures must be >= 1, got {num_temperatures}")
    if num_temperatures == 1:
        return [1.0]
    step = (1.0 - lowest_beta) / (num_temperatures - 1)
    return [1.0 - i * step for i in range(num_temperatures)]


def swap_step(model: Any, replicas: Sequence[State], betas: Sequence[float], parity: int = 0,
              generator: torch.Generator | None = None) -> tuple[list[State], float]:
    """Propose swaps of neighbouring replicas; returns the new replicas and the acceptance rate.

    Each replica is a state of ``n`` parallel chains; chain ``c`` of replica ``i`` swaps with
    chain ``c`` of replica ``i+1`` independently of the other chains.
    """
    replicas = [tuple(s) for s in replicas]
    accepted, proposed = 0.0, 0
    with torch.no_grad():
        for i in range(parity % 2, len(betas) - 1, 2):
            a, b = replicas[i], replicas[i + 1]
            log_ratio = (model.energy(a, betas[i]) + model.energy(b, betas[i + 1])
                         - model.energy(b, betas[i]) - model.energy(a, betas[i + 1]))
            u = torch.rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype)
            swap = torch.log(u) < log_ratio
            new_a = tuple(torch.where(_column(swap, x), y, x) for x, y in zip(a, b))
            new_b = tuple(torch.where(_column(swap, x), x, y) for x, y in zip(a, b))
            replicas[i], replicas[i + 1] = new_a, new_b
            accepted += float(swap.float().mean())
            proposed += 1
    return replicas, (accepted / proposed if proposed else float("nan"))


def _column(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape + (1,) * (like.dim() - mask.dim()))
