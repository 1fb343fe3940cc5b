"""SHA-256 verification of data files against the data root's ``CHECKSUMS.sha256``.

``CHECKSUMS.sha256`` has the format written by ``sha256sum``: one ``<hex digest>  <path>``
line per file, paths relative to the data root. A file is hashed the first time it is used
in a process; later uses of the same unchanged file (same path, size and modification time)
are free. Rules:

- the root has no ``CHECKSUMS.sha256``: files are used as they are, without a warning
  (user data elsewhere);
- the file is listed and its digest differs: :class:`ChecksumError`;
- the root has a ``CHECKSUMS.sha256`` that does not list the file: a ``UserWarning``.

Usage::

    from zoo.data.checksums import verify_file
    verify_file(Path("/data/uci/yacht/data.csv"), root=Path("/data"))
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

CHECKSUMS_NAME = "CHECKSUMS.sha256"

# (resolved path, size, mtime_ns, expected digest) of files already verified in this process.
_VERIFIED: set[tuple[str, int, int, str | None]] = set()
# resolved CHECKSUMS path -> ((size, mtime_ns), {relative posix path: digest})
_LISTS: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}


class ChecksumError(ValueError):
    """A data file's SHA-256 differs from the digest listed in ``CHECKSUMS.sha256``."""


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksums(root: Path) -> dict[str, str] | None:
    """``{relative path: digest}`` from ``root/CHECKSUMS.sha256``, or None when there is none."""
    listing = Path(root) / CHECKSUMS_NAME
    try:
        stat = listing.stat()
    except FileNotFoundError:
        return None
    key = str(listing.resolve())
    stamp = (stat.st_size, stat.st_mtime_ns)
    cached = _LISTS.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    entries: dict[str, str] = {}
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{listing}: line {number} is not '<sha256>  <path>': {line!r}")
        name = parts[1].strip()
        if name.startswith("*"):  # sha256sum's binary-mode marker
            name = name[1:]
        entries[Path(name).as_posix().removeprefix("./")] = parts[0].lower()
    _LISTS[key] = (stamp, entries)
    return entries


def verify_file(path: Path, root: Path) -> None:
    """Check ``path`` against ``root``'s checksum list (at most once per unchanged file)."""
    path, root = Path(path), Path(root)
    listing = read_checksums(root)
    if listing is None:
        return
    try:  # as found under the root (a symlinked file keeps its listed name) ...
        relpath = path.relative_to(root).as_posix()
    except ValueError:
        try:  # ... or after resolving both
            relpath = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relpath = path.as_posix()
    expected = listing.get(relpath)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    if key in _VERIFIED:
        return
    if expected is None:
        warnings.warn(
            f"{path} is not listed in {root / CHECKSUMS_NAME}; using it unverified",
            UserWarning,
            stacklevel=3,
        )
    else:
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: expected sha256 {expected} "
                f"(from {root / CHECKSUMS_NAME}), got {actual}; the file is corrupt or was "
                "changed, so fetch it again"
            )
    _VERIFIED.add(key)


def clear_cache() -> None:
    """Forget which files were verified (the next use hashes them again)."""
    _VERIFIED.clear()
    _LISTS.clear()
