"""Pyro's own kernels (NUTS, HMC, random walk) behind the kernel protocol, with statistics.

Why each chain drives a Pyro kernel through its ``setup``/``sample`` API rather than through
``pyro.infer.MCMC``: ``MCMC`` keeps only the draws and a per-chain summary (divergence indices,
acceptance rate); per-draw acceptance probability, step size, tree depth, number of leapfrog
steps and energy never leave the kernel, and with worker processes its ``hook_fn`` runs in the
child where nothing can be collected. Driving ``kernel.sample`` ourselves (exactly what
``MCMC`` does inside ``_gen_samples``) lets thin kernel subclasses record those statistics after
every transition. Pyro's kernels return no per-step record, so the subclasses read them off
private attributes; ``tests/test_mcmc_contract.py`` checks them against ``pyro.infer.MCMC`` so
that a Pyro upgrade that moves them fails loudly. What each statistic is, and how it is read:

* ``diverging``: the kernel appended to ``_divergences`` during this transition.
* ``acceptance_rate``: the transition's mean Metropolis acceptance probability, recovered from
  the kernel's running mean ``_mean_accept_prob`` (``a_n = n m_n - (n-1) m_{n-1}``).
* ``step_size``: the step size used by the transition (``kernel.step_size``).
* ``tree_depth`` (NUTS): number of trajectory doublings (the largest ``tree_depth`` passed to
  ``_build_tree`` plus one); it equals ``max_tree_depth`` when the trajectory was cut short.
* ``n_steps``: leapfrog steps (calls of ``_build_basetree`` for NUTS, ``num_steps`` for HMC).
* ``energy``: the Hamiltonian at the start of the transition, potential energy of the current
  state plus kinetic energy of the freshly drawn momentum (what E-BFMI needs).
* ``lp``: minus the potential energy of the new state (log density in the unconstrained space,
  Jacobian included, as Stan's ``lp__``).

Usage::

    adapter = PyroKernelAdapter(lambda model: RecordingNUTS(model, max_tree_depth=8))
    state = adapter.init(model, {"y": y}, num_warmup=100)
    state, info = adapter.step(state)      # info["tree_depth"], info["energy"], ...
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from pyro.infer.mcmc import HMC, NUTS, RandomWalkKernel
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model

from inference.mcmc.adaptation import ScaleFreeDenseMassMatrix
from inference.mcmc.initialization import make_init_strategy
from inference.mcmc.protocol import KernelSettings

__all__ = ["PyroState", "PyroKernelAdapter", "RecordingNUTS", "RecordingHMC",
           "RecordingRandomWalk", "hmc_kernel_options"]


class _RecordingHMCMixin:
    """Records per-transition statistics of Pyro's HMC/NUTS after each ``sample`` call."""

    last_stats: dict[str, float]
    #: True from the start of ``sample`` until its first momentum draw has been recorded
    _rec_waiting = False
    _rec_energy: float | None = None
    _rec_leaves = 0
    _rec_max_depth = -1

    def sample(self, params):  # type: ignore[no-untyped-def]
        self._rec_energy = None
        self._rec_waiting = True
        self._rec_leaves = 0
        self._rec_max_depth = -1
        divergences = len(self._divergences)
        mean_before = self._mean_accept_prob
        step_size = float(self.step_size)
        num_steps = None if isinstance(self, NUTS) else int(self.num_steps)
        out = super().sample(params)
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        accept = n * self._mean_accept_prob - (n - 1) * mean_before
        stats = {
            "diverging": float(len(self._divergences) > divergences),
            "acceptance_rate": min(1.0, max(0.0, accept)),
            "step_size": step_size,
            "lp": -float(self._potential_energy_last),
            "energy": math.nan if self._rec_energy is None else self._rec_energy,
        }
        if isinstance(self, NUTS):
            stats["tree_depth"] = float(self._rec_max_depth + 1)
            stats["n_steps"] = float(self._rec_leaves)
        else:
            stats["n_steps"] = float(num_steps)
        self.last_stats = stats
        return out

    def _sample_r(self, name):  # type: ignore[no-untyped-def]
        r, r_unscaled = super()._sample_r(name)
        if self._rec_waiting:  # the transition's own momentum, not a step-size search's
            self._rec_waiting = False
            self._rec_energy = float(self._kinetic_energy(r_unscaled)) + float(
                self._potential_energy_last)
        return r, r_unscaled

    def _build_basetree(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._rec_leaves += 1
        return super()._build_basetree(*args, **kwargs)

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        # type: ignore[no-untyped-def]
        self._rec_max_depth = max(self._rec_max_depth, tree_depth)
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                   energy_current)

    @property
    def current_step_size(self) -> float:
        return float(self.step_size)


