"""The catalogue of data sets: names to loaders, ``load``, ``list_datasets`` and ``describe``.

Usage::

    from zoo.data import load, list_datasets, describe
    list_datasets()                       # ['arK-arK', ..., 'digits', 'faces', 'mnist', ...]
    ds = load("uci-concrete", split=2)
    for row in describe():                # what the ``zoo data`` command prints
        print(row.name, row.present, row.path, row.note)
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import astuple, dataclass, fields
from typing import Callable, Iterator

from zoo.data import faces, mnist, posteriordb, sklearn_sets, uci
from zoo.data.dataset import Dataset
from zoo.data.paths import DataNotFoundError, candidate_roots, find_file


class UnknownDatasetError(KeyError):
    """Raised for a data set name the catalogue does not hold; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class _Entry:
    loader: Callable[..., Dataset]  # loader(data_dir, **options)
    files: tuple[str, ...]  # data files, relative to the data root (empty: embedded)
    summary: str
    source: str = ""


def _catalogue() -> dict[str, _Entry]:
    entries = {
        "digits": _Entry(
            sklearn_sets.load_digits, (), "sklearn 8x8 digits, 1438/359, x in [0,1], y labels"
        ),
        "diabetes": _Entry(
            sklearn_sets.load_diabetes, (), "sklearn diabetes regression, 354/88, standardised"
        ),
        "mnist": _Entry(
            mnist.load_mnist,
            (mnist.MNIST_FILE,),
            "MNIST 60000/10000, 784 grey levels in [0,1], labels",
            mnist.MNIST_SOURCE,
        ),
        "binarized_mnist": _Entry(
            mnist.load_binarized_mnist,
            (mnist.BINARIZED_FILE,),
            "static binarised MNIST 50000/10000/10000 train/valid/test, 784 in {0,1}",
            mnist.BINARIZED_SOURCE,
        ),
        "faces": _Entry(
            faces.load_faces,
            (faces.TRAIN_FILE, faces.TEST_FILE),
            "Olivetti faces 320/80 count vectors of width 4096",
            faces.SOURCE,
        ),
    }
    for folder, (n_splits, n_rows, n_features, _) in uci.UCI_SETS.items():
        entries[f"uci-{folder}"] = _Entry(
            functools.partial(uci.load_uci, f"uci-{folder}"),
            (f"uci/{folder}/data.csv", f"uci/{folder}/splits.json"),
            f"UCI regression, {n_rows} rows x {n_features} features, {n_splits} splits",
            uci.SOURCE,
        )
    for name in posteriordb.POSTERIORS:
        entries[name] = _Entry(
            functools.partial(posteriordb.load_posterior, name),
            tuple(
                f"posteriordb/{name}/{file}"
                for file in ("data.json", "reference_draws.json", "reference_summary.json",
                             "info.json")
            ),
            "posteriordb posterior with reference draws (10 chains x 1000)",
            posteriordb.SOURCE,
        )
    return entries


CATALOGUE: dict[str, _Entry] = _catalogue()


def list_datasets() -> list[str]:
    """Every data set name ``load`` accepts, sorted."""
    return sorted(CATALOGUE)


def _entry(name: str) -> _Entry:
    try:
        return CATALOGUE[name]
    except (KeyError, TypeError):
        raise UnknownDatasetError(
            f"unknown data set {name!r}; known data sets: {', '.join(list_datasets())}"
        ) from None


def options(name: str) -> dict[str, object]:
    """The options ``load(name, ...)`` accepts, with their defaults."""
    signature = inspect.signature(_entry(name).loader)
    return {
        param.name: param.default
        for param in signature.parameters.values()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }


def load(name: str, data_dir: str | os.PathLike | None = None, **opts) -> Dataset:
    """Load data set ``name``; ``opts`` are loader options such as ``split=3`` for UCI sets.

    Raises :class:`UnknownDatasetError` (a KeyError) for an unknown name,
    ``ValueError`` for an unknown or out-of-range option,
    :class:`~zoo.data.paths.DataNotFoundError` for a missing file and
    :class:`~zoo.data.checksums.ChecksumError` for a corrupt one.
    """
    entry = _entry(name)
    if opts.pop("download", False):
        raise ValueError(
            f"download=True is not supported for {name!r}: the files are converted from their "
            "sources (see the data README), so get the ppl-zoo data folder and set $ZOO_DATA "
            f"or pass data_dir=; original source: {entry.source or 'scikit-learn'}"
        )
    allowed = options(name)
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        valid = ", ".join(f"{key}={value!r}" for key, value in allowed.items()) or "none"
        raise ValueError(f"unknown option(s) {unknown} for data set {name!r}; valid: {valid}")
    return entry.loader(data_dir, **opts)


@dataclass(frozen=True)
class DataRow:
    """One line of :func:`describe`: whether a data set's files are present, and where.

    Read it by attribute (``row.present``), by key (``row["present"]``, ``row.get("note")``)
    or unpack it: ``name, present, path, note = row``.
    """

    name: str
    present: bool
    path: str
    note: str

    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))

    def __getitem__(self, key: str | int) -> object:
        if isinstance(key, int):
            return astuple(self)[key]
        if key not in self.keys():
            raise KeyError(f"DataRow has no field {key!r}; fields: {', '.join(self.keys())}")
        return getattr(self, key)

    def get(self, key: str, default: object = None) -> object:
        return getattr(self, key) if key in self.keys() else default

    def __iter__(self) -> Iterator[object]:
        return iter(astuple(self))


def describe(data_dir: str | os.PathLike | None = None) -> list[DataRow]:
    """For each data set: present or not, where its files are, and a short note.

    Files are only looked for, not hashed (a checksum is checked when a data set is loaded).
    """
    roots = ", ".join(f"{root} ({label})" for root, label in candidate_roots(data_dir))
    rows = []
    for name in list_datasets():
        entry = CATALOGUE[name]
        if not entry.files:
            rows.append(DataRow(name, True, "embedded in scikit-learn", entry.summary))
            continue
        found, missing = [], []
        for relpath in entry.files:
            try:
                found.append(find_file(relpath, data_dir)[1])
            except DataNotFoundError:
                missing.append(relpath)
        if missing:
            note = f"missing {', '.join(missing)}; looked in {roots}"
            if entry.source:
                note += f"; source: {entry.source}"
            rows.append(DataRow(name, False, "", note))
        else:
            rows.append(DataRow(name, True, str(found[0].parent), entry.summary))
    return rows
