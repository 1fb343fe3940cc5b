"""Step-size schedules of the stochastic-gradient samplers: constant, decreasing, cyclical.

* ``constant``: ``h_t = h``.
* ``polynomial``: ``h_t = h (1 + t / decay_steps) ** -decay_power``; with ``decay_power`` in
  (0.5, 1] the steps satisfy Robbins-Monro (sum h_t = inf, sum h_t^2 < inf), the condition under
  which SGLD's bias vanishes (Welling and Teh 2011, whose ``a (b + t) ** -gamma`` this is).
* ``cyclical``: the cosine cycles of Zhang et al. 2020 (cSG-MCMC), ``num_cycles`` over the run:
  ``h_t = h / 2 (cos(pi r_t) + 1)`` with ``r_t`` the position in the current cycle in [0, 1);
  :meth:`StepSchedule.sampling` is true in the last ``1 - exploration`` of each cycle, where
  noise is added and draws are kept (before it the sampler explores as plain SGD).

Usage::

    from inference.sgmcmc.schedules import StepSchedule
    sched = StepSchedule("cyclical", 1e-2, num_steps=1000, num_cycles=4, exploration=0.5)
    sched(0), sched(124), sched.sampling(200)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StepSchedule", "SCHEDULES"]

SCHEDULES = ("constant", "polynomial", "cyclical")


@dataclass(frozen=True)
class StepSchedule:
    """Step size ``h_t`` at step ``t`` (0-based) of a run of ``num_steps`` steps."""

    name: str
    step_size: float
    num_steps: int
    decay_steps: float = 100.0
    decay_power: float = 0.55
    num_cycles: int = 1
    exploration: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.name!r}")
        if not self.step_size > 0 or self.num_steps < 1:
            raise ValueError(f"step_size must be > 0 and num_steps >= 1, got "
                             f"{self.step_size!r}, {self.num_steps!r}")
        if self.name == "cyclical" and not 1 <= self.num_cycles <= self.num_steps:
            raise ValueError(f"num_cycles must be in [1, num_steps={self.num_steps}], got "
                             f"{self.num_cycles!r}")

    @property
    def cycle_length(self) -> int:
        return math.ceil(self.num_steps / self.num_cycles)

    def position(self, t: int) -> float:
        """Where step ``t`` lies in its cycle, in [0, 1) (0 for non-cyclical schedules)."""
        if self.name != "cyclical":
            return 0.0
        return (t % self.cycle_length) / self.cycle_length

    def __call__(self, t: int) -> float:
        if self.name == "constant":
            return self.step_size
        if self.name == "polynomial":
            return self.step_size * (1.0 + t / self.decay_steps) ** (-self.decay_power)
        return self.step_size / 2.0 * (math.cos(math.pi * self.position(t)) + 1.0)

    def sampling(self, t: int) -> bool:
        """Whether step ``t`` samples (adds noise, may keep a draw); false while exploring."""
        return self.name != "cyclical" or self.position(t) >= self.exploration

    def end_of_cycle(self, t: int) -> bool:
        """Whether step ``t`` is the last of its cycle (or of the run)."""
        return (t + 1) % self.cycle_length == 0 or t + 1 == self.num_steps
