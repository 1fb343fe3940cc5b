"""MNIST grey levels and the statically binarised MNIST of Larochelle & Murray (2011).

- ``mnist``: ``train`` 60,000 and ``test`` 10,000 rows; ``x`` float32 grey levels in [0, 1]
  (pixel / 255), flattened to 784 columns in row-major order (``flatten=False`` keeps
  (n, 28, 28)); ``y`` int64 labels 0..9.
- ``binarized_mnist``: ``train`` 50,000, ``valid`` 10,000, ``test`` 10,000 rows of ``x``
  float32 in {0, 1}, 784 columns; no labels.
- :func:`dynamic_binarize`: a fresh Bernoulli draw of grey levels (dynamic binarisation, as
  in the IWAE paper), reproducible with a ``torch.Generator``.

Usage::

    from zoo.data import load
    from zoo.data.mnist import dynamic_binarize
    ds = load("mnist")
    g = torch.Generator().manual_seed(0)
    xb = dynamic_binarize(ds.train["x"][:128], g)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from zoo.data._common import check_finite, reading, require_keys
from zoo.data.dataset import Dataset
from zoo.data.paths import data_file

MNIST_FILE = "mnist/mnist.npz"
BINARIZED_FILE = "mnist/binarized_mnist.npz"
MNIST_SOURCE = (
    "github.com/rasbt/mnist-pngs (commit d26bd33b), converted as in the data README; "
    "originally http://yann.lecun.com/exdb/mnist/"
)
BINARIZED_SOURCE = (
    "github.com/mingzhang-yin/ARM-gradient binarized_mnist_{train,valid,test}.amat "
    "(commit 9b5f74da), converted as in the data README"
)


@lru_cache(maxsize=4)
def _read_npz(path: str, size: int, mtime_ns: int) -> dict[str, np.ndarray]:
    """Every array of an npz file, read once per unchanged file and made read-only."""
    with reading(path), np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key, array in arrays.items():
        check_finite(array, path, what=f"entries in {key!r}")
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def read_npz(path) -> dict[str, np.ndarray]:
    """Cached, read-only arrays of ``path`` (re-read when the file changes)."""
    stat = path.stat()
    return _read_npz(str(path), stat.st_size, stat.st_mtime_ns)


def _grey(pixels: np.ndarray, flatten: bool) -> torch.Tensor:
    x = torch.tensor(pixels).to(torch.float32).div_(255.0)
    return x.reshape(len(x), -1) if flatten else x


def load_mnist(data_dir=None, *, flatten: bool = True) -> Dataset:
    """MNIST 60k/10k: grey levels in [0, 1] (flattened to 784 by default) and int64 labels."""
    path = data_file(MNIST_FILE, data_dir, source=MNIST_SOURCE)
    arrays = read_npz(path)
    require_keys(arrays, ("x_train", "y_train", "x_test", "y_test"), path)
    splits = {
        part: {
            "x": _grey(arrays[f"x_{part}"], flatten),
            "y": torch.tensor(arrays[f"y_{part}"]).to(torch.int64),
        }
        for part in ("train", "test")
    }
    info = {
        "source": MNIST_SOURCE,
        "licence": "CC BY-SA 3.0 (as usually redistributed); cite LeCun et al. (1998)",
        "path": str(path),
        "n_features": 784,
        "image_shape": (28, 28),
        "n_classes": 10,
    }
    return Dataset("mnist", splits, info)


def load_binarized_mnist(data_dir=None, *, flatten: bool = True) -> Dataset:
    """Statically binarised MNIST, 50k/10k/10k train/valid/test, float32 values in {0, 1}."""
    path = data_file(BINARIZED_FILE, data_dir, source=BINARIZED_SOURCE)
    arrays = read_npz(path)
    require_keys(arrays, ("train", "valid", "test"), path)
    splits = {}
    for part in ("train", "valid", "test"):
        x = torch.tensor(arrays[part]).to(torch.float32)
        splits[part] = {"x": x if flatten else x.reshape(len(x), 28, 28)}
    info = {
        "source": BINARIZED_SOURCE,
        "licence": "MIT (ARM-gradient repository); MNIST itself: cite LeCun et al. (1998) "
        "and Larochelle & Murray (2011)",
        "path": str(path),
        "n_features": 784,
        "image_shape": (28, 28),
    }
    return Dataset("binarized_mnist", splits, info)


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli draw with success probabilities ``x`` (grey levels in [0, 1]), same shape.

    Usage::

        g = torch.Generator().manual_seed(0)
        batch = dynamic_binarize(ds.train["x"][idx], g)
    """
    if not x.is_floating_point():
        raise TypeError(f"dynamic_binarize needs floating grey levels in [0, 1], got {x.dtype}")
    return torch.bernoulli(x, generator=generator)
