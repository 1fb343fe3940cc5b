"""Olivetti faces as count vectors, the data of Pyro's sparse gamma DEF example.

``faces``: ``train`` 320 and ``test`` 80 rows of ``x``, float32 pixel counts (0..242), 4096
wide, read from ``faces/faces_training.csv`` and ``faces/faces_test.csv``. Each row is in the
column-major order of the original ``.mat`` file: ``row.reshape(64, 64).T`` is the upright
image. The upright uint8 images with subject ids, and which faces are behind each CSV row, come
from :func:`olivetti_images`.

Usage::

    from zoo.data import load
    from zoo.data.faces import olivetti_images
    ds = load("faces")
    ds.train["x"].shape                 # torch.Size([320, 4096])
    img = olivetti_images()             # {"images": (400, 64, 64) uint8, "target", ...}
    upright = img["images"][img["train_index"][0]]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from zoo.data._common import DataFileError, check_finite, reading
from zoo.data.dataset import Dataset
from zoo.data.mnist import read_npz
from zoo.data.paths import data_file

TRAIN_FILE = "faces/faces_training.csv"
TEST_FILE = "faces/faces_test.csv"
IMAGES_FILE = "faces/olivetti_faces.npz"
SOURCE = (
    "AT&T Laboratories Cambridge 'The Database of Faces' (Sam Roweis' 64x64 olivettifaces.mat, "
    "cs.nyu.edu/~roweis/data.html); "
    "test CSV from github.com/blei-lab/ars-reparameterization, see the data README"
)
LICENCE = "no formal licence; credit AT&T Laboratories Cambridge (test CSV: MIT)"


@lru_cache(maxsize=4)
def _read_counts(path: str, size: int, mtime_ns: int) -> np.ndarray:
    import pandas as pd  # the C parser is about twice as fast as np.loadtxt here

    with reading(path):
        counts = pd.read_csv(path, header=None, dtype=np.float32).to_numpy()
    check_finite(counts, path, what="counts")
    if counts.ndim != 2 or counts.shape[1] != 4096:
        raise DataFileError(f"data file {path} holds rows of width {counts.shape[-1]}; "
                            f"expected 4096 (64 x 64 faces)")
    counts.setflags(write=False)
    return counts


def _counts(path) -> torch.Tensor:
    stat = path.stat()
    return torch.tensor(_read_counts(str(path), stat.st_size, stat.st_mtime_ns))


def load_faces(data_dir=None) -> Dataset:
    """The 320/80 Olivetti count CSVs as float32 tensors of width 4096."""
    train_path = data_file(TRAIN_FILE, data_dir, source=SOURCE)
    test_path = data_file(TEST_FILE, data_dir, source=SOURCE)
    splits = {"train": {"x": _counts(train_path)}, "test": {"x": _counts(test_path)}}
    for part, arrays in splits.items():
        if arrays["x"].shape[1] != 4096:
            raise ValueError(f"faces {part} CSV has {arrays['x'].shape[1]} columns, not 4096")
    info = {
        "source": SOURCE,
        "licence": LICENCE,
        "path": str(train_path),
        "test_path": str(test_path),
        "images_file": IMAGES_FILE,
        "n_features": 4096,
        "image_shape": (64, 64),
        "pixel_order": "column-major: row.reshape(64, 64).T is upright",
        "images": "zoo.data.faces.olivetti_images(data_dir) gives the upright uint8 images",
    }
    return Dataset("faces", splits, info)


def olivetti_images(data_dir=None) -> dict[str, np.ndarray]:
    """The 400 upright Olivetti images and their indices, as read-only numpy arrays.

    Keys: ``images`` uint8 (400, 64, 64), ``target`` int64 subject ids 0..39,
    ``train_index`` (320,) and ``test_index`` (80,): the face behind each CSV row.
    """
    return dict(read_npz(data_file(IMAGES_FILE, data_dir, source=SOURCE)))
