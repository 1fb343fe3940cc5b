"""The two small data sets shipped with scikit-learn: the defaults for quick runs.

- ``digits``: 1,797 8x8 handwritten digits, ``x`` (n, 64) grey levels scaled to [0, 1]
  (the originals are 0..16), ``y`` int64 labels 0..9.
- ``diabetes``: 442 patients, ``x`` (n, 10) and ``y`` (n,) disease progression, both
  standardised with training-split statistics (the raw, unscaled sklearn version is used so
  that no test information leaks into the scaling); the scalers are in ``info``.

Both use a fixed holdout split: the last ``test_fraction`` (default 20%) of the permutation
drawn with ``numpy.random.default_rng(seed)`` (default seed 0) is the test split.

Usage::

    from zoo.data import load
    ds = load("digits")
    ds.train["x"].shape   # torch.Size([1438, 64])
    ds = load("diabetes", seed=1)
    y_orig = ds.info["y_scaler"].inverse_transform(ds.test["y"])
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from zoo.data._common import float_tensor, holdout_split, label_tensor
from zoo.data.dataset import Dataset
from zoo.data.standardize import regression_splits


@lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # sklearn is slow to import; only when needed

    bunch = load_digits()
    return bunch.data, bunch.target


@lru_cache(maxsize=None)
def _diabetes_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return bunch.data, bunch.target, tuple(bunch.feature_names)


def load_digits(data_dir=None, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """sklearn's 8x8 digits, grey levels in [0, 1], with a fixed holdout split.

    ``data_dir`` is accepted for a uniform signature and ignored (the data ship with sklearn).
    """
    x, y = _digits_arrays()
    train, test = holdout_split(len(x), test_fraction, seed)
    x = x / 16.0
    splits = {
        part: {"x": float_tensor(x[idx]), "y": label_tensor(y[idx])}
        for part, idx in (("train", train), ("test", test))
    }
    info = {
        "source": "scikit-learn sklearn.datasets.load_digits (UCI Optical Recognition of "
        "Handwritten Digits, test part)",
        "licence": "CC BY 4.0 (UCI Machine Learning Repository)",
        "path": "embedded in scikit-learn",
        "n_features": 64,
        "n_classes": 10,
        "image_shape": (8, 8),
        "test_fraction": test_fraction,
        "seed": seed,
        "train_index": train,
        "test_index": test,
    }
    return Dataset("digits", splits, info)


def load_diabetes(
    data_dir=None, *, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True
) -> Dataset:
    """sklearn's diabetes regression set, standardised with training statistics.

    With ``standardize=False`` the raw values are returned and the scalers are still in
    ``info`` (fitted on the training split) for models that want to apply them themselves.
    """
    x, y, names = _diabetes_arrays()
    train, test = holdout_split(len(x), test_fraction, seed)
    splits, x_scaler, y_scaler = regression_splits(x, y, train, test, standardize)
    info = {
        "source": "scikit-learn sklearn.datasets.load_diabetes(scaled=False) "
        "(Efron, Hastie, Johnstone & Tibshirani 2004, Least Angle Regression)",
        "licence": "distributed with scikit-learn (BSD-3-Clause); cite Efron et al. (2004)",
        "path": "embedded in scikit-learn",
        "n_features": x.shape[1],
        "feature_names": list(names),
        "standardized": standardize,
        "x_scaler": x_scaler,
        "y_scaler": y_scaler,
        "test_fraction": test_fraction,
        "seed": seed,
        "train_index": train,
        "test_index": test,
    }
    return Dataset("diabetes", splits, info)
