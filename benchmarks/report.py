"""The benchmark report: per model and data set, one table of methods x metrics, published rows.

``write_report(dir)`` reads a run folder written by :func:`benchmarks.run_suite` (or a folder of
such folders) and writes ``report.md`` and ``report.html`` there, with figures under
``report_figures/`` and the cells' own plots linked by relative path (so the folder can be moved
or published as is). Per suite it shows:

* **at a glance**: for each model and data set, the method that won on its headline metric
  (:data:`HEADLINE_PRIORITY`, directions in :data:`METRICS`) and by how much, in standard errors
  of the difference;
* per model and data set, **one table**: methods as rows, metrics as columns (quality metrics,
  then diagnostics, then timings), each cell mean +- standard error over seeds or splits, and the
  suite's ``[[published]]`` numbers as extra rows marked ``(published)`` with their source;
  then that model's figures (ArviZ forest plot across methods, ELBO curves, the methods'
  reliability curves and predictive entropies on shifted inputs where the cells saved them
  (:mod:`benchmarks.report_calibration`), the cells' plots);
* published rows for models or data sets the suite did not run, and the failed cells.

Units are per data point. The ``elbo`` of an SVI cell is minus the final training loss, a sum
over the training set: it is shown as ``elbo / point`` when the row says how many training
points there were (the ``num_train`` column the cells write), else as
``elbo (whole data set)``. An importance-sampled likelihood (``test_ll`` with its
``test_ll_khat``) whose PSIS k-hat is above 0.7 is printed as ``value (k̂>0.7, unreliable)``
without a standard error.

Usage::

    from benchmarks import write_report
    path = write_report("runs/quick")      # runs/quick/report.md (and report.html beside it)

    from benchmarks.report import model_tables, winners
    tables = model_tables(results_frame, published=[])  # one ModelTable per model/data
    best = winners(tables)                              # one Winner per model/data
"""

from __future__ import annotations

import html
import math
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from benchmarks.cells import CELLS_DIR, ID_COLUMNS, TRACEBACK_FILE
from benchmarks.report_calibration import calibration_figures
from benchmarks.runner import RESULTS_CSV, SUITE_COPY, read_results
from benchmarks.suite import parse_suite
from inference.storage import atomic_write_text

FIGURES_DIR = "report_figures"
#: identifying or bookkeeping columns that are not metrics
NOT_METRICS = frozenset(ID_COLUMNS) - {"wall_time_s", "cpu_time_s", "fit_time_s"}
GROUP = ["model", "data", "label"]
#: the column that gives a row's number of training points (written by ``benchmarks.cells``)
NUM_TRAIN = "num_train"
#: settings echoed by evaluate (sample counts) and data sizes: not measurements
BOOKKEEPING = frozenset(("eval_points", "eval_samples", "eval_draws", "test_ll_reliable",
                         NUM_TRAIN))
#: an importance-sampled estimate whose PSIS k-hat exceeds this is unreliable (Vehtari et al.)
KHAT_THRESHOLD = 0.7
UNRELIABLE = "(k̂>0.7, unreliable)"
#: k-hat columns that judge a row's importance-sampled likelihood; the largest present value
#: counts. ``test_ll_khat_max`` (the worst single test point) is left out: on thousands of
#: points it nearly always exceeds 0.7 and would flag every row.
KHAT_COLUMNS = ("test_ll_khat",)
#: the ELBO column of the results table is a whole-data-set sum; the report shows one of these
ELBO_PER_POINT = "elbo / point"
ELBO_WHOLE = "elbo (whole data set)"


# --------------------------------------------------------------------------- metric registry
@dataclass(frozen=True)
class Metric:
    """How to read one metric: which way is better and where it goes in a table.

    Usage: ``METRICS["rmse"].direction == -1`` (lower is better); see :func:`metric_info`.
    """

    name: str
    direction: int  # +1 higher is better, -1 lower is better, 0 neither
    kind: str  # "quality" | "diagnostic" | "time"
    meaning: str = ""

    @property
    def arrow(self) -> str:
        """``↑``, ``↓`` or nothing, for column headers."""
        return {1: " ↑", -1: " ↓"}.get(self.direction, "")


