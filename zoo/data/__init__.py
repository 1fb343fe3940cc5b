"""Data loaders for the zoo: every data set as a :class:`Dataset` of named tensors per split.

Data files are found as described in :mod:`zoo.data.paths` (``data_dir`` argument, then
``$ZOO_DATA``, then ``shared/data`` beside the checkout, then ``~/.cache/ppl-zoo/data``) and
checked against the data root's ``CHECKSUMS.sha256`` the first time they are used.

Usage::

    from zoo.data import load, list_datasets, describe
    ds = load("uci-yacht", split=0)
    ds.train["x"].shape, ds.info["y_scaler"]
    ds = load("eight_schools-eight_schools_noncentered")
    ds.info["reference_draws"]["mu"].shape    # (10, 1000)
"""

from zoo.data._common import DataFileError
from zoo.data.catalog import (
    DataRow,
    UnknownDatasetError,
    describe,
    list_datasets,
    load,
    options,
)
from zoo.data.checksums import ChecksumError
from zoo.data.dataset import Dataset
from zoo.data.faces import olivetti_images
from zoo.data.mnist import dynamic_binarize
from zoo.data.paths import DataNotFoundError
from zoo.data.posteriordb import load_reference_draws
from zoo.data.standardize import Standardizer

__all__ = [
    "ChecksumError",
    "DataFileError",
    "DataNotFoundError",
    "DataRow",
    "Dataset",
    "Standardizer",
    "UnknownDatasetError",
    "describe",
    "dynamic_binarize",
    "list_datasets",
    "load",
    "load_reference_draws",
    "olivetti_images",
    "options",
]
