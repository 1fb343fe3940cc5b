"""Where cells run: in this process, in local worker processes, or on a Ray cluster.

A backend takes the cells still to run and yields ``(cell, row)`` pairs as cells finish, in
completion order. Each worker runs :func:`benchmarks.cells.run_cell`, which writes the cell's
outputs itself, so the runner only collects rows.

Usage::

    from benchmarks.backends import get_backend
    for cell, row in get_backend("local", jobs=2).run(cells, "runs/quick", suite="quick"):
        print(cell.cell_id, row["status"])

The Ray backend needs Ray (``pip install -e .[ray]``; the core ``ray`` package is enough, the
``[default]`` extra adds the dashboard). It connects to the cluster named by ``RAY_ADDRESS`` or
starts a local Ray instance (shut down at the end of the run), unless Ray is already initialised
in the process, which then stays as it is. Its workers get :func:`ray_runtime_env`: the project
and the driver's ``PYTHONPATH`` on their path and one OpenMP thread each; when you call
``ray.init`` yourself, pass it too::

    import ray
    from benchmarks.backends import ray_runtime_env
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=ray_runtime_env())

On a multi-node cluster the output folder must be on a file system every node shares, since
each cell writes its own folder.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Sequence

from benchmarks.cells import run_cell
from benchmarks.suite import Cell

BACKENDS = ("local", "ray")


def get_backend(name: str, *, jobs: int = 1) -> "Backend":
    """The backend called ``name`` ("local" or "ray") running ``jobs`` cells at a time."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if name == "local":
        return LocalBackend(jobs)
    if name == "ray":
        return RayBackend(jobs)
    raise ValueError(f"unknown backend {name!r}; allowed: {BACKENDS}")


def _exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Watchdog thread body: end this worker once its parent is gone (e.g. ``kill -9``).

    Without it, workers of a killed ``zoo bench`` would go on writing cells that a resumed run
    is writing too.
    """
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os._exit(1)


_WORKER_READY = False


def _init_worker() -> None:
    """Worker set-up, once per process: one intra-op thread, so N jobs use N cores and timings
    are comparable; a watchdog ends the worker when the parent process dies."""
    global _WORKER_READY
    if _WORKER_READY:  # Ray reuses a worker process for many tasks
        return
    _WORKER_READY = True
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from benchmarks.cells import warm_imports

    warm_imports()


def _error_row(cell: Cell, suite: str, message: str) -> dict[str, Any]:
    return {
        "suite": suite, "cell_id": cell.cell_id, "model": cell.model, "data": cell.data,
        "split": cell.split, "method": cell.method, "label": cell.label, "guide": cell.guide,
        "seed": cell.seed, "status": "error", "error": message,
    }


class Backend:
    """Where cells run: ``run`` yields ``(cell, row)`` pairs as cells finish, in any order."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs  # validated by get_backend

    def run(
        self, cells: Sequence[Cell], out_dir: str | Path, *, suite: str = "",
        imports: tuple[str, ...] = (),
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        raise NotImplementedError


class LocalBackend(Backend):
    """Cells in this process (``jobs=1``) or in ``jobs`` spawned worker processes."""

    def run(
        self, cells: Sequence[Cell], out_dir: str | Path, *, suite: str = "",
        imports: tuple[str, ...] = (),
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        if self.jobs == 1:
            for cell in cells:
                yield cell, run_cell(cell, out_dir, suite=suite, imports=imports)
            return
        yield from self._run_pool(list(cells), str(out_dir), suite, imports)

    def _run_pool(
        self, cells: list[Cell], out_dir: str, suite: str, imports: tuple[str, ...]
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        """Cells across ``jobs`` workers. When a worker dies (killed, out of memory, segfault)
        the pool breaks and every unfinished cell is unaccounted for, so those cells are run
        again one per fresh single-worker pool: a crash there is attributable to its cell and is
        recorded as that cell's error, and healthy cells are never blamed for another's crash."""
        # spawn: a fresh interpreter per worker (fork would copy torch's thread pools and locks)
        context = multiprocessing.get_context("spawn")
        pending = list(cells)
        isolate = False
        while pending:
            batch = pending[:1] if isolate else pending
            pending = pending[1:] if isolate else []
            pool = ProcessPoolExecutor(
                max_workers=min(self.jobs, len(batch)), mp_context=context,
                initializer=_init_worker,
            )
            futures: dict[Future, Cell] = {
                pool.submit(run_cell, cell, out_dir, suite=suite, imports=imports): cell
                for cell in batch
            }
            broken = False
            try:
                not_done = set(futures)
                while not_done:
                    done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                    for future in done:
                        cell = futures[future]
                        try:
                            yield cell, future.result()
                        except BrokenProcessPool:
                            broken = True
                            if isolate:
                                yield cell, _error_row(
                                    cell, suite, "worker: BrokenProcessPool: the worker "
                                    "process running this cell died (killed, out of memory "
                                    "or crashed)",
                                )
                            else:
                                pending.append(cell)
                        except Exception as err:  # run_cell records its own errors
                            yield cell, _error_row(cell, suite,
                                                   f"worker: {type(err).__name__}: {err}")
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)
            isolate = isolate or broken


class RayBackend(Backend):
    """Cells as Ray tasks (one CPU each), at most ``jobs`` in flight at a time."""

    def run(
        self, cells: Sequence[Cell], out_dir: str | Path, *, suite: str = "",
        imports: tuple[str, ...] = (),
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        try:
            import ray
        except ImportError:
            raise ImportError(
                "the ray backend needs Ray: pip install -e '.[ray]'"
            ) from None
        started_here = False
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            ray.init(
                address=address,
                num_cpus=None if address else self.jobs,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=ray_runtime_env(),
            )
            started_here = True
        try:
            task = ray.remote(num_cpus=1, max_retries=1)(_ray_run_cell)
            out = str(Path(out_dir).resolve())
            queue = list(cells)
            in_flight: dict[Any, Cell] = {}
            while queue or in_flight:
                while queue and len(in_flight) < self.jobs:
                    cell = queue.pop(0)
                    in_flight[task.remote(cell, out, suite, imports)] = cell
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    cell = in_flight.pop(ref)
                    try:
                        yield cell, ray.get(ref)
                    except Exception as err:  # task or worker failure
                        yield cell, _error_row(cell, suite,
                                               f"ray: {type(err).__name__}: {err}")
        finally:
            if started_here:
                ray.shutdown()


def ray_runtime_env() -> dict[str, Any]:
    """The runtime environment of the Ray workers that run cells.

    Its ``env_vars`` put the project folder and the driver's ``PYTHONPATH`` on the workers'
    path (so ``benchmarks``, ``zoo`` and a suite's ``imports`` resolve without an install) and
    give them one OpenMP/MKL thread each. Usage::

        ray.init(num_cpus=2, include_dashboard=False, runtime_env=ray_runtime_env())
    """
    root = str(Path(__file__).resolve().parents[1])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                      if p and p != root]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1",
                         "MKL_NUM_THREADS": "1"}}


def _ray_run_cell(cell: Cell, out_dir: str, suite: str, imports: tuple[str, ...]) -> dict:
    _init_worker()
    return run_cell(cell, out_dir, suite=suite, imports=imports)
