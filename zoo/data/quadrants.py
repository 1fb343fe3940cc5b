"""MNIST quadrant completion (Sohn, Lee, Yan 2015): which pixels are given, which are predicted.

An image is cut into four 14 x 14 quadrants. With ``given`` quadrants as input, the rest are to
be predicted. The given quadrants follow Pyro's CVAE tutorial: 1 = bottom-left; 2 = bottom-left
and top-right; 3 = all but the top-left. Hidden pixels of the input are set to ``-1`` (the
task's convention), so a network can tell "hidden" from "black".

Usage::

    from zoo.data.quadrants import mask_inputs, hidden_index
    x_in = mask_inputs(images, given=1)        # (N, 784): hidden pixels are -1
    idx = hidden_index(given=1)                # (588,) flat indices of the pixels to predict
    targets = images[:, idx]
"""

from __future__ import annotations

import torch

__all__ = ["GIVEN_CHOICES", "HIDDEN", "given_mask", "hidden_index", "mask_inputs", "fill_hidden"]

#: how many quadrants may be given
GIVEN_CHOICES = (1, 2, 3)
#: the value of a hidden input pixel
HIDDEN = -1.0


def _check(given: int, side: int) -> None:
    if isinstance(given, bool) or given not in GIVEN_CHOICES:
        raise ValueError(f"quadrants (the number given as input) must be 1, 2 or 3, got {given!r}")
    if side % 2:
        raise ValueError(f"images must have an even side to cut into quadrants, got {side}")


def given_mask(given: int, side: int = 28) -> torch.Tensor:
    """``(side * side,)`` bool: ``True`` where a pixel is part of the input."""
    _check(given, side)
    h = side // 2
    m = torch.zeros(side, side, dtype=torch.bool)
    m[h:, :h] = True                      # bottom-left
    if given >= 2:
        m[:h, h:] = True                  # top-right
    if given == 3:
        m[h:, h:] = True                  # bottom-right
    return m.reshape(-1)


def hidden_index(given: int, side: int = 28) -> torch.Tensor:
    """Flat indices (row-major) of the pixels to predict, ascending: ``196 * (4 - given)``."""
    return torch.nonzero(~given_mask(given, side)).reshape(-1)


def mask_inputs(images: torch.Tensor, given: int) -> torch.Tensor:
    """Flattened images ``(N, side * side)`` with the hidden pixels set to ``-1``."""
    if images.dim() != 2:
        raise ValueError(f"images must be flattened to (N, pixels), got shape "
                         f"{tuple(images.shape)}")
    side = int(round(images.shape[-1] ** 0.5))
    if side * side != images.shape[-1]:
        raise ValueError(f"images of width {images.shape[-1]} are not square")
    return images.masked_fill(~given_mask(given, side).to(images.device), HIDDEN)


def fill_hidden(inputs: torch.Tensor, hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``inputs`` with the pixels at ``index`` replaced by ``hidden`` (``(..., len(index))``),
    broadcasting over leading dimensions: a completed image."""
    shape = torch.broadcast_shapes(inputs.shape[:-1], hidden.shape[:-1]) + inputs.shape[-1:]
    out = inputs.expand(shape).clone()
    out[..., index] = hidden.expand(shape[:-1] + hidden.shape[-1:])
    return out
