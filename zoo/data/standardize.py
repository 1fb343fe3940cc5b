"""Per-column standardisation fitted on a training split, with the inverse transforms.

Loaders that standardise (UCI, diabetes) put one :class:`Standardizer` for the inputs in
``info["x_scaler"]`` and one for the target in ``info["y_scaler"]``, so predictions, predictive
scales and log densities can be reported on the original scale.

sklearn's ``StandardScaler`` does the forward part, but not for torch tensors, nor the
transforms of scales, variances and log densities that metrics need, so this small class is
written here.

Usage::

    scaler = Standardizer.fit(y_train)              # numpy or torch, columns on the last axis
    z = scaler.transform(y_test)
    y_pred = scaler.inverse_transform(z_pred)       # values
    sd = scaler.inverse_transform_scale(sd_pred)    # standard deviations
    ll = scaler.inverse_transform_log_density(ll_z) # log p(y) from log p(z)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Standardizer:
    """``z = (x - mean) / std`` per column; constant columns get ``std = 1`` (they map to 0)."""

    mean: np.ndarray
    std: np.ndarray
    constant: np.ndarray | None = None  # boolean mask of the columns guarded to std 1

    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor, *, rtol: float = 1e-12) -> "Standardizer":
        """Mean and (population) standard deviation over the first axis of ``x``.

        A column whose std is at most ``rtol * max(1, |mean|)`` (constant up to rounding) gets
        std 1, so the transform stays finite.
        """
        values = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        values = values.astype(np.float64)
        if values.ndim == 0 or values.shape[0] == 0:
            raise ValueError(f"Standardizer.fit needs at least one row, got shape {values.shape}")
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        constant = std <= rtol * np.maximum(1.0, np.abs(mean))
        std = np.where(constant, 1.0, std)
        mean = np.where(constant, values[0], mean)  # so a constant column maps to exactly 0
        return cls(mean=np.asarray(mean), std=np.asarray(std), constant=np.asarray(constant))

    @property
    def constant_columns(self) -> np.ndarray:
        """Indices of the columns whose std was guarded to 1 because they were constant."""
        if self.constant is None:
            return np.array([], dtype=np.int64)
        return np.flatnonzero(np.atleast_1d(self.constant))

    def _like(self, value: np.ndarray, ref: Array) -> Array:
        if isinstance(ref, torch.Tensor):
            dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
            return torch.as_tensor(value, dtype=dtype, device=ref.device)
        return value

    def transform(self, x: Array) -> Array:
        """Standardise values: ``(x - mean) / std``."""
        return (x - self._like(self.mean, x)) / self._like(self.std, x)

    def inverse_transform(self, z: Array) -> Array:
        """Values back on the original scale: ``z * std + mean``."""
        return z * self._like(self.std, z) + self._like(self.mean, z)

    def inverse_transform_scale(self, scale: Array) -> Array:
        """Standard deviations (or any scale) back on the original scale: ``scale * std``."""
        return scale * self._like(self.std, scale)

    def inverse_transform_variance(self, variance: Array) -> Array:
        """Variances back on the original scale: ``variance * std**2``."""
        return variance * self._like(self.std**2, variance)

    def inverse_transform_log_density(self, log_density: Array) -> Array:
        """log p(y) from log p(z) for one observation: ``log p(z) - sum(log std)``.

        The sum runs over the columns, so it applies to a log density of a whole row.
        """
        return log_density - float(np.log(self.std).sum())


def regression_splits(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, standardize: bool = True
) -> tuple[dict[str, dict[str, torch.Tensor]], Standardizer, Standardizer]:
    """Train/test ``{"x", "y"}`` float tensors with scalers fitted on the train rows only.

    Returns the splits and the fitted x and y scalers (applied when ``standardize``), so metrics
    can be reported on the original scale. Shared by the diabetes and UCI loaders.

    >>> import numpy as np
    >>> splits, xs, ys = regression_splits(np.arange(8.).reshape(4, 2), np.arange(4.),
    ...                                    np.array([0, 1, 2]), np.array([3]))
    >>> float(splits["train"]["y"].mean())
    0.0
    """
    from zoo.data._common import float_tensor

    x_scaler, y_scaler = Standardizer.fit(x[train]), Standardizer.fit(y[train])
    if standardize:
        x, y = x_scaler.transform(x), y_scaler.transform(y)
    splits = {
        part: {"x": float_tensor(x[idx]), "y": float_tensor(y[idx])}
        for part, idx in (("train", train), ("test", test))
    }
    return splits, x_scaler, y_scaler
