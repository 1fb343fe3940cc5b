"""ChEES-HMC (Hoffman, Radul and Sountsov 2021): HMC whose trajectory length is adapted by
gradient steps on the ChEES criterion, over many chains at once.

All chains share one step size and one jittered trajectory length: at iteration t every chain
takes ``ceil(u_t T / eps)`` leapfrog steps, ``u_t`` a Halton (van der Corput, base 2) point in
(0, 1] (jitter 1, as BlackJAX). During warm-up (see ``shared/ALGORITHMS.md``):

* step size: dual averaging towards ``target`` (0.651 by default) of the harmonic mean of the
  chains' acceptance probabilities, a divergent or non-finite transition counting as 0, then a
  moving average of log eps with weight t^-1/2. The harmonic mean is as small as the worst
  chain's acceptance, so one chain stuck in the tails (a wide start on a badly scaled
  posterior) shrinks the shared step size until it moves. BlackJAX leaves divergent chains out
  of the mean; on posteriordb's kidiq (16 chains, 300 + 150) that left 7 chains stuck at
  their start for the whole run while the others set a step size too large for them, and on
  sblrc 1790 of 2400 draws diverged;
* trajectory length: one Adam step (beta1 = 0, beta2 = 0.95, lr = 0.025, clipped to +-0.35,
  skipped if not finite) on log T along the acceptance-weighted ChEES gradient, the same moving
  average, T kept in [eps, 1000 eps];
* metric: one diagonal pooled over all chains in Stan's windows (the ``ALGORITHMS.md`` variant;
  BlackJAX uses the identity), which ChEES measures distances in.

After warm-up the step size and T are the moving averages. MEADS, which adapts without
trajectories, is :mod:`inference.mcmc.vectorized.meads`.

Usage::

    run_mcmc(model, {"y": y}, kernel="chees", chain_method="vectorized", num_chains=32)
"""

from __future__ import annotations

import math

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.adaptation import DualAveraging
from inference.mcmc.vectorized.base import AdaptiveKernel, VecState
from inference.mcmc.vectorized.hmc import metropolis
from inference.mcmc.vectorized.integrator import energy_error, kinetic
from inference.mcmc.vectorized.nuts import MAX_DELTA_ENERGY

__all__ = ["VectorizedChEES", "halton"]

#: the most leapfrog steps one transition may take
MAX_STEPS = 1000


def halton(t: int) -> float:
    """The t-th point (t >= 1) of the base-2 van der Corput sequence, in (0, 1).

    Example: ``[halton(t) for t in (1, 2, 3)] == [0.5, 0.25, 0.75]``.
    """
    result, f = 0.0, 0.5
    while t > 0:
        result += f * (t & 1)
        t >>= 1
        f *= 0.5
    return result


