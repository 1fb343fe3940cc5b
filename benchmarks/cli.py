"""Command-line verbs ``bench`` and ``report``, added to the ``zoo`` command by ``zoo/cli.py``.

Usage::

    zoo bench --list                              # built-in suites and their cell counts
    zoo bench quick --jobs 2                      # writes runs/quick/results.csv ...
    zoo bench quick --resume                      # after an interruption: only missing cells
                                                  # (exit status 1 when any cell failed)
    zoo bench my_suite.toml --backend ray --jobs 8
    zoo bench uci --budget max_steps=600 minutes=12 splits=3    # a reduced run, said so
    zoo bench mnist-vae --smoke                   # every stage of every cell, tiny
    zoo report runs/quick                         # runs/quick/report.md and report.html

The same verbs run without the ``zoo`` entry point as ``python -m benchmarks.cli bench ...``.
Wiring into another argparse program::

    from benchmarks.cli import register_commands
    register_commands(parser.add_subparsers(dest="command"))
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

BENCH_HELP = "run a benchmark suite (a built-in name or a .toml file) into a tidy table"
REPORT_HELP = "write report.md and report.html for a benchmark output folder"


def register_commands(subparsers: Any) -> None:
    """Add the ``bench`` and ``report`` sub-commands to an argparse subparsers object.

    Each sub-command stores its handler as ``func``; call ``args.func(args)`` (returns an exit
    status).
    """
    bench = subparsers.add_parser("bench", help=BENCH_HELP, description=BENCH_HELP)
    bench.add_argument("suite", nargs="?", help="suite name (see --list) or path to a .toml file")
    bench.add_argument("--out", default=None, help="output folder (default runs/<suite>)")
    bench.add_argument("--jobs", type=int, default=1, help="cells run at a time (default 1)")
    bench.add_argument("--resume", action="store_true",
                       help="keep committed cells and run only the missing ones")
    bench.add_argument("--retry-errors", action="store_true",
                       help="with --resume, run failed cells again")
    bench.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local worker processes (default) or a Ray cluster")
    bench.add_argument("--list", action="store_true", help="list the built-in suites and exit")
    bench.add_argument("--dry-run", action="store_true",
                       help="validate the suite and print its cells without running them")
    bench.add_argument("--report", action="store_true", help="write the report when done")
    bench.add_argument("--budget", nargs="*", default=[], metavar="KEY=VALUE",
                       help="cap every cell: max_steps, minutes (per variational fit), "
                       "mcmc_draws, chains, max_points, is_samples, num_draws, seeds, splits")
    bench.add_argument("--smoke", action="store_true",
                       help="run the suite at a tiny size (one seed and split, a few steps): "
                       "checks that every cell runs, measures nothing")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(func=_bench)

    report = subparsers.add_parser("report", help=REPORT_HELP, description=REPORT_HELP)
    report.add_argument("dir", help="a benchmark output folder (or a folder of them)")
    report.set_defaults(func=_report)


def _bench(args: argparse.Namespace) -> int:
    from benchmarks.suite import SuiteError, builtin_suites, load_suite

    if args.list:
        for name in builtin_suites():
            suite = load_suite(name, validate=False)
            summary = textwrap.shorten(suite.description, 90, placeholder=" ...")
            print(f"{name:14s} {len(suite.cells):4d} cells  {summary}")
        return 0
    if not args.suite:
        print("zoo bench: give a suite name or path (zoo bench --list shows them)",
              file=sys.stderr)
        return 2
    from benchmarks.budget import apply_budget
    from benchmarks.runner import effective_budget
    from zoo.cli import _parse_config

    try:
        suite = load_suite(args.suite)
        budget = _parse_config(args.budget, flag="--budget")
        if args.smoke and budget:
            raise SuiteError("--smoke sets its own budget; give --smoke or --budget, not both")
        sized = apply_budget(suite, effective_budget(suite, budget, args.smoke))
    except (SuiteError, ValueError) as err:
        print(f"zoo bench: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        suite = sized
        for cell in suite.cells:
            print(cell.cell_id, dict(cell.settings), dict(cell.config))
        print(f"{len(suite.cells)} cells")
        return 0
    from benchmarks.runner import run_suite

    table = run_suite(suite, args.out, jobs=args.jobs, resume=args.resume,
                      backend=args.backend, retry_errors=args.retry_errors,
                      progress=not args.no_progress, budget=budget, smoke=args.smoke)
    out = args.out or f"runs/{suite.name}" + ("-smoke" if args.smoke else "")
    failed = int((table["status"] != "ok").sum()) if len(table) else 0
    print(f"{len(table)} cells, {failed} failed; results in {out}/results.csv")
    if args.report:
        from benchmarks.report import write_report

        print(f"report: {write_report(out)}")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from benchmarks.report import write_report

    try:
        path = write_report(args.dir)
    except FileNotFoundError as err:
        print(f"zoo report: {err}", file=sys.stderr)
        return 2
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.cli``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli")
    register_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
