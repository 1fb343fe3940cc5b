"""Small helpers shared by the loaders: tensors, a fixed holdout split, and checks that a data
file parsed, holds what it should, and is finite (errors that name the file)."""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

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


class DataFileError(ValueError):
    """A data file that cannot be parsed, lacks what it should hold, or holds NaN/inf.

    The message names the file (and, for non-finite values, the column and first rows).
    """


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, a parse error of ``path`` becomes a :class:`DataFileError` naming it.

    Usage: ``with reading(path): frame = pd.read_csv(path)``.
    """
    try:
        yield
    except DataFileError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, EOFError, OSError,
            zipfile.BadZipFile) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err) or type(err).__name__
        raise DataFileError(f"cannot read data file {path}: {detail}") from None


def require_keys(mapping: Any, keys: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Refuse a parsed file (a JSON object, an npz archive) that lacks one of ``keys``."""
    present = set(mapping) if isinstance(mapping, (dict, Mapping)) or hasattr(
        mapping, "keys") else set()
    missing = [k for k in keys if k not in present]
    if missing:
        raise DataFileError(f"data file {path} lacks {', '.join(map(repr, missing))}; it "
                            f"holds {sorted(present) or 'nothing usable'} (a partial copy? "
                            f"compare it with CHECKSUMS.sha256)")


def check_finite(values: np.ndarray, path: str | os.PathLike[str],
                 columns: Sequence[str] | None = None, what: str = "values") -> None:
    """Refuse NaN or infinite entries, naming the file, the columns and the first rows.

    Usage: ``check_finite(frame.to_numpy(), "uci/yacht/data.csv", list(frame.columns))``.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    where = ""
    if array.ndim == 2:
        cols = np.flatnonzero(bad.any(axis=0))
        names = [columns[c] if columns is not None and c < len(columns) else str(c)
                 for c in cols[:5]]
        where = f" in column(s) {', '.join(names)}" + (", ..." if len(cols) > 5 else "")
    raise DataFileError(f"data file {path} has {int(bad.sum())} NaN or infinite {what}{where} "
                        f"(rows {shown}; {len(rows)} rows in all); fix or drop those rows")
