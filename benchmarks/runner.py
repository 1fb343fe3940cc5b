"""Running a whole suite: pick the cells still to do, run them, rebuild the tidy table.

Output folder layout (default ``runs/<suite>``)::

    suite.toml          the suite as it was run (the report reads the published numbers here)
    cells/<cell_id>/    one folder per committed cell: row.json (the commit marker),
                        posterior.nc, result.json, plots/, traceback.txt when it failed
    results.csv         one row per cell, rebuilt from the cells' row.json after every cell
    results.parquet     the same table

Without ``resume`` a run starts from scratch (``cells/`` is cleared). With ``resume`` committed
cells are kept and skipped, debris of a killed run is removed, and only the rest runs, so a run
killed at any moment and resumed ends with the same table as an uninterrupted one.

Usage::

    from benchmarks import run_suite
    table = run_suite("quick", jobs=2)                    # pandas DataFrame, one row per cell
    table.groupby(["model", "label"])["test_ll"].mean()
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from benchmarks.backends import get_backend
from benchmarks.budget import SMOKE, Budget, apply_budget
from benchmarks.cells import CELLS_DIR, ID_COLUMNS, ROW_FILE, clean_partial, committed_row
from benchmarks.suite import Cell, Suite, load_suite
from inference.storage import atomic_path, atomic_write_text

RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
SUITE_COPY = "suite.toml"


def run_suite(
    suite_name_or_path: str | Path | Suite,
    out_dir: str | Path | None = None,
    jobs: int = 1,
    resume: bool = False,
    backend: str = "local",
    *,
    retry_errors: bool = False,
    progress: bool = True,
    budget: Mapping[str, Any] | None = None,
    smoke: bool = False,
) -> pd.DataFrame:
    """Run every cell of a suite and return the results table (one row per cell).

    ``suite_name_or_path`` is a built-in suite name (``"quick"``), a path to a TOML file or a
    loaded :class:`~benchmarks.suite.Suite`. ``jobs`` cells run at a time on ``backend``
    ("local" worker processes or "ray"). ``resume`` keeps committed cells; ``retry_errors``
    (with ``resume``) runs failed cells again. ``budget`` caps the cells (merged over the
    suite's own ``[budget]``, see :mod:`benchmarks.budget`); ``smoke`` runs the suite at the
    tiny :data:`~benchmarks.budget.SMOKE` size into ``runs/<suite>-smoke`` by default.
    """
    suite = (suite_name_or_path if isinstance(suite_name_or_path, Suite)
             else load_suite(suite_name_or_path))
    suite = apply_budget(suite, effective_budget(suite, budget, smoke))
    default = suite.name + ("-smoke" if smoke else "")
    out = Path(out_dir) if out_dir is not None else Path("runs") / default
    runner = get_backend(backend, jobs=jobs)  # bad backend/jobs fail before touching files
    out.mkdir(parents=True, exist_ok=True)
    if not resume and (out / CELLS_DIR).exists():
        shutil.rmtree(out / CELLS_DIR)
    clean_partial(out)
    if suite.source:
        atomic_write_text(out / SUITE_COPY, suite.source)
    todo: list[Cell] = []
    for cell in suite.cells:
        row = committed_row(out, cell)
        if row is not None and retry_errors and row.get("status") != "ok":
            shutil.rmtree(out / CELLS_DIR / cell.cell_id)
            row = None
        if row is None:
            todo.append(cell)
    bar = _progress(len(suite.cells), len(suite.cells) - len(todo), suite.name, progress)
    try:
        for cell, row in runner.run(todo, out, suite=suite.name, imports=suite.imports):
            if committed_row(out, cell) is None:  # a worker died before committing
                _commit_error_row(out, cell, row)
            write_tables(suite, out)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{cell.model} {cell.label} seed={cell.seed}: "
                                    f"{row.get('status')}")
    finally:
        if bar is not None:
            bar.close()
    return write_tables(suite, out)


def effective_budget(suite: Suite, overrides: Mapping[str, Any] | None, smoke: bool
                     ) -> Budget | None:
    """The budget a run uses: :data:`SMOKE`, or the suite's ``[budget]`` under ``overrides``."""
    if smoke:
        return SMOKE
    values = {**dict(suite.budget), **dict(overrides or {})}
    return Budget.from_mapping(values, method="budget") if values else None


def collect_rows(suite: Suite, out_dir: str | Path) -> pd.DataFrame:
    """The table of a suite's committed cells, in suite order (missing cells left out)."""
    rows = [row for cell in suite.cells if (row := committed_row(out_dir, cell)) is not None]
    return rows_to_frame(rows)


def rows_to_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with the identifying columns first, then metrics sorted by name."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    for column in ID_COLUMNS:
        if column not in frame:
            frame[column] = None
    metrics = sorted(c for c in frame.columns if c not in ID_COLUMNS)
    return frame[list(ID_COLUMNS) + metrics]


def write_tables(suite: Suite, out_dir: str | Path) -> pd.DataFrame:
    """Rebuild ``results.csv`` and ``results.parquet`` from the committed cells."""
    out = Path(out_dir)
    frame = collect_rows(suite, out)
    with atomic_path(out / RESULTS_CSV) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(out / RESULTS_PARQUET) as tmp:
        _parquet_safe(frame).to_parquet(tmp, index=False)
    return frame


def _read_row(path: Path) -> dict[str, Any] | None:
    """A committed cell's row; a torn or foreign ``row.json`` is left out with a warning
    naming it (the runner, too, counts such a cell as not done)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        row, why = None, str(err)
    else:
        why = "it does not hold a JSON object"
    if not isinstance(row, dict):
        warnings.warn(f"cannot read the committed cell {path} ({why}); it is left out",
                      RuntimeWarning, stacklevel=3)
        return None
    return row


def _read_table(run: Path) -> tuple[pd.DataFrame, Path] | None:
    """``results.parquet`` or ``results.csv`` of ``run`` (whichever is there), with its path."""
    for name, reader in ((RESULTS_PARQUET, pd.read_parquet), (RESULTS_CSV, pd.read_csv)):
        path = run / name
        if path.is_file():
            try:
                return reader(path), path
            except Exception as err:  # pandas and pyarrow raise many kinds; name the file
                raise ValueError(f"cannot read the results table {path}: {err}") from None
    return None


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """The results table of a finished (or partial) run folder, built from its committed cells.

    The cells' ``row.json`` files are the record; ``results.csv``/``.parquet`` are derived
    copies (used alone only when a folder has no ``cells/``). When a table file disagrees with
    the cells (a truncated or stale copy) a warning says so and the cells win.
    """
    run = Path(run_dir)
    row_files = sorted((run / CELLS_DIR).glob(f"*/{ROW_FILE}"))
    if not row_files:
        table = _read_table(run)
        if table is None:
            raise FileNotFoundError(f"{run} holds no benchmark results ({RESULTS_CSV} or "
                                    f"cells/)")
        return table[0]
    frame = rows_to_frame([row for p in row_files if (row := _read_row(p)) is not None])
    try:
        table = _read_table(run)
    except ValueError as err:
        warnings.warn(f"{err}; the table is rebuilt from the {len(frame)} committed cells",
                      RuntimeWarning, stacklevel=2)
        return frame
    if table is not None and "cell_id" in table[0] and "cell_id" in frame:
        listed, committed = set(table[0]["cell_id"].astype(str)), set(frame["cell_id"])
        if listed == committed:
            return table[0]  # the same cells, in the suite's order
        warnings.warn(f"{table[1]} lists {len(listed)} cells but {len(committed)} are "
                      f"committed in {run / CELLS_DIR} ({len(committed - listed)} missing "
                      f"from the table, {len(listed - committed)} not committed); the "
                      f"table is built from the committed cells", RuntimeWarning,
                      stacklevel=2)
    return frame


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns (e.g. a split that is sometimes a number) as strings."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and v == v}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out


def _commit_error_row(out: Path, cell: Cell, row: dict[str, Any]) -> None:
    """Commit the error row of a cell whose worker died before writing its own."""
    folder = out / CELLS_DIR / cell.cell_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / ROW_FILE, json.dumps(row, indent=1, sort_keys=True))


def _progress(total: int, done: int, name: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"bench {name}", unit="cell")
