"""SVI as a registered method: settings of :func:`inference.svi.fit_svi`, checked up front.

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
    num_steps: int = integer(1000, minimum=1, help="optimisation steps")
    optimizer: str = choice("adam", _optimizer_names, help="optimiser")
    lr: float = real(1e-2, minimum=0.0, exclusive=True, help="learning rate")
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


@register("svi", family="vi", settings=SVISettings, extra_needs=_svi_needs,
          description="stochastic variational inference: autoguides or the model's own guide, "
                      "ELBO variants, mini-batches, KL annealing, early stopping, checkpoints")
def run_svi(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Fit the guide with :func:`inference.svi.fit_svi`."""
    from inference.svi import fit_svi

    values = settings.as_dict()
    guide = resolve_guide(target.guides, values.pop("guide"))
    result = fit_svi(target.model, target.model_kwargs, guide=guide, seed=seed, **values)
    # record a name the guide can be rebuilt from (zoo evaluate), not the callable's repr
    name = settings.guide if isinstance(settings.guide, str) else next(
        (key for key, candidate in target.guides.items() if candidate is guide), None)
    if name is not None:
        result = result.with_updates(settings={**result.settings, "guide": name})
    return result