def _from_registry() -> dict[str, Metric]:
    """The report's view of :data:`inference.evaluation.metrics.METRICS` (the one place that
    names each metric and says which way is better), plus the report's per-point ELBO."""
    from inference.evaluation.metrics import METRICS as REGISTRY

    out = {}
    for name, info in REGISTRY.items():
        if info.kind == "bookkeeping":
            continue
        direction = {True: 1, False: -1, None: 0}[info.higher_is_better]
        out[name] = Metric(name, direction, info.kind, info.description)
        if name == "elbo":
            out[ELBO_PER_POINT] = Metric(ELBO_PER_POINT, 1, "quality",
                                         "final training ELBO divided by the training points")
            out[ELBO_WHOLE] = Metric(ELBO_WHOLE, 1, "quality",
                                     "final training ELBO, summed over the training set")
    return out


#: every known metric, in display order within its kind (from the shared registry). Unknown
#: numeric columns are shown between the quality metrics and the diagnostics.
METRICS: dict[str, Metric] = _from_registry()

#: headline metric of a model/data set: the first of these measured for two or more methods
HEADLINE_PRIORITY = (
    "ref_max_abs_z", "test_ll_exact", "test_ll", "rmse", "test_error", "accuracy",
    "point_error", "test_elbo", ELBO_PER_POINT, ELBO_WHOLE, "ess_per_s", "min_ess_bulk",
)

_SPLIT_PREFIXES = ("val_", "valid_", "validation_", "train_")


def canonical_metric(name: str) -> str:
    """The registry name of a column: ``val_ll`` reads as ``test_ll`` (same quantity on
    another split, since ``evaluate`` prefixes its split); unknown names come back unchanged."""
    from inference.evaluation.metrics import family_of

    if name in METRICS:
        return name
    if family_of(name) in METRICS:  # ood_auroc_noise reads as ood_auroc
        return family_of(name)
    for prefix in _SPLIT_PREFIXES:
        if name.startswith(prefix) and f"test_{name[len(prefix):]}" in METRICS:
            return f"test_{name[len(prefix):]}"
    return name


def metric_info(name: str) -> Metric:
    """The :class:`Metric` of a column, e.g. ``metric_info("rmse").direction == -1``.

    Unknown columns have no direction; those ending in ``_time_s`` count as timings.
    """
    known = METRICS.get(canonical_metric(name))
    if known is not None:
        return Metric(name, known.direction, known.kind, known.meaning)
    return Metric(name, 0, "time" if name.endswith("_time_s") else "other")


def is_importance_sampled(name: str) -> bool:
    """Whether a column comes from the importance weights that ``test_ll_khat`` judges:
    ``test_ll``, its errors, ``test_elbo`` and ``gap`` (a row without ``test_ll_khat``, e.g. a
    predictive ``test_ll`` from posterior draws, is never marked)."""
    return name in ("test_ll", "test_ll_se", "test_ll_mc_se", "test_elbo", "gap")


def order_metrics(names: Iterable[str]) -> list[str]:
    """Quality metrics first (registry order), then unknown columns (by name), diagnostics,
    timings. Usage: ``order_metrics(["fit_time_s", "test_ll_khat", "test_ll"])``."""
    names = list(dict.fromkeys(names))
    rank = {name: i for i, name in enumerate(METRICS)}
    kinds = {"quality": 0, "other": 1, "diagnostic": 2, "time": 3}

    def key(name: str) -> tuple[int, int, str]:
        info = metric_info(name)
        return (kinds[info.kind], rank.get(canonical_metric(name), len(rank)), name)

    return sorted(names, key=key)


# --------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class Block:
    """One piece of the report: a heading, a paragraph, a table or an image."""

    kind: str  # "h2" | "h3" | "p" | "table" | "img"
    content: Any
    caption: str = ""


@dataclass
class ModelTable:
    """The methods run on one model and data set: numbers and their printed table.

    ``stats`` is long: one row per method and metric with ``n``, ``mean``, ``se`` (standard
    error across cells, ``NaN`` for one cell) and ``unreliable`` (an importance-sampled value
    with k-hat > 0.7). ``table`` is what the report prints: methods as rows, published rows
    after them, metrics as columns. ``failed`` counts failed cells per method.
    """

    model: str
    data: str
    stats: pd.DataFrame
    table: pd.DataFrame
    headline: str | None
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return _title(self.model, self.data)


