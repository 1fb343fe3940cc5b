"""HMC for C chains at once: a fixed number of leapfrog steps, or a jittered one.

With ``num_steps`` every chain takes that many steps. Without it each chain draws its number of
steps uniformly from 1 to ``ceil(2 pi / step_size)`` at every transition (a jittered trajectory
of length up to Pyro's default 2 pi; with an adapted metric a Gaussian target has period 2 pi,
so a fixed 2 pi trajectory would return to its start), and chains that are done are frozen by a
mask while the others finish. Step size and diagonal metric adapt per
chain (:class:`~inference.mcmc.vectorized.adaptation.ChainAdapter`).

Usage::

    run_mcmc(model, {"y": y}, kernel="hmc", num_steps=10, chain_method="vectorized")
"""

from __future__ import annotations

import math

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.base import AdaptiveKernel, VecState
from inference.mcmc.vectorized.integrator import energy_error, kinetic, sample_momentum
from inference.mcmc.vectorized.nuts import MAX_DELTA_ENERGY

__all__ = ["VectorizedHMC", "metropolis"]

#: the most leapfrog steps one transition may take when the trajectory length is fixed
MAX_STEPS = 1000


def metropolis(state: VecState, proposal: VecState, delta: torch.Tensor,
               generator: torch.Generator) -> tuple[VecState, torch.Tensor]:
    """Accept each chain's proposal with probability ``min(1, exp(-delta))``; returns the new
    state and the acceptance probabilities (C,)."""
    prob = torch.exp(-delta).clamp(max=1.0)
    accept = torch.rand(prob.shape, generator=generator, dtype=prob.dtype) < prob
    new = VecState(torch.where(accept[:, None], proposal.z, state.z),
                   torch.where(accept, proposal.energy, state.energy),
                   torch.where(accept[:, None], proposal.grad, state.grad))
    return new, prob


class VectorizedHMC(AdaptiveKernel):
    """HMC over a batch of chains; see the module docstring.

    Example::

        kernel = VectorizedHMC(KernelSettings(target_accept_prob=0.8, num_steps=10))
    """

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings)
        self.num_steps = settings.num_steps

    def transition(self, state: VecState) -> tuple[VecState, dict[str, torch.Tensor],
                                                   torch.Tensor]:
        assert self.potential is not None
        z, energy, grad = state
        inv_mass, eps = self.inv_mass, self.step_size
        r = sample_momentum(inv_mass, z.shape[1], self.generator, z.dtype)
        h0 = energy + kinetic(r, inv_mass)
        if self.num_steps is not None:
            steps = torch.full(eps.shape, int(self.num_steps), dtype=torch.long)
        else:
            longest = torch.ceil(2 * math.pi / eps).clamp(1, MAX_STEPS)
            u = torch.rand(eps.shape, generator=self.generator, dtype=eps.dtype)
            steps = (1 + torch.floor(u * longest)).clamp(max=longest).long()
        most = int(steps.max())
        for i in range(most):
            nz, nr, ne, ng = self.leapfrog(z, r, grad, eps[:, None], inv_mass)
            if self.num_steps is None:
                going = (i < steps)
                nz, nr = torch.where(going[:, None], nz, z), torch.where(going[:, None], nr, r)
                ne, ng = torch.where(going, ne, energy), torch.where(going[:, None], ng, grad)
            z, r, energy, grad = nz, nr, ne, ng
        delta = energy_error(energy + kinetic(r, inv_mass), h0)
        new, prob = metropolis(state, VecState(z, energy, grad), delta, self.generator)
        info = {"diverging": delta > MAX_DELTA_ENERGY, "acceptance_rate": prob,
                "step_size": eps.clone(), "n_steps": steps, "energy": h0, "lp": -new.energy}
        return new, info, prob
