"""The benchmark report: metric tables (mean +- s.e. over seeds/splits) beside published numbers.

``write_report(dir)`` reads a run folder written by :func:`benchmarks.run_suite` (or a folder of
such folders) and writes ``report.md`` and ``report.html`` there, with figures under
``report_figures/`` and links to each cell's own plots (relative paths, so the folder can be
moved or published as is). Per suite it shows:

* one table per metric: model x data x method, mean +- standard error across seeds or splits
  (``n`` says how many), the published number for the same model/data/method/metric beside it,
  and published rows the suite did not run (e.g. a method the zoo does not implement);
* ArviZ forest plots comparing the posteriors of the methods run on the same model and data;
* ELBO curves of the SVI cells;
* the figures each cell wrote (trace, calibration, VAE samples ...), and the failed cells.

Usage::

    from benchmarks import write_report
    path = write_report("runs/quick")      # runs/quick/report.md (and report.html beside it)
"""

from __future__ import annotations

import html
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from benchmarks.cells import CELLS_DIR, ID_COLUMNS, TRACEBACK_FILE
from benchmarks.runner import RESULTS_CSV, SUITE_COPY, read_results
from benchmarks.suite import parse_suite
from inference.storage import atomic_write_text

FIGURES_DIR = "report_figures"
#: identifying or bookkeeping columns that are not metrics
NOT_METRICS = frozenset(ID_COLUMNS) - {"wall_time_s", "cpu_time_s", "fit_time_s"}
GROUP = ["model", "data", "label"]


@dataclass(frozen=True)
class Block:
    """One piece of the report: a heading, a paragraph, a table or an image."""

    kind: str  # "h2" | "h3" | "p" | "table" | "img"
    content: Any
    caption: str = ""


