"""How chains run: one after another (``sequential``), in worker processes (``parallel``), or
all in this process as one batch (``vectorized``, see :mod:`inference.mcmc.vectorized`).

Each chain gets its own seed from :func:`chain_seeds` and runs :func:`sample_chain`, so a
chain's numbers do not depend on the chain method: ``parallel`` gives the same draws as
``sequential``, bit for bit.

Worker processes are started with ``spawn``: ``fork`` after torch has started its thread pools
can deadlock or corrupt the child. With ``spawn`` the child imports everything afresh, so the
model and its keyword arguments must pickle (a module-level function or a method of a picklable
object; not a closure or lambda). :func:`run_parallel` checks this before starting anything.

Adding a chain method means adding a
runner ``(model, model_kwargs, settings, seeds) -> list[ChainOutput]`` to :data:`CHAIN_RUNNERS`;
the driver and :data:`CHAIN_METHODS` pick it up from there.

Usage::

    seeds = chain_seeds(0, 4)
    outputs = CHAIN_RUNNERS["parallel"](model, {"y": y}, settings, seeds)
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import traceback
from typing import Any, Callable, Mapping

import numpy as np
import torch

from inference.mcmc.sampler import ChainOutput, ChainSettings, sample_chain

__all__ = ["ChainFailedError", "chain_seeds", "run_sequential", "run_parallel", "run_vectorized",
           "CHAIN_RUNNERS", "CHAIN_METHODS"]

Runner = Callable[[Callable[..., Any], Mapping[str, Any], ChainSettings, list[int]],
                  list[ChainOutput]]


class ChainFailedError(RuntimeError):
    """A chain raised (or its worker process died); the message names the chain and the error."""


def chain_seeds(seed: int, num_chains: int) -> list[int]:
    """Independent per-chain seeds derived deterministically from ``seed`` (NumPy SeedSequence).

    Example::

        chain_seeds(0, 2)     # two 32-bit seeds, the same on every machine
    """
    states = np.random.SeedSequence(int(seed)).spawn(num_chains)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in states]


def run_sequential(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                   settings: ChainSettings, seeds: list[int]) -> list[ChainOutput]:
    """The chains one after another in this process; the first failure stops the run."""
    outputs = []
    for chain, seed in enumerate(seeds):
        try:
            outputs.append(sample_chain(model, model_kwargs, settings, chain, seed))
        except Exception as error:
            raise ChainFailedError(
                f"MCMC chain {chain} (seed {seed}) failed: {type(error).__name__}: {error}"
            ) from error
    return outputs


def _pickled_job(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                 settings: ChainSettings) -> bytes:
    """The job as bytes for spawned workers, or a ``ValueError`` that says what to do instead."""
    advice = ("chain_method='parallel' starts worker processes with 'spawn', so the model and "
              "model_kwargs must pickle: define the model at module level (not as a closure or "
              "lambda), or use chain_method='sequential'")
    main = sys.modules.get("__main__")
    if getattr(model, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise ValueError(f"{advice} (the model is defined in an interactive session, which "
                         "worker processes cannot import)")
    try:
        return pickle.dumps((model, dict(model_kwargs), settings))
    except Exception as error:  # PicklingError, AttributeError, TypeError: all mean "cannot"
        raise ValueError(f"{advice} ({type(error).__name__}: {error})") from error


def _chain_worker(conn: Any, job: bytes, chain: int, seed: int) -> None:
    """Worker process entry: one torch thread, unpickle the job, send back the output."""
    torch.set_num_threads(1)
    try:
        model, model_kwargs, settings = pickle.loads(job)
        conn.send(("ok", sample_chain(model, model_kwargs, settings, chain, seed)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent with its traceback
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_parallel(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                 settings: ChainSettings, seeds: list[int]) -> list[ChainOutput]:
    """Chains in spawned worker processes, at most one per CPU core at a time.

    Every chain runs even when one fails; the ``ChainFailedError`` names each failed chain.
    Only the finished chain's arrays travel back through a pipe.
    """
    job = _pickled_job(model, model_kwargs, settings)
    ctx = multiprocessing.get_context("spawn")
    width = max(1, min(len(seeds), os.cpu_count() or 1))
    outputs: dict[int, ChainOutput] = {}
    failures: list[str] = []
    pending = list(enumerate(seeds))
    while pending:
        batch, pending = pending[:width], pending[width:]
        running = []
        for chain, seed in batch:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_chain_worker, args=(child, job, chain, seed), daemon=True)
            proc.start()
            child.close()
            running.append((chain, proc, parent))
        for chain, proc, parent in running:
            try:
                status, payload = parent.recv()
            except EOFError:
                proc.join()
                failures.append(f"chain {chain}: worker process exited with code "
                                f"{proc.exitcode} before returning a result")
                continue
            finally:
                parent.close()
            proc.join()
            if status == "ok":
                outputs[chain] = payload
            else:
                failures.append(f"chain {chain}: {payload}")
    if failures:
        raise ChainFailedError("MCMC chain(s) failed:\n" + "\n".join(failures))
    return [outputs[c] for c in range(len(seeds))]


def run_vectorized(model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                   settings: ChainSettings, seeds: list[int]) -> list[ChainOutput]:
    """All chains in this process as one batch (see :mod:`inference.mcmc.vectorized.runner`)."""
    from inference.mcmc.vectorized.runner import run_vectorized as run

    return run(model, model_kwargs, settings, seeds)


#: chain method name -> runner; a new method is one more entry here
CHAIN_RUNNERS: dict[str, Runner] = {"sequential": run_sequential, "parallel": run_parallel,
                                    "vectorized": run_vectorized}
CHAIN_METHODS = tuple(CHAIN_RUNNERS)
