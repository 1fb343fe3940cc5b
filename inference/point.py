"""Training loops of point-estimated networks (autoencoders, GANs): the parts both methods share.

A point method (family ``point``) trains a network by its own objective rather than a Pyro
density. What it shares with the others is here: shuffled mini-batches of one data tensor,
a seed that fixes every random number of the run (batches, noise, corruption) without changing
the caller's global random state, a wall-clock budget, a stop with a clear message when a loss
stops being finite, and the :class:`~inference.result.InferenceResult` it returns (no posterior
draws; the trained weights in ``guide_params``, the network in ``fitted["network"]``, the loss
curves in ``fitted["losses"]``).

Usage::

    from inference.point import train_steps, point_result

    def step(batch):                      # one update on a (batch_size, ...) tensor
        loss = net.loss(batch); opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": float(loss)}

    log = train_steps(step, x, num_steps=1000, batch_size=100, seed=0)
    result = point_result("autoencoder", settings, seed=0, log=log, network=net)
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

__all__ = ["TrainLog", "minibatches", "train_steps", "point_result", "DivergedError"]


class DivergedError(RuntimeError):
    """A training loss became NaN or infinite; the message names the step and the loss."""


@dataclass(frozen=True)
class TrainLog:
    """What a training loop did: per-step losses by name, steps run, time, and whether the
    wall-clock budget stopped it."""

    losses: Mapping[str, np.ndarray]
    steps_run: int
    seconds: float
    stopped_by_time_limit: bool


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Indices of shuffled mini-batches, epoch after epoch, without end (the last short batch
    of an epoch is dropped when ``n`` is not a multiple, so every batch has one size)."""
    if n < 1:
        raise ValueError("no training data: the data tensor is empty")
    size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - size + 1, size):
            yield order[start:start + size]


def train_steps(step: Callable[[torch.Tensor], Mapping[str, float]], data: torch.Tensor, *,
                num_steps: int, batch_size: int, seed: int,
                time_limit_s: float | None = None, progress_bar: bool = False,
                what: str = "training") -> TrainLog:
    """Call ``step(batch)`` ``num_steps`` times on shuffled mini-batches of ``data``.

    ``step`` returns its losses by name; a non-finite one raises :class:`DivergedError`.
    Every random number drawn inside (batch order, noise, corruption) comes from torch's
    global generator seeded with ``seed`` inside :func:`torch.random.fork_rng`, so a seed gives
    the same run and the caller's random state is left as it was.
    """
    if not isinstance(data, torch.Tensor) or data.dim() < 2:
        raise ValueError(f"{what} needs a data tensor of shape (N, ...), got "
                         f"{getattr(data, 'shape', type(data).__name__)}")
    history: dict[str, list[float]] = {}
    start = time.perf_counter()
    stopped = False
    done = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batches = minibatches(len(data), batch_size, torch.Generator().manual_seed(seed))
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=num_steps, desc=what, leave=False)
        for done in range(1, num_steps + 1):
            losses = step(data[next(batches)])
            for name, value in losses.items():
                if not math.isfinite(value):
                    raise DivergedError(f"{what} diverged at step {done}: {name} = {value}; "
                                        "lower the learning rate")
                history.setdefault(name, []).append(float(value))
            if bar is not None:
                bar.update(1)
            if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
                stopped = done < num_steps
                break
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if stopped:
        warnings.warn(f"{what} stopped by its time limit of {time_limit_s:g} s after {done} of "
                      f"{num_steps} steps", RuntimeWarning)
    return TrainLog({k: np.asarray(v) for k, v in history.items()}, done, seconds, stopped)


def point_result(method: str, settings: Any, seed: int, log: TrainLog,
                 network: torch.nn.Module) -> Any:
    """The :class:`~inference.result.InferenceResult` of a point fit: no draws; settings with
    ``steps_run``, ``stopped_by_time_limit`` and each loss's mean over the last 5 % of steps
    (``final_<name>``); the network's weights in ``guide_params`` (so that :meth:`save` keeps
    them and :func:`zoo.reload.load_run` restores them); the network and loss curves in
    ``fitted``."""
    from inference.result import InferenceResult

    record = dict(settings.as_dict())
    tail = max(1, log.steps_run // 20)
    for name, values in log.losses.items():
        record[f"final_{name}"] = float(np.mean(values[-tail:]))
    record.update(steps_run=log.steps_run, stopped_by_time_limit=log.stopped_by_time_limit)
    # the trained weights travel as plain arrays (saved as tensors, read with weights_only)
    weights = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    return InferenceResult(
        method=method, posterior={}, family="point", seed=seed, settings=record,
        guide_params=weights,
        timings={"fit": log.seconds, "per_step": log.seconds / max(1, log.steps_run)},
        fitted={"network": network, "losses": dict(log.losses)},
    )