class RecordingNUTS(_RecordingHMCMixin, NUTS):
    """Pyro's NUTS recording ``last_stats`` after every transition."""


class RecordingHMC(_RecordingHMCMixin, HMC):
    """HMC whose ``num_steps``, when given, stays fixed while the step size adapts.

    Pyro turns ``num_steps`` into a trajectory length ``step_size * num_steps`` fixed at
    construction, so adapting the step size silently changes the number of steps; here, as in
    NumPyro, a given ``num_steps`` is the number of leapfrog steps of every transition. Without
    ``num_steps`` it is Pyro's HMC (trajectory length 2*pi).
    """

    def __init__(self, model, *, num_steps=None, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(model, num_steps=num_steps, **kwargs)
        self._fixed_num_steps = num_steps

    @property
    def num_steps(self) -> int:
        if self._fixed_num_steps is not None:
            return int(self._fixed_num_steps)
        return max(1, int(self.trajectory_length / self.step_size))


class RecordingRandomWalk(RandomWalkKernel):
    """Pyro's random-walk kernel with an init strategy and per-transition statistics."""

    def __init__(self, model, *, init_strategy, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(model, **kwargs)
        self._init_strategy = init_strategy

    def setup(self, warmup_steps, *args, **kwargs):  # type: ignore[no-untyped-def]
        # as RandomWalkKernel.setup, which offers no init strategy (it always uses the default)
        self._warmup_steps = warmup_steps
        (self._initial_params, self.potential_fn, self.transforms,
         self._prototype_trace) = initialize_model(
            self.model, model_args=args, model_kwargs=kwargs, init_strategy=self._init_strategy)
        self._energy_last = self.potential_fn(self._initial_params)

    def sample(self, params):  # type: ignore[no-untyped-def]
        mean_before = self._mean_accept_prob
        step_size = math.exp(self._log_step_size)
        out = super().sample(params)
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        accept = n * self._mean_accept_prob - (n - 1) * mean_before
        self.last_stats = {
            "acceptance_rate": min(1.0, max(0.0, accept)),
            "step_size": step_size,
            "lp": -float(self._energy_last),
        }
        return out

    @property
    def current_step_size(self) -> float:
        return math.exp(self._log_step_size)


def hmc_kernel_options(settings: KernelSettings) -> dict[str, Any]:
    """The keyword arguments NUTS and HMC share, from the run's settings."""
    return dict(step_size=float(settings.step_size or 1.0), adapt_step_size=True,
                adapt_mass_matrix=True, full_mass=settings.dense_mass,
                target_accept_prob=float(settings.target_accept_prob),
                jit_compile=settings.jit_compile, ignore_jit_warnings=True,
                init_strategy=make_init_strategy(settings.init_strategy))


class PyroState(NamedTuple):
    """The position a Pyro kernel returned (its other state lives inside the kernel)."""

    position: dict[str, torch.Tensor]


class PyroKernelAdapter:
    """A Pyro ``MCMCKernel`` with ``last_stats`` (the recording classes above) as a protocol kernel.

    ``make(model)`` builds the Pyro kernel in :meth:`init`; with ``dense_mass`` the dense metric
    uses :class:`~inference.mcmc.adaptation.ScaleFreeDenseMassMatrix`.

    Example::

        adapter = PyroKernelAdapter(lambda model: RecordingHMC(model, num_steps=5))
        state = adapter.init(model, {"y": y}, num_warmup=50)
        state, info = adapter.step(state)
    """

    def __init__(self, make: Callable[[Callable[..., Any]], MCMCKernel],
                 dense_mass: bool = False) -> None:
        self._make = make
        self._dense_mass = dense_mass
        self.pyro_kernel: Any = None

    def init(self, model: Callable[..., Any], model_kwargs: Mapping[str, Any],
             num_warmup: int) -> PyroState:
        kernel = self._make(model)
        if self._dense_mass:
            kernel.mass_matrix_adapter = ScaleFreeDenseMassMatrix()
        kernel.setup(num_warmup, **model_kwargs)
        self.pyro_kernel = kernel
        return PyroState(kernel.initial_params)

    def step(self, state: PyroState) -> tuple[PyroState, dict[str, float]]:
        params = self.pyro_kernel.sample(state.position)
        return PyroState(params), dict(self.pyro_kernel.last_stats)

    def constrained(self, positions: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {name: self.pyro_kernel.transforms[name].inv(value).cpu().numpy()
                    for name, value in positions.items()}

    @property
    def final_step_size(self) -> float:
        return self.pyro_kernel.current_step_size

    def cleanup(self) -> None:
        self.pyro_kernel.cleanup()
