"""Run stochastic-gradient MCMC chains on any Pyro model: burn-in, thinning, several chains.

:func:`run_sgmcmc` builds the model's potential (:class:`inference.potential.Potential`, with
``subsample_size=batch_size`` so the data plate draws and scales each mini-batch), then runs
``num_chains`` chains one after another, each from its own starting point, for ``num_steps``
steps of a kernel of :mod:`inference.sgmcmc.kernels` under a step-size schedule of
:mod:`inference.sgmcmc.schedules`. After ``burn_in`` (a fraction of the steps) it keeps every
``thin``-th position (cyclical schedules: only in each cycle's sampling stage), so the result
has chain and draw dimensions and R-hat and ESS apply. A diverging chain stops the run with
a message naming the step and the step size.

Usage::

    from inference.sgmcmc import run_sgmcmc
    result = run_sgmcmc(net.model, {"x": x, "y": y}, kernel="sghmc", num_chains=4,
                        num_steps=5000, batch_size=32, step_size=0.05, thin=20)
    result.posterior["w0"].shape          # (4, draws, in, out)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import torch
from tqdm.auto import trange

from inference.optimize import minimize
from inference.potential import DivergedError, Potential
from inference.result import InferenceResult
from inference.sgmcmc.kernels import KERNELS
from inference.sgmcmc.schedules import StepSchedule

__all__ = ["run_sgmcmc", "kept_steps"]


def kept_steps(schedule: StepSchedule, burn_in: float, thin: int) -> list[int]:
    """The steps whose positions are kept: after burn-in, every ``thin``-th, sampling steps only.

    At least one step is kept (the last sampling step, else the last step) so tiny runs
    still return a draw.
    """
    first = int(burn_in * schedule.num_steps)
    sampling = [t for t in range(first, schedule.num_steps) if schedule.sampling(t)]
    if not sampling:  # cycles too short to reach a sampling stage: the last step
        sampling = ([t for t in range(schedule.num_steps) if schedule.sampling(t)]
                    or [schedule.num_steps - 1])
    kept = sampling[thin - 1::thin] or sampling[-1:]
    return kept


def run_sgmcmc(model: Callable[..., Any], model_kwargs: Mapping[str, Any], *,
               kernel: str = "sgld", num_chains: int = 4, num_steps: int = 2000,
               burn_in: float = 0.5, thin: int = 1, batch_size: int | None = None,
               step_size: float = 1e-3, schedule: str = "constant", decay_steps: float = 100.0,
               decay_power: float = 0.55, num_cycles: int = 1, exploration: float = 0.5,
               friction: float = 0.1, rms_decay: float = 0.99, rms_eps: float = 1e-5,
               temperature: float = 1.0, init: str = "prior", pretrain_steps: int = 0,
               pretrain_lr: float = 1e-2, log_likelihood: bool = False,
               progress_bar: bool = False, seed: int = 0, method: str | None = None) -> InferenceResult:
    """Stochastic-gradient MCMC draws of ``model``'s latent sites as an ``InferenceResult``.

    ``step_size`` is per data point: the kernel's step on the potential is
    ``step_size / N`` with ``N`` the data plate's size (1 without a data plate), so one
    setting suits data sets of any size. Chain ``c`` starts from a prior draw (``init="prior"``)
    or the prior median, with seed ``seed + c``, then ``pretrain_steps`` Adam steps at
    ``pretrain_lr`` on the per-datum potential (a prior draw of a net's weights sits where the
    gradient is so steep that the first sampler steps would diverge). Kernel options: ``friction`` (SGHMC),
    ``rms_decay`` and ``rms_eps`` (pSGLD). ``sample_stats`` holds each kept draw's step size
    and stochastic potential.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in must be a fraction in [0, 1), got {burn_in!r}")
    if thin < 1 or num_chains < 1:
        raise ValueError(f"thin and num_chains must be >= 1, got {thin!r}, {num_chains!r}")
    options = {"sgld": {}, "sghmc": {"friction": friction},
               "psgld": {"beta": rms_decay, "eps": rms_eps}}[kernel]
    transition = KERNELS[kernel](temperature=temperature, **options)
    sched = StepSchedule(schedule, step_size, num_steps, decay_steps, decay_power,
                         num_cycles, exploration)
    potential = Potential(model, model_kwargs, batch_size=batch_size)
    num_data = potential.num_data or 1
    keep = set(kept_steps(sched, burn_in, thin))
    chains, stats_h, stats_u = [], [], []
    t0 = time.perf_counter()
    for c in range(num_chains):
        gen = torch.Generator().manual_seed(seed * 7919 + c)
        z0 = potential.initial(seed + c, init)
        if pretrain_steps:
            z0, _ = minimize(potential, z0, lr=pretrain_lr, num_steps=pretrain_steps,
                             desc=f"{kernel} chain {c} pre-training")
        state = transition.init(z0)
        draws, hs, us = [], [], []
        for t in trange(num_steps, disable=not progress_bar, desc=f"{kernel} chain {c}"):
            h = sched(t) / num_data
            try:
                with pyro.validation_enabled(False):  # the checks cost a third of a step
                    u, grad = potential.value_and_grad(state.z)
            except DivergedError as err:
                raise DivergedError(f"{kernel} chain {c} diverged at step {t} (step size "
                                    f"{sched(t):.3g} per data point): {err}") from None
            state = transition.step(state, grad, h, sched.sampling(t), gen, num_data)
            if t in keep:
                draws.append(state.z.detach().clone())
                hs.append(sched(t))
                us.append(u)
        if not bool(torch.isfinite(state.z).all()):
            raise DivergedError(f"{kernel} chain {c} left finite values; lower step_size")
        chains.append(torch.stack(draws))
        stats_h.append(hs)
        stats_u.append(us)
    elapsed = time.perf_counter() - t0
    z = torch.stack(chains)  # (chain, draw, dim)
    posterior = potential.constrain(z)
    ll = None
    if log_likelihood:
        from inference.log_likelihood import pointwise_log_likelihood

        ll = pointwise_log_likelihood(model, posterior, model_kwargs)
    settings = dict(kernel=kernel, num_chains=num_chains, num_steps=num_steps, burn_in=burn_in,
                    thin=thin, batch_size=batch_size, step_size=step_size, schedule=schedule,
                    decay_steps=decay_steps, decay_power=decay_power, num_cycles=num_cycles,
                    exploration=exploration, friction=friction, rms_decay=rms_decay,
                    rms_eps=rms_eps, temperature=temperature, init=init,
                    pretrain_steps=pretrain_steps, pretrain_lr=pretrain_lr,
                    draws_per_chain=len(keep))
    return InferenceResult(
        method=method or kernel, family="sgmcmc", posterior=posterior,
        sample_stats={"step_size": np.asarray(stats_h), "potential": np.asarray(stats_u)},
        timings={"sampling": elapsed, "per_step": elapsed / (num_chains * num_steps)},
        settings=settings, seed=seed, log_likelihood=ll)
