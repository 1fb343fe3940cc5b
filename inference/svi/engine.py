"""A steppable SVI engine: ``init`` / ``step`` / ``run`` over a model, a guide, an objective.

:class:`SVIEngine` is for callers that drive the optimisation themselves (interleave it with
other work, step until their own criterion, inspect the parameters between steps); the
driver :func:`inference.svi.fit_svi` is a thin loop over it with callbacks
(:mod:`inference.svi.callbacks`). Each :meth:`SVIEngine.step` is ``pyro.infer.SVI.step`` with a
finiteness check between computing the gradients and updating: on a non-finite loss or
gradient it updates nothing and raises :class:`~inference.errors.DivergenceError`, so the
parameters and optimiser moments stay those of the last good step.

With ``compile_elbo=True`` the loss and its gradients come from a compiled graph traced once
(:mod:`inference.svi.compiled`) instead of Pyro's ELBO; a model or objective that cannot be
compiled keeps Pyro's ELBO, with one warning, and ``engine.elbo_path`` says which ran
(``"compiled"`` or ``"plain"``; ``engine.compile_error`` says why not).

Usage::

    from inference.svi import SVIEngine
    from inference.svi.callbacks import Checkpointer, ProgressBar
    engine = SVIEngine.build(model, model_kwargs, guide="auto_normal", lr=0.01, seed=0)
    for _ in range(100):
        loss = engine.step()
    engine.step_count, engine.losses[-1]       # 100, the last loss
    # on to 1000 steps in all, with callbacks
    engine.run(1000, callbacks=[Checkpointer("run/ckpt.pt", every=100), ProgressBar(1000)])

    # or from parts
    engine = SVIEngine(model, guide, Trace_ELBO(), pyro.optim.Adam({"lr": 0.01}), {"y": y})
    engine.init()
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.infer.util import zero_grads

from inference.checkpoint import (get_rng, load_checkpoint, restore_params, save_checkpoint,
                                  set_rng)
from inference.errors import DivergenceError
from inference.guides import init_to_feasible_shape, make_guide
from inference.objectives import make_elbo
from inference.schedules import KLAnnealing, is_scheduler, make_optimizer
from inference.sites import model_trace, plate_nesting
from inference.svi.compiled import CompiledELBO, NotCompilable, compile_elbo

if TYPE_CHECKING:
    from inference.svi.callbacks import Callback

__all__ = ["SVIEngine"]


class _StateView:
    """Adapter so :func:`save_checkpoint` can read a precomputed optimiser state."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self._state = state

    def get_state(self) -> Mapping[str, Any]:
        return self._state


