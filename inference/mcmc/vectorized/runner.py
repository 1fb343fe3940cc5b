"""The ``vectorized`` chain method: all chains in this process, advanced as one batch.

:func:`run_vectorized` is a chain runner of :data:`inference.mcmc.chains.CHAIN_RUNNERS`. It
builds the batched potential once (:class:`~inference.mcmc.vectorized.potential.BatchedPotential`),
starts each chain where the sequential runner would (its own seed, the same init strategy),
then drives the vectorised form of the requested kernel (:data:`VECTORIZED_KERNELS`). All
randomness after the start comes from one generator seeded with the first chain's seed, so the
same seed and number of chains give the same draws; unlike ``sequential`` and ``parallel``, a
chain's draws depend on how many chains run beside it.

The chains share one wall clock: each chain's ``warmup_s`` and ``sampling_s`` are the batch's
wall seconds divided by the number of chains, so their sums (``result.timings["warmup"]`` and
``["sampling"]``) are the wall time of the whole batch.

Usage::

    run_mcmc(model, {"y": y}, kernel="nuts", chain_method="vectorized", num_chains=32)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

from inference.mcmc.sampler import ChainOutput, ChainSettings
from inference.mcmc.vectorized.base import VectorizedKernel
from inference.mcmc.vectorized.chees import VectorizedChEES
from inference.mcmc.vectorized.hmc import VectorizedHMC
from inference.mcmc.vectorized.meads import VectorizedMEADS
from inference.mcmc.vectorized.nuts import VectorizedNUTS
from inference.mcmc.vectorized.potential import BatchedPotential

__all__ = ["run_vectorized", "VECTORIZED_KERNELS"]

#: kernel name -> its vectorised implementation
VECTORIZED_KERNELS: dict[str, type[VectorizedKernel]] = {
    "nuts": VectorizedNUTS, "hmc": VectorizedHMC, "chees": VectorizedChEES,
    "meads": VectorizedMEADS}


def run_vectorized(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                   settings: ChainSettings, seeds: list[int]) -> list[ChainOutput]:
    """Warm up and sample ``len(seeds)`` chains as one batch; one ``ChainOutput`` per chain."""
    name = settings.spec.name
    if name not in VECTORIZED_KERNELS:
        raise ValueError(f"kernel {name!r} has no vectorised form; chain_method='vectorized' "
                         f"runs {sorted(VECTORIZED_KERNELS)}; use chain_method='sequential'")
    chains = len(seeds)
    kernel = VECTORIZED_KERNELS[name](settings.kernel)
    start, cpu_start = time.perf_counter(), time.process_time()
    # jit_compile compiles the kernels' steps (potential inlined), not the potential alone
    potential = BatchedPotential(model, model_kwargs, chains)
    z0 = potential.initial_positions(settings.kernel.init_strategy, seeds)
    generator = torch.Generator().manual_seed(int(seeds[0]))
    bar = None
    if settings.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.num_warmup + settings.num_samples,
                   desc=f"{chains} chains warmup", leave=True)
    declared = set(settings.spec.stats)
    with torch.no_grad():
        state = kernel.init(potential, z0, settings.num_warmup, generator)
        for i in range(settings.num_warmup):
            state, _ = kernel.step(state, i)
            if bar is not None:
                bar.update()
        _check_finite(state.energy, "warm-up")
        warm_end, cpu_warm_end = time.perf_counter(), time.process_time()
        if bar is not None:
            bar.set_description(f"{chains} chains sample")
        draws = torch.empty(settings.num_samples, chains, potential.dim, dtype=z0.dtype)
        stats: dict[str, list[torch.Tensor]] = {}
        for j in range(settings.num_samples):
            state, info = kernel.step(state, settings.num_warmup + j)
            draws[j] = state.z
            if set(info) != declared:
                raise RuntimeError(f"vectorised kernel {name!r} returned statistics "
                                   f"{sorted(info)}; its spec declares {sorted(declared)}")
            for key, value in info.items():
                stats.setdefault(key, []).append(value)
            if bar is not None:
                bar.update()
        _check_finite(state.energy, "sampling")
    end, cpu_end = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.close()
    samples = potential.constrained(draws.transpose(0, 1))
    stacked = {k: torch.stack(v, dim=1).cpu().numpy() for k, v in stats.items()}
    step_sizes = kernel.final_step_size
    return [ChainOutput(
        chain=c,
        samples={k: np.ascontiguousarray(v[c]) for k, v in samples.items()},
        stats={k: v[c] for k, v in stacked.items()},
        warmup_s=(warm_end - start) / chains,
        sampling_s=(end - warm_end) / chains,
        warmup_cpu_s=(cpu_warm_end - cpu_start) / chains,
        sampling_cpu_s=(cpu_end - cpu_warm_end) / chains,
        final_step_size=float(step_sizes[c]),
        extra={"traced_potential": potential.traced},
    ) for c in range(chains)]


def _check_finite(energy: torch.Tensor, phase: str) -> None:
    """Stop with a clear message when chains have left the region of finite density."""
    bad = (~torch.isfinite(energy)).nonzero().flatten().tolist()
    if bad:
        raise FloatingPointError(f"vectorised MCMC diverged: the potential energy of chain(s) "
                                 f"{bad} is not finite after {phase}")
