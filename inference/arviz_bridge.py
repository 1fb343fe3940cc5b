"""The Pyro-to-ArviZ bridge: an :class:`InferenceResult` as ``arviz.InferenceData``.

Built with ``arviz.from_dict`` from the result's plain arrays (never ``az.from_pyro``, which
needs a live ``pyro.infer.MCMC`` object and drops the per-draw statistics recorded here).
Groups: ``posterior``, ``sample_stats`` (ArviZ names: ``diverging``, ``acceptance_rate``,
``step_size``, ``tree_depth``, ``n_steps``, ``energy``, ``lp``), ``log_likelihood``,
``posterior_predictive`` and ``observed_data`` when present. Dimensions are named
``<site>_dim_<i>`` as ArviZ does by default; a log-likelihood whose observation count differs
from the observed site's first dimension (a site outside any data plate) gets
``<site>_ll_dim_0`` so the groups never disagree on a dimension's length.

Usage::

    from inference.arviz_bridge import to_inference_data
    idata = to_inference_data(result)          # same as result.to_inference_data()
    az.loo(idata); az.plot_trace(idata)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inference.result import InferenceResult

__all__ = ["to_inference_data"]


def _log_likelihood_dims(result: "InferenceResult") -> dict[str, list[str]]:
    """Own dimension names for log-likelihoods whose length differs from the observed data's."""
    dims = {}
    for name, value in (result.log_likelihood or {}).items():
        observed = (result.observed_data or {}).get(name)
        if observed is None:
            continue
        if np.ndim(observed) == 0 or np.shape(observed)[0] != np.shape(value)[-1]:
            dims[name] = [f"{name}_ll_dim_0"]
    return dims


def to_inference_data(result: "InferenceResult") -> Any:
    """``arviz.InferenceData`` with every group the result holds (see the module docstring)."""
    import arviz as az

    attrs = {"inference_method": result.method,
             "seed": -1 if result.seed is None else int(result.seed)}
    if result.timings.get("sampling"):
        attrs["sampling_time"] = float(result.timings["sampling"])
    groups: dict[str, Any] = {"posterior": dict(result.posterior)}
    for name in ("sample_stats", "posterior_predictive", "observed_data"):
        arrays = getattr(result, name)
        if arrays:
            groups[name] = dict(arrays)
    ll_dims = _log_likelihood_dims(result)
    if result.log_likelihood and not ll_dims:
        groups["log_likelihood"] = dict(result.log_likelihood)
    idata = az.from_dict(**groups, attrs=attrs)
    if result.log_likelihood and ll_dims:
        idata.extend(az.from_dict(log_likelihood=dict(result.log_likelihood), dims=ll_dims,
                                  attrs=attrs))
    return idata