@dataclass(frozen=True)
class Winner:
    """Which method won one model/data set on its headline metric, and by how much.

    ``margin`` is the winner's advantage over the runner-up (positive, in the metric's units);
    ``z`` is that margin over the standard error of the difference, ``sqrt(se_1^2 + se_2^2)``.
    When one side has a single cell (no SE) ``z`` uses the other side's SE alone and
    ``z_is_bound`` is true: the true ratio is at most ``z``. ``NaN`` when neither side has an
    SE or there is no runner-up.
    """

    model: str
    data: str
    metric: str
    method: str
    mean: float
    se: float
    n: int
    runner_up: str | None = None
    runner_up_mean: float = math.nan
    runner_up_se: float = math.nan
    margin: float = math.nan
    z: float = math.nan
    z_is_bound: bool = False
    unreliable: bool = False  # the winner's value: an IS estimate with k-hat > 0.7
    runner_up_unreliable: bool = False


def prepare(table: pd.DataFrame) -> pd.DataFrame:
    """The results table in report units: ``data`` as text, ``elbo`` split into
    ``elbo / point`` (rows with a training-set size) and ``elbo (whole data set)`` (rows
    without), so the two never share a column. Usage: ``prepare(read_results(run))``."""
    out = table.copy()
    if "data" not in out:
        out["data"] = ""
    out["data"] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
                   for v in out["data"]]
    if "elbo" in out:
        elbo = pd.to_numeric(out["elbo"], errors="coerce")
        size = (pd.to_numeric(out[NUM_TRAIN], errors="coerce") if NUM_TRAIN in out
                else pd.Series(np.nan, index=out.index))
        known = size.notna() & (size > 0)
        if known.any():
            out[ELBO_PER_POINT] = (elbo / size).where(known)
        if (~known & elbo.notna()).any():
            out[ELBO_WHOLE] = elbo.where(~known)
        out = out.drop(columns=["elbo"])
    return out


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric columns with at least one value, in :func:`order_metrics` order."""
    columns = []
    for column in table.columns:
        if column in NOT_METRICS or column in BOOKKEEPING:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any():
            columns.append(column)
    return order_metrics(columns)


def _row_khat(frame: pd.DataFrame) -> pd.Series:
    """Per row: the largest k-hat among :data:`KHAT_COLUMNS` (``NaN`` when none)."""
    present = [c for c in KHAT_COLUMNS if c in frame]
    if not present:
        return pd.Series(np.nan, index=frame.index)
    return frame[present].apply(pd.to_numeric, errors="coerce").max(axis=1, skipna=True)


def summary_stats(ok: pd.DataFrame) -> pd.DataFrame:
    """Long table of mean, standard error and count per model, data, method and metric.

    ``ok`` is :func:`prepare`'d successful rows. ``se`` is ``std(ddof=1) / sqrt(n)`` (pandas'
    ``sem``), ``NaN`` for ``n == 1``. ``unreliable`` is true for an importance-sampled column
    when any of the method's rows with a value has k-hat above :data:`KHAT_THRESHOLD`.
    """
    columns = ["model", "data", "method", "metric", "n", "mean", "se", "unreliable"]
    if not len(ok):
        return pd.DataFrame(columns=columns)
    khat = _row_khat(ok)
    rows = []
    for (model, data, label), group in ok.groupby(GROUP, sort=False, dropna=False):
        for metric in metric_columns(ok):
            values = pd.to_numeric(group[metric], errors="coerce")
            has = values.notna()
            if not has.any():
                continue
            kept = values[has]
            unreliable = bool(is_importance_sampled(metric)
                              and (khat.loc[kept.index] > KHAT_THRESHOLD).any())
            rows.append({
                "model": model, "data": data, "method": label, "metric": metric,
                "n": int(len(kept)), "mean": float(kept.mean()),
                "se": float(kept.sem()) if len(kept) > 1 else math.nan,
                "unreliable": unreliable,
            })
    return pd.DataFrame(rows, columns=columns)


def model_tables(
    table: pd.DataFrame, published: Sequence[Mapping[str, Any]] = ()
) -> list[ModelTable]:
    """One :class:`ModelTable` per model and data set of a results table, in table order.

    ``table`` is a results table (all rows; failed ones are counted, not averaged) and
    ``published`` the suite's ``[[published]]`` entries; those for a model and data set that
    were run become extra rows. Usage::

        for t in model_tables(read_results("runs/quick"), suite.published):
            print(t.title, t.headline)
            print(t.table)
    """
    frame = prepare(table)
    if not len(frame):
        return []
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    stats = summary_stats(ok)
    out = []
    for (model, data), group in frame.groupby(["model", "data"], sort=False, dropna=False):
        failed = {}
        if "status" in group:
            bad = group[group["status"] != "ok"]
            failed = {str(k): int(v) for k, v in bad.groupby("label", sort=False).size().items()}
        mine = stats[(stats["model"] == model) & (stats["data"] == data)]
        entries = [p for p in published if _published_matches(p, model, data)]
        methods = list(dict.fromkeys(group["label"]))
        names = {label: _method_names(group[group["label"] == label]) for label in methods}
        printed = _printed_table(mine, methods, names, entries)
        out.append(ModelTable(model=str(model), data=str(data), stats=mine.reset_index(drop=True),
                              table=printed, headline=_headline(mine), failed=failed))
    return out


def _method_names(rows: pd.DataFrame) -> set[str]:
    """The names a published entry may use for a method: its label, guide or driver."""
    first = rows.iloc[0]
    return {str(first[c]) for c in ("label", "guide", "method")
            if c in rows and first[c] is not None and first[c] == first[c]}


def _published_matches(p: Mapping[str, Any], model: str, data: str) -> bool:
    return p["model"] == model and p.get("data") in (None, "", data)


def _published_column(metric: str, present: Sequence[str]) -> str:
    """The column a published number goes in: its metric; a published ``elbo`` goes beside the
    measured ELBO, whichever unit that is in (suites should record per-point numbers)."""
    if metric == "elbo":
        for column in (ELBO_PER_POINT, ELBO_WHOLE):
            if column in present:
                return column
        return ELBO_WHOLE
    return metric


def _printed_table(
    stats: pd.DataFrame, methods: list[str], names: dict[str, set[str]],
    published: list[Mapping[str, Any]],
) -> pd.DataFrame:
    measured = list(dict.fromkeys(stats["metric"]))
    columns = order_metrics(measured + [_published_column(p["metric"], measured)
                                        for p in published])
    by_method = {m: g.set_index("metric") for m, g in stats.groupby("method", sort=False)}
    # published entries grouped into one row per (method, source, note)
    pub_rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for p in published:
        key = (str(p["method"]), str(p["source"]), str(p.get("note") or ""))
        pub_rows.setdefault(key, {})[_published_column(p["metric"], measured)] = p["value"]
    rows: list[dict[str, str]] = []

    def published_row(key: tuple[str, str, str], values: dict[str, float]) -> dict[str, str]:
        method, source, note = key
        row = {"method": f"{method} (published)", "n": ""}
        row.update({c: _fmt(values[c]) if c in values else "" for c in columns})
        row["source"] = source + (f" ({note})" if note else "")
        return row

    used: set[tuple[str, str, str]] = set()
    for label in methods:
        got = by_method.get(label)
        n = int(got["n"].max()) if got is not None and len(got) else 0
        row = {"method": label, "n": str(n)}
        for column in columns:
            if got is None or column not in got.index:
                row[column] = ""
                continue
            s = got.loc[column]
            text = format_value(s["mean"], s["se"], int(s["n"]), bool(s["unreliable"]))
            row[column] = text + (f" [n={int(s['n'])}]" if int(s["n"]) != n else "")
        row["source"] = ""
        rows.append(row)
        for key, values in pub_rows.items():
            if key not in used and key[0] in names[label]:
                used.add(key)
                rows.append(published_row(key, values))
    for key, values in pub_rows.items():
        if key not in used:
            rows.append(published_row(key, values))
    out = pd.DataFrame(rows, columns=["method", "n", *columns, "source"])
    if not (out["source"] != "").any():
        out = out.drop(columns=["source"])
    return out.rename(columns={c: c + metric_info(c).arrow for c in columns})


def _headline(stats: pd.DataFrame) -> str | None:
    """The first :data:`HEADLINE_PRIORITY` metric measured for two or more methods (else for
    one; else the first metric with a direction)."""
    counts = stats.groupby("metric")["method"].nunique() if len(stats) else pd.Series(dtype=int)
    present = {canonical_metric(m): m for m in counts.index}
    for minimum in (2, 1):
        for name in HEADLINE_PRIORITY:
            if name in present and counts[present[name]] >= minimum:
                return present[name]
    directed = [m for m in order_metrics(counts.index) if metric_info(m).direction]
    return directed[0] if directed else None


def winners(tables: Sequence[ModelTable]) -> list[Winner]:
    """The best method of each model/data set on its headline metric (see :class:`Winner`).

    Usage: ``[(w.model, w.method, w.z) for w in winners(model_tables(frame))]``.
    """
    out = []
    for t in tables:
        if t.headline is None:
            continue
        direction = metric_info(t.headline).direction or 1
        rows = t.stats[t.stats["metric"] == t.headline]
        rows = rows.assign(score=direction * rows["mean"]).sort_values(
            "score", ascending=False, kind="stable")
        best = rows.iloc[0]
        kwargs: dict[str, Any] = {}
        if len(rows) > 1:
            second = rows.iloc[1]
            known = [float(x) for x in (best["se"], second["se"]) if math.isfinite(x)]
            se = math.sqrt(sum(x * x for x in known))
            margin = abs(best["mean"] - second["mean"])
            kwargs = dict(runner_up=str(second["method"]), runner_up_mean=float(second["mean"]),
                          runner_up_se=float(second["se"]), margin=float(margin),
                          z=float(margin / se) if known and se > 0 else math.nan,
                          z_is_bound=len(known) == 1,
                          runner_up_unreliable=bool(second["unreliable"]))
        out.append(Winner(model=t.model, data=t.data, metric=t.headline,
                          method=str(best["method"]), mean=float(best["mean"]),
                          se=float(best["se"]), n=int(best["n"]),
                          unreliable=bool(best["unreliable"]), **kwargs))
    return out


def glance_table(found: Sequence[Winner]) -> pd.DataFrame:
    """The "at a glance" table: per model/data set, the winner, its value, the runner-up and
    the margin in standard errors. Usage: ``glance_table(winners(tables))``."""
    rows = []
    for w in found:
        if w.runner_up is None:
            margin = "only method measured"
        elif w.unreliable or w.runner_up_unreliable:
            margin = f"by {_fmt(w.margin)} {UNRELIABLE}"
        elif math.isnan(w.z):
            margin = f"by {_fmt(w.margin)} (no SE: one cell each)"
        elif w.z_is_bound:
            single = w.method if w.n == 1 else w.runner_up
            margin = f"by {_fmt(w.margin)} = at most {w.z:.1f} SE ({single}: one cell)"
        else:
            margin = f"by {_fmt(w.margin)} = {w.z:.1f} SE"
        rows.append({
            "model / data": _title(w.model, w.data),
            "headline metric": w.metric + metric_info(w.metric).arrow,
            "winner": w.method,
            "value": format_value(w.mean, w.se, w.n, w.unreliable),
            "runner-up": w.runner_up or "",
            "margin": margin,
        })
    return pd.DataFrame(rows, columns=["model / data", "headline metric", "winner", "value",
                                       "runner-up", "margin"])


def format_value(mean: float, se: float, n: int, unreliable: bool = False) -> str:
    """A summary as printed: ``"-1.234 +- 0.05"``, ``"-1.234"`` for one cell, or
    ``"-1.234 (k̂>0.7, unreliable)"`` (no standard error) for an unreliable IS estimate."""
    if unreliable:
        return f"{_fmt(mean)} {UNRELIABLE}"
    if n <= 1 or se is None or not math.isfinite(se):
        return _fmt(mean)
    return f"{_fmt(mean)} +- {_fmt(se)}"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


# --------------------------------------------------------------------------- entry point
def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` and ``report.html`` for a run folder; returns the markdown path.

    Usage: ``write_report("runs/quick")`` (or a folder holding several run folders).
    """
    root = Path(run_dir)
    runs = _run_dirs(root)
    if not runs:
        raise FileNotFoundError(
            f"{root} holds no benchmark results (no {RESULTS_CSV} or {CELLS_DIR}/ in it or in "
            "its sub-folders)"
        )
    blocks: list[Block] = []
    for run in runs:
        blocks.extend(suite_blocks(run, root))
    title = "Benchmark report"
    atomic_write_text(root / "report.md", render_markdown(title, blocks))
    atomic_write_text(root / "report.html", render_html(title, blocks))
    return root / "report.md"


