"""The kernel protocol: what the MCMC driver needs from a sampler, and nothing more.

A kernel is built from :class:`KernelSettings`, then driven as in BlackJAX and NumPyro::

    state = kernel.init(model, model_kwargs, num_warmup)   # adaptation runs for num_warmup steps
    for _ in range(num_warmup + num_samples):
        state, info = kernel.step(state)                     # info: this transition's statistics
    draws = kernel.constrained({"mu": stacked_positions})    # unconstrained -> constrained, numpy

``state.position`` is a dict of unconstrained tensors, one per latent site; ``info`` maps the
names in :data:`STATISTICS` that the kernel records to plain floats. The driver keeps the
positions and ``info`` of the sampling steps, and after the last step reads
``kernel.final_step_size`` and calls ``kernel.cleanup()``.

Unlike BlackJAX, a kernel here is an object that may carry adaptation state (Pyro's kernels and
its ``WarmupAdapter`` are mutable), so ``step`` must always be given the state it last returned.
``constrained`` maps a whole stack of positions at once (leading draw dimension), as
``pyro.infer.MCMC`` does after a run: one batched transform is cheaper than one per draw, and it
gives the same floating-point numbers as ``MCMC``.

A tiny kernel (random-walk Metropolis on a model with one real-valued site)::

    import math, pyro, torch, numpy as np
    from pyro.infer.mcmc.util import initialize_model
    from typing import NamedTuple

    class State(NamedTuple):
        position: dict
        potential: torch.Tensor

    class TinyMetropolis:
        final_step_size = 0.5

        def init(self, model, model_kwargs, num_warmup):
            params, self.potential_fn, self.transforms, _ = initialize_model(
                model, model_kwargs=dict(model_kwargs))
            return State(params, self.potential_fn(params))

        def step(self, state):
            proposal = {k: v + 0.5 * torch.randn_like(v) for k, v in state.position.items()}
            potential = self.potential_fn(proposal)
            accept = float(torch.exp(state.potential - potential).clamp(max=1.0))
            if float(torch.rand(())) < accept:
                state = State(proposal, potential)
            return state, {"acceptance_rate": accept, "lp": -float(state.potential)}

        def constrained(self, positions):
            return {k: self.transforms[k].inv(v).numpy() for k, v in positions.items()}

        def cleanup(self):
            pass

    def model():
        pyro.sample("x", pyro.distributions.Normal(0.0, 1.0))

    kernel = TinyMetropolis()
    state = kernel.init(model, {}, num_warmup=0)
    positions = []
    for _ in range(200):
        state, info = kernel.step(state)
        positions.append(state.position["x"])
    draws = kernel.constrained({"x": torch.stack(positions)})
    assert draws["x"].shape == (200,)

To make such a kernel available as ``run_mcmc(..., kernel="tiny")``, add a module to
:mod:`inference.mcmc.kernels` that defines ``SPEC = KernelSpec(...)`` (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["KernelSettings", "KernelState", "Kernel", "STATISTICS", "KERNEL_OPTIONS"]

#: The per-transition statistics a kernel may record: name -> (dtype, meaning). A kernel's
#: ``info`` holds a subset (its :attr:`KernelSpec.stats`); the driver stores each as an array of
#: shape (chains, draws) in ``result.sample_stats`` with this dtype.
STATISTICS: Mapping[str, tuple[type, str]] = {
    "diverging": (bool, "the transition diverged (energy error above 1000, or not finite)"),
    "acceptance_rate": (np.float64, "the transition's Metropolis acceptance probability"),
    "step_size": (np.float64, "the step size the transition used"),
    "tree_depth": (np.int64, "NUTS: number of trajectory doublings"),
    "n_steps": (np.int64, "leapfrog steps (gradient evaluations) of the transition"),
    "energy": (np.float64, "Hamiltonian at the start of the transition (for E-BFMI)"),
    "lp": (np.float64, "log density of the new state, unconstrained space, Jacobian included"),
}

#: Kernel-specific ``run_mcmc`` keywords and their value when not given. A kernel accepts those
#: named in its :attr:`KernelSpec.options`; the driver rejects the others when they are set.
KERNEL_OPTIONS: Mapping[str, Any] = {"max_tree_depth": 10, "num_steps": None,
                                     "dense_mass": False}


@dataclass(frozen=True)
class KernelSettings:
    """What a kernel builder receives: the ``run_mcmc`` settings that concern the kernel.

    ``init_strategy`` is a name from :data:`inference.mcmc.initialization.INIT_STRATEGIES` or a
    dict of site values (turn it into a Pyro strategy with ``make_init_strategy``); ``step_size``
    is the initial step size or ``None`` for the kernel's own default. The record pickles, so it
    can travel to worker processes.

    Example::

        KernelSettings(target_accept_prob=0.8, step_size=None, init_strategy="uniform")
    """

    target_accept_prob: float
    step_size: float | None = None
    init_strategy: str | Mapping[str, Any] = "uniform"
    jit_compile: bool = False
    max_tree_depth: int = 10
    num_steps: int | None = None
    dense_mass: bool = False


@runtime_checkable
class KernelState(Protocol):
    """Any record with a ``position``: a dict of unconstrained tensors, one per latent site."""

    @property
    def position(self) -> Mapping[str, torch.Tensor]: ...


@runtime_checkable
class Kernel(Protocol):
    """A Markov kernel as the driver sees it (see the module docstring for an example)."""

    def init(self, model: Callable[..., Any], model_kwargs: Mapping[str, Any],
             num_warmup: int) -> KernelState:
        """Trace the model, pick the initial point, and prepare ``num_warmup`` adaptive steps."""
        ...

    def step(self, state: KernelState) -> tuple[KernelState, dict[str, float]]:
        """One transition: the new state and this transition's statistics."""
        ...

    def constrained(self, positions: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Stacked unconstrained positions (leading draw dimension) in the constrained space."""
        ...

    @property
    def final_step_size(self) -> float:
        """The step size in use after warm-up (what adaptation settled on)."""
        ...

    def cleanup(self) -> None:
        """Release what ``init`` built (traces, caches); called once after the last step."""
        ...
