"""The numbers behind a classifier's calibration figures, saved as small JSON files beside them.

A cell's reliability diagram and its entropy histograms on shifted inputs are pictures of one
method; to draw several methods in one figure the report needs the numbers. These functions
write them next to the cell's plots and read them back; the report finds the files by name
(:data:`RELIABILITY_FILE`, :data:`OOD_ENTROPY_FILE`), whatever the model or data set.

* ``reliability.json``: ``{"n_bins", "ece", "bins": [{"lower", "upper", "count", "accuracy",
  "confidence"}, ...]}`` (empty bins have ``null`` accuracy and confidence);
* ``ood_entropy.json``: ``{"test": stats, "<shift>": stats, ...}`` where ``stats`` holds the
  ``mean`` and the box-plot numbers of the predictive entropy (``whislo`` 5 %, ``q1``, ``med``,
  ``q3``, ``whishi`` 95 %, ``n``), the keys of ``matplotlib``'s ``Axes.bxp``.

Usage::

    from inference.calibration_records import save_reliability, load_reliability
    save_reliability(probs, labels, "runs/x/cells/abc/plots")      # probs (N, K), labels (N,)
    load_reliability("runs/x/cells/abc/plots")["ece"]
    save_ood_entropy(h_test, {"noise": h_noise}, "runs/x/cells/abc/plots")
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from inference.calibration import (DEFAULT_BINS, ArrayLike, expected_calibration_error,
                                   reliability_diagram_data)
from inference.storage import atomic_write_text

__all__ = ["RELIABILITY_FILE", "OOD_ENTROPY_FILE", "IN_DISTRIBUTION", "save_reliability",
           "save_ood_entropy", "load_reliability", "load_ood_entropy", "entropy_stats"]

RELIABILITY_FILE = "reliability.json"
OOD_ENTROPY_FILE = "ood_entropy.json"
#: the key of the test (in-distribution) inputs in ``ood_entropy.json``
IN_DISTRIBUTION = "test"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def save_reliability(probs: ArrayLike, labels: ArrayLike, folder: str | Path,
                     n_bins: int = DEFAULT_BINS) -> Path:
    """Write the reliability table and ECE of predictive ``probs`` (N, K) to
    ``folder/reliability.json``; returns the path."""
    table = reliability_diagram_data(probs, labels, n_bins)
    record = {
        "n_bins": n_bins,
        "ece": expected_calibration_error(probs, labels, n_bins),
        "bins": [{"lower": float(r.lower), "upper": float(r.upper), "count": int(r.count),
                  "accuracy": _finite_or_none(r.accuracy),
                  "confidence": _finite_or_none(r.confidence)}
                 for r in table.itertuples()],
    }
    path = Path(folder) / RELIABILITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def entropy_stats(values: ArrayLike) -> dict[str, float]:
    """Mean and box-plot numbers (5/25/50/75/95 % quantiles, ``n``) of entropies."""
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values,
                   dtype=np.float64).reshape(-1)
    if not v.size:
        raise ValueError("entropy_stats needs at least one value")
    lo, q1, med, q3, hi = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"mean": float(v.mean()), "whislo": float(lo), "q1": float(q1), "med": float(med),
            "q3": float(q3), "whishi": float(hi), "n": int(v.size)}


def save_ood_entropy(in_entropy: ArrayLike, ood_entropy: Mapping[str, ArrayLike],
                     folder: str | Path) -> Path:
    """Write the entropy summaries on test inputs and on each shift to
    ``folder/ood_entropy.json``; returns the path."""
    if IN_DISTRIBUTION in ood_entropy:
        raise ValueError(f"a shift may not be called {IN_DISTRIBUTION!r} (the test inputs' key)")
    record = {IN_DISTRIBUTION: entropy_stats(in_entropy)}
    record.update({name: entropy_stats(h) for name, h in ood_entropy.items()})
    path = Path(folder) / OOD_ENTROPY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_reliability(folder: str | Path) -> dict[str, Any] | None:
    """``folder/reliability.json`` as written by :func:`save_reliability`, or ``None``."""
    return _load(Path(folder) / RELIABILITY_FILE)


def load_ood_entropy(folder: str | Path) -> dict[str, dict[str, float]] | None:
    """``folder/ood_entropy.json`` as written by :func:`save_ood_entropy`, or ``None``."""
    return _load(Path(folder) / OOD_ENTROPY_FILE)
