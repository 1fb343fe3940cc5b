"""One chain: warm up and sample a protocol kernel with its own seed, return plain arrays.

This loop is all the driver knows about sampling; how chains are scheduled (one after another,
in worker processes) is :mod:`inference.mcmc.chains`.

Usage::

    settings = ChainSettings(get_kernel("nuts"), KernelSettings(target_accept_prob=0.8),
                             num_warmup=200, num_samples=200)
    out = sample_chain(model, {"y": y}, settings, chain=0, seed=123)
    out.samples["mu"].shape, out.stats["diverging"].shape    # (200,), (200,)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import torch

from inference.mcmc.kernels.registry import KernelSpec
from inference.mcmc.protocol import KernelSettings

__all__ = ["ChainSettings", "ChainOutput", "sample_chain"]


@dataclass(frozen=True)
class ChainSettings:
    """Everything a chain needs besides the model: the kernel's spec and settings, the lengths.

    The record pickles (the spec's builder is a module-level function), so it travels to worker
    processes as it is.
    """

    spec: KernelSpec
    kernel: KernelSettings
    num_warmup: int
    num_samples: int
    progress_bar: bool = False


@dataclass
class ChainOutput:
    """One chain's constrained draws and per-draw statistics (numpy), timings and step size."""

    chain: int
    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    warmup_s: float
    sampling_s: float
    warmup_cpu_s: float
    sampling_cpu_s: float
    final_step_size: float
    extra: dict[str, Any] = field(default_factory=dict)


def sample_chain(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                 settings: ChainSettings, chain: int, seed: int) -> ChainOutput:
    """Warm up and sample one chain with its own seed; draws returned in the constrained space.

    The seed is set before the kernel is built, so a chain's numbers depend only on ``seed``
    (not on which process runs it or on what ran before).
    """
    pyro.set_rng_seed(seed)
    kernel = settings.spec.build(settings.kernel)
    bar = None
    if settings.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.num_warmup + settings.num_samples,
                   desc=f"chain {chain} warmup", position=chain, leave=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    state = kernel.init(model, model_kwargs, settings.num_warmup)
    warmup_steps = 0.0  # leapfrog steps (gradient evaluations) of warm-up, where reported
    for _ in range(settings.num_warmup):
        state, warm_info = kernel.step(state)
        warmup_steps += float(warm_info.get("n_steps", 0.0))
        if bar is not None:
            bar.update()
    warm_end, cpu_warm_end = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.set_description(f"chain {chain} sample")
    names = sorted(state.position)
    draws: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    declared = set(settings.spec.stats)
    stats: dict[str, list[float]] = {}
    for _ in range(settings.num_samples):
        state, info = kernel.step(state)
        for n in names:
            draws[n].append(state.position[n].detach().clone())
        if set(info) != declared:
            raise RuntimeError(f"kernel {settings.spec.name!r} returned statistics "
                               f"{sorted(info)}; its spec declares {sorted(declared)}")
        for key, value in info.items():
            stats.setdefault(key, []).append(value)
        if bar is not None:
            bar.update()
    end, cpu_end = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.close()
    samples = kernel.constrained({n: torch.stack(draws[n]) for n in names})
    step_size = kernel.final_step_size
    kernel.cleanup()
    return ChainOutput(
        chain=chain,
        samples=samples,
        stats={k: np.asarray(v) for k, v in stats.items()},
        warmup_s=warm_end - start,
        sampling_s=end - warm_end,
        warmup_cpu_s=cpu_warm_end - cpu_start,
        sampling_cpu_s=cpu_end - cpu_warm_end,
        final_step_size=float(step_size),
        extra={"warmup_n_steps": warmup_steps},
    )