# --------------------------------------------------------------------------- entry point
def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` and ``report.html`` for a run folder; returns the markdown path."""
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
def suite_blocks(run: Path, root: Path) -> list[Block]:
    """The report section of one run folder; figure paths are relative to ``root``."""
    table = read_results(run)
    name, description, published = _suite_info(run)
    ok = table[table["status"] == "ok"] if len(table) else table
    blocks = [Block("h2", f"Suite `{name}`")]
    if description:
        blocks.append(Block("p", description))
    wall = pd.to_numeric(table.get("wall_time_s"), errors="coerce").sum() if len(table) else 0
    blocks.append(Block("p", (
        f"{len(table)} cells, {len(ok)} succeeded, {len(table) - len(ok)} failed; "
        f"{wall:.0f} s of cell time in total. Cells: mean +- standard error over seeds or "
        f"splits (n = number of cells). Full table: `{_rel(run / RESULTS_CSV, root)}`."
    )))
    if len(table):
        blocks.append(Block("table", overview_table(table)))
    for metric in metric_columns(ok):
        summary = metric_table(ok, metric, published)
        if summary is not None:
            blocks.append(Block("h3", f"{metric}"))
            blocks.append(Block("table", summary))
    extra = [p for p in published if p["metric"] not in set(metric_columns(ok))]
    if extra:
        blocks.append(Block("h3", "Published numbers without a measured counterpart"))
        blocks.append(Block("table", pd.DataFrame([
            {"model": p["model"], "data": p.get("data") or "", "method": p["method"],
             "metric": p["metric"], "published": _fmt(p["value"]), "source": p["source"]}
            for p in extra
        ])))
    figures = run / FIGURES_DIR
    forest = forest_plots(run, ok, figures)
    if forest:
        blocks.append(Block("h3", "Posteriors compared across methods (ArviZ forest plots)"))
        blocks.extend(Block("img", _rel(path, root), caption) for path, caption in forest)
    curves = elbo_curves(run, ok, figures)
    if curves:
        blocks.append(Block("h3", "ELBO curves"))
        blocks.extend(Block("img", _rel(path, root), caption) for path, caption in curves)
    gallery = cell_figures(run, ok)
    if gallery:
        blocks.append(Block("h3", "Figures written by the cells (first seed of each method)"))
        blocks.extend(Block("img", _rel(path, root), caption) for path, caption in gallery)
    failed = table[table["status"] != "ok"] if len(table) else table
    if len(failed):
        blocks.append(Block("h3", "Failed cells"))
        blocks.append(Block("table", pd.DataFrame([
            {"cell": row["cell_id"], "error": str(row["error"]),
             "traceback": _rel(run / CELLS_DIR / row["cell_id"] / TRACEBACK_FILE, root)}
            for _, row in failed.iterrows()
        ])))
    return blocks


def _suite_info(run: Path) -> tuple[str, str, list[dict[str, Any]]]:
    source = run / SUITE_COPY
    if not source.is_file():
        return run.name, "", []
    suite = parse_suite(tomllib.loads(source.read_text()), default_name=run.name)
    return suite.name, suite.description, [dict(p) for p in suite.published]


#: headline metrics, shown first in this order; other metrics follow alphabetically
HEADLINE = (
    "test_ll", "test_ll_is", "test_ll_exact", "rmse", "accuracy", "test_error", "pruned_error", "ece",
    "nll", "elbo", "test_elbo", "gap", "psis_khat", "khat_mean", "khat_max", "ref_max_abs_z",
    "ref_max_log_sd_ratio", "min_ess_bulk", "min_ess_tail", "ess_per_s", "max_rhat",
    "divergences", "sparsity", "compression",
)
#: settings echoed by evaluate (sample counts), not measurements
BOOKKEEPING = frozenset(("eval_points", "eval_samples", "num_draws"))


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric columns with at least one value: headline metrics, the rest, timings last."""
    columns = []
    for column in table.columns:
        if column in NOT_METRICS or column in BOOKKEEPING:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any():
            columns.append(column)
    timing = [c for c in columns if c.endswith("_time_s")]
    head = [c for c in HEADLINE if c in columns]
    rest = sorted(c for c in columns if c not in timing and c not in head)
    return head + rest + timing


def overview_table(table: pd.DataFrame) -> pd.DataFrame:
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


def metric_table(
    ok: pd.DataFrame, metric: str, published: Sequence[dict[str, Any]]
) -> pd.DataFrame | None:
    """Mean +- s.e. of one metric per model/data/method, with published numbers beside."""
    frame = ok[GROUP + ["guide", "method", metric]].copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    frame = frame.dropna(subset=[metric])
    rows = []
    matched: set[int] = set()
    for (model, data, label), group in frame.groupby(GROUP, sort=False, dropna=False):
        values = group[metric].to_numpy(dtype=float)
        guide, method = group["guide"].iloc[0], group["method"].iloc[0]
        hits = [i for i, p in enumerate(published)
                if _matches(p, model, data, metric, (label, guide, method))]
        matched.update(hits)
        rows.append({
            "model": model, "data": data, "method": label, "n": len(values),
            "measured": _mean_se(values),
            "published": "; ".join(_fmt(published[i]["value"]) for i in hits),
            "source": "; ".join(published[i]["source"] for i in hits),
        })
    measured_keys = {(r["model"], r["data"]) for r in rows}
    for i, p in enumerate(published):
        if i in matched or p["metric"] != metric:
            continue
        if not any(p["model"] == m and (p.get("data") in (None, d)) for m, d in measured_keys):
            continue  # published numbers for data the suite never ran go to their own table
        rows.append({
            "model": p["model"], "data": p.get("data") or "", "method": f"{p['method']} "
            "(published only)", "n": 0, "measured": "", "published": _fmt(p["value"]),
            "source": p["source"],
        })
    if not rows:
        return None
    out = pd.DataFrame(rows)
    if not (out["published"] != "").any():
        out = out.drop(columns=["published", "source"])
    return out


def _matches(p: dict[str, Any], model: str, data: Any, metric: str, names: Iterable[Any]) -> bool:
    return (p["metric"] == metric and p["model"] == model
            and p.get("data") in (None, data) and p["method"] in set(names))


def _mean_se(values: np.ndarray) -> str:
    if len(values) == 1:
        return _fmt(values[0])
    se = values.std(ddof=1) / math.sqrt(len(values))
    return f"{_fmt(values.mean())} +- {_fmt(se)}"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


# --------------------------------------------------------------------------- figures
def _cells_by_label(ok: pd.DataFrame) -> dict[tuple[str, str], list[pd.Series]]:
    """Per (model, data): the first-seed, first-split cell of each method."""
    out: dict[tuple[str, str], list[pd.Series]] = {}
    if not len(ok):
        return out
    ordered = ok.sort_values(["seed"], kind="stable")
    for (model, data), group in ordered.groupby(["model", "data"], sort=False, dropna=False):
        out[(model, data)] = [g.iloc[0] for _, g in group.groupby("label", sort=False)]
    return out


def forest_plots(run: Path, ok: pd.DataFrame, figures: Path) -> list[tuple[Path, str]]:
    """One ``az.plot_forest`` per model/data run with two or more methods."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for (model, data), rows in _cells_by_label(ok).items():
        if len(rows) < 2:
            continue
        idatas, names = [], []
        for row in rows:
            path = run / CELLS_DIR / row["cell_id"] / "posterior.nc"
            if path.is_file():
                idatas.append(az.from_netcdf(str(path)))
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
        made.append((target, f"{_title(model, data)}: " + ", ".join(names)))
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


def elbo_curves(run: Path, ok: pd.DataFrame, figures: Path) -> list[tuple[Path, str]]:
    """ELBO against step for the SVI cells of each model/data, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inference.result import InferenceResult

    made = []
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
        made.append((target, f"ELBO of the SVI runs of {_title(model, data)}"))
    return made


def cell_figures(run: Path, ok: pd.DataFrame) -> list[tuple[Path, str]]:
    """The images under each first-seed cell's ``plots/`` folder."""
    found = []
    for (model, data), rows in _cells_by_label(ok).items():
        for row in rows:
            folder = run / CELLS_DIR / row["cell_id"] / "plots"
            for image in sorted(folder.glob("**/*.png")) if folder.is_dir() else []:
                found.append((image, f"{_title(model, data)}, {row['label']} (seed "
                                     f"{row['seed']}): {image.stem}"))
    return found


def _title(model: Any, data: Any) -> str:
    """"model on data", or the model alone when its data set has its name (posteriordb)."""
    return str(model) if data in (None, model) else f"{model} on {data}"


def _safe(value: Any) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(value))


def _rel(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


# --------------------------------------------------------------------------- rendering
def render_markdown(title: str, blocks: Sequence[Block]) -> str:
    """The blocks as GitHub-flavoured markdown."""
    lines = [f"# {title}", ""]
    for block in blocks:
        if block.kind == "h2":
            lines += [f"## {block.content}", ""]
        elif block.kind == "h3":
            lines += [f"### {block.content}", ""]
        elif block.kind == "p":
            lines += [block.content, ""]
        elif block.kind == "table":
            frame = block.content.astype(str)
            lines.append("| " + " | ".join(frame.columns) + " |")
            lines.append("|" + "---|" * len(frame.columns))
            for _, row in frame.iterrows():
                lines.append("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |")
            lines.append("")
        elif block.kind == "img":
            lines += [f"![{block.caption}]({block.content})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%;text-align:left}"
    "th{background:#f0f0f0}figure{display:inline-block;margin:0.5em;vertical-align:top}"
    "figcaption{font-size:80%;max-width:480px}img{max-width:480px}"
)


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """The blocks as one self-contained HTML page (images linked by relative path)."""
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
                "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                for _, row in frame.iterrows()
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif block.kind == "img":
            src = esc(block.content)
            parts.append(f"<figure><a href='{src}'><img src='{src}' alt='{esc(block.caption)}'>"
                         f"</a><figcaption>{esc(block.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
