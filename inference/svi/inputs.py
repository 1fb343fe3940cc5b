"""Checks and placement of SVI inputs: the device, model keywords, mini-batch settings.

Usage::

    from inference.svi.inputs import check_minibatch, resolve_device, to_device
    dev = resolve_device("cuda")               # ValueError naming the problem if unusable
    kwargs = to_device({"y": y}, dev)
    check_minibatch(model, guide, kwargs, batch_size=32)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch

from inference.guides import init_to_feasible_shape
from inference.sites import model_trace, site_kinds

__all__ = ["to_device", "resolve_device", "accepts_keyword", "check_minibatch"]


def to_device(kwargs: Mapping[str, Any] | None, device: torch.device) -> dict[str, Any]:
    """A copy of ``kwargs`` with every tensor value moved to ``device``."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in (kwargs or {}).items()}


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists here (``cpu``, or ``cuda`` when available;
    ``"auto"``: ``cuda`` when available, else ``cpu``).

    Usage: ``resolve_device("cpu")``.
    """
    if device == "auto":  # a GPU when there is one
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device (use 'cpu' or 'cuda')") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` can be called with keyword ``name`` (``True`` when it cannot be told)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins / C callables: cannot tell, assume yes
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_minibatch(model: Callable[..., Any], guide: Callable[..., Any] | None,
                    model_kwargs: Mapping[str, Any], batch_size: Any) -> None:
    """Errors naming the problem when mini-batching cannot work as asked.

    ``batch_size`` is passed as ``subsample_size`` to model and guide (``guide=None``: an
    autoguide, which takes any keyword), so both must accept it, the model must have a
    subsampling plate, and ``batch_size`` must not exceed every plate's size.
    Usage: ``check_minibatch(model, None, {"y": y}, 32)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    for what, fn in (("model", model), ("guide", guide)):
        if fn is not None and not accepts_keyword(fn, "subsample_size"):
            raise ValueError(f"batch_size={batch_size} needs the {what} to accept a "
                             f"'subsample_size' keyword (it is passed to the data plate), but "
                             f"{getattr(fn, '__qualname__', fn)!r} does not")
    # with subsample_size > size pyro.plate would silently use every row and scale by
    # size / subsample_size < 1, so compare against the plate sizes first (a plate records its
    # full size whatever it subsamples: a one-row trace is enough, and cheap on large data)
    trace = model_trace(model, {**model_kwargs, "subsample_size": 1},
                        init_strategy=init_to_feasible_shape)
    sizes = {name: trace.nodes[name]["fn"].size for name in site_kinds(trace).subsample}
    if not sizes:
        raise ValueError(f"batch_size={batch_size} given but the model has no pyro.plate to "
                         "subsample (it should pass subsample_size to its data plate)")
    too_big = {name: size for name, size in sizes.items() if batch_size > size}
    if too_big and len(too_big) == len(sizes):
        raise ValueError(f"batch_size={batch_size} is larger than the data: plate sizes "
                         f"{too_big}")

