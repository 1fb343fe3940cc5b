"""Fit a registered model with a named inference method: the glue the CLI and benchmarks share.

This is the one place that joins a zoo model (which knows nothing of drivers) to a driver
(which knows nothing of particular models).

Usage::

    from zoo.fit import fit
    result, model, dataset = fit("eight_schools-eight_schools_noncentered", "nuts",
                                 num_chains=2, num_warmup=300, num_samples=300, seed=0)
    result.to_inference_data()
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from inference.result import InferenceResult
from zoo.data import load
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.registry import get, spec

MCMC_METHODS = ("nuts", "hmc", "rw")
SVI_METHODS = ("svi",)
METHODS = MCMC_METHODS + SVI_METHODS


def resolve_guide(model: ZooModel, guide: str | None) -> str | Callable[..., Any]:
    """The guide for SVI: a model-specific guide by name, else an autoguide name.

    With no name, the model's own guide is used when it has one, else ``auto_normal``.
    """
    own = model.guides()
    if guide is None:
        return own.get("model", next(iter(own.values()), "auto_normal")) if own else "auto_normal"
    return own.get(guide, guide)


def fit(
    model: str | ZooModel,
    method: str,
    *,
    data: str | Dataset | None = None,
    data_options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    guide: str | None = None,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    **driver_settings: Any,
) -> tuple[InferenceResult, ZooModel, Dataset]:
    """Run ``method`` on a model and its data; returns the result, the model and the data.

    ``model`` is a registered name (built with ``config``) or a model instance; ``data`` a data
    set name (default: the model's registered default), a loaded :class:`Dataset`, or ``None``.
    ``driver_settings`` go to :func:`inference.mcmc.run_mcmc` or :func:`inference.svi.fit_svi`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown inference method {method!r}; choose one of {list(METHODS)}")
    if isinstance(model, str):
        entry = spec(model)
        if method not in entry.methods:
            raise ValueError(
                f"method {method!r} does not apply to model {entry.name!r}; "
                f"it supports {list(entry.methods)}"
            )
        zoo_model = get(model, **dict(config or {}))
        data = entry.default_data if data is None else data
    else:
        if config:
            raise ValueError("config applies only when the model is given by name")
        zoo_model = model
    if data is None:
        raise ValueError("no data set given and the model has no registered default")
    dataset = data if isinstance(data, Dataset) else load(
        data, data_dir=data_dir, **dict(data_options or {})
    )
    model_kwargs = zoo_model.model_kwargs(dataset, "train")
    driver_settings = {**zoo_model.driver_defaults(method), **driver_settings}

    if method in MCMC_METHODS:
        if guide is not None:
            raise ValueError(f"--guide applies to svi, not to {method!r}")
        from inference.mcmc import run_mcmc

        result = run_mcmc(zoo_model.model, model_kwargs, kernel=method, seed=seed, **driver_settings)
    else:
        from inference.svi import fit_svi

        result = fit_svi(
            zoo_model.model, model_kwargs, guide=resolve_guide(zoo_model, guide), seed=seed,
            **driver_settings,
        )
    settings = {
        **dict(result.settings),
        "model": zoo_model.name or type(zoo_model).__name__,
        "method": method,
        "guide": guide if guide is not None else result.settings.get("guide"),
        "data": dataset.name,
        "data_options": dict(data_options or {}),
        "config": dict(config or {}),
    }
    return result.with_updates(settings=settings), zoo_model, dataset