def _run_dirs(root: Path) -> list[Path]:
    def is_run(path: Path) -> bool:
        return (path / RESULTS_CSV).is_file() or (path / CELLS_DIR).is_dir()

    if is_run(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run(p)) if root.is_dir() else []


# --------------------------------------------------------------------------- one suite
LEGEND = (
    "Each entry is the mean +- standard error over the n cells (seeds or splits) of a method "
    "(one cell: the value alone; [n=k]: only k cells measured that metric). ↑ higher is better, "
    "↓ lower is better. Rows marked (published) are numbers from the literature, as recorded in "
    "the suite. Columns: quality metrics, then diagnostics, then seconds. Units are per data "
    f"point, except `{ELBO_WHOLE}` (the training ELBO summed over the training set, shown when "
    "the results do not record the number of training points). An importance-sampled "
    f"likelihood whose PSIS k-hat exceeds {KHAT_THRESHOLD} is printed as `value {UNRELIABLE}`."
)


def suite_blocks(run: Path, root: Path) -> list[Block]:
    """The report section of one run folder; figure paths are relative to ``root``."""
    table = read_results(run)
    name, description, published = _suite_info(run)
    frame = prepare(table) if len(table) else table
    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    blocks = [Block("h2", f"Suite `{name}`")]
    if description:
        blocks.append(Block("p", description))
    wall = pd.to_numeric(table.get("wall_time_s"), errors="coerce").sum() if len(table) else 0
    blocks.append(Block("p", (
        f"{len(table)} cells, {len(ok)} succeeded, {len(table) - len(ok)} failed; "
        f"{wall:.0f} s of cell time in total. Full table: `{_rel(run / RESULTS_CSV, root)}`."
    )))
    tables = model_tables(table, published) if len(table) else []
    found = winners(tables)
    if found:
        blocks.append(Block("h3", "At a glance: the best method per model and data set"))
        blocks.append(Block("p", (
            "Winner on each model's headline metric (the first of "
            f"{', '.join(HEADLINE_PRIORITY[:8])} ... that two methods measured); the margin is "
            "the difference of the means to the runner-up, and that difference over its "
            "standard error sqrt(se_1^2 + se_2^2)."
        )))
        blocks.append(Block("table", glance_table(found)))
    figures = run / FIGURES_DIR
    forest = forest_plots(run, ok, figures)
    curves = elbo_curves(run, ok, figures)
    calibration = calibration_figures(run, _cells_by_label(ok), figures, _title)
    gallery = cell_figures(run, ok)
    if tables:
        blocks.append(Block("p", LEGEND))
    for t in tables:
        blocks.append(Block("h3", t.title))
        failed = "; ".join(f"{label}: {count} failed" for label, count in t.failed.items())
        if failed:
            blocks.append(Block("p", f"Failed cells ({failed}) are left out; see Failed cells."))
        if len(t.table):
            blocks.append(Block("table", t.table))
        key = (t.model, t.data)
        for path, caption in (forest.get(key, []) + curves.get(key, [])
                              + calibration.get(key, []) + gallery.get(key, [])):
            blocks.append(Block("img", _rel(path, root), caption))
    run_keys = {(t.model, t.data) for t in tables}
    extra = [p for p in published
             if not any(_published_matches(p, m, d) for m, d in run_keys)]
    if extra:
        blocks.append(Block("h3", "Published numbers for models or data sets not run"))
        blocks.append(Block("table", pd.DataFrame([
            {"model": p["model"], "data": p.get("data") or "", "method": p["method"],
             "metric": p["metric"], "published": _fmt(p["value"]),
             "source": p["source"] + (f" ({p['note']})" if p.get("note") else "")}
            for p in extra
        ])))
    if len(table):
        blocks.append(Block("h3", "Cells run"))
        blocks.append(Block("table", cells_table(frame)))
    failed_rows = table[table["status"] != "ok"] if len(table) else table
    if len(failed_rows):
        blocks.append(Block("h3", "Failed cells"))
        blocks.append(Block("table", pd.DataFrame([
            {"cell": row["cell_id"], "error": str(row["error"]),
             "traceback": _rel(run / CELLS_DIR / row["cell_id"] / TRACEBACK_FILE, root)}
            for _, row in failed_rows.iterrows()
        ])))
    return blocks


