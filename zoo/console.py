"""What the ``zoo`` command line shows of Python warnings: ours in one line, libraries' filed.

A normal fit passes through ArviZ, xarray, Pyro and torch, each of which may warn about
things that say nothing to the user (ArviZ's shape check of a one-chain posterior, an empty
density). The warnings the zoo raises itself (a run that ended far above its best loss, an
R-hat above 1.01) are the ones that matter; they are printed as one line each,
``zoo: warning: ...``. Library warnings are kept, not shown: the fit writes them to
``warnings.txt`` in its run folder, and ``ZOO_LIBRARY_WARNINGS=1`` prints them as well.

Usage::

    from zoo.console import routed_warnings
    with routed_warnings() as library:
        ...                                  # run the command
    Path("run/warnings.txt").write_text("\\n".join(library))
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: folders whose warnings are the zoo's own
_OWN_ROOTS = tuple(str(Path(__file__).resolve().parent.parent / name) + os.sep
                   for name in ("zoo", "inference", "benchmarks"))


def is_own(filename: str) -> bool:
    """Whether a warning attributed to ``filename`` was raised by the zoo's own code."""
    try:
        path = str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return False
    return path.startswith(_OWN_ROOTS)


@contextmanager
def routed_warnings() -> Iterator[list[str]]:
    """Within the block, print the zoo's warnings as one line and collect libraries' warnings
    (yielded as a list of ``Category: message (file:line)`` strings)."""
    library: list[str] = []
    show_library = os.environ.get("ZOO_LIBRARY_WARNINGS", "") not in ("", "0")

    def show(message: Any, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        if is_own(filename):
            print(f"zoo: warning: {text}", file=sys.stderr)
            return
        entry = f"{category.__name__}: {text} ({filename}:{lineno})"
        library.append(entry)
        if show_library:
            print(f"zoo: library warning: {entry}", file=sys.stderr)

    # ArviZ reports some checks through its logger rather than as warnings ("Shape
    # validation failed" for a one-chain posterior): the same policy applies to it. ArviZ sets
    # its logger's level when first imported, so it is imported before the level is changed
    import arviz  # noqa: F401

    arviz_logger = logging.getLogger("arviz")
    level = arviz_logger.level
    arviz_logger.setLevel(logging.DEBUG if show_library else logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.showwarning = show
            yield library
    finally:
        arviz_logger.setLevel(level)
