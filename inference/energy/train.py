"""Contrastive divergence (CD-k), persistent CD and parallel tempering for energy-based models.

One loop serves all three: the data term comes from the model's positive phase, the model
term from Gibbs chains that either restart at the mini-batch (CD-k, Hinton 2002) or persist
across updates (PCD, Tieleman 2008; with ``num_temperatures > 1`` the persistent chains are
replicas at several temperatures that swap states, Desjardins et al. 2010). The update is SGD
with momentum and L2 weight decay on the weights only, as in Hinton's practical guide (2010):
momentum ``initial_momentum`` for the first steps, then ``momentum``.

The loss minimised is ``mean E(positive) - mean E(negative)`` with both states fixed, whose
gradient is the (approximate) negative log-likelihood gradient (see
:mod:`inference.energy.protocol`); PyTorch's SGD does the update, autograd the derivatives.

Usage::

    from inference.energy import train_energy
    record = train_energy(rbm, x, k=1, persistent=False, num_steps=5000, batch_size=100,
                          lr=0.05, seed=0)
    record.recon_error[-1], record.steps_run
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from inference.energy.protocol import TrainingStage
from inference.energy.tempering import swap_step, temperature_ladder

__all__ = ["TrainingRecord", "cd_negative_state", "contrastive_loss", "train_energy",
           "train_stages"]


@dataclass(frozen=True)
class TrainingRecord:
    """What a training run did: per-step reconstruction error of the mini-batch (a cheap
    progress signal, not the likelihood), the stage each step belongs to, steps run, whether
    the time limit stopped it, seconds spent and the replica-swap acceptance rate (PT only)."""

    recon_error: np.ndarray
    stage: np.ndarray
    steps_run: int
    stopped_by_time_limit: bool
    seconds: float
    swap_rate: float | None = None
    stage_steps: dict[str, int] = field(default_factory=dict)


def _reconstruction_error(model: Any, v: torch.Tensor, generator: torch.Generator) -> float:
    """Squared error per example of a one-sweep reconstruction (Hinton's progress measure):
    the model's ``reconstruction(v)`` (visible means) when it has one, else a Gibbs sweep."""
    with torch.no_grad():
        own = getattr(model, "reconstruction", None)
        if own is not None:
            means = own(v)
        else:
            means = model.gibbs_step(model.chain_state(v, generator), generator=generator)[0]
        return float(((means - v) ** 2).sum(-1).mean())


def cd_negative_state(model: Any, v: torch.Tensor, k: int,
                      generator: torch.Generator | None = None) -> Any:
    """CD-k's model-term state: ``k`` Gibbs sweeps from the data ``v``."""
    with torch.no_grad():
        state = model.chain_state(v, generator)
        for _ in range(k):
            state = model.gibbs_step(state, generator=generator)
        return model.negative_state(state)


def contrastive_loss(model: Any, positive: Any, negative: Any) -> torch.Tensor:
    """``mean E(positive) - mean E(negative)``: its gradient in the parameters is minus the
    (CD / PCD estimate of the) log-likelihood gradient, for energies linear in them. Both
    states are held fixed (detached), so no gradient flows through the hidden expectations."""
    positive = tuple(t.detach() for t in positive)
    negative = tuple(t.detach() for t in negative)
    return model.energy(positive).mean() - model.energy(negative).mean()


def train_energy(model: Any, data: torch.Tensor, *, k: int = 1, persistent: bool = False,
                 num_steps: int = 1000, batch_size: int = 100, lr: float = 0.05,
                 momentum: float = 0.9, initial_momentum: float = 0.5,
                 initial_momentum_steps: int | None = None, weight_decay: float = 2e-4,
                 num_chains: int | None = None, num_temperatures: int = 1,
                 seed: int = 0, time_limit_s: float | None = None,
                 progress_bar: bool = False, stage: int = 0,
                 inputs: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
                 | None = None) -> TrainingRecord:
    """Fit ``model`` (an :class:`~inference.energy.protocol.EnergyModel`) to ``data``.

    ``k`` Gibbs sweeps per update; ``persistent`` keeps ``num_chains`` chains (default
    ``batch_size``) between updates; ``num_temperatures > 1`` (persistent only) runs that many
    tempered replicas with swaps. ``initial_momentum_steps`` defaults to five epochs, at most a
    fifth of the run. ``inputs`` maps each mini-batch to the model's visible units (the layer
    below of a greedy stack; drawn afresh for every batch). Stops early after
    ``time_limit_s`` seconds with a warning; raises
    ``RuntimeError`` when the parameters or the reconstruction error stop being finite.
    """
    if data.dim() != 2 or len(data) == 0:
        raise ValueError(f"data must be a non-empty (n, d) tensor, got shape {tuple(data.shape)}")
    if num_temperatures > 1 and not persistent:
        raise ValueError("parallel tempering (num_temperatures > 1) needs persistent chains")
    generator = torch.Generator().manual_seed(int(seed))
    n = len(data)
    batch_size = min(int(batch_size), n)
    if inputs is None:
        def inputs(v: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
            return v
    init = getattr(model, "init_from_data", None)
    if init is not None:
        with torch.no_grad():
            rows = torch.randperm(n, generator=generator)[:10_000]
            init(inputs(data[rows], generator))
    weights = list(model.weight_parameters())
    weight_ids = {id(p) for p in weights}
    biases = [p for p in model.parameters() if id(p) not in weight_ids]
    groups = [{"params": weights, "weight_decay": weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=lr,
                                momentum=initial_momentum)
    if initial_momentum_steps is None:
        initial_momentum_steps = min(5 * math.ceil(n / batch_size), num_steps // 5)
    betas = temperature_ladder(num_temperatures)
    chains: list[Any] | None = None
    swaps: list[float] = []
    errors: list[float] = []
    order = torch.randperm(n, generator=generator)
    cursor = 0
    start = time.perf_counter()
    stopped = False
    bar = _bar(num_steps, progress_bar)
    for step in range(num_steps):
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            stopped = True
            warnings.warn(f"energy training stopped by its time limit ({time_limit_s:.0f} s) "
                          f"after {step} of {num_steps} steps", RuntimeWarning)
            break
        if step == initial_momentum_steps:
            for group in optimizer.param_groups:
                group["momentum"] = momentum
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        cursor += batch_size
        with torch.no_grad():
            v = inputs(data[order[cursor - batch_size:cursor]], generator)
            positive = model.positive_state(v, generator)
            if not persistent:
                negative = cd_negative_state(model, v, k, generator)
            else:
                if chains is None:
                    start_v = inputs(data[torch.randint(n, (num_chains or batch_size,),
                                                        generator=generator)], generator)
                    chains = [model.chain_state(start_v, generator) for _ in betas]
                for _ in range(k):
                    chains = [model.gibbs_step(s, beta=b, generator=generator)
                              for s, b in zip(chains, betas)]
                    if len(betas) > 1:
                        chains, rate = swap_step(model, chains, betas, parity=step,
                                                 generator=generator)
                        swaps.append(rate)
                negative = model.negative_state(chains[0])
        optimizer.zero_grad(set_to_none=True)
        contrastive_loss(model, positive, negative).backward()
        optimizer.step()
        if step % 50 == 0 or step == num_steps - 1:  # a progress signal; also the check
            error = _reconstruction_error(model, v, generator)
            if not math.isfinite(error) or not all(bool(torch.isfinite(p).all())
                                                   for p in model.parameters()):
                raise RuntimeError(f"energy training diverged at step {step} of stage {stage} "
                                   f"(non-finite parameters or reconstruction error); lower "
                                   f"lr (now {lr}) or raise weight_decay")
        else:
            error = errors[-1]
        errors.append(error)
        if bar is not None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix_str(f"recon {error:.2f}")
    if bar is not None:
        bar.close()
    return TrainingRecord(recon_error=np.asarray(errors), stage=np.full(len(errors), stage),
                          steps_run=len(errors), stopped_by_time_limit=stopped,
                          seconds=time.perf_counter() - start,
                          swap_rate=float(np.mean(swaps)) if swaps else None)


def train_stages(stages: Sequence[TrainingStage], data: torch.Tensor, *, seed: int = 0,
                 time_limit_s: float | None = None, **options: Any) -> TrainingRecord:
    """Train the stages of a layer-wise model in order (see :class:`TrainingStage`).

    Each stage trains on its ``inputs`` of the data (drawn per mini-batch through the layers
    below, already trained) for ``num_steps`` updates; a time limit is shared
    evenly among the stages still to run. Returns one record over all stages.
    """
    records = []
    start = time.perf_counter()
    for number, stage in enumerate(stages):
        if stage.before is not None:
            stage.before()
        limit = None
        if time_limit_s is not None:
            left = time_limit_s - (time.perf_counter() - start)
            limit = max(left / (len(stages) - number), 1e-3)
        records.append(train_energy(stage.model, data, seed=int(seed) + 7919 * number,
                                    stage=number, time_limit_s=limit, inputs=stage.inputs,
                                    **options))
    swap_rates = [r.swap_rate for r in records if r.swap_rate is not None]
    return TrainingRecord(
        recon_error=np.concatenate([r.recon_error for r in records]),
        stage=np.concatenate([r.stage for r in records]),
        steps_run=sum(r.steps_run for r in records),
        stopped_by_time_limit=any(r.stopped_by_time_limit for r in records),
        seconds=time.perf_counter() - start,
        swap_rate=float(np.mean(swap_rates)) if swap_rates else None,
        stage_steps={s.name: r.steps_run for s, r in zip(stages, records)})


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="energy", unit="step")