def _suite_info(run: Path) -> tuple[str, str, list[dict[str, Any]]]:
    source = run / SUITE_COPY
    if not source.is_file():
        return run.name, "", []
    suite = parse_suite(tomllib.loads(source.read_text()), default_name=run.name)
    return suite.name, suite.description, [dict(p) for p in suite.published]


def cells_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per model/data/method: cells run, cells succeeded, mean fit seconds."""
    rows = []
    for (model, data, label), group in table.groupby(GROUP, sort=False, dropna=False):
        fit = pd.to_numeric(group["fit_time_s"], errors="coerce")
        rows.append({
            "model": model, "data": data, "method": label,
            "guide": "" if pd.isna(group["guide"].iloc[0]) else group["guide"].iloc[0],
            "cells": len(group), "ok": int((group["status"] == "ok").sum()),
            "fit s (mean)": _fmt(float(fit.mean())) if fit.notna().any() else "",
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures
Figures = dict[tuple[str, str], list[tuple[Path, str]]]


def _cells_by_label(ok: pd.DataFrame) -> dict[tuple[str, str], list[pd.Series]]:
    """Per (model, data): the first-seed, first-split cell of each method."""
    out: dict[tuple[str, str], list[pd.Series]] = {}
    if not len(ok):
        return out
    ordered = ok.sort_values(["seed"], kind="stable")
    for (model, data), group in ordered.groupby(["model", "data"], sort=False, dropna=False):
        out[(str(model), str(data))] = [g.iloc[0] for _, g in group.groupby("label", sort=False)]
    return out


def forest_plots(run: Path, ok: pd.DataFrame, figures: Path) -> Figures:
    """One ``az.plot_forest`` per model/data run with two or more methods, keyed by
    ``(model, data)`` of :func:`prepare`'d rows."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: Figures = {}
    for (model, data), rows in _cells_by_label(ok).items():
        if len(rows) < 2:
            continue
        idatas, names = [], []
        for row in rows:
            path = run / CELLS_DIR / row["cell_id"] / "posterior.nc"
            if path.is_file():
                idata = az.from_netcdf(str(path))
                if "posterior" in idata.groups():  # amortised fits may keep no draws
                    idatas.append(idata)
                    names.append(str(row["label"]))
        if len(idatas) < 2:
            continue
        variables = _small_shared_variables(idatas)
        if not variables:
            continue
        figures.mkdir(parents=True, exist_ok=True)
        target = figures / f"forest__{_safe(model)}__{_safe(data)}.png"
        axes = az.plot_forest(idatas, model_names=names, var_names=variables, combined=True,
                              figsize=(7, 1.5 + 0.35 * len(names) * _n_entries(idatas[0],
                                                                           variables)))
        fig = np.ravel(axes)[0].get_figure()
        fig.suptitle(_title(model, data))
        fig.savefig(target, dpi=80, bbox_inches="tight")
        plt.close(fig)
        made[(model, data)] = [(target, f"{_title(model, data)}, posteriors (first seed): "
                                        + ", ".join(names))]
    return made


