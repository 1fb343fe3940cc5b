"""SVI as a registered method: untuned by default for autoguides, fixed settings by name.

With an autoguide on a model whose unknowns are all continuous latents with a full-data density,
``svi`` takes the untuned path of ``svi_auto`` (Laplace or Pathfinder start, step-size trials,
a convergence test; :mod:`inference.svi.auto`). A fixed-path setting (``lr``, ``batch_size``,
a schedule, early stopping ...) or ``tuning="fixed"`` runs :func:`inference.svi.fit_svi` with
fixed steps and rate; ``result.settings["tuning"]`` says which ran.

The guide is a name: one of the model's own guides (``Target.guides``; ``"model"`` is its
default) or an autoguide of :mod:`inference.guides`; with none, the model's own default guide
is used when it has one, else ``auto_normal``. A Python caller may also pass a guide callable.

Usage::

    from inference import methods
    spec = methods.get("svi")
    result = spec.run(methods.Target(model, {"y": y}),
                      {"guide": "auto_mvn", "num_steps": 2000, "lr": 0.02}, seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from inference.methods.registry import Target, register
from inference.methods.settings import (MethodSettings, anything, choice, flag, integer,
                                        mapping, real, text)

__all__ = ["SVISettings", "resolve_guide"]


def _elbo_names() -> list[str]:
    from inference.objectives import ELBO_NAMES

    return list(ELBO_NAMES)


def _optimizer_names() -> list[str]:
    from inference.schedules import OPTIMIZER_NAMES

    return list(OPTIMIZER_NAMES)


@dataclass(frozen=True)
class SVISettings(MethodSettings):
    """Settings of stochastic variational inference (see :func:`inference.svi.fit_svi`)."""

    guide: Any = anything(None, help="the model's own guide by name, or an autoguide "
                                     "(auto_normal, auto_mvn, auto_iaf, ...)")
    elbo: str = choice("trace", _elbo_names, help="objective")
    num_particles: int = integer(1, minimum=1, help="ELBO particles per step")
    vectorize_particles: bool = flag(False, help="evaluate the particles in one batch")
    renyi_alpha: float = real(0.0, help="alpha of the Renyi objective")
    tuning: str | None = choice(None, ("auto", "fixed"), optional=True,
                                help="auto: the untuned path of svi_auto (Laplace or Pathfinder "
                                     "start, step-size search, convergence test); fixed: "
                                     "num_steps at lr; None: auto where it applies")
    num_steps: int | None = integer(None, minimum=1, optional=True,
                                    help="optimisation steps (fixed: default 1000; auto: the "
                                         "most steps of its main run, default 5000)")
    optimizer: str = choice("adam", _optimizer_names, help="optimiser")
    lr: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                            help="learning rate (fixed: default 0.01; auto: chosen by trials)")
    lr_schedule: Any = mapping(help="learning-rate schedule (see inference.schedules)")
    clip_norm: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                   help="gradient-norm clipping")
    kl_anneal: Any = anything(None, help="KL annealing: {start, end, steps, shape}")
    batch_size: int | None = integer(None, minimum=1, optional=True,
                                     help="mini-batch size (None: the whole data set)")
    validation_kwargs: Any = mapping(help="model keywords of a validation set (early stopping)")
    eval_every: int = integer(100, minimum=1, help="steps between validation ELBOs")
    patience: int | None = integer(None, minimum=1, optional=True,
                                   help="validations without improvement before stopping")
    checkpoint_path: str | None = text(None, optional=True, help="checkpoint file")
    checkpoint_every: int | None = integer(None, minimum=1, optional=True,
                                           help="steps between checkpoints")
    resume: bool = flag(False, help="resume from checkpoint_path")
    device: str = text("cpu", help="torch device")
    num_posterior_draws: int = integer(1000, minimum=0, help="guide draws kept")
    posterior_sites: Any = anything(None, help="sites to keep (default: all latent)")
    log_likelihood: bool = flag(True, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(True, help="show a progress bar")
    guide_options: Any = mapping(help="autoguide options (rank, num_flows, hidden_dim, ...)")
    max_plate_nesting: int | None = integer(None, minimum=0, optional=True,
                                            help="plate nesting given to the ELBO")
    time_limit_s: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                      help="stop training after this many seconds (a budget)")
    elbo_every: int | None = integer(None, minimum=1, optional=True,
                                     help="steps between training-ELBO estimates (None: off)")
    elbo_particles: int = integer(20, minimum=1, help="vectorised particles of those estimates")
    compile_elbo: bool = flag(False, help="compile the loss and gradients once with "
                                          "torch.compile (Trace_ELBO, fixed structure)")

    def check(self) -> str | None:
        if self.guide is not None and not (isinstance(self.guide, str) or callable(self.guide)):
            return f"guide must be a guide name or a callable guide, got {self.guide!r}"
        if self.checkpoint_every is not None and self.checkpoint_path is None:
            return "checkpoint_every needs checkpoint_path"
        if self.resume and self.checkpoint_path is None:
            return "resume needs checkpoint_path"
        if self.patience is not None and self.validation_kwargs is None:
            return "patience needs validation_kwargs (early stopping uses a validation set)"
        return None


def resolve_guide(guides: Mapping[str, Callable[..., Any]], guide: Any) -> Any:
    """The guide to fit: a model guide by name, else the name itself (an autoguide).

    With ``guide=None`` the model's own default (``"model"``), else its first guide, else
    ``auto_normal``.
    """
    if guide is None:
        return guides.get("model", next(iter(guides.values()), "auto_normal"))
    if isinstance(guide, str):
        return guides.get(guide, guide)
    return guide


def _svi_needs(settings: MethodSettings) -> Iterable[str]:
    return ("minibatch",) if getattr(settings, "batch_size", None) is not None else ()


#: settings the untuned path takes over from ``svi`` (the rest belong to the fixed path); it
#: keeps no checkpoint (its fits take seconds), so a resumed run fits again from the start
_SHARED_WITH_AUTO = frozenset(("guide", "guide_options", "num_particles", "num_steps",
                               "num_posterior_draws", "log_likelihood", "progress_bar",
                               "time_limit_s", "tuning", "checkpoint_path", "checkpoint_every",
                               "resume"))
FIXED_STEPS, FIXED_LR = 1000, 1e-2


def untuned_blockers(target: Target, settings: SVISettings) -> list[str]:
    """Why the untuned path cannot fit this run (empty when it can).

    It fits the autoguides of :data:`inference.svi.auto.AUTO_GUIDES` on models whose every
    unknown is a continuous latent with a full-data density, and it chooses the step size,
    the optimiser and the number of steps itself: a fixed-path setting given explicitly (a
    learning rate, a mini-batch size, a schedule, early stopping, checkpoints ...) asks for
    the fixed path.

    Example: ``untuned_blockers(target, SVISettings(lr=0.02))`` -> ``["lr=0.02 was given"]``.
    """
    from inference.methods.capabilities import describe_missing, missing_capabilities
    from inference.methods.registry import get
    from inference.svi.auto import AUTO_GUIDES

    reasons = []
    guide = settings.guide
    if guide is None and target.guides:
        reasons.append("the model has its own guide")
    elif guide is not None and not isinstance(guide, str):
        reasons.append("the guide is a callable")
    elif guide in target.guides:
        reasons.append(f"guide {guide!r} is the model's own guide")
    elif guide is not None and guide not in AUTO_GUIDES:
        reasons.append(f"guide {guide!r} is not one of {sorted(AUTO_GUIDES)}")
    missing = missing_capabilities(get("svi_auto").needs, target.traits)
    if missing:
        reasons.append(describe_missing("svi_auto", target.name, missing))
    defaults = SVISettings()
    for name, value in settings.as_dict().items():
        if name not in _SHARED_WITH_AUTO and value != getattr(defaults, name):
            reasons.append(f"{name}={value!r} was given")
    return reasons


@register("svi", family="vi", settings=SVISettings, extra_needs=_svi_needs,
          description="stochastic variational inference: autoguides or the model's own guide, "
                      "ELBO variants, mini-batches, KL annealing, early stopping, checkpoints; "
                      "untuned (svi_auto's path) by default where it applies")
def run_svi(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Fit the guide: by the untuned path of ``svi_auto`` when ``tuning`` is ``"auto"`` (or
    ``None`` and nothing stands in its way, :func:`untuned_blockers`), else with
    :func:`inference.svi.fit_svi` at fixed settings. ``result.settings["tuning"]`` records
    which path ran and ``tuning_reason`` why."""
    assert isinstance(settings, SVISettings)
    blockers = [] if settings.tuning == "fixed" else untuned_blockers(target, settings)
    if settings.tuning == "auto" and blockers:
        raise ValueError("svi with tuning='auto' cannot run: " + "; ".join(blockers)
                         + " (use tuning='fixed')")
    if settings.tuning == "fixed" or blockers:
        reason = "tuning='fixed' was given" if settings.tuning == "fixed" else blockers[0]
        return _run_fixed(target, settings, seed, reason)
    return _run_untuned(target, settings, seed)


