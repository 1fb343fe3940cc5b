"""Downloads a data set's files into a data directory, each checked against its SHA-256.

The zoo reads its data from a data root laid out like ``shared/data`` (``uci/yacht/data.csv``,
``mnist/mnist.npz``, ...). Several of those files are conversions (MNIST from PNGs, binarised
MNIST from MATLAB files, UCI sets with their standard splits as JSON), so they are fetched from
a mirror of that layout rather than rebuilt from each upstream source: ``base_url`` (or
``$ZOO_DATA_URL``) names the mirror, and the upstream sources are listed by ``zoo data``. The
expected digests ship with the package (``zoo/data/CHECKSUMS.sha256``, a copy of the data
root's list), so a mirror cannot vouch for its own files.

Each file is streamed into a hidden ``.<name>.part`` file beside its destination while being
hashed, and renamed into place only when its digest matches; a mismatch or an interrupted
download deletes the partial file and leaves any earlier good copy untouched.

Usage::

    from zoo.data.fetch import fetch
    fetch("uci-yacht", base_url="https://example.org/ppl-zoo-data")   # -> [Path, Path]

From the command line: ``zoo data fetch uci-yacht --url https://example.org/ppl-zoo-data``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from zoo.data.checksums import CHECKSUMS_NAME, ChecksumError, read_checksums

#: the digests the package trusts, a copy of the data root's ``CHECKSUMS.sha256``
PACKAGE_CHECKSUMS_DIR = Path(__file__).resolve().parent
#: the environment variable naming the default mirror
URL_VARIABLE = "ZOO_DATA_URL"


class FetchError(RuntimeError):
    """A download that could not be made (no mirror named, an HTTP or network error)."""


def expected_digests() -> dict[str, str]:
    """``{relative path: sha256}`` of every data file the zoo knows."""
    listing = read_checksums(PACKAGE_CHECKSUMS_DIR)
    if listing is None:  # the package is installed without its checksum list
        raise FetchError(f"the package's {CHECKSUMS_NAME} is missing from "
                         f"{PACKAGE_CHECKSUMS_DIR}; reinstall ppl-zoo")
    return listing


def _download(url: str, target: Path, digest: str,
              progress: Callable[[int], None] | None = None, timeout: float = 60.0) -> None:
    """Stream ``url`` into ``target`` through a partial file, checking ``digest`` first."""
    partial = target.parent / f".{target.name}.part"
    target.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if sha.hexdigest() != digest:
            raise ChecksumError(f"{url} does not match its SHA-256 in {CHECKSUMS_NAME} "
                                f"(got {sha.hexdigest()[:12]}..., expected {digest[:12]}...); "
                                f"nothing was kept")
        os.replace(partial, target)
    except urllib.error.URLError as err:
        raise FetchError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    finally:
        partial.unlink(missing_ok=True)


def fetch(name: str, data_dir: str | os.PathLike[str] | None = None,
          base_url: str | None = None, force: bool = False,
          progress_bar: bool = True) -> list[Path]:
    """Download the files of data set ``name`` into ``data_dir`` and return their paths.

    ``data_dir`` defaults to ``$ZOO_DATA``, else the per-user cache (both are searched by
    :func:`zoo.data.load`); ``base_url`` to ``$ZOO_DATA_URL``. Files already present with the
    right digest are kept unless ``force``. The root's ``CHECKSUMS.sha256`` is written too, so
    later loads verify the files.
    """
    from zoo.data.catalog import CATALOGUE, UnknownDatasetError, list_datasets
    from zoo.data.checksums import sha256_of
    from zoo.data.paths import user_cache_dir

    if name not in CATALOGUE:
        raise UnknownDatasetError(f"unknown data set {name!r}; known data sets: "
                                  f"{', '.join(list_datasets())}")
    entry = CATALOGUE[name]
    if not entry.files:
        raise FetchError(f"data set {name!r} ships with scikit-learn; there is nothing to fetch")
    base_url = base_url or os.environ.get(URL_VARIABLE)
    if not base_url:
        raise FetchError(f"no download mirror named: pass --url (or set ${URL_VARIABLE}) to a "
                         f"mirror laid out like the data folder; {name!r} was built from "
                         f"{entry.source or 'its upstream source'}")
    root = Path(data_dir or os.environ.get("ZOO_DATA") or user_cache_dir())
    digests = expected_digests()
    unknown = [f for f in entry.files if f not in digests]
    if unknown:
        raise FetchError(f"{', '.join(unknown)} have no digest in the package's "
                         f"{CHECKSUMS_NAME}; refusing to download them unverified")
    todo = [f for f in entry.files
            if force or not (root / f).is_file() or sha256_of(root / f) != digests[f]]
    bar = None
    if progress_bar and todo:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"fetch {name}", unit="B", unit_scale=True)
    try:
        for relpath in todo:
            _download(f"{base_url.rstrip('/')}/{relpath}", root / relpath, digests[relpath],
                      progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    listing = root / CHECKSUMS_NAME
    if not listing.exists():  # loads from this root then verify what was fetched
        listing.write_text((PACKAGE_CHECKSUMS_DIR / CHECKSUMS_NAME).read_text())
    return [root / f for f in entry.files]