def _small_shared_variables(idatas: list[Any], max_size: int = 12, max_vars: int = 8) -> list[str]:
    """Posterior variables every run has, small enough to draw (skips weights, local latents)."""
    shared = None
    for idata in idatas:
        names = set(idata.posterior.data_vars)
        shared = names if shared is None else shared & names
    first = idatas[0].posterior
    chosen = [v for v in first.data_vars if v in (shared or set())
              and int(np.prod(first[v].shape[2:], dtype=int)) <= max_size]
    return chosen[:max_vars]


def _n_entries(idata: Any, variables: list[str]) -> int:
    return sum(int(np.prod(idata.posterior[v].shape[2:], dtype=int)) for v in variables)


def elbo_curves(run: Path, ok: pd.DataFrame, figures: Path) -> Figures:
    """ELBO against step for the SVI cells of each model/data, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inference.result import InferenceResult

    made: Figures = {}
    for (model, data), rows in _cells_by_label(ok).items():
        curves = []
        for row in rows:
            if row["method"] != "svi":
                continue
            try:
                losses = InferenceResult.load(run / CELLS_DIR / row["cell_id"]).loss_history
            except (FileNotFoundError, OSError, ValueError):
                continue
            if losses is not None and len(losses):
                curves.append((str(row["label"]), -np.asarray(losses, dtype=float)))
        if not curves:
            continue
        figures.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, elbo in curves:
            window = max(1, len(elbo) // 50)
            smooth = np.convolve(elbo, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(len(smooth)) + window, smooth, label=label)
        low = min(np.quantile(e, 0.1) for _, e in curves)  # hide the first steps' huge losses
        high = max(e.max() for _, e in curves)
        if np.isfinite(low) and np.isfinite(high) and high > low:
            ax.set_ylim(low, high + 0.05 * (high - low))
        ax.set(xlabel="step", ylabel="ELBO (moving average)", title=_title(model, data))
        ax.legend(fontsize=8)
        target = figures / f"elbo__{_safe(model)}__{_safe(data)}.png"
        fig.savefig(target, dpi=80, bbox_inches="tight")
        plt.close(fig)
        made[(model, data)] = [(target, f"{_title(model, data)}, ELBO of the SVI runs")]
    return made


def cell_figures(run: Path, ok: pd.DataFrame) -> Figures:
    """The images under each first-seed cell's ``plots/`` folder."""
    found: Figures = {}
    for (model, data), rows in _cells_by_label(ok).items():
        for row in rows:
            folder = run / CELLS_DIR / row["cell_id"] / "plots"
            for image in sorted(folder.glob("**/*.png")) if folder.is_dir() else []:
                found.setdefault((model, data), []).append((image, (
                    f"{_title(model, data)}, {row['label']} (seed {row['seed']}): "
                    f"{image.stem}")))
    return found


