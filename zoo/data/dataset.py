"""The record every data loader returns: named tensors per split plus metadata.

Usage::

    from zoo.data import load
    ds = load("diabetes")
    x, y = ds.train["x"], ds.train["y"]
    ds.info["source"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch


@dataclass(frozen=True)
class Dataset:
    """Tensors keyed by split ("train", "valid", "test") and by array name, plus metadata.

    ``info`` holds provenance (source, licence, path) and loader-specific extras such as a
    fitted :class:`~zoo.data.uci.Standardizer` or posteriordb reference draws.
    """

    name: str
    splits: Mapping[str, Mapping[str, torch.Tensor]]
    info: Mapping[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Mapping[str, torch.Tensor]:
        """The arrays of one split; a clear error names the splits that exist."""
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(
                f"data set {self.name!r} has no split {name!r}; it has {sorted(self.splits)}"
            ) from None

    @property
    def train(self) -> Mapping[str, torch.Tensor]:
        return self.split("train")

    @property
    def test(self) -> Mapping[str, torch.Tensor]:
        return self.split("test")

    @property
    def valid(self) -> Mapping[str, torch.Tensor]:
        return self.split("valid")
