"""NUTS for C chains in lockstep, with an iterative (not recursive) tree builder.

The scheme is NumPyro's iterative NUTS (see ``shared/ALGORITHMS.md``): the tree doubles while
no chain has stopped; each doubling builds a subtree of 2^depth leaves in a loop, merging
leaves by uniform progressive sampling, and checks U-turns inside the subtree against
checkpointed momenta and momentum sums (indices from the leaf number's bits), so no recursion
is needed; subtrees join the tree by biased progressive sampling, and the whole tree is tested
with the generalised U-turn criterion. All chains share the leaf number, so the checkpoint
indices are plain integers; a chain whose tree has stopped (U-turn, divergence) is frozen by a
mask (``torch.where``) while the others go on: a transition costs as much as its slowest chain.

Per chain it records divergence, mean acceptance probability over the tree, step size, tree
depth, leapfrog steps, starting energy and log density.

Usage::

    run_mcmc(model, {"y": y}, kernel="nuts", chain_method="vectorized", num_chains=32)
"""

from __future__ import annotations

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.base import AdaptiveKernel, VecState
from inference.mcmc.vectorized.integrator import energy_error, is_turning, kinetic, leapfrog

__all__ = ["VectorizedNUTS", "MAX_DELTA_ENERGY"]

#: an energy error above this marks a divergence (Stan, Pyro and NumPyro use 1000)
MAX_DELTA_ENERGY = 1000.0


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` for chains in ``mask`` (C,), else ``b``; works for (C,) and (C, D) tensors."""
    return torch.where(mask if a.dim() == 1 else mask[:, None], a, b)


def _checkpoint_range(n: int) -> tuple[int, int]:
    """Checkpoints to test at odd leaf ``n``: ``(idx_min, idx_max)`` (NumPyro's bit rule)."""
    idx_max = bin(n >> 1).count("1")
    trailing_ones = bin((~n & (n + 1)) - 1).count("1")
    return idx_max - trailing_ones + 1, idx_max


class VectorizedNUTS(AdaptiveKernel):
    """NUTS over a batch of chains; see the module docstring.

    Example::

        kernel = VectorizedNUTS(KernelSettings(target_accept_prob=0.8, max_tree_depth=10))
        state = kernel.init(potential, z0, num_warmup=500, generator=torch.Generator())
    """

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings)
        self.max_tree_depth = int(settings.max_tree_depth)

    def transition(self, state: VecState) -> tuple[VecState, dict[str, torch.Tensor],
                                                   torch.Tensor]:
        potential, gen = self.potential, self.generator
        assert potential is not None
        z0, u0, g0 = state
        chains, dim = z0.shape
        inv_mass, eps = self.inv_mass, self.step_size
        dtype = z0.dtype
        r0 = torch.randn(chains, dim, generator=gen, dtype=dtype) / inv_mass.sqrt()
        h0 = u0 + kinetic(r0, inv_mass)

        left = (z0, r0, g0)
        right = (z0, r0, g0)
        prop_z, prop_u, prop_g = z0, u0, g0
        log_w = torch.zeros(chains, dtype=dtype)
        r_sum = r0
        active = torch.ones(chains, dtype=torch.bool)
        diverging = torch.zeros(chains, dtype=torch.bool)
        depth = torch.zeros(chains, dtype=torch.long)
        n_steps = torch.zeros(chains, dtype=torch.long)
        sum_accept = torch.zeros(chains, dtype=dtype)

        for d in range(self.max_tree_depth):
            go_right = torch.rand(chains, generator=gen) < 0.5
            step = torch.where(go_right, eps, -eps)[:, None]
            lz, lr, lg = (_where(go_right, a, b) for a, b in zip(right, left))
            sub_active = active
            sub_turn = torch.zeros(chains, dtype=torch.bool)
            sub_div = torch.zeros(chains, dtype=torch.bool)
            r_ckpt: list[torch.Tensor] = [r0] * max(d, 1)
            rsum_ckpt: list[torch.Tensor] = [r0] * max(d, 1)
            uniforms = torch.rand(2 ** d, chains, generator=gen, dtype=dtype)
            for n in range(2 ** d):
                if n > 0 and not bool(sub_active.any()):
                    break
                nz, nr, nu, ng = leapfrog(potential, lz, lr, lg, step, inv_mass)
                delta = energy_error(nu + kinetic(nr, inv_mass), h0)
                weight = -delta
                m = sub_active
                lz, lr, lg = _where(m, nz, lz), _where(m, nr, lr), _where(m, ng, lg)
                n_steps = n_steps + m
                sum_accept = sum_accept + torch.where(m, torch.exp(-delta).clamp(max=1.0), 0.0)
                if n == 0:
                    sub_z, sub_u, sub_g, sub_w, sub_rsum = nz, nu, ng, weight, nr
                else:
                    take = m & (uniforms[n] < torch.sigmoid(weight - sub_w))
                    sub_z, sub_u, sub_g = _where(take, nz, sub_z), _where(take, nu, sub_u), \
                        _where(take, ng, sub_g)
                    sub_w = _where(m, torch.logaddexp(sub_w, weight), sub_w)
                    sub_rsum = _where(m, sub_rsum + nr, sub_rsum)
                sub_div = sub_div | (m & (delta > MAX_DELTA_ENERGY))
                if n % 2 == 0:
                    idx = bin(n >> 1).count("1")
                    r_ckpt[idx], rsum_ckpt[idx] = nr, sub_rsum
                else:
                    idx_min, idx_max = _checkpoint_range(n)
                    for i in range(idx_max, idx_min - 1, -1):
                        turn = is_turning(r_ckpt[i], nr, sub_rsum - rsum_ckpt[i] + r_ckpt[i],
                                          inv_mass)
                        sub_turn = sub_turn | (m & turn)
                sub_active = m & ~sub_div & ~sub_turn

            # join the subtree to the tree: biased progressive sampling, never into a subtree
            # that turned or diverged
            stopped = sub_div | sub_turn
            depth = depth + active
            prob = torch.where(stopped, 0.0, torch.exp(sub_w - log_w).clamp(max=1.0))
            take = active & (torch.rand(chains, generator=gen, dtype=dtype) < prob)
            prop_z, prop_u, prop_g = (_where(take, sub_z, prop_z), _where(take, sub_u, prop_u),
                                      _where(take, sub_g, prop_g))
            log_w = _where(active, torch.logaddexp(log_w, sub_w), log_w)
            grow = active & ~stopped
            r_sum = _where(grow, r_sum + sub_rsum, r_sum)
            edge = (lz, lr, lg)
            right = tuple(_where(grow & go_right, a, b) for a, b in zip(edge, right))
            left = tuple(_where(grow & ~go_right, a, b) for a, b in zip(edge, left))
            diverging = diverging | (active & sub_div)
            turning = is_turning(left[1], right[1], r_sum, inv_mass)
            active = grow & ~turning
            if not bool(active.any()):
                break

        accept = sum_accept / n_steps.clamp(min=1).to(dtype)
        info = {"diverging": diverging, "acceptance_rate": accept, "step_size": eps.clone(),
                "tree_depth": depth, "n_steps": n_steps, "energy": h0, "lp": -prop_u}
        return VecState(prop_z, prop_u, prop_g), info, accept