class VectorizedChEES(AdaptiveKernel):
    """ChEES-HMC over a batch of chains; see the module docstring.

    Example::

        kernel = VectorizedChEES(KernelSettings(target_accept_prob=0.651))
    """

    pooled = True
    supports_dense = False
    name = "chees"

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings)
        self.t = 0

    def init(self, potential, z, num_warmup, generator):  # type: ignore[no-untyped-def]
        """As every adaptive kernel, then one shared step size and T = 10 step sizes."""
        state = super().init(potential, z, num_warmup, generator)
        eps = torch.exp(torch.log(self.adapter.step_size).mean())
        self.log_eps = eps.log()
        self.log_eps_avg = self.log_eps.clone()
        self.shared_dual = DualAveraging(eps.reshape(1), self.settings.target_accept_prob)
        self.log_T = (10.0 * eps).log()
        self.log_T_avg = self.log_T.clone()
        self.adam_v = torch.zeros((), dtype=z.dtype)
        self.adam_t = 0
        return state

    @property
    def step_size(self) -> torch.Tensor:
        return torch.exp(self.log_eps).expand(self.adapter.step_size.shape)

    @property
    def final_step_size(self) -> torch.Tensor:
        return self.step_size

    def transition(self, state: VecState) -> tuple[VecState, dict[str, torch.Tensor],
                                                   torch.Tensor]:
        assert self.potential is not None
        self.t += 1
        z, energy, grad = state
        inv_mass = self.inv_mass
        eps = torch.exp(self.log_eps)
        jitter = halton(self.t)
        length = jitter * torch.exp(self.log_T)
        steps = int(torch.ceil(length / eps).clamp(1, MAX_STEPS))
        r = torch.randn(z.shape, generator=self.generator, dtype=z.dtype) / inv_mass.sqrt()
        h0 = energy + kinetic(r, inv_mass)
        pz, pr, pe, pg = z, r, energy, grad
        step = eps.expand(z.shape[0])[:, None]
        for _ in range(steps):
            pz, pr, pe, pg = self.leapfrog(pz, pr, pg, step, inv_mass)
        delta = energy_error(pe + kinetic(pr, inv_mass), h0)
        new, prob = metropolis(state, VecState(pz, pe, pg), delta, self.generator)
        diverging = delta > MAX_DELTA_ENERGY
        self._last = (z, pz, pr, prob, diverging, jitter)
        count = torch.full(prob.shape, steps, dtype=torch.long)
        info = {"diverging": diverging, "acceptance_rate": prob,
                "step_size": eps.expand(prob.shape).clone(), "n_steps": count, "energy": h0,
                "lp": -new.energy}
        return new, info, prob

    def step(self, state: VecState, iteration: int) -> tuple[VecState, dict[str, torch.Tensor]]:
        """One transition; during warm-up also the ChEES step-size, T and metric updates."""
        state, info, accept = self.transition(state)
        if iteration < self.num_warmup:
            self._adapt_trajectory()
            window_end = self.adapter.update(iteration, accept, state.z)
            if window_end:  # new metric: restart the shared step size around the current one
                self.shared_dual.reset(torch.exp(self.log_eps).reshape(1))
            if iteration == self.num_warmup - 1:
                self.log_eps = self.log_eps_avg.clone()
                self.log_T = self.log_T_avg.clone()
        return state, info

    def _adapt_trajectory(self) -> None:
        start, proposal, momentum, accept, diverging, jitter = self._last
        ok = ~diverging & torch.isfinite(accept)
        a = torch.where(ok, accept, 0.0)
        # step size: dual averaging on the harmonic mean of all chains' acceptance probabilities
        if bool((a > 0).all()):
            harmonic = a.numel() / (1.0 / a).sum()
        else:
            harmonic = torch.zeros((), dtype=a.dtype)
        self.log_eps = self.shared_dual.update(harmonic.reshape(1)).reshape(())
        weight = self.shared_dual.t ** -0.5
        self.log_eps_avg = weight * self.log_eps + (1 - weight) * self.log_eps_avg
        # trajectory length: Adam ascent on log T along the ChEES gradient
        scale = self.inv_mass
        if bool(a.sum() > 0):
            centre_new = (a[:, None] * proposal).sum(0) / a.sum()
            centre_old = start.mean(0)
            diff_new, diff_old = proposal - centre_new, start - centre_old
            spread = (diff_new ** 2 / scale).sum(-1) - (diff_old ** 2 / scale).sum(-1)
            per_chain = jitter * torch.exp(self.log_T) * spread * (diff_new * momentum).sum(-1)
            # chains with no weight (or a non-finite term, far in the tails) do not vote
            per_chain = torch.where(ok & (a > 0) & torch.isfinite(per_chain), per_chain, 0.0)
            gradient = (a * per_chain).sum() / a.sum()
            if bool(torch.isfinite(gradient)):
                self.adam_t += 1
                self.adam_v = 0.95 * self.adam_v + 0.05 * gradient ** 2
                v_hat = self.adam_v / (1 - 0.95 ** self.adam_t)
                update = (0.025 * gradient / (v_hat.sqrt() + 1e-8)).clamp(-0.35, 0.35)
                self.log_T = self.log_T + update
        eps = torch.exp(self.log_eps)
        self.log_T = self.log_T.clamp(float(eps.log()), float(eps.log()) + math.log(1000.0))
        self.log_T_avg = weight * self.log_T + (1 - weight) * self.log_T_avg
