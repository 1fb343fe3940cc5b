"""Untuned, converging SVI as a registered method (``svi_auto``; ``svi`` runs it by default).

Any of the autoguides ``auto_normal``, ``auto_diagonal_normal``, ``auto_lowrank_mvn``,
``auto_mvn`` and ``auto_iaf`` starts at the Laplace approximation (L-BFGS MAP and Hessian),
is fitted in whitened coordinates with a step size chosen by short trials, and stops when R-hat
across windows of its iterates says they are stationary, keeping their average
(:func:`inference.svi.auto.fit_svi_auto`). The result records ``converged``, ``steps`` and
``grad_evals`` and warns when ``num_steps`` ran out first.

Usage::

    from inference import methods
    result = methods.get("svi_auto").run(methods.Target(model, {"y": y}),
                                         {"guide": "auto_mvn"}, seed=0)
    result.settings["converged"], result.settings["grad_evals"]

From the shell: ``zoo fit sblrc-blr --method svi_auto --guide auto_normal --out runs/sblrc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, anything, choice, flag, integer, real

__all__ = ["SVIAutoSettings"]


def _guides() -> list[str]:
    from inference.svi.auto import AUTO_GUIDES

    return list(AUTO_GUIDES)


@dataclass(frozen=True)
class SVIAutoSettings(MethodSettings):
    """Settings of untuned SVI; the defaults are meant for every posterior, unchanged."""

    guide: str = choice("auto_normal", _guides, help="autoguide family")
    guide_options: Any = anything(None, help="autoguide options (rank, hidden_dim, num_flows)")
    num_particles: int = integer(1, minimum=1, help="ELBO particles per step")
    lrs: Any = anything(None, help="Adam step sizes tried (default 0.1, 0.03, 0.01, 0.003)")
    adapt_steps: int = integer(100, minimum=2, help="steps of each step-size trial")
    num_steps: int = integer(5000, minimum=1, help="most steps of the main run (a budget "
                                                    "caps it like SVI's num_steps)")
    window: int = integer(400, minimum=8, help="iterates in the stationarity window")
    rhat_threshold: float = real(1.1, minimum=1.0, exclusive=True,
                                 help="stationary when the largest R-hat is below this")
    map_max_iters: int = integer(1000, minimum=1, help="L-BFGS iterations for the MAP")
    num_posterior_draws: int = integer(1000, minimum=0, help="guide draws kept")
    log_likelihood: bool = flag(True, help="pointwise log-likelihood of the draws")
    time_limit_s: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                      help="end the main run after this many seconds (a budget)")
    progress_bar: bool = flag(False, help="accepted for the CLI; no bar is shown")

    def check(self) -> str | None:
        if self.guide_options is not None and not isinstance(self.guide_options, dict):
            return f"guide_options must be a table (dict), got {self.guide_options!r}"
        if self.lrs is not None:
            ok = isinstance(self.lrs, (list, tuple)) and self.lrs and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for v in self.lrs)
            if not ok:
                return f"lrs must be a non-empty list of positive step sizes, got {self.lrs!r}"
        return None


@register("svi_auto", family="vi", settings=SVIAutoSettings,
          needs=("continuous_latents", "differentiable_density", "no_learned_parameters",
                 "full_batch"),
          description="SVI without tuning: Laplace start (L-BFGS MAP, Hessian scales), "
                      "step-size search, R-hat convergence detection and iterate averaging")
def run_svi_auto(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Fit with :func:`inference.svi.auto.fit_svi_auto`."""
    from inference.svi.auto import DEFAULT_LRS, fit_svi_auto

    values = settings.as_dict()
    values.pop("progress_bar")
    values["max_steps"] = values.pop("num_steps")
    lrs = values.pop("lrs")
    return fit_svi_auto(target.model, target.model_kwargs, seed=seed,
                        lrs=tuple(lrs) if lrs is not None else DEFAULT_LRS, **values)
