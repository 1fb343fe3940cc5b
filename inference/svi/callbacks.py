"""Callbacks for :meth:`SVIEngine.run`: early stopping, checkpoints, a progress bar.

A callback is any object with the hooks of :class:`Callback` (subclass it and override what
you need). :meth:`~inference.svi.engine.SVIEngine.run` calls ``on_run_start(engine)``, then
``on_step_end(engine, loss)`` after every step, ``on_divergence(engine, error)`` when a step
raises :class:`~inference.errors.DivergenceError`, ``on_run_end(engine)`` when the run
completes (all steps done or a callback called ``engine.request_stop()``), and ``close()``
always. Callbacks run in the order given; put :class:`EarlyStopping` before the
:class:`Checkpointer` that stores its state.

Usage::

    from inference.svi.callbacks import Checkpointer, EarlyStopping, ProgressBar
    early = EarlyStopping({"y": y_valid}, eval_every=50, patience=3)
    engine.run(2000, callbacks=[early, Checkpointer("run/ckpt.pt", every=100, extra=early.state),
                                ProgressBar(2000)])
    early.restore_best()
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from inference.checkpoint import restore_params, snapshot_params
from inference.errors import DivergenceError

if TYPE_CHECKING:
    from inference.svi.engine import SVIEngine

__all__ = ["Callback", "EarlyStopping", "Checkpointer", "ELBOMonitor", "KeepBest",
           "ProgressBar", "StopOnInterrupt", "TimeLimit"]


class Callback:
    """Base class with no-op hooks (see the module docstring for when each is called).

    Usage: ``class Log(Callback): def on_step_end(self, engine, loss): print(loss)``.
    """

    def on_run_start(self, engine: "SVIEngine") -> None:
        """Before the first step of :meth:`SVIEngine.run`."""

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        """After each successful step (``engine.step_count`` steps are done)."""

    def on_divergence(self, engine: "SVIEngine", error: DivergenceError) -> None:
        """A step diverged; the engine still holds the last good state. The error propagates."""

    def on_run_end(self, engine: "SVIEngine") -> None:
        """After the last step of a run that was not ended by an error."""

    def close(self) -> None:
        """Always, last: release resources."""


class EarlyStopping(Callback):
    """Evaluates the objective on validation data every ``eval_every`` steps; stops the run
    after ``patience`` evaluations without improvement (``None``: never) and remembers the
    parameters of the best one.

    The evaluation uses :meth:`SVIEngine.validation_loss` (no KL annealing, RNG untouched), so
    validating does not change the training trajectory. Its state is plain data
    (:meth:`state` / :meth:`load_state`) for checkpoints.
    Usage: ``early = EarlyStopping({"y": y_val}, eval_every=10, patience=2)``.
    """

    def __init__(self, validation_kwargs: Mapping[str, Any], eval_every: int = 100,
                 patience: int | None = None) -> None:
        self.validation_kwargs = dict(validation_kwargs)
        self.eval_every, self.patience = eval_every, patience
        self.best_value = math.inf
        self.best_step = -1
        self.bad_evals = 0
        self.stopped_early = False
        self.val_history: list[list[float]] = []
        self.best_params: dict[str, Any] = {}

    def state(self) -> dict[str, Any]:
        """The early-stopping record as plain data (what a checkpoint's ``extra`` holds)."""
        return {"best_value": self.best_value, "best_step": self.best_step,
                "bad_evals": self.bad_evals, "stopped_early": self.stopped_early,
                "val_history": list(self.val_history), "best_params": self.best_params}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a record written by :meth:`state` (missing keys keep defaults)."""
        self.best_value = float(state.get("best_value", self.best_value))
        self.best_step = int(state.get("best_step", self.best_step))
        self.bad_evals = int(state.get("bad_evals", self.bad_evals))
        self.stopped_early = bool(state.get("stopped_early", self.stopped_early))
        self.val_history = [list(v) for v in state.get("val_history", self.val_history)]
        self.best_params = dict(state.get("best_params", self.best_params))

    def on_run_start(self, engine: "SVIEngine") -> None:
        if self.stopped_early:  # resumed after an early stop: nothing more to do
            engine.request_stop()

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        done = engine.step_count
        if done % self.eval_every:
            return
        value = engine.validation_loss(self.validation_kwargs)
        self.val_history = self.val_history + [[done, value]]
        if value < self.best_value:
            self.best_value, self.best_step, self.bad_evals = value, done, 0
            self.best_params = snapshot_params()
        else:
            self.bad_evals += 1
            if self.patience is not None and self.bad_evals >= self.patience:
                self.stopped_early = True
                engine.request_stop()

    def restore_best(self) -> None:
        """Put the best parameters seen back into the param store (if any evaluation ran)."""
        if self.best_params:
            restore_params(self.best_params)


class Checkpointer(Callback):
    """Writes the engine's checkpoint every ``every`` steps (``None``: never), at the end of
    the run, and on divergence (with the last good parameters).

    ``extra`` returns driver state to store alongside (e.g. ``EarlyStopping.state``).
    Usage: ``Checkpointer("run/ckpt.pt", every=100)``; resume with ``engine.restore(path)``.
    """

    def __init__(self, path: str | os.PathLike[str], every: int | None = None,
                 extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.path, self.every, self.extra = path, every, extra

    def save(self, engine: "SVIEngine") -> None:
        """Write the checkpoint now."""
        engine.save(self.path, extra=self.extra() if self.extra is not None else None)

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        if self.every is not None and engine.step_count % self.every == 0:
            self.save(engine)

    def on_divergence(self, engine: "SVIEngine", error: DivergenceError) -> None:
        self.save(engine)

    def on_run_end(self, engine: "SVIEngine") -> None:
        self.save(engine)


class ProgressBar(Callback):
    """A tqdm bar over ``total`` steps showing an exponentially smoothed loss.

    The postfix is refreshed every 10 steps (formatting it every step costs more than a small
    model's step). Usage: ``engine.run(1000, callbacks=[ProgressBar(1000)])``.
    """

    def __init__(self, total: int, initial: int = 0, disable: bool = False,
                 desc: str = "svi") -> None:
        self.total, self.initial, self.disable, self.desc = total, initial, disable, desc
        self.smoothed: float | None = None
        self._bar: Any = None

    def on_run_start(self, engine: "SVIEngine") -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, initial=self.initial, disable=self.disable,
                         desc=self.desc, dynamic_ncols=True)

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        step = engine.step_count - 1
        if step % 10 == 0 or step == self.total - 1:
            self._bar.set_postfix_str(f"loss {self.smoothed:.4g}", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TimeLimit(Callback):
    """Stops the run once ``seconds`` of wall-clock time have passed since it started.

    ``reached`` says afterwards whether it stopped the run (a benchmark budget, not an error:
    the fit keeps the parameters it reached). The clock is read once per step.
    Usage: ``engine.run(100_000, [TimeLimit(12 * 60)])``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.reached = False
        self._start = 0.0

    def on_run_start(self, engine: "SVIEngine") -> None:
        self._start = time.perf_counter()

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        if time.perf_counter() - self._start >= self.seconds:
            self.reached = True
            engine.request_stop()


class StopOnInterrupt(Callback):
    """Turns Ctrl-C (SIGINT) into a stop between two steps, so the state stays whole.

    The first Ctrl-C asks the engine to stop after the current step (checkpointers then write
    their state as at any run end); ``interrupted`` says so afterwards. A second Ctrl-C
    interrupts at once, as usual. Only the main thread can take signals; elsewhere this does
    nothing. Usage: ``engine.run(1000, [StopOnInterrupt(), Checkpointer("ckpt.pt")])``.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None
        self._installed = False

    def on_run_start(self, engine: "SVIEngine") -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:  # the second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.interrupted = True
            engine.request_stop()

        self._previous = signal.signal(signal.SIGINT, handler)
        self._installed = True

    def close(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


class KeepBest(Callback):
    """Keeps the parameters of the best stretch of the training loss, to fall back on.

    Every ``every`` steps the mean loss of the steps since the last check is compared with the
    best such mean so far; on a new best the parameters are copied. A run whose loss ends far
    above its best (see :mod:`inference.svi.health`) can then go back with :meth:`restore`.
    Copies are taken at most once per ``every`` steps, so the cost stays small next to
    training. Usage: ``keep = KeepBest(every=20); engine.run(2000, [keep]); keep.restore()``.
    """

    def __init__(self, every: int) -> None:
        self.every = max(1, int(every))
        self.best_value = math.inf
        self.best_step = -1
        self.best_params: dict[str, Any] = {}
        self._sum, self._count = 0.0, 0

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        self._sum += loss
        self._count += 1
        if self._count == self.every:
            mean = self._sum / self._count
            self._sum, self._count = 0.0, 0
            if mean < self.best_value:
                self.best_value, self.best_step = mean, engine.step_count
                self.best_params = snapshot_params()

    def restore(self) -> None:
        """Put the kept parameters back into the param store (if any were kept)."""
        if self.best_params:
            restore_params(self.best_params)


class ELBOMonitor(Callback):
    """Estimates the training ELBO with ``num_particles`` vectorised particles after every
    ``every``-th step and after the last step, without touching the training RNG stream.

    The per-step loss of a one-particle objective is too noisy to compare guides by; this is
    the protocol of Pyro's sparse gamma DEF example (20 particles every 25 steps). It uses
    ``Trace_ELBO`` (score-function terms for discrete sites, which do not bias the value) on
    the training data, under ``torch.no_grad``. ``steps`` and ``elbos`` hold what it measured.

    Usage: ``mon = ELBOMonitor({"x": x}, every=25, num_particles=20); engine.run(1500, [mon])``.
    """

    def __init__(self, model_kwargs: Mapping[str, Any], every: int = 25,
                 num_particles: int = 20) -> None:
        if every < 1 or num_particles < 1:
            raise ValueError(f"ELBOMonitor needs every >= 1 and num_particles >= 1, got "
                             f"{every} and {num_particles}")
        self.model_kwargs = dict(model_kwargs)
        self.every, self.num_particles = int(every), int(num_particles)
        self.steps: list[int] = []
        self.elbos: list[float] = []

    def measure(self, engine: "SVIEngine") -> float:
        """The ELBO estimate now (also recorded)."""
        import torch
        from pyro.infer import Trace_ELBO

        from inference.checkpoint import get_rng, set_rng

        nesting = engine.elbo.max_plate_nesting - int(bool(engine.elbo.vectorize_particles))
        elbo = Trace_ELBO(num_particles=self.num_particles, vectorize_particles=True,
                          max_plate_nesting=nesting)
        rng = get_rng()
        try:
            with torch.no_grad():
                value = -float(elbo.loss(engine.model, engine.guide, **self.model_kwargs))
        finally:
            set_rng(rng)
        self.steps.append(engine.step_count)
        self.elbos.append(value)
        return value

    def on_step_end(self, engine: "SVIEngine", loss: float) -> None:
        if engine.step_count % self.every == 0:
            self.measure(engine)

    def on_run_end(self, engine: "SVIEngine") -> None:
        if not self.steps or self.steps[-1] != engine.step_count:
            self.measure(engine)
