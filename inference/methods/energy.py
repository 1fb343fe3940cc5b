"""Contrastive divergence and persistent CD as registered methods (family ``energy``).

``cd`` restarts its Gibbs chains at each mini-batch and runs ``k`` sweeps (CD-k, Hinton 2002);
``pcd`` keeps ``num_chains`` chains across updates (Tieleman 2008), optionally as
``num_temperatures`` tempered replicas that swap states (parallel tempering). Both train the
target's energy network in place by :func:`inference.energy.train_stages`: one stage for an
RBM, one per layer for a model that lists ``training_stages()`` (a DBN's greedy stacking, a
DBM's pretraining then joint training); ``num_steps`` is per stage. The result holds no draws:
its ``guide_params`` are the trained network's parameters (plain tensors, reloaded with
``weights_only=True``) and ``history/recon_error``, the reconstruction error per step.

Usage::

    from inference import methods
    spec = methods.get("pcd")
    result = spec.run(methods.Target(rbm_network, {"x": x}, traits=traits),
                      {"num_steps": 20000, "lr": 0.01, "num_temperatures": 5}, seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.energy.protocol import HISTORY_PREFIX
from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, flag, integer, real

__all__ = ["CDSettings", "PCDSettings", "run_energy_method"]


@dataclass(frozen=True)
class CDSettings(MethodSettings):
    """Settings of contrastive divergence (defaults after Hinton's practical guide, 2010)."""

    k: int = integer(1, minimum=1, help="Gibbs sweeps per update (CD-k)")
    num_steps: int = integer(10000, minimum=1, help="parameter updates per training stage")
    batch_size: int = integer(100, minimum=1, help="mini-batch size")
    lr: float = real(0.05, minimum=0.0, exclusive=True, help="learning rate")
    momentum: float = real(0.9, minimum=0.0, maximum=1.0, help="momentum after the start")
    initial_momentum: float = real(0.5, minimum=0.0, maximum=1.0,
                                   help="momentum for the first initial_momentum_steps")
    initial_momentum_steps: int | None = integer(None, minimum=0, optional=True,
                                                 help="steps at initial_momentum (default: 5 "
                                                      "epochs, at most a fifth of the run)")
    weight_decay: float = real(2e-4, minimum=0.0, help="L2 weight decay on the weights")
    time_limit_s: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                      help="stop training after this many seconds (a budget)")
    progress_bar: bool = flag(True, help="show a progress bar")


@dataclass(frozen=True)
class PCDSettings(CDSettings):
    """Settings of persistent CD, optionally with parallel tempering."""

    lr: float = real(0.01, minimum=0.0, exclusive=True, help="learning rate")
    num_chains: int | None = integer(None, minimum=1, optional=True,
                                     help="persistent chains (default: batch_size)")
    num_temperatures: int = integer(1, minimum=1, help="tempered replicas (1: plain PCD; more:"
                                                       " parallel tempering)")


def run_energy_method(target: Target, settings: MethodSettings, seed: int, *,
                      persistent: bool) -> Any:
    """Train ``target.model`` on ``target.model_kwargs["x"]``; see the module docstring."""
    from inference.energy.protocol import EnergyModel, TrainingStage
    from inference.energy.train import train_stages
    from inference.result import InferenceResult

    network = target.model
    x = target.model_kwargs.get("x")
    if x is None or getattr(x, "dim", lambda: 0)() != 2:
        raise ValueError(f"method {settings.method_name!r} needs model keyword 'x', an (n, d) "
                         f"tensor of training data; model {target.name!r} gave "
                         f"{sorted(target.model_kwargs)}")
    stages = (network.training_stages() if hasattr(network, "training_stages")
              else [TrainingStage(target.name, network)])
    for stage in stages:
        if not isinstance(stage.model, EnergyModel):
            raise TypeError(f"method {settings.method_name!r} trains energy-based models "
                            f"(inference.energy.EnergyModel); stage {stage.name!r} of model "
                            f"{target.name!r} is a {type(stage.model).__name__}")
    options = settings.as_dict()
    limit = options.pop("time_limit_s")
    if not persistent:
        options.update(num_chains=None, num_temperatures=1)
    record = train_stages(stages, x, seed=seed, time_limit_s=limit, persistent=persistent,
                          **options)
    params = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    params[HISTORY_PREFIX + "recon_error"] = np.asarray(record.recon_error, dtype=np.float32)
    steps = max(record.steps_run, 1)
    summary = {**settings.as_dict(), "persistent": persistent, "steps_run": record.steps_run,
               "stage_steps": dict(record.stage_steps),
               "stopped_by_time_limit": record.stopped_by_time_limit,
               "final_recon_error": float(record.recon_error[-1]) if len(record.recon_error)
               else None}
    if record.swap_rate is not None:
        summary["swap_rate"] = record.swap_rate
    return InferenceResult(method=settings.method_name, family="energy", posterior={},
                           timings={"fit": record.seconds, "per_step": record.seconds / steps},
                           settings=summary, seed=seed, guide_params=params,
                           fitted={"model": network})


@register("cd", family="energy", settings=CDSettings, needs=("energy_function",),
          description="contrastive divergence CD-k (Hinton 2002) with momentum and weight "
                      "decay; greedy layer-wise for DBNs and DBMs")
def run_cd(target: Target, settings: MethodSettings, seed: int) -> Any:
    """CD-k: chains restart at the data each update."""
    return run_energy_method(target, settings, seed, persistent=False)


@register("pcd", family="energy", settings=PCDSettings, needs=("energy_function",),
          description="persistent contrastive divergence / stochastic approximation (Tieleman "
                      "2008), optional parallel tempering; the DBM's joint training")
def run_pcd(target: Target, settings: MethodSettings, seed: int) -> Any:
    """PCD: persistent chains (with tempered replicas when num_temperatures > 1)."""
    return run_energy_method(target, settings, seed, persistent=True)
