"""Small helpers shared by the loaders: array-to-tensor conversion and a fixed holdout split."""

from __future__ import annotations

import numpy as np
import torch


def float_tensor(values: np.ndarray) -> torch.Tensor:
    """A new float32 tensor (never a view of a cached array)."""
    return torch.tensor(np.asarray(values), dtype=torch.float32)


def label_tensor(values: np.ndarray) -> torch.Tensor:
    """A new int64 tensor of labels."""
    return torch.tensor(np.asarray(values), dtype=torch.int64)


def holdout_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test row indices: the last ``test_fraction`` of a fixed permutation.

    >>> train, test = holdout_split(10, 0.2, seed=0)
    >>> len(train), len(test)
    (8, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    n_test = int(round(n * test_fraction))
    if not 0 < n_test < n:
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty split of {n} rows")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n - n_test]), np.sort(order[n - n_test :])
