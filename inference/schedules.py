"""Training schedules for SVI: KL annealing, learning-rate schedules, gradient clipping.

KL annealing multiplies the log-densities of the *latent* (non-observed) sample sites, in both
the model and the guide, by a weight that warms up from ``start`` to ``end``; the objective is
then ``E_q[log p(x|z)] - weight * KL(q(z) || p(z))`` (the beta-VAE / warm-up objective).
Pyro has no such handler (``poutine.scale`` scales every site), so :class:`LatentScaleMessenger`
is written here; learning-rate schedules and clipping are Pyro's (``pyro.optim``).

Usage::

    from inference.schedules import KLAnnealing, is_scheduler, make_optimizer
    anneal = KLAnnealing.from_config({"start": 0.01, "end": 1.0, "steps": 1000, "shape": "linear"})
    model_a, guide_a = anneal.wrap(model), anneal.wrap(guide)
    anneal.set_step(step)                 # before each SVI step
    optim = make_optimizer("adam", lr=1e-2, lr_schedule={"name": "exponential", "gamma": 0.999},
                           clip_norm=10.0)
    if is_scheduler(optim):
        optim.step()                      # the driver steps a scheduler once per SVI step
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pyro.optim
import torch
from pyro.poutine.messenger import Messenger

from inference.grouped_optim import GroupedOptim

__all__ = ["LatentScaleMessenger", "KLAnnealing", "make_optimizer", "OPTIMIZER_NAMES",
           "LR_SCHEDULE_NAMES", "is_scheduler"]


class LatentScaleMessenger(Messenger):
    """Multiplies the scale of every non-observed sample site by ``self.weight``.

    Observed sites (the likelihood, and deterministic sites) keep their scale; Pyro's plate
    subsampling scale is kept and multiplied. The weight can be changed between steps.

    Usage: ``with LatentScaleMessenger(0.1): trace = poutine.trace(model).get_trace()``.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.weight * msg["scale"]


_SHAPES = ("linear", "sigmoid")


