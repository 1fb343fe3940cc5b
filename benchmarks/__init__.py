"""The benchmark harness: suites of model x method x data x seed cells, one tidy table, a report.

Usage::

    from benchmarks import run_suite, write_report
    table = run_suite("quick", jobs=2)        # runs/quick/results.csv, one row per cell
    write_report("runs/quick")                # runs/quick/report.md and report.html

On the command line: ``zoo bench quick --jobs 2`` and ``zoo report runs/quick``.
"""

from __future__ import annotations

from typing import Any


def run_suite(*args: Any, **kwargs: Any) -> Any:
    """Run a suite; see :func:`benchmarks.runner.run_suite`."""
    from benchmarks.runner import run_suite as _run_suite

    return _run_suite(*args, **kwargs)


def write_report(*args: Any, **kwargs: Any) -> Any:
    """Write a run folder's report; see :func:`benchmarks.report.write_report`."""
    from benchmarks.report import write_report as _write_report

    return _write_report(*args, **kwargs)


__all__ = ["run_suite", "write_report"]
