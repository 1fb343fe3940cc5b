"""What a vectorised kernel is: C chains as one batch, one ``step`` advancing all of them.

The contract mirrors :mod:`inference.mcmc.protocol`, with every quantity carrying a leading
chain dimension::

    kernel = VectorizedNUTS(settings)                       # settings: KernelSettings
    state = kernel.init(potential, z0, num_warmup, generator)   # z0: (C, D) unconstrained
    for i in range(num_warmup + num_samples):
        state, info = kernel.step(state, i)                 # info: name -> tensor (C,)
    kernel.final_step_size                                  # (C,) tensor

Warm-up adaptation happens inside ``step`` while ``i < num_warmup``. ``info`` holds the
kernel's statistics (names from :data:`inference.mcmc.protocol.STATISTICS`) for every chain.
All randomness comes from ``generator``, so a seed gives the same draws.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.adaptation import ChainAdapter, find_reasonable_step_size
from inference.mcmc.vectorized.integrator import Potential, leapfrog

__all__ = ["VecState", "VectorizedKernel", "AdaptiveKernel", "compiled_leapfrog", "compile_step",
           "RECOMPILE_LIMIT"]


class VecState(NamedTuple):
    """Positions (C, D), their potential energies (C,) and gradients (C, D)."""

    z: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


#: compiled entries allowed per step function (torch's default is 8): every model run with
#: ``jit_compile`` adds one, since each potential is a new graph that the step's guards tell
#: apart, and with the default the ninth model in one process (a benchmark grid, a notebook)
#: stopped with torch's "recompile limit exceeded"
RECOMPILE_LIMIT = 256


def compile_step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` handed to ``torch.compile`` whole (no graph breaks, static shapes), with room for
    one compiled entry per model run in this process (:data:`RECOMPILE_LIMIT`).

    Example: ``step = compile_step(functools.partial(leapfrog, potential))``.
    """
    import torch._dynamo

    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(fn, dynamic=False, fullgraph=True)


def compiled_leapfrog(potential: Potential, jit_compile: bool
                      ) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The potential's leapfrog step ``(z, r, grad, eps, inv_mass) -> (z, r, energy, grad)``,
    handed to ``torch.compile`` (one compiled kernel per step, potential inlined) if asked.

    Example::

        step = compiled_leapfrog(potential, jit_compile=False)
        z, r, energy, grad = step(z, r, grad, eps[:, None], inv_mass)
    """
    step: Callable[..., tuple[torch.Tensor, ...]] = functools.partial(leapfrog, potential)
    if jit_compile:
        step = compile_step(step)
    return step


class VectorizedKernel:
    """The contract the vectorised runner drives (see the module docstring): ``init``,
    ``step`` and ``final_step_size``. The state is any named tuple with positions ``z`` (C, D)
    and potential energies ``energy`` (C,).

    Kernels whose adaptation fits Stan's windows subclass :class:`AdaptiveKernel`; others
    (MEADS, which adapts across folds of chains) subclass this directly.
    """

    name = "this kernel"

    def __init__(self, settings: KernelSettings) -> None:
        self.settings = settings

    def init(self, potential: Potential, z: torch.Tensor, num_warmup: int,
             generator: torch.Generator) -> Any:
        """Evaluate the start ``z`` (C, D) and prepare ``num_warmup`` steps of adaptation."""
        raise NotImplementedError

    def step(self, state: Any, iteration: int) -> tuple[Any, dict[str, torch.Tensor]]:
        """One transition of every chain; adapts while ``iteration < num_warmup``."""
        raise NotImplementedError

    @property
    def final_step_size(self) -> torch.Tensor:
        """The step sizes (C,) in use after warm-up."""
        raise NotImplementedError


class AdaptiveKernel(VectorizedKernel):
    """Shared set-up of kernels with per-chain step sizes and metrics (diagonal, or dense with
    ``dense_mass`` where the kernel supports it) adapted in Stan's windows.

    Subclasses implement ``transition(state) -> (state, info, accept_stat)`` and integrate with
    ``self.leapfrog(z, r, grad, eps, inv_mass)``: the potential's leapfrog step, handed to
    ``torch.compile`` when ``settings.jit_compile`` is set.
    """

    pooled = False
    #: whether the kernel can use a dense metric (ChEES's criterion is written for a diagonal)
    supports_dense = True

    def __init__(self, settings: KernelSettings) -> None:
        if settings.dense_mass and not self.supports_dense:
            raise ValueError(f"chain_method='vectorized' with {self.name} adapts a diagonal mass "
                             "matrix only; set dense_mass=False, or use nuts or hmc")
        super().__init__(settings)
        self.potential: Potential | None = None
        self.generator = torch.Generator()
        self.num_warmup = 0

    def init(self, potential: Potential, z: torch.Tensor, num_warmup: int,
             generator: torch.Generator) -> VecState:
        """Evaluate the start, pick reasonable step sizes and prepare the adaptation."""
        self.potential, self.generator, self.num_warmup = potential, generator, num_warmup
        self.leapfrog = compiled_leapfrog(potential, self.settings.jit_compile)
        energy, grad = potential(z)
        state = VecState(z, energy, grad)
        chains, dim = z.shape
        self.adapter = ChainAdapter(num_warmup, chains, dim, self.settings.target_accept_prob,
                                    z.dtype, pooled=self.pooled,
                                    dense=bool(self.settings.dense_mass))
        initial = torch.full((chains,), float(self.settings.step_size or 1.0), dtype=z.dtype)
        if self.settings.step_size is None:
            initial = self._reasonable(state, initial, self.adapter.inv_mass)
        self.adapter.start(initial)
        self._state_for_reset = state
        return state

    def _reasonable(self, state: VecState, step_size: torch.Tensor,
                    inv_mass: torch.Tensor) -> torch.Tensor:
        assert self.potential is not None
        return find_reasonable_step_size(self.potential, state.z, state.energy, state.grad,
                                         inv_mass, step_size, self.generator)

    def transition(self, state: VecState) -> tuple[VecState, dict[str, torch.Tensor],
                                                   torch.Tensor]:
        raise NotImplementedError

    def step(self, state: VecState, iteration: int) -> tuple[VecState, dict[str, torch.Tensor]]:
        """One transition of every chain; adapts while ``iteration < num_warmup``."""
        state, info, accept = self.transition(state)
        if iteration < self.num_warmup:
            self.adapter.update(iteration, accept, state.z,
                                reset=lambda eps, inv_mass: self._reasonable(state, eps,
                                                                             inv_mass))
            if iteration == self.num_warmup - 1:
                self.adapter.finish()
        return state, info

    @property
    def step_size(self) -> torch.Tensor:
        return self.adapter.step_size

    @property
    def inv_mass(self) -> torch.Tensor:
        return self.adapter.inv_mass

    @property
    def final_step_size(self) -> torch.Tensor:
        """The step sizes (C,) in use after warm-up."""
        return self.adapter.step_size
