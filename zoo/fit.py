"""Fit a registered model with a named inference method: the glue the CLI and benchmarks share.

This is the one place that joins a zoo model (which knows nothing of inference) to a method
of :mod:`inference.methods` (which knows nothing of particular models).

Usage::

    from zoo.fit import fit
    result, model, dataset = fit("eight_schools-eight_schools_noncentered", "nuts",
                                 num_chains=2, num_warmup=300, num_samples=300, seed=0)
    result.to_inference_data()
"""

from __future__ import annotations

from typing import Any, Mapping

from inference import methods
from inference.result import InferenceResult
from zoo.data import load
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.registry import get, spec, traits_of


def method_settings(method: str, zoo_model: ZooModel, settings: Mapping[str, Any],
                    guide: str | None = None) -> methods.MethodSettings:
    """Validated settings of ``method`` for ``zoo_model``: its defaults under the caller's.

    The model's :meth:`~zoo.models.base.ZooModel.driver_defaults` for the method's family come
    first (keys the method does not take are dropped), for variational methods updated by
    its :meth:`~zoo.models.base.ZooModel.guide_defaults` for ``guide``, then ``settings``; a ``guide`` is
    refused by methods that take none.
    """
    entry = methods.get(method)
    defaults = {k: v for k, v in zoo_model.driver_defaults(entry.family).items()
                if k in entry.fields}
    if entry.family == "vi":
        defaults.update({k: v for k, v in zoo_model.guide_defaults(guide).items()
                         if k in entry.fields})
    values = {**defaults, **dict(settings)}
    if guide is not None:
        if "guide" not in entry.fields:
            raise methods.SettingsError(f"a guide applies to variational methods, not to "
                                        f"{method!r} ({entry.family})")
        values["guide"] = guide
    return entry.settings_from(values)


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
    ``method`` is a name of :mod:`inference.methods` (``zoo methods`` lists them) and
    ``driver_settings`` are its settings, checked before the data is loaded; a method that
    needs something the model lacks (``nuts`` on a VAE's learned decoder) is refused in one
    line naming the missing capability.
    """
    entry = methods.get(method)
    if isinstance(model, str):
        registered = spec(model)
        traits, name = registered.traits, registered.name
        if registered.only_methods is not None and method not in registered.only_methods:
            raise ValueError(f"model {name!r} is registered for methods "
                             f"{list(registered.only_methods)} only, not {method!r}")
        entry.check_model(traits, name)
        zoo_model = get(model, **dict(config or {}))
        data = registered.default_data if data is None else data
    else:
        if config:
            raise ValueError("config applies only when the model is given by name")
        zoo_model = model
        traits = traits_of(zoo_model)
        name = zoo_model.name or type(zoo_model).__name__
    settings = method_settings(method, zoo_model, driver_settings, guide)
    entry.check_model(traits, name, settings)
    if data is None:
        raise ValueError("no data set given and the model has no registered default")
    dataset = data if isinstance(data, Dataset) else load(
        data, data_dir=data_dir, **dict(data_options or {})
    )
    train_kwargs = zoo_model.model_kwargs(dataset, "train")
    from_data = zoo_model.data_driver_defaults(entry.family, dataset, settings.as_dict())
    from_data = {k: v for k, v in from_data.items()
                 if k in entry.fields and k not in driver_settings}
    if from_data:  # e.g. a validation split cut from the training data, for early stopping
        settings = method_settings(method, zoo_model, {**from_data, **driver_settings}, guide)
    target = methods.Target(zoo_model.model, train_kwargs,
                            guides=zoo_model.guides(), traits=traits, name=name,
                            missing_ok=tuple(zoo_model.missing_value_names),
                            network=(zoo_model.network_view(train_kwargs)
                                     if "layered_network" in entry.needs else None))
    result = entry.run(target, settings, seed=seed)
    record = {
        **dict(result.settings),
        "model": name,
        "method": method,
        "family": entry.family,
        "guide": guide if guide is not None else result.settings.get("guide"),
        "data": dataset.name,
        "data_options": dict(data_options or {}),
        "config": dict(config or {}),
    }
    return result.with_updates(settings=record), zoo_model, dataset