class SVIEngine:
    """Stochastic variational inference one step at a time (see the module docstring).

    ``model_kwargs`` are the training keywords (with ``subsample_size`` for mini-batches).
    ``kl_anneal`` (a :class:`~inference.schedules.KLAnnealing`) makes the objective at step
    ``t`` the annealed one, with the KL weight of step ``t``, however the engine is stepped.
    Pyro's parameter store holds the parameters, as for ``pyro.infer.SVI``.

    Usage: ``engine = SVIEngine.build(model, {"y": y}); loss = engine.step()``.
    """

    def __init__(self, model: Callable[..., Any], guide: Callable[..., Any], elbo: ELBO,
                 optim: pyro.optim.PyroOptim, model_kwargs: Mapping[str, Any] | None = None,
                 *, kl_anneal: KLAnnealing | None = None, compile_elbo: bool = False) -> None:
        self.model, self.guide, self.elbo, self.optim = model, guide, elbo, optim
        self.model_kwargs: dict[str, Any] = dict(model_kwargs or {})
        self.kl_anneal = kl_anneal
        self._train_model = kl_anneal.wrap(model) if kl_anneal else model
        self._train_guide = kl_anneal.wrap(guide) if kl_anneal else guide
        #: number of completed steps (also the 0-based index of the next step)
        self.step_count = 0
        #: the loss of every completed step (the annealed objective while annealing)
        self.losses: list[float] = []
        self._stop = False
        self.compile_elbo = bool(compile_elbo)
        #: ``"compiled"`` when steps use the compiled ELBO, else ``"plain"`` (set by init)
        self.elbo_path = "plain"
        #: why the ELBO was not compiled (``None`` when it was, or was not asked for)
        self.compile_error: str | None = None
        self._compiled: CompiledELBO | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model: Callable[..., Any], model_kwargs: Mapping[str, Any] | None = None, *,
              guide: str | Callable[..., Any] = "auto_normal",
              guide_options: Mapping[str, Any] | None = None, elbo: str = "trace",
              num_particles: int = 1, vectorize_particles: bool = False,
              renyi_alpha: float = 0.0, optimizer: str = "adam", lr: float = 1e-2,
              lr_schedule: Mapping[str, Any] | None = None, clip_norm: float | None = None,
              num_steps: int | None = None,
              kl_anneal: Mapping[str, Any] | KLAnnealing | None = None,
              max_plate_nesting: int | None = None, seed: int | None = 0,
              compile_elbo: bool = False) -> "SVIEngine":
        """An initialised engine from names, as :func:`inference.svi.fit_svi` takes them.

        Clears the param store, builds the guide (:func:`inference.guides.make_guide`), the
        objective (:func:`inference.objectives.make_elbo`) and the optimiser
        (:func:`inference.schedules.make_optimizer`; ``num_steps`` sizes ``cosine`` and
        ``onecycle`` schedules), seeds Pyro with ``seed`` (``None``: leave the RNG alone) and
        calls :meth:`init` (which compiles the ELBO when ``compile_elbo`` is set).

        Usage: ``SVIEngine.build(model, {"y": y}, guide="auto_mvn", lr=0.05, seed=1)``.
        """
        anneal = KLAnnealing.from_config(kl_anneal) if kl_anneal is not None else None
        objective = make_elbo(elbo, num_particles=num_particles,
                              vectorize_particles=vectorize_particles, renyi_alpha=renyi_alpha,
                              max_plate_nesting=(float("inf") if max_plate_nesting is None
                                                 else max_plate_nesting))
        optim = make_optimizer(optimizer, lr=lr, lr_schedule=lr_schedule, clip_norm=clip_norm,
                               num_steps=num_steps)
        pyro.clear_param_store()
        guide_obj = make_guide(guide, model, **dict(guide_options or {}))
        if seed is not None:
            pyro.set_rng_seed(seed)
        engine = cls(model, guide_obj, objective, optim, model_kwargs, kl_anneal=anneal,
                     compile_elbo=compile_elbo)
        engine.init()
        return engine

    def init(self) -> "SVIEngine":
        """Create every parameter (and its constraint) by running the guide once.

        When the objective's ``max_plate_nesting`` is unknown (infinite) it is fixed here from
        one model and one guide trace, as Pyro would guess it; Pyro would otherwise guess it at
        the first step by running model and guide, which consumes random numbers after a
        resume. The guide run draws random numbers; the model trace leaves every RNG as it was.
        Returns the engine. Usage: ``engine = SVIEngine(...).init()``.
        """
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(self.guide).get_trace(**self.model_kwargs)
        if not math.isfinite(self.elbo.max_plate_nesting):
            rng = get_rng()  # a subsampling plate in the model would draw indices
            try:
                ref = model_trace(self.model, self.model_kwargs,
                                  init_strategy=init_to_feasible_shape)
            finally:
                set_rng(rng)
            # as ELBO._guess_max_plate_nesting: one more dim for the particle plate
            self.elbo.max_plate_nesting = (plate_nesting(ref, guide_trace)
                                           + int(bool(self.elbo.vectorize_particles)))
        if self.compile_elbo and self._compiled is None:
            self._compile()
        return self

    def _compile(self) -> None:
        """Compile the ELBO (RNG untouched), or record why not and warn once."""
        try:
            if self.kl_anneal is not None:
                raise NotCompilable("KL annealing changes the objective at every step")
            self._compiled = compile_elbo(self.model, self.guide, self.elbo, self.model_kwargs)
            self.elbo_path = "compiled"
        except NotCompilable as err:
            self.compile_error = str(err)
            warnings.warn(f"SVI: the ELBO could not be compiled ({err}); using Pyro's ELBO "
                          "at every step", RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ stepping
    def step(self) -> float:
        """One guarded SVI step; returns its loss. Raises :class:`DivergenceError` (updating
        nothing) on a non-finite loss or gradient, or on parameters out of their support.

        Per-step cost beyond ``pyro.infer.SVI.step``: the loss is already a Python float (Pyro's
        ELBOs synchronise to return it); the gradient check is one fused norm per gradient and a
        single host synchronisation; setting the KL weight is one Python
        float. With the compiled ELBO the check is part of the compiled graph.
        Usage: ``loss = engine.step()``.
        """
        if self._compiled is not None:
            return self._compiled_step()
        step = self.step_count
        if self.kl_anneal is not None:
            self.kl_anneal.set_step(step)
        try:
            with poutine.trace(param_only=True) as param_capture:
                loss = self.elbo.loss_and_grads(self._train_model, self._train_guide,
                                                **self.model_kwargs)
        except (ValueError, torch.linalg.LinAlgError) as err:
            # with distribution validation on (Pyro's default) a parameter driven out of its
            # support (NaN, inf, a zero scale, a covariance no longer positive definite) is
            # reported as "Expected parameter ... but found invalid values"; a failed Cholesky
            # raises LinAlgError. Both are divergences; other ValueErrors are bugs.
            message = str(err)
            if isinstance(err, torch.linalg.LinAlgError) or "found invalid values" in message:
                for p in pyro.get_param_store().values():
                    if p.unconstrained().grad is not None:
                        p.unconstrained().grad = None
                raise DivergenceError(step, float("nan"), message.splitlines()[0]) from err
            raise
        params = {site["value"].unconstrained() for site in param_capture.trace.nodes.values()}
        loss = float(loss)
        detail = ""
        if math.isfinite(loss):
            grads = [p.grad for p in params if p.grad is not None]
            # one fused norm per tensor, one synchronisation: NaN and inf propagate into the
            # norms; a finite gradient whose norm overflows is cleared by the exact check
            if grads and not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()):
                detail = self._bad_gradients(params)
        if not math.isfinite(loss) or detail:
            zero_grads(params)
            raise DivergenceError(step, loss, detail)
        self.optim(params)
        zero_grads(params)
        return self._finish_step(loss)

    def _compiled_step(self) -> float:
        """:meth:`step` with the compiled ELBO: gradients handed to the optimiser directly."""
        assert self._compiled is not None
        step = self.step_count
        loss, ok, grads = self._compiled()
        params = self._compiled.params
        if not ok:
            for p, g in zip(params, grads):
                p.grad = g
            detail = self._bad_gradients(params) if math.isfinite(loss) else ""
            for p in params:
                p.grad = None
            raise DivergenceError(step, loss, detail)
        for p, g in zip(params, grads):
            p.grad = g
        self.optim(params)
        for p in params:
            p.grad = None
        return self._finish_step(loss)

    @staticmethod
    def _bad_gradients(params: Iterable[torch.Tensor]) -> str:
        store = pyro.get_param_store()
        bad = sorted(store.param_name(p) or "?" for p in params
                     if p.grad is not None and not torch.isfinite(p.grad).all())
        return f"non-finite gradient for {bad}" if bad else ""

    def _finish_step(self, loss: float) -> float:
        if is_scheduler(self.optim):
            self.optim.step()
        self.losses.append(loss)
        self.step_count += 1
        return loss

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop before its next step (for callbacks: early stopping)."""
        self._stop = True

    def run(self, num_steps: int, callbacks: Iterable["Callback"] = ()) -> list[float]:
        """Step until ``step_count == num_steps`` or a callback calls :meth:`request_stop`.

        ``num_steps`` is the total, counting steps already done (a resumed engine continues).
        Callbacks see ``on_run_start``, ``on_step_end`` after every step, ``on_divergence``
        (then the error propagates), ``on_run_end`` after a completed run and ``close``
        always. Returns the losses of the steps of this call.

        Usage: ``engine.run(1000, callbacks=[ProgressBar(1000)])``.
        """
        callbacks = list(callbacks)
        first = self.step_count
        self._stop = False
        try:
            for cb in callbacks:
                cb.on_run_start(self)
            while self.step_count < num_steps and not self._stop:
                try:
                    loss = self.step()
                except DivergenceError as err:
                    for cb in callbacks:
                        cb.on_divergence(self, err)
                    raise
                for cb in callbacks:
                    cb.on_step_end(self, loss)
            for cb in callbacks:
                cb.on_run_end(self)
        finally:
            for cb in callbacks:
                cb.close()
        return self.losses[first:]

    # ------------------------------------------------------------------ state
    def optim_state(self) -> dict[str, Any]:
        """``optim.get_state()`` plus state loaded from a checkpoint but not yet consumed.

        Pyro's optimisers load a restored state lazily, when a parameter is first stepped; a
        checkpoint written before that must still carry it.
        """
        state = dict(getattr(self.optim, "_state_waiting_to_be_consumed", {}))
        state.update(self.optim.get_state())
        return state

    def save(self, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None,
             params: Mapping[str, torch.Tensor] | None = None) -> None:
        """Write a checkpoint (:mod:`inference.checkpoint`): parameters, optimiser and RNG
        state, step count and losses, and ``extra`` (e.g. early-stopping state).

        Usage: ``engine.save("run/ckpt.pt")``.
        """
        save_checkpoint(path, step=self.step_count, optim=_StateView(self.optim_state()),
                        loss_history=self.losses, params=params, extra=extra)

    def restore(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a checkpoint written by :meth:`save` into this (initialised) engine.

        Restores parameters, optimiser state, RNG state, step count and losses; returns the
        checkpoint's ``extra``. Usage: ``extra = engine.restore("run/ckpt.pt")``.
        """
        state = load_checkpoint(path)
        restore_params(state["params"])
        self.optim.set_state(state["optim"])
        set_rng(state["rng"])
        self.step_count = int(state["step"])
        self.losses = [float(x) for x in state["loss_history"].tolist()]
        return dict(state["extra"])

    def validation_loss(self, model_kwargs: Mapping[str, Any]) -> float:
        """The objective (not annealed) on ``model_kwargs``, leaving every RNG as it was.

        Usage: ``engine.validation_loss({"y": y_valid})``.
        """
        rng = get_rng()
        try:
            with torch.no_grad():
                return float(self.elbo.loss(self.model, self.guide, **model_kwargs))
        finally:
            set_rng(rng)