def _title(model: Any, data: Any) -> str:
    """"model on data", or the model alone when its data set has its name (posteriordb)."""
    return str(model) if data in (None, "", model) else f"{model} on {data}"


def _safe(value: Any) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(value))


def _rel(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


# --------------------------------------------------------------------------- rendering
def _width(text: str) -> int:
    """Characters a terminal shows (combining marks such as the hat of k̂ take no column)."""
    return sum(0 if unicodedata.combining(ch) else 1 for ch in text)


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """A DataFrame as a GitHub-flavoured markdown table with padded, aligned columns, so that
    it also reads as plain text. Usage: ``"\\n".join(markdown_table(df))``."""
    header = [str(c) for c in frame.columns]
    body = [[str(v).replace("|", "\\|") for v in row] for row in frame.astype(str).to_numpy()]
    widths = [max([_width(header[i]), 3] + [_width(r[i]) for r in body])
              for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in body)]


def render_markdown(title: str, blocks: Sequence[Block]) -> str:
    """The blocks as GitHub-flavoured markdown (tables padded to read as plain text)."""
    lines = [f"# {title}", ""]
    for block in blocks:
        if block.kind == "h2":
            lines += [f"## {block.content}", ""]
        elif block.kind == "h3":
            lines += [f"### {block.content}", ""]
        elif block.kind == "p":
            lines += [block.content, ""]
        elif block.kind == "table":
            lines += markdown_table(block.content) + [""]
        elif block.kind == "img":
            lines += [f"![{block.caption}]({block.content})", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%;text-align:left}"
    "th{background:#f0f0f0}tr.published td{color:#555;font-style:italic}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}"
    "figcaption{font-size:80%;max-width:420px}img{max-width:420px}"
)


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """The blocks as one HTML page; figures shown inline (``<img>`` by relative path)."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    for block in blocks:
        if block.kind in ("h2", "h3"):
            parts.append(f"<{block.kind}>{esc(str(block.content)).replace('`', '')}"
                         f"</{block.kind}>")
        elif block.kind == "p":
            parts.append(f"<p>{esc(block.content)}</p>")
        elif block.kind == "table":
            frame = block.content.astype(str)
            head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
            body = "".join(
                ("<tr class='published'>" if str(row.iloc[0]).endswith("(published)")
                 else "<tr>") + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                for _, row in frame.iterrows()
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif block.kind == "img":
            src = esc(block.content)
            parts.append(f"<figure><a href='{src}'><img src='{src}' alt='{esc(block.caption)}'>"
                         f"</a><figcaption>{esc(block.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
