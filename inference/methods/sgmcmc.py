"""Stochastic-gradient MCMC as registered methods of the ``sgmcmc`` family.

``sgld`` (Welling and Teh 2011), ``sghmc`` (Chen, Fox and Guestrin 2014), ``psgld`` (Li et al.
2016) and the cyclical samplers ``csgld`` and ``csghmc`` (Zhang et al. 2020: cosine step-size
cycles, an SGD exploration stage and a sampling stage per cycle), all driven by the model's own
potential with Pyro's plate scaling of each mini-batch (:func:`inference.sgmcmc.run_sgmcmc`).
Draws have chain and draw dimensions, so R-hat and ESS apply.

Usage::

    from inference import methods
    result = methods.get("sghmc").run(methods.Target(net.model, kwargs, traits=traits),
                                      {"batch_size": 32, "num_steps": 4000, "thin": 20},
                                      seed=0)

From the command line: ``zoo fit bnn --method sghmc --set batch_size=32 --out runs/sghmc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, choice, flag, integer, real

__all__ = ["SGMCMCSettings", "SGLDSettings", "SGHMCSettings", "PSGLDSettings",
           "CyclicalSGLDSettings", "CyclicalSGHMCSettings"]


@dataclass(frozen=True)
class SGMCMCSettings(MethodSettings):
    """Settings every stochastic-gradient sampler takes (see :func:`run_sgmcmc`)."""

    num_chains: int = integer(4, minimum=1, help="chains, run one after another")
    num_steps: int = integer(2000, minimum=1, help="steps per chain, burn-in included")
    burn_in: float = real(0.5, minimum=0.0, maximum=0.99, help="fraction of steps discarded")
    thin: int = integer(10, minimum=1, help="keep every thin-th step after burn-in")
    batch_size: int | None = integer(None, minimum=1, optional=True,
                                     help="mini-batch size (None: the whole data set)")
    step_size: float = real(1e-3, minimum=0.0, exclusive=True,
                            help="step size per data point (the step on the potential is "
                                 "step_size / N)")
    schedule: str = choice("polynomial", ("constant", "polynomial", "cyclical"),
                           help="step-size schedule")
    decay_steps: float = real(1000.0, minimum=0.0, exclusive=True,
                              help="polynomial: h (1 + t / decay_steps) ** -decay_power")
    decay_power: float = real(0.55, minimum=0.0, maximum=1.0,
                              help="polynomial decay exponent (0.5-1: Robbins-Monro)")
    temperature: float = real(1.0, minimum=0.0, exclusive=True,
                              help="posterior temperature (below 1: a cold posterior)")
    init: str = choice("prior", ("prior", "median"), help="chain starts: prior draws or median")
    pretrain_steps: int = integer(500, minimum=0, help="Adam steps from each start before "
                                                       "sampling (not counted in num_steps)")
    pretrain_lr: float = real(1e-2, minimum=0.0, exclusive=True, help="Adam rate of the "
                                                                      "pre-training")
    log_likelihood: bool = flag(False, help="pointwise log-likelihood of the draws")
    progress_bar: bool = flag(False, help="show a progress bar per chain")

    kernel = ""  # the kernel of run_sgmcmc this method runs; set by subclasses

    def options(self) -> dict[str, Any]:
        """Keywords of :func:`inference.sgmcmc.run_sgmcmc`."""
        return self.as_dict()


@dataclass(frozen=True)
class SGLDSettings(SGMCMCSettings):
    """Stochastic-gradient Langevin dynamics."""

    kernel = "sgld"


@dataclass(frozen=True)
class SGHMCSettings(SGMCMCSettings):
    """Stochastic-gradient HMC: friction alpha (momentum 1 - alpha)."""

    step_size: float = real(1e-2, minimum=0.0, exclusive=True,
                            help="learning rate eta per data point (eta / N on the potential)")
    friction: float = real(0.05, minimum=0.0, maximum=1.0, exclusive=True,
                           help="friction alpha: the velocity keeps 1 - alpha per step")
    kernel = "sghmc"


@dataclass(frozen=True)
class PSGLDSettings(SGMCMCSettings):
    """Preconditioned SGLD (RMSprop preconditioner)."""

    rms_decay: float = real(0.99, minimum=0.0, maximum=1.0, exclusive=True,
                            help="decay of the squared-gradient average")
    rms_eps: float = real(1e-5, minimum=0.0, exclusive=True, help="preconditioner lambda")
    kernel = "psgld"


@dataclass(frozen=True)
class CyclicalSGLDSettings(SGMCMCSettings):
    """Cyclical SGLD: cosine step-size cycles with exploration and sampling stages."""

    schedule: str = choice("cyclical", ("cyclical",), help="step-size schedule (cyclical)")
    num_cycles: int = integer(4, minimum=1, help="cosine cycles over the run")
    exploration: float = real(0.5, minimum=0.0, maximum=0.99,
                              help="fraction of each cycle spent exploring (no noise)")
    burn_in: float = real(0.0, minimum=0.0, maximum=0.99, help="fraction of steps discarded")
    thin: int = integer(5, minimum=1, help="keep every thin-th sampling step")
    kernel = "sgld"

    def check(self) -> str | None:
        if self.num_cycles > self.num_steps:
            return f"num_cycles={self.num_cycles} exceeds num_steps={self.num_steps}"
        return None


@dataclass(frozen=True)
class CyclicalSGHMCSettings(CyclicalSGLDSettings):
    """Cyclical SGHMC."""

    friction: float = real(0.05, minimum=0.0, maximum=1.0, exclusive=True,
                           help="friction alpha: the velocity keeps 1 - alpha per step")
    kernel = "sghmc"


def _needs(settings: MethodSettings) -> Iterable[str]:
    return ("minibatch",) if getattr(settings, "batch_size", None) is not None else ()


_NEEDS = ("continuous_latents", "differentiable_density", "no_learned_parameters")


def _make_run(name: str) -> Any:
    def run(target: Target, settings: MethodSettings, seed: int) -> Any:
        from inference.sgmcmc import run_sgmcmc

        return run_sgmcmc(target.model, target.model_kwargs, kernel=settings.kernel,
                          seed=seed, method=name, **settings.options())

    run.__name__ = f"run_{name}"
    run.__doc__ = f"Sample with {name!r} through :func:`inference.sgmcmc.run_sgmcmc`."
    return run


for _name, _settings, _text in (
        ("sgld", SGLDSettings, "stochastic-gradient Langevin dynamics (Welling & Teh 2011)"),
        ("sghmc", SGHMCSettings, "stochastic-gradient HMC with friction (Chen et al. 2014)"),
        ("psgld", PSGLDSettings, "preconditioned SGLD, RMSprop preconditioner (Li et al. 2016)"),
        ("csgld", CyclicalSGLDSettings, "cyclical SGLD (Zhang et al. 2020)"),
        ("csghmc", CyclicalSGHMCSettings, "cyclical SGHMC (Zhang et al. 2020)")):
    register(_name, family="sgmcmc", settings=_settings, needs=_NEEDS, extra_needs=_needs,
             description=_text + "; mini-batches scaled by the model's data plate")(
        _make_run(_name))
