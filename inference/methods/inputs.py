"""Checks a method's data before inference starts: NaN in the data is the data's fault.

A NaN observation reaches Pyro as a 28-line "Expected parameter loc ... found invalid values"
dump, or makes SVI report "diverged at step 0"; both blame the inference for the data. Every
method run checks the floating-point tensors among the model's keyword arguments first and
names the keyword and the first rows at fault. A model that supports missing observations
lists the keywords that may hold NaN (``Target.missing_ok``, from the model's
``missing_value_names``) and leaves those entries out of its likelihood itself.

Usage::

    from inference.methods.inputs import check_finite_inputs
    check_finite_inputs({"x": x, "y": y}, model="bnn")      # ValueError naming 'y' if NaN
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

import torch


class DataValueError(ValueError):
    """Model inputs with NaN or infinite entries (an error about the data, not the method)."""


def check_finite_inputs(model_kwargs: Mapping[str, Any], *, model: str = "model",
                        missing_ok: Collection[str] = ()) -> None:
    """Raise :class:`DataValueError` for the first floating-point input holding NaN or inf.

    Keywords in ``missing_ok`` may hold NaN (the model's way to mark missing values) but not
    infinities.
    """
    for key, value in model_kwargs.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        bad = torch.isinf(value) if key in missing_ok else ~torch.isfinite(value)
        if not bool(bad.any()):
            continue
        rows = bad.reshape(len(value), -1).any(-1).nonzero().flatten() if value.dim() else \
            torch.zeros(1, dtype=torch.long)
        shown = ", ".join(str(int(r)) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        hint = ("" if key in missing_ok else
                f"; model {model!r} takes no missing values in {key!r}"
                " (models that do list them in missing_value_names)")
        raise DataValueError(
            f"input {key!r} of model {model!r} holds {int(bad.sum())} NaN or infinite "
            f"entries (rows {shown}): this is a problem in the data, not in the inference{hint}")
