"""SVI checkpoints: parameters, optimiser state, RNG state, step and loss history in one file.

The file holds only plain containers (dict, list, tuple), numbers, strings and tensors, so it
loads with ``torch.load(path, weights_only=True)`` (no unpickling of arbitrary objects). It is
written atomically (:mod:`inference.storage`), so a crash mid-write leaves the previous
checkpoint intact.

Parameters are stored as the param store's *unconstrained* tensors by name. Constraint objects
(which ``ParamStoreDict.get_state()`` also returns) are not plain data, so they are not stored:
on restore the guide is rebuilt by the same code, run once to create its parameters (with their
constraints), and the stored unconstrained values are copied in place.

Usage::

    from inference.checkpoint import save_checkpoint, load_checkpoint, restore_params
    save_checkpoint("run/ckpt.pt", step=50, optim=optim, loss_history=losses)
    state = load_checkpoint("run/ckpt.pt")        # dict; weights_only=True
    restore_params(state["params"])               # into the current param store
    optim.set_state(state["optim"]); set_rng(state["rng"])
"""

from __future__ import annotations

import os
import random
from typing import Any, Mapping

import numpy as np
import pyro
import torch

from inference.storage import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "snapshot_params",
           "restore_params", "get_rng", "set_rng", "to_plain"]

CHECKPOINT_FORMAT = "ppl-zoo/svi-checkpoint/1"


def to_plain(obj: Any, where: str = "state") -> Any:
    """``obj`` with numpy arrays/scalars turned into tensors/Python numbers, checked plain.

    Raises ``TypeError`` naming the path of anything that ``weights_only`` loading would refuse.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.uint32:  # numpy's MT19937 key: torch has no uint32 arithmetic need
            return torch.from_numpy(obj.astype(np.int64))
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        return {k: to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, list):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"cannot store {type(obj).__name__} at {where} in a weights-only checkpoint")


def snapshot_params() -> dict[str, torch.Tensor]:
    """Detached copies of every unconstrained parameter in Pyro's param store, by name."""
    store = pyro.get_param_store()
    return {name: store[name].unconstrained().detach().clone() for name in store.keys()}


def restore_params(params: Mapping[str, torch.Tensor]) -> None:
    """Copy stored unconstrained values into the param store *in place*.

    In-place copies keep tensor identity, so optimisers (keyed by tensor) and modules stay
    attached. Every stored name must already exist (run the guide once first); a missing name or
    a shape mismatch is a ``KeyError``/``ValueError``.
    """
    store = pyro.get_param_store()
    missing = sorted(set(params) - set(store.keys()))
    if missing:
        raise KeyError(f"checkpoint parameters {missing} are not in the param store; the guide "
                       f"must be built (and run once) the same way as when it was saved")
    with torch.no_grad():
        for name, value in params.items():
            target = store[name].unconstrained()
            if target.shape != value.shape:
                raise ValueError(f"parameter {name!r} has shape {tuple(target.shape)} but the "
                                 f"checkpoint holds {tuple(value.shape)}")
            target.copy_(value.to(device=target.device, dtype=target.dtype))


def get_rng() -> dict[str, Any]:
    """The torch, Python and numpy RNG states (and CUDA's when initialised), as plain data."""
    state = dict(pyro.util.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return to_plain(state, "rng")


def set_rng(state: Mapping[str, Any]) -> None:
    """Restore RNG states saved by :func:`get_rng` (inverse of its plain conversion)."""
    py_version, py_key, py_gauss = state["random"]
    random.setstate((py_version, tuple(py_key), py_gauss))
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def save_checkpoint(path: str | os.PathLike[str], *, step: int, optim: Any,
                    loss_history: Any, params: Mapping[str, torch.Tensor] | None = None,
                    rng: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write one checkpoint atomically.

    ``step`` is the number of completed steps; ``params`` defaults to the current param store
    (:func:`snapshot_params`), ``rng`` to the current RNG state; ``optim`` is a ``pyro.optim``
    optimiser (its ``get_state()`` is stored); ``extra`` holds driver state (early stopping).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "params": dict(params if params is not None else snapshot_params()),
        "optim": optim.get_state(),
        "rng": rng if rng is not None else get_rng(),
        "loss_history": torch.as_tensor(np.asarray(loss_history, dtype=np.float64)),
        "extra": dict(extra or {}),
    }
    plain = to_plain(state, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an SVI checkpoint of format {CHECKPOINT_FORMAT!r}")
    return state