@dataclass
class KLAnnealing:
    """A warm-up schedule for the weight of the KL term, applied with LatentScaleMessenger.

    ``weight(step)`` goes from ``start`` at step 0 to ``end`` at step ``steps`` and stays at
    ``end`` afterwards; ``shape`` is ``linear`` or ``sigmoid`` (a logistic curve rescaled to
    pass exactly through both end points, steepness ``sharpness``).
    """

    start: float = 0.0
    end: float = 1.0
    steps: int = 1000
    shape: str = "linear"
    sharpness: float = 10.0

    def __post_init__(self) -> None:
        if self.shape not in _SHAPES:
            raise ValueError(f"kl_anneal shape {self.shape!r} unknown; use one of {_SHAPES}")
        if not (int(self.steps) == self.steps and self.steps >= 1):
            raise ValueError(f"kl_anneal steps must be a positive integer, got {self.steps!r}")
        for key in ("start", "end"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"kl_anneal {key} must be a finite number >= 0, got {value!r}")
        if self.end == 0:
            raise ValueError("kl_anneal end must be > 0 (a zero weight drops the prior)")
        if self.sharpness <= 0:
            raise ValueError(f"kl_anneal sharpness must be > 0, got {self.sharpness!r}")
        self._messenger = LatentScaleMessenger(self.start)

    @classmethod
    def from_config(cls, config: "KLAnnealing | Mapping[str, Any]") -> "KLAnnealing":
        """Build from a dict such as ``{"start": 0.01, "end": 1.0, "steps": 1000}``."""
        if isinstance(config, KLAnnealing):
            return config
        if not isinstance(config, Mapping):
            raise ValueError(f"kl_anneal must be a dict with keys start/end/steps/shape, "
                             f"got {config!r}")
        allowed = {"start", "end", "steps", "shape", "sharpness"}
        extra = sorted(set(config) - allowed)
        if extra:
            raise ValueError(f"kl_anneal got unknown key(s) {extra}; allowed: {sorted(allowed)}")
        if "steps" not in config:
            raise ValueError("kl_anneal needs 'steps' (the length of the warm-up)")
        return cls(**dict(config))

    def weight(self, step: int) -> float:
        """The KL weight at ``step`` (0-based)."""
        frac = min(max(step / self.steps, 0.0), 1.0)
        if self.shape == "sigmoid":
            k = self.sharpness
            lo, hi = 1 / (1 + math.exp(k / 2)), 1 / (1 + math.exp(-k / 2))
            frac = (1 / (1 + math.exp(-k * (frac - 0.5))) - lo) / (hi - lo)
        return self.start + (self.end - self.start) * frac

    def set_step(self, step: int) -> float:
        """Set the weight used by wrapped callables to ``weight(step)``; returns it."""
        self._messenger.weight = self.weight(step)
        return self._messenger.weight

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run under the (shared) LatentScaleMessenger of this schedule."""
        messenger = self._messenger

        def annealed(*args: Any, **kwargs: Any) -> Any:
            with messenger:
                return fn(*args, **kwargs)

        annealed.__wrapped__ = fn  # type: ignore[attr-defined]
        return annealed


OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "clipped_adam", "sgd", "rmsprop", "adagrad",
                                     "adagrad_rmsprop")

#: lr_schedule name -> (torch scheduler class, required keys)
LR_SCHEDULE_NAMES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "exponential": (torch.optim.lr_scheduler.ExponentialLR, ("gamma",)),
    "step": (torch.optim.lr_scheduler.StepLR, ("step_size",)),
    "multistep": (torch.optim.lr_scheduler.MultiStepLR, ("milestones",)),
    "cosine": (torch.optim.lr_scheduler.CosineAnnealingLR, ("T_max",)),
    "onecycle": (torch.optim.lr_scheduler.OneCycleLR, ("max_lr", "total_steps")),
}


def _torch_optimizer(name: str) -> Any:
    from pyro.optim.adagrad_rmsprop import AdagradRMSProp
    from pyro.optim.clipped_adam import ClippedAdam

    return {"adam": torch.optim.Adam, "clipped_adam": ClippedAdam, "sgd": torch.optim.SGD,
            "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
            "adagrad_rmsprop": AdagradRMSProp}[name]


def make_optimizer(name: str = "adam", *, lr: float = 1e-2,
                   lr_schedule: Mapping[str, Any] | None = None, clip_norm: float | None = None,
                   num_steps: int | None = None,
                   optim_args: Mapping[str, Any] | None = None) -> pyro.optim.PyroOptim:
    """A ``pyro.optim`` optimiser, optionally under a learning-rate scheduler.

    ``lr_schedule`` is ``{"name": one of LR_SCHEDULE_NAMES, **scheduler kwargs}``; for
    ``cosine`` ``T_max`` and for ``onecycle`` ``total_steps`` default to ``num_steps`` and
    ``max_lr`` to ``lr``. The driver calls ``optim.step()`` once per SVI step for schedulers.
    ``clip_norm`` clips each parameter's gradient norm (Pyro ``clip_args``); for
    ``clipped_adam`` it is ClippedAdam's own ``clip_norm``.

    Without a schedule or ``clip_norm`` the optimiser is a
    :class:`~inference.grouped_optim.GroupedOptim` (one torch optimiser for all parameters,
    the same updates as Pyro's one per parameter); otherwise Pyro's own wrapper.

    ``adagrad_rmsprop`` is Pyro's AdagradRMSProp (the optimiser of Pyro's sparse gamma DEF
    example, step size ``eta * t_step^(-1/2 + delta)`` on an RMSProp-style running average);
    ``lr`` is its ``eta`` (the example uses 4.5) and ``optim_args`` may set ``t`` and ``delta``.
    Its parameter groups have no ``lr``, so torch's learning-rate schedules cannot drive it.

    Usage: ``make_optimizer("clipped_adam", lr=1e-3, clip_norm=5.0)``.
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {list(OPTIMIZER_NAMES)}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm!r}")
    if name == "adagrad_rmsprop" and lr_schedule is not None:
        raise ValueError("optimizer 'adagrad_rmsprop' takes no lr_schedule (its step size "
                         "already decays; torch's schedulers need an 'lr' it does not have)")
    rate_key = "eta" if name == "adagrad_rmsprop" else "lr"
    args: dict[str, Any] = {rate_key: float(lr), **(optim_args or {})}
    clip_args: dict[str, float] = {}
    if clip_norm is not None:
        if name == "clipped_adam":
            args["clip_norm"] = float(clip_norm)
        else:
            clip_args["clip_norm"] = float(clip_norm)
    constructor = _torch_optimizer(name)
    if lr_schedule is None:
        if clip_args:
            return pyro.optim.PyroOptim(constructor, args, clip_args)
        # one torch optimiser for all parameters: the same updates, a fraction of the cost
        return GroupedOptim(constructor, args)

    schedule = dict(lr_schedule)
    sched_name = schedule.pop("name", None)
    if sched_name not in LR_SCHEDULE_NAMES:
        raise ValueError(f"unknown lr_schedule name {sched_name!r}; known schedules: "
                         f"{sorted(LR_SCHEDULE_NAMES)} (give it as lr_schedule={{'name': ...}})")
    scheduler_cls, required = LR_SCHEDULE_NAMES[sched_name]
    if sched_name == "cosine" and num_steps is not None:
        schedule.setdefault("T_max", num_steps)
    if sched_name == "onecycle":
        schedule.setdefault("max_lr", float(lr))
        if num_steps is not None:
            schedule.setdefault("total_steps", num_steps)
    missing = [k for k in required if k not in schedule]
    if missing:
        raise ValueError(f"lr_schedule {sched_name!r} needs {missing}")
    return pyro.optim.PyroLRScheduler(
        scheduler_cls, {"optimizer": constructor, "optim_args": args, **schedule},
        clip_args or None)


def is_scheduler(optim: pyro.optim.PyroOptim) -> bool:
    """Whether ``optim`` is a learning-rate scheduler that must be stepped once per step."""
    return isinstance(optim, pyro.optim.PyroLRScheduler)
