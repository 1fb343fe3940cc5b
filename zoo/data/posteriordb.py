"""posteriordb posteriors: Stan data plus reference draws to check inference against.

The data set name is the posterior's name, e.g. ``eight_schools-eight_schools_noncentered``.
``splits["train"]`` holds every ``data.json`` entry as a tensor: integer entries stay int64
(scalars such as ``N`` become 0-d tensors), real entries are float64. ``info`` holds

- ``reference_draws``: ``{Stan name ("theta[1]", "mu"): ndarray (10 chains, 1000 draws)}``;
- ``reference_summary``: posteriordb's reference means and mean squares (with MCSE);
- ``posteriordb``: the ``info.json`` metadata (posterior, model, data and reference-run info);
- ``parameter_names`` in the draws' order, plus source, licence and path.

Usage::

    from zoo.data import load
    from zoo.data.posteriordb import load_reference_draws
    ds = load("eight_schools-eight_schools_noncentered")
    ds.train["y"], ds.train["sigma"]
    draws = load_reference_draws("eight_schools-eight_schools_noncentered")
    draws["mu"].shape   # (10, 1000)
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data._common import DataFileError, check_finite, reading
from zoo.data.dataset import Dataset
from zoo.data.paths import data_file

POSTERIORS: tuple[str, ...] = (
    "arK-arK",
    "earnings-logearn_height",
    "eight_schools-eight_schools_centered",
    "eight_schools-eight_schools_noncentered",
    "kidiq-kidscore_momiq",
    "mesquite-logmesquite_logvolume",
    "sblrc-blr",
)
SOURCE = "github.com/stan-dev/posteriordb (commit 28f8d3d6), see the data README"
LICENCE = "BSD-3-Clause (posteriordb)"


def _check_name(name: str) -> None:
    if name not in POSTERIORS:
        raise KeyError(f"unknown posteriordb posterior {name!r}; known: {', '.join(POSTERIORS)}")


@lru_cache(maxsize=64)
def _read_json(path: str, size: int, mtime_ns: int) -> Any:
    with reading(path), open(path) as handle:
        return json.load(handle)


def _json(relpath: str, data_dir) -> tuple[Any, Path]:
    path = data_file(relpath, data_dir, source=SOURCE)
    stat = path.stat()
    return _read_json(str(path), stat.st_size, stat.st_mtime_ns), path


def _to_tensor(key: str, value: Any) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype.kind == "O" or array.dtype.kind in "US":
        raise ValueError(f"data.json entry {key!r} is not a numeric array")
    check_finite(array, f"data.json entry {key!r}")
    if array.dtype.kind in "iub":
        return torch.tensor(array, dtype=torch.int64)
    if array.dtype.kind == "f":
        return torch.tensor(array, dtype=torch.float64)
    raise ValueError(f"data.json entry {key!r} is not numeric (numpy dtype {array.dtype})")


def load_reference_draws(name: str, data_dir=None) -> dict[str, np.ndarray]:
    """``{Stan parameter name: float64 array (chains, draws)}`` of the reference posterior."""
    _check_name(name)
    chains, path = _json(f"posteriordb/{name}/reference_draws.json", data_dir)
    if not isinstance(chains, list) or not chains:
        raise ValueError(f"{path} should hold a list of chains")
    names = list(chains[0])
    for index, chain in enumerate(chains):
        if list(chain) != names:
            raise ValueError(f"{path}: chain {index} has parameters {list(chain)}, not {names}")
    return {
        param: np.array([chain[param] for chain in chains], dtype=np.float64) for param in names
    }


def load_posterior(name: str, data_dir=None) -> Dataset:
    """A posteriordb posterior's data (``splits["train"]``) with its reference draws in ``info``."""
    _check_name(name)
    data, data_path = _json(f"posteriordb/{name}/data.json", data_dir)
    if not isinstance(data, dict) or not data:
        raise DataFileError(f"data file {data_path} should hold a JSON object of arrays")
    with reading(data_path):
        splits = {"train": {key: _to_tensor(key, value) for key, value in data.items()}}
    draws = load_reference_draws(name, data_dir)
    summary, _ = _json(f"posteriordb/{name}/reference_summary.json", data_dir)
    meta, _ = _json(f"posteriordb/{name}/info.json", data_dir)
    info = {
        "source": SOURCE,
        "licence": LICENCE,
        "path": str(data_path),
        "parameter_names": list(draws),
        "reference_draws": draws,
        "reference_summary": copy.deepcopy(summary),
        "posteriordb": copy.deepcopy(meta),
        "description": "plain-English model description: posteriordb/models.md in the data folder",
    }
    return Dataset(name, splits, info)