def _run_untuned(target: Target, settings: SVISettings, seed: int) -> Any:
    from inference.methods.registry import get

    values = {"guide": settings.guide or "auto_normal",
              "num_particles": settings.num_particles,
              "num_posterior_draws": settings.num_posterior_draws,
              "log_likelihood": settings.log_likelihood, "progress_bar": settings.progress_bar,
              "time_limit_s": settings.time_limit_s}
    if settings.guide_options:
        values["guide_options"] = dict(settings.guide_options)
    if settings.num_steps is not None:
        values["num_steps"] = settings.num_steps
    result = get("svi_auto").run(target, values, seed=seed)
    return result.with_updates(
        method="svi", settings={**result.settings, "tuning": "auto",
                                "tuning_reason": "untuned path (svi_auto) by default"})


def _run_fixed(target: Target, settings: SVISettings, seed: int, reason: str) -> Any:
    from inference.svi import fit_svi

    values = settings.as_dict()
    values.pop("tuning")
    values["num_steps"] = FIXED_STEPS if values["num_steps"] is None else values["num_steps"]
    values["lr"] = FIXED_LR if values["lr"] is None else values["lr"]
    guide = resolve_guide(target.guides, values.pop("guide"))
    result = fit_svi(target.model, target.model_kwargs, guide=guide, seed=seed, **values)
    # record a name the guide can be rebuilt from (zoo evaluate), not the callable's repr
    name = settings.guide if isinstance(settings.guide, str) else next(
        (key for key, candidate in target.guides.items() if candidate is guide), None)
    updates = {"tuning": "fixed", "tuning_reason": reason}
    if name is not None:
        updates["guide"] = name
    return result.with_updates(settings={**result.settings, **updates})
