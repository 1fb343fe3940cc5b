"""The one result record every driver returns, and its conversion to ArviZ.

Both the MCMC and the SVI driver return an :class:`InferenceResult`: draws in the constrained
space with (chain, draw) leading dimensions, per-draw sample statistics, timings, settings,
seed and library versions; for SVI also the loss history and the fitted guide parameters.

Usage::

    result = run_mcmc(model, model_kwargs, num_chains=2)   # or fit_svi(...)
    idata = result.to_inference_data()                      # arviz.InferenceData
    result.save("runs/eight_schools")
    same = InferenceResult.load("runs/eight_schools")
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from inference.storage import atomic_path, atomic_write_text

ArrayMap = Mapping[str, np.ndarray]

_RECORD_FILE = "result.json"
_IDATA_FILE = "posterior.nc"
_TENSORS_FILE = "svi_state.pt"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, for provenance."""
    import arviz
    import pyro
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "arviz": arviz.__version__,
        "numpy": np.__version__,
    }


def _frozen(arrays: ArrayMap | None) -> dict[str, np.ndarray] | None:
    if arrays is None:
        return None
    out = {}
    for key, value in arrays.items():
        arr = np.array(value, copy=True)
        arr.setflags(write=False)
        out[key] = arr
    return out


@dataclass(frozen=True, eq=False)
class InferenceResult:
    """Immutable record of one inference run (MCMC or SVI).

    ``posterior`` maps each latent site to an array shaped ``(chain, draw, *event)`` in the
    constrained space; ``sample_stats`` maps statistic names (``diverging``, ``acceptance_rate``,
    ``step_size``, ``tree_depth``, ``n_steps``, ``energy``, ...) to ``(chain, draw)`` arrays.
    ``log_likelihood`` maps observed sites to ``(chain, draw, n_obs)`` pointwise values.
    ``fitted`` holds live objects (the guide, the model) for use in the same session; it is
    not saved. Results compare by identity (their fields are arrays); compare fields instead.
    """

    method: str
    posterior: ArrayMap
    sample_stats: ArrayMap = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    versions: Mapping[str, str] = field(default_factory=library_versions)
    log_likelihood: ArrayMap | None = None
    posterior_predictive: ArrayMap | None = None
    observed_data: ArrayMap | None = None
    loss_history: np.ndarray | None = None
    guide_params: ArrayMap | None = None
    #: the method family (``mcmc``, ``vi`` ...); derived from ``method`` when not given
    family: str = ""
    fitted: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", _family_of(self.method))
        for name in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive",
                     "observed_data", "guide_params"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.loss_history is not None:
            losses = np.array(self.loss_history, dtype=float, copy=True)
            losses.setflags(write=False)
            object.__setattr__(self, "loss_history", losses)
        for site, value in self.posterior.items():
            if value.ndim < 2:
                raise ValueError(
                    f"posterior site {site!r} has shape {value.shape}; expected (chain, draw, ...)"
                )

    @property
    def num_chains(self) -> int:
        return next(iter(self.posterior.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.posterior.values())).shape[1]

    def with_updates(self, **changes: Any) -> "InferenceResult":
        """A copy with some fields replaced (e.g. a posterior predictive added later)."""
        return replace(self, **changes)

    def to_inference_data(self) -> Any:
        """The run as an ``arviz.InferenceData`` (see :mod:`inference.arviz_bridge`)."""
        from inference.arviz_bridge import to_inference_data

        return to_inference_data(self)

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``posterior.nc`` (netCDF), ``result.json`` and, for SVI, ``svi_state.pt``.

        Each file is written atomically. Returns the directory.
        """
        import torch

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / _IDATA_FILE) as tmp:
            self.to_inference_data().to_netcdf(str(tmp))
        record = {
            "method": self.method,
            "family": self.family,
            "seed": self.seed,
            "timings": dict(self.timings),
            "settings": _jsonable(self.settings),
            "versions": dict(self.versions),
        }
        atomic_write_text(out / _RECORD_FILE, json.dumps(record, indent=2, sort_keys=True))
        (out / _TENSORS_FILE).unlink(missing_ok=True)  # never leave an older run's SVI state
        if self.loss_history is not None or self.guide_params:
            tensors: dict[str, Any] = {}
            if self.loss_history is not None:
                tensors["loss_history"] = torch.tensor(np.array(self.loss_history))
            for key, value in (self.guide_params or {}).items():
                tensors[f"guide_params/{key}"] = torch.tensor(np.array(value))
            with atomic_path(out / _TENSORS_FILE) as tmp:
                torch.save(tensors, tmp)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> "InferenceResult":
        """Read a result written by :meth:`save` (no pickle: netCDF, JSON, plain tensors)."""
        import arviz as az
        import torch

        src = Path(directory)
        if not (src / _RECORD_FILE).exists():
            raise FileNotFoundError(f"no saved result in {src} (missing {_RECORD_FILE})")
        record = json.loads((src / _RECORD_FILE).read_text())
        idata = az.from_netcdf(str(src / _IDATA_FILE))

        def group(name: str) -> dict[str, np.ndarray] | None:
            if name not in idata.groups():
                return None
            return {k: v.values for k, v in idata[name].data_vars.items()}

        loss_history, guide_params = None, None
        if (src / _TENSORS_FILE).exists():
            tensors = torch.load(src / _TENSORS_FILE, weights_only=True)
            if "loss_history" in tensors:
                loss_history = tensors["loss_history"].numpy()
            prefix = "guide_params/"
            guide_params = {
                k[len(prefix):]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)
            } or None
        return cls(
            method=record["method"],
            family=record.get("family", ""),
            posterior=group("posterior") or {},
            sample_stats=group("sample_stats") or {},
            timings=record.get("timings", {}),
            settings=record.get("settings", {}),
            seed=record.get("seed"),
            versions=record.get("versions", {}),
            log_likelihood=group("log_likelihood"),
            posterior_predictive=group("posterior_predictive"),
            observed_data=group("observed_data"),
            loss_history=loss_history,
            guide_params=guide_params,
        )


def _family_of(method: str) -> str:
    """The family of a method name written before results recorded it (``mcmc_nuts``)."""
    if method.startswith("mcmc"):
        return "mcmc"
    return "vi" if method.startswith("svi") else "other"


def _jsonable(value: Any) -> Any:
    """Settings as JSON: containers recursively, numbers and strings as is, the rest as repr."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)
