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

import functools
from typing import Callable, NamedTuple

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.base import AdaptiveKernel, VecState, compile_step
from inference.mcmc.vectorized.integrator import (Potential, energy_error, is_turning, kinetic,
                                                  leapfrog, sample_momentum)

__all__ = ["VectorizedNUTS", "MAX_DELTA_ENERGY", "Leaf", "leaf_step"]

#: an energy error above this marks a divergence (Stan, Pyro and NumPyro use 1000)
MAX_DELTA_ENERGY = 1000.0


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` for chains in ``mask`` (C,), else ``b``; works for (C,) and (C, D) tensors."""
    return torch.where(mask if a.dim() == 1 else mask[:, None], a, b)


def _checkpoints(n: int, depth: int) -> tuple[int, bool, list[bool]]:
    """Leaf ``n``'s checkpoint slot, whether it writes it (even ``n``), and which of the
    ``depth`` checkpoints it tests (odd ``n``: ``idx_max`` down to ``idx_min``, NumPyro's rule
    from the bits of ``n``)."""
    idx_max = bin(n >> 1).count("1")
    if n % 2 == 0:
        return idx_max, True, [False] * depth
    trailing_ones = bin((~n & (n + 1)) - 1).count("1")
    idx_min = idx_max - trailing_ones + 1
    return idx_max, False, [idx_min <= i <= idx_max for i in range(depth)]


class Leaf(NamedTuple):
    """The subtree under construction, per chain (see :func:`leaf_step`)."""

    z: torch.Tensor            # the newest leaf (C, D), its momentum and gradient
    r: torch.Tensor
    g: torch.Tensor
    prop_z: torch.Tensor       # the subtree's proposal, its potential and gradient
    prop_u: torch.Tensor
    prop_g: torch.Tensor
    log_w: torch.Tensor        # log of the subtree's summed weights (-inf before the first leaf)
    r_sum: torch.Tensor        # sum of the subtree's momenta
    r_ckpt: torch.Tensor       # (max_depth, C, D) checkpointed momenta and momentum sums
    rsum_ckpt: torch.Tensor
    turning: torch.Tensor
    diverging: torch.Tensor
    n_steps: torch.Tensor      # leapfrog steps and summed acceptance probabilities (whole tree)
    sum_accept: torch.Tensor


def leaf_step(potential: Potential, leaf: Leaf, active: torch.Tensor, step: torch.Tensor,
              inv_mass: torch.Tensor, h0: torch.Tensor, uniform: torch.Tensor,
              slot: torch.Tensor, write: torch.Tensor, test: torch.Tensor
              ) -> tuple[Leaf, torch.Tensor]:
    """One leaf of a subtree for every chain: a leapfrog step from the newest leaf, uniform
    progressive sampling into the subtree's proposal, checkpoints and U-turn tests.

    Chains outside ``active`` (C,) are left as they are. ``slot`` (integer), ``write`` (bool)
    and ``test`` ((max_depth,) bool) say which checkpoint this leaf writes or tests (from
    :func:`_checkpoints`). Free of Python branches on values, so one ``torch.compile`` serves
    every leaf. Returns the new subtree and the chains still growing it.
    """
    nz, nr, nu, ng = leapfrog(potential, leaf.z, leaf.r, leaf.g, step, inv_mass)
    delta = energy_error(nu + kinetic(nr, inv_mass), h0)
    weight = -delta
    m = active
    take = m & (uniform < torch.sigmoid(weight - leaf.log_w))
    r_sum = _where(m, leaf.r_sum + nr, leaf.r_sum)
    written_r = leaf.r_ckpt.index_copy(0, slot.reshape(1), nr.unsqueeze(0))
    written_s = leaf.rsum_ckpt.index_copy(0, slot.reshape(1), r_sum.unsqueeze(0))
    r_ckpt = torch.where(write, written_r, leaf.r_ckpt)
    rsum_ckpt = torch.where(write, written_s, leaf.rsum_ckpt)
    # U-turns of the sub-subtrees ending at this leaf, all checkpoints at once
    sums = r_sum.unsqueeze(0) - rsum_ckpt + r_ckpt
    turns = is_turning(r_ckpt, nr.unsqueeze(0).expand_as(r_ckpt), sums, inv_mass.unsqueeze(0))
    turned = (turns & test[:, None]).any(0)
    diverging = leaf.diverging | (m & (delta > MAX_DELTA_ENERGY))
    turning = leaf.turning | (m & turned)
    new = Leaf(
        z=_where(m, nz, leaf.z), r=_where(m, nr, leaf.r), g=_where(m, ng, leaf.g),
        prop_z=_where(take, nz, leaf.prop_z), prop_u=_where(take, nu, leaf.prop_u),
        prop_g=_where(take, ng, leaf.prop_g),
        log_w=_where(m, torch.logaddexp(leaf.log_w, weight), leaf.log_w),
        r_sum=r_sum, r_ckpt=r_ckpt, rsum_ckpt=rsum_ckpt, turning=turning, diverging=diverging,
        n_steps=leaf.n_steps + m.to(leaf.n_steps.dtype),
        sum_accept=leaf.sum_accept + torch.where(m, torch.exp(-delta).clamp(max=1.0), 0.0),
    )
    return new, m & ~diverging & ~turning


class VectorizedNUTS(AdaptiveKernel):
    """NUTS over a batch of chains; see the module docstring.

    Example::

        kernel = VectorizedNUTS(KernelSettings(target_accept_prob=0.8, max_tree_depth=10))
        state = kernel.init(potential, z0, num_warmup=500, generator=torch.Generator())
    """

    def __init__(self, settings: KernelSettings) -> None:
        super().__init__(settings)
        self.max_tree_depth = int(settings.max_tree_depth)

    def _checkpoint_args(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`_checkpoints` of leaf ``n`` as tensors, made once per leaf number."""
        cache = self.__dict__.setdefault("_ckpt_cache", {})
        if n not in cache:
            slot, write, test = _checkpoints(n, self.max_tree_depth)
            cache[n] = (torch.tensor(slot), torch.tensor(write), torch.tensor(test))
        return cache[n]

    def _leaf_fn(self) -> Callable[..., tuple[Leaf, torch.Tensor]]:
        if getattr(self, "_leaf", None) is None:
            fn: Callable[..., tuple[Leaf, torch.Tensor]] = functools.partial(leaf_step,
                                                                             self.potential)
            if self.settings.jit_compile:
                fn = compile_step(fn)
            self._leaf = fn
        return self._leaf

    def transition(self, state: VecState) -> tuple[VecState, dict[str, torch.Tensor],
                                                   torch.Tensor]:
        gen = self.generator
        leaf_fn = self._leaf_fn()
        z0, u0, g0 = state
        chains, dim = z0.shape
        inv_mass, eps = self.inv_mass, self.step_size
        dtype = z0.dtype
        r0 = sample_momentum(inv_mass, dim, gen, dtype)
        h0 = u0 + kinetic(r0, inv_mass)
        depth_max = self.max_tree_depth

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
        no = torch.zeros(chains, dtype=torch.bool)
        ckpt = torch.zeros(depth_max, chains, dim, dtype=dtype)

        for d in range(depth_max):
            go_right = torch.rand(chains, generator=gen) < 0.5
            step = torch.where(go_right, eps, -eps)[:, None]
            lz, lr, lg = (_where(go_right, a, b) for a, b in zip(right, left))
            # no two fields alias one tensor: a compiled leaf_step guards on aliasing, and the
            # first leaf would otherwise compile a second graph (1.4 s on eight schools)
            leaf = Leaf(lz, lr, lg, lz.clone(), u0, lg.clone(),
                        torch.full_like(log_w, -float("inf")), torch.zeros_like(r0), ckpt,
                        ckpt.clone(), no, no.clone(), n_steps, sum_accept)
            sub_active = active
            uniforms = torch.rand(2 ** d, chains, generator=gen, dtype=dtype)
            for n in range(2 ** d):
                if n > 0 and not bool(sub_active.any()):
                    break
                leaf, sub_active = leaf_fn(leaf, sub_active, step, inv_mass, h0, uniforms[n],
                                           *self._checkpoint_args(n))
            n_steps, sum_accept = leaf.n_steps, leaf.sum_accept

            # join the subtree to the tree: biased progressive sampling, never into a subtree
            # that turned or diverged
            stopped = leaf.diverging | leaf.turning
            depth = depth + active
            prob = torch.where(stopped, 0.0, torch.exp(leaf.log_w - log_w).clamp(max=1.0))
            take = active & (torch.rand(chains, generator=gen, dtype=dtype) < prob)
            prop_z, prop_u, prop_g = (_where(take, leaf.prop_z, prop_z),
                                      _where(take, leaf.prop_u, prop_u),
                                      _where(take, leaf.prop_g, prop_g))
            log_w = _where(active, torch.logaddexp(log_w, leaf.log_w), log_w)
            grow = active & ~stopped
            r_sum = _where(grow, r_sum + leaf.r_sum, r_sum)
            edge = (leaf.z, leaf.r, leaf.g)
            right = tuple(_where(grow & go_right, a, b) for a, b in zip(edge, right))
            left = tuple(_where(grow & ~go_right, a, b) for a, b in zip(edge, left))
            diverging = diverging | (active & leaf.diverging)
            turning = is_turning(left[1], right[1], r_sum, inv_mass)
            active = grow & ~turning
            if not bool(active.any()):
                break

        accept = sum_accept / n_steps.clamp(min=1).to(dtype)
        info = {"diverging": diverging, "acceptance_rate": accept, "step_size": eps.clone(),
                "tree_depth": depth, "n_steps": n_steps, "energy": h0, "lp": -prop_u}
        return VecState(prop_z, prop_u, prop_g), info, accept
