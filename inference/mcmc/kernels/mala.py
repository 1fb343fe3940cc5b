"""Metropolis-adjusted Langevin (MALA), written directly on the kernel protocol.

One gradient per transition: from the unconstrained point ``z`` (all latent sites flattened into
one vector) propose ``z' = z - (eps^2/2) M^{-1} grad U(z) + eps M^{-1/2} xi`` with
``xi ~ N(0, I)``, and accept with probability ``min(1, exp(U(z) - U(z')) q(z | z') / q(z' | z))``
where ``q(. | z) = N(z - (eps^2/2) M^{-1} grad U(z), eps^2 M^{-1})`` (the proposal is not
symmetric, so both directions enter). ``U`` is Pyro's potential (minus the log joint in the
unconstrained space, Jacobian included) from ``pyro.infer.mcmc.util.initialize_model``.

During warm-up Pyro's ``WarmupAdapter`` adapts the step size by dual averaging towards the target
acceptance (0.574 by default, optimal for MALA in high dimensions; Roberts and Rosenthal 1998)
and a diagonal inverse mass matrix ``M^{-1}`` in Stan's windows. A transition is ``diverging``
when its energy error ``-log(ratio)`` exceeds 1000 (Pyro's threshold for HMC) or the proposal's
potential is not finite.

Usage::

    result = run_mcmc(model, {"y": y}, kernel="mala", num_warmup=1000, num_samples=1000)
    result.sample_stats["acceptance_rate"].mean()     # about 0.57
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import pyro
import torch
from pyro.infer.mcmc.adaptation import WarmupAdapter
from pyro.infer.mcmc.util import initialize_model
from pyro.ops.integrator import potential_grad

from inference.mcmc.adaptation import find_reasonable_step_size
from inference.mcmc.initialization import make_init_strategy
from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import KernelSettings

__all__ = ["MALA", "MALAState", "SPEC"]

#: the one mass-matrix block (all latent sites flattened) as the WarmupAdapter sees it
_BLOCK = ("z",)
#: energy error above which a transition counts as divergent (Pyro's ``_max_sliced_energy``)
_MAX_ENERGY_ERROR = 1000.0


class MALAState(NamedTuple):
    """A MALA state: the point (per site and flat), its potential energy and gradient."""

    position: dict[str, torch.Tensor]
    z: torch.Tensor
    potential: torch.Tensor
    grad: torch.Tensor


class MALA:
    """The MALA kernel (see the module docstring); build it from :class:`KernelSettings`.

    Example::

        kernel = MALA(KernelSettings(target_accept_prob=0.574))
        state = kernel.init(model, {"y": y}, num_warmup=500)
        state, info = kernel.step(state)        # info: diverging, acceptance_rate, step_size, lp
    """

    def __init__(self, settings: KernelSettings) -> None:
        self.settings = settings
        self._t = 0
        self._num_warmup = 0
        self._adapter = WarmupAdapter(step_size=float(settings.step_size or 1.0),
                                      adapt_step_size=True, adapt_mass_matrix=True,
                                      target_accept_prob=float(settings.target_accept_prob),
                                      dense_mass=False)
        self.potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        self.transforms: dict[str, Any] = {}
        self._shapes: dict[str, tuple[torch.Size, torch.dtype]] = {}

    # ------------------------------------------------------------------ the protocol
    def init(self, model: Callable[..., Any], model_kwargs: Mapping[str, Any],
             num_warmup: int) -> MALAState:
        params, self.potential_fn, self.transforms, _ = initialize_model(
            model, model_kwargs=dict(model_kwargs), jit_compile=self.settings.jit_compile,
            skip_jit_warnings=True, init_strategy=make_init_strategy(self.settings.init_strategy))
        if not params:
            raise ValueError("MALA needs at least one continuous latent site")
        self._shapes = {name: (params[name].shape, params[name].dtype) for name in sorted(params)}
        state = self._state(torch.cat([params[n].detach().reshape(-1) for n in self._shapes]))
        self._t, self._num_warmup = 0, int(num_warmup)
        options = {"dtype": state.z.dtype, "device": state.z.device}
        self._adapter.configure(num_warmup, mass_matrix_shape={_BLOCK: (state.z.numel(),)},
                                find_reasonable_step_size_fn=self._reasonable_step_size,
                                options=options)
        self._adapter.reset_step_size_adaptation({_BLOCK[0]: state.z})
        return state

    def step(self, state: MALAState) -> tuple[MALAState, dict[str, float]]:
        step_size = float(self._adapter.step_size)
        noise = torch.randn(state.z.shape, dtype=state.z.dtype, device=state.z.device)
        proposal = self._state(self._propose(state, step_size, noise))
        log_ratio = self._log_accept_ratio(state, proposal, step_size, noise)
        accept_prob = math.exp(min(0.0, log_ratio))
        diverging = (not math.isfinite(float(proposal.potential))
                     or -log_ratio > _MAX_ENERGY_ERROR)
        if float(torch.rand(())) < accept_prob:
            state = proposal
        if self._t < self._num_warmup:
            self._adapter.step(self._t, {_BLOCK[0]: state.z},
                               torch.tensor(accept_prob), {_BLOCK[0]: state.grad})
        self._t += 1
        return state, {"diverging": float(diverging), "acceptance_rate": accept_prob,
                       "step_size": step_size, "lp": -float(state.potential)}

    def constrained(self, positions: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {name: (self.transforms[name].inv(value) if name in self.transforms
                           else value).cpu().numpy() for name, value in positions.items()}

    @property
    def final_step_size(self) -> float:
        return float(self._adapter.step_size)

    def cleanup(self) -> None:
        self.potential_fn = None

    # ------------------------------------------------------------------ the algorithm
    @property
    def _inverse_mass(self) -> torch.Tensor:
        return self._adapter.mass_matrix_adapter.inverse_mass_matrix[_BLOCK]

    def _unflatten(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out, pos = {}, 0
        for name, (shape, dtype) in self._shapes.items():
            size = shape.numel()
            out[name] = z[pos:pos + size].reshape(shape).to(dtype)
            pos += size
        return out

    def _state(self, z: torch.Tensor) -> MALAState:
        """The state at ``z``: potential and gradient (NaN potential, zero gradient on failure).

        Distribution validation is off, as in Pyro's HMC during warm-up: a wild proposal
        (e.g. ``exp`` overflowing a positive site) is then rejected instead of raising.
        """
        assert self.potential_fn is not None
        potential_fn = self.potential_fn
        with pyro.validation_enabled(False):
            grads, potential = potential_grad(
                lambda flat: potential_fn(self._unflatten(flat["z"])), {"z": z.detach().clone()})
        z = z.detach()
        return MALAState(self._unflatten(z), z, potential.detach(), grads["z"].detach())

    def _propose(self, state: MALAState, step_size: float, noise: torch.Tensor) -> torch.Tensor:
        inverse_mass = self._inverse_mass
        return (state.z - 0.5 * step_size**2 * inverse_mass * state.grad
                + step_size * inverse_mass.sqrt() * noise)

    def _log_accept_ratio(self, current: MALAState, proposal: MALAState, step_size: float,
                          noise: torch.Tensor) -> float:
        """``log[pi(z') q(z | z') / (pi(z) q(z' | z))]``; the Gaussian constants cancel."""
        back = (current.z - proposal.z
                + 0.5 * step_size**2 * self._inverse_mass * proposal.grad)
        log_q_back = -0.5 * float((back**2 / (step_size**2 * self._inverse_mass)).sum())
        log_q_forward = -0.5 * float((noise**2).sum())
        value = float(current.potential - proposal.potential) + log_q_back - log_q_forward
        return -math.inf if math.isnan(value) else value

    def _reasonable_step_size(self, z: Mapping[str, torch.Tensor]) -> float:
        """Pyro's doubling/halving search with trial MALA moves from ``z`` (see adaptation)."""
        current = self._state(z[_BLOCK[0]])

        def trial(step_size: float) -> float:
            noise = torch.randn(current.z.shape, dtype=current.z.dtype, device=current.z.device)
            proposal = self._state(self._propose(current, step_size, noise))
            return self._log_accept_ratio(current, proposal, step_size, noise)

        return find_reasonable_step_size(trial, float(self._adapter.step_size))


SPEC = KernelSpec(
    name="mala",
    default_target_accept=0.574,
    options=(),
    stats=("diverging", "acceptance_rate", "step_size", "lp"),
    build=MALA,
    description="Metropolis-adjusted Langevin: one gradient step plus noise, Metropolis-corrected",
)
