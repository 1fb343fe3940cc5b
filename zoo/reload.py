"""Load a saved run with everything needed to use its posterior again, in a fresh process.

``InferenceResult.load`` reads draws, statistics and settings; this module also rebuilds what
cannot be stored as arrays: the zoo model (from its registered name and configuration), the
data set, and, for variational fits, the guide, whose parameters are read back from the saved
param store (``svi_state.pt``, plain tensors). A reloaded run evaluates exactly like the live
one (``tests/test_evaluation.py`` checks it).

Usage::

    from zoo.reload import load_run
    result, model, dataset = load_run("runs/vae")
    result.fitted["guide"]           # the trained guide, parameters restored
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pyro
import pyro.poutine as poutine
import torch
from torch.distributions import biject_to

from inference.result import InferenceResult
from zoo.data import load
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.registry import get

__all__ = ["load_run", "rebuild_guide"]


def _restore_constrained(values: Mapping[str, Any]) -> None:
    """Copy saved (constrained) parameter values into the param store in place.

    In place keeps the identity of module parameters (``pyro.module`` registers a module's own
    tensors), so the networks see the restored weights.
    """
    store = pyro.get_param_store()
    constraints = store.get_state()["constraints"]
    missing = sorted(set(values) - set(store.keys()))
    if missing:
        raise KeyError(f"saved parameters {missing} are not created by the rebuilt model and "
                       "guide; was the run saved with another configuration?")
    with torch.no_grad():
        for name, value in values.items():
            target = store[name].unconstrained()
            tensor = torch.as_tensor(value, dtype=target.dtype, device=target.device)
            target.copy_(biject_to(constraints[name]).inv(tensor))


def rebuild_guide(model: ZooModel, settings: Mapping[str, Any], params: Mapping[str, Any],
                  kwargs: Mapping[str, Any]) -> Callable[..., Any]:
    """The trained guide of a variational run: built by name, run once, parameters restored."""
    from inference.guides import make_guide, posterior_guide
    from inference.methods.svi import resolve_guide

    pyro.clear_param_store()
    guide = resolve_guide(model.guides(), settings.get("guide"))
    if isinstance(guide, str):
        guide = make_guide(guide, model.model, **dict(settings.get("guide_options") or {}))
    with torch.no_grad(), poutine.block():  # create every parameter of guide and model
        guide_trace = poutine.trace(guide).get_trace(**kwargs)
        poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(**kwargs)
    store = set(pyro.get_param_store().keys())
    _restore_constrained({k: v for k, v in params.items() if k in store or "." not in k})
    return posterior_guide(guide, dict(kwargs))


def load_run(directory: str | Path, *, data_dir: str | None = None
             ) -> tuple[InferenceResult, ZooModel, Dataset]:
    """The saved result with its model, data set and (variational fits) rebuilt guide."""
    result = InferenceResult.load(directory)
    settings = dict(result.settings)
    if "model" not in settings or "data" not in settings:
        raise ValueError(f"{directory} holds a result saved without its model and data names "
                         "(only runs written by zoo fit or zoo bench can be reloaded)")
    model = get(settings["model"], **dict(settings.get("config") or {}))
    dataset = load(settings["data"], data_dir=data_dir, **dict(settings.get("data_options") or {}))
    kwargs = model.model_kwargs(dataset, "train")
    fitted: dict[str, Any] = {"model": model.model}
    if result.family == "vi" and result.guide_params:
        guide = rebuild_guide(model, settings, result.guide_params, kwargs)
        fitted.update(guide=guide, trained_guide=guide)
    elif result.family == "point" and result.guide_params:  # a network's trained weights
        state = {k: torch.tensor(v) for k, v in result.guide_params.items()}  # copies
        model.model.load_state_dict(state)
        model.model.eval()
        fitted["network"] = model.model
    return result.with_updates(fitted=fitted), model, dataset
