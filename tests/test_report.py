"""Tests of the benchmark report on synthetic results tables (no fitting: runs in seconds).

Two models x three methods x three seeds with known numbers: the per-model tables must hold
pandas' own means and standard errors, the overview must name the right winner (higher is
better for log-likelihoods, lower for RMSE), and a k-hat above 0.7 must mark an
importance-sampled likelihood unreliable wherever the report prints it.
"""

from __future__ import annotations

import html
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.cells import CELLS_DIR
from benchmarks.cli import main as cli_main
from benchmarks.report import (
    ELBO_PER_POINT,
    ELBO_WHOLE,
    UNRELIABLE,
    format_value,
    glance_table,
    metric_info,
    model_tables,
    order_metrics,
    winners,
)

METHODS = ("alpha", "beta", "gamma")
SEEDS = (0, 1, 2)
PUBLISHED = [
    {"model": "reg", "data": "diabetes", "method": "beta", "metric": "rmse", "value": 0.41,
     "source": "Someone et al. 2020", "note": ""},
    {"model": "reg", "data": None, "method": "pbp", "metric": "test_ll", "value": -0.77,
     "source": "Other et al. 2015", "note": "their Table 2"},
    {"model": "gen", "data": "mnist", "method": "vae_k1", "metric": "test_ll", "value": -86.8,
     "source": "Never run et al.", "note": ""},
]


def synthetic_results(seed: int = 0) -> pd.DataFrame:
    """Two models x three methods x three seeds, ``status == "ok"``, random but known numbers.

    On ``reg`` (regression) beta has the best test_ll and the lowest rmse; on ``gen`` beta has
    the best test_ll; gamma's k-hat is above 0.7 on ``gen`` seed 1 only.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for model, data in (("reg", "diabetes"), ("gen", "digits")):
        for m, method in enumerate(METHODS):
            quality = {"alpha": 0.0, "beta": 1.0, "gamma": -0.5}[method]
            for seed_ in SEEDS:
                row = {
                    "suite": "syn", "cell_id": f"{model}__{method}__s{seed_}", "model": model,
                    "data": data, "split": None, "method": "svi", "label": method,
                    "guide": f"guide_{m}", "seed": seed_, "status": "ok", "error": None,
                    "warnings": None, "wall_time_s": 5 + rng.random(),
                    "cpu_time_s": 4 + rng.random(), "fit_time_s": 3 + rng.random(),
                    "elbo": -500.0 + 10 * rng.normal(),
                }
                if model == "reg":
                    row.update(test_ll=-1.0 + 0.3 * quality + 0.05 * rng.normal(),
                               rmse=0.6 - 0.1 * quality + 0.01 * rng.normal())
                else:
                    row.update(test_ll=-95.0 + 3 * quality + rng.normal(),
                               test_ll_khat=0.95 if (method == "gamma" and seed_ == 1) else 0.4,
                               num_train=250, min_ess_bulk=100 + rng.random())
                rows.append(row)
    return pd.DataFrame(rows)


def _pandas_stats(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame.groupby(["model", "label"])[metric].agg(["mean", "sem", "count"])


def test_per_model_tables_hold_pandas_means_and_standard_errors():
    frame = synthetic_results()
    tables = {t.model: t for t in model_tables(frame, PUBLISHED)}
    assert set(tables) == {"reg", "gen"}
    for model, metrics in (("reg", ["test_ll", "rmse", "fit_time_s"]),
                           ("gen", ["test_ll", "min_ess_bulk", "wall_time_s"])):
        t = tables[model]
        for metric in metrics:
            expected = _pandas_stats(frame[frame["model"] == model], metric)
            for method in METHODS:
                got = t.stats[(t.stats["method"] == method) & (t.stats["metric"] == metric)]
                assert len(got) == 1
                want = expected.loc[(model, method)]
                assert got["n"].item() == want["count"] == 3
                assert got["mean"].item() == pytest.approx(want["mean"], rel=1e-12)
                assert got["se"].item() == pytest.approx(want["sem"], rel=1e-12)
                # and the printed cell is exactly that mean +- se
                column = metric + metric_info(metric).arrow
                printed = t.table.set_index("method").loc[method, column]
                if not got["unreliable"].item():
                    assert printed == format_value(want["mean"], want["sem"], 3)
                    mean, se = (float(v) for v in printed.split(" +- "))
                    assert mean == pytest.approx(want["mean"], rel=1e-3)
                    assert se == pytest.approx(want["sem"], rel=1e-2)
        # methods are the rows, in table order, and each row says how many cells it averages
        measured = t.table[~t.table["method"].str.endswith("(published)")]
        assert list(measured["method"]) == list(METHODS)
        assert set(measured["n"]) == {"3"}


def test_columns_are_quality_then_diagnostics_then_time():
    tables = {t.model: t for t in model_tables(synthetic_results())}
    columns = list(tables["gen"].table.columns)
    assert columns[:2] == ["method", "n"]
    kinds = [metric_info(c.rstrip(" ↑↓")).kind for c in columns[2:]]
    assert kinds == sorted(kinds, key=["quality", "other", "diagnostic", "time"].index)
    assert columns.index("test_ll ↑") < columns.index("test_ll_khat ↓") < columns.index(
        "fit_time_s ↓")
    assert order_metrics(["cpu_time_s", "max_rhat", "my_metric", "rmse"]) == [
        "rmse", "my_metric", "max_rhat", "cpu_time_s"]


def test_elbo_is_per_point_only_when_the_rows_give_the_training_size():
    frame = synthetic_results()
    tables = {t.model: t for t in model_tables(frame)}
    gen = tables["gen"]  # has num_train = 250
    assert ELBO_PER_POINT + " ↑" in gen.table.columns and ELBO_WHOLE + " ↑" not in gen.table
    got = gen.stats.set_index(["method", "metric"]).loc[("alpha", ELBO_PER_POINT)]
    rows = frame[(frame["model"] == "gen") & (frame["label"] == "alpha")]
    assert got["mean"] == pytest.approx((rows["elbo"] / 250).mean())
    assert got["se"] == pytest.approx((rows["elbo"] / 250).sem())
    reg = tables["reg"]  # no training-set size: labelled as a whole-data-set sum, not divided
    assert ELBO_WHOLE + " ↑" in reg.table.columns and ELBO_PER_POINT + " ↑" not in reg.table
    got = reg.stats.set_index(["method", "metric"]).loc[("alpha", ELBO_WHOLE)]
    rows = frame[(frame["model"] == "reg") & (frame["label"] == "alpha")]
    assert got["mean"] == pytest.approx(rows["elbo"].mean())


def test_overview_names_the_winner_in_the_metric_direction():
    frame = synthetic_results()
    found = {w.model: w for w in winners(model_tables(frame))}
    assert found["reg"].metric == "test_ll" and found["reg"].method == "beta"
    assert found["reg"].runner_up == "alpha"
    stats = _pandas_stats(frame[frame["model"] == "reg"], "test_ll")
    margin = stats.loc[("reg", "beta"), "mean"] - stats.loc[("reg", "alpha"), "mean"]
    se = math.hypot(stats.loc[("reg", "beta"), "sem"], stats.loc[("reg", "alpha"), "sem"])
    assert found["reg"].margin == pytest.approx(margin)
    assert found["reg"].z == pytest.approx(margin / se)
    assert found["gen"].metric == "test_ll" and found["gen"].method == "beta"
    # lower is better: without test_ll the headline is rmse and the smallest rmse wins
    no_ll = frame[frame["model"] == "reg"].drop(columns=["test_ll", "elbo"])
    no_ll.loc[no_ll["label"] == "gamma", "rmse"] = 0.01  # now clearly the best
    (rmse,) = winners(model_tables(no_ll))
    assert rmse.metric == "rmse" and rmse.method == "gamma"
    # and a flipped test_ll makes gamma the winner (higher is better, not lower)
    flipped = frame[frame["model"] == "reg"].copy()
    flipped.loc[flipped["label"] == "gamma", "test_ll"] = 5.0
    assert winners(model_tables(flipped))[0].method == "gamma"


def test_khat_above_07_marks_the_importance_sampled_value_unreliable():
    frame = synthetic_results()
    gen = next(t for t in model_tables(frame) if t.model == "gen")
    printed = gen.table.set_index("method")["test_ll ↑"]
    gamma = frame[(frame["model"] == "gen") & (frame["label"] == "gamma")]["test_ll"]
    assert printed["gamma"] == f"{gamma.mean():.4g} {UNRELIABLE}"
    assert "+-" not in printed["gamma"]
    assert UNRELIABLE not in printed["alpha"] and "+-" in printed["alpha"]
    # a k-hat column does not make non-IS columns unreliable
    assert UNRELIABLE not in gen.table.set_index("method").loc["gamma", "min_ess_bulk ↑"]
    # in the overview the unreliable winner is marked, with no SE
    frame2 = frame[frame["model"] == "gen"].assign(test_ll_khat=0.2)
    frame2.loc[frame2["label"] == "beta", "test_ll_khat"] = 0.71
    (w,) = winners(model_tables(frame2))
    assert w.method == "beta" and w.unreliable and not w.runner_up_unreliable
    glance = glance_table([w]).iloc[0]
    assert glance["value"] == f"{w.mean:.4g} {UNRELIABLE}"
    assert UNRELIABLE in glance["margin"] and "SE" not in glance["margin"]


def test_margin_with_a_single_cell_is_bounded_by_the_other_side():
    frame = synthetic_results()
    reg = frame[(frame["model"] == "reg") & ~((frame["label"] == "beta") & (frame["seed"] > 0))]
    (w,) = winners(model_tables(reg))
    assert w.method == "beta" and w.n == 1 and w.z_is_bound
    alpha = reg[reg["label"] == "alpha"]["test_ll"]
    assert w.z == pytest.approx(w.margin / alpha.sem())
    assert "at most" in glance_table([w]).iloc[0]["margin"]


def test_report_files_show_tables_overview_published_rows_and_figures(tmp_path: Path):
    run = tmp_path / "syn"
    (run / CELLS_DIR).mkdir(parents=True)
    frame = synthetic_results()
    frame.to_csv(run / "results.csv", index=False)
    (run / "suite.toml").write_text(textwrap.dedent("""
        name = "syn"
        description = "synthetic"
        [[cell]]
        model = "reg"
        method = "svi"
        [[published]]
        model = "reg"
        data = "diabetes"
        method = "beta"
        metric = "rmse"
        value = 0.41
        source = "Someone et al. 2020"
        [[published]]
        model = "reg"
        method = "pbp"
        metric = "test_ll"
        value = -0.77
        source = "Other et al. 2015"
        [[published]]
        model = "gen"
        data = "mnist"
        method = "vae_k1"
        metric = "test_ll"
        value = -86.8
        source = "Never run et al."
    """))
    plot = run / CELLS_DIR / "reg__alpha__s0" / "plots" / "bnn_predictive.png"
    plot.parent.mkdir(parents=True)
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert cli_main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    lines = text.splitlines()
    # the overview comes before the first per-model table and names the winners
    glance = lines.index("### At a glance: the best method per model and data set")
    assert glance < lines.index("### reg on diabetes") < lines.index("### gen on digits")
    row = next(line for line in lines[glance:] if line.startswith("| reg on diabetes"))
    assert "| test_ll ↑" in row and "| beta " in row and "SE" in row
    row = next(line for line in lines[glance:] if line.startswith("| gen on digits"))
    assert "| beta " in row
    # one table per model: header has methods x metrics; published rows follow their method
    section = lines[lines.index("### reg on diabetes"):lines.index("### gen on digits")]
    table = [line for line in section if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    header, body = cells[0], cells[2:]
    assert header[:4] == ["method", "n", "test_ll ↑", "rmse ↓"] and header[-1] == "source"
    assert [r[0] for r in body] == ["alpha", "beta", "beta (published)", "gamma",
                                    "pbp (published)"]
    published = dict(zip(header, body[2]))
    assert published["rmse ↓"] == "0.41" and published["source"] == "Someone et al. 2020"
    assert dict(zip(header, body[4]))["test_ll ↑"] == "-0.77"
    stats = _pandas_stats(frame[frame["model"] == "reg"], "rmse").loc[("reg", "beta")]
    assert dict(zip(header, body[1]))["rmse ↓"] == format_value(stats["mean"], stats["sem"], 3)
    # a published row for data the suite never ran has its own table
    assert "Published numbers for models or data sets not run" in text
    assert "Never run et al." in text
    # unreliable value in the markdown and the HTML
    assert UNRELIABLE in text and html.escape(UNRELIABLE) in page
    # the cell's own plot is shown inline in the HTML and linked in the markdown
    assert f"<img src='{CELLS_DIR}/reg__alpha__s0/plots/bnn_predictive.png'" in page
    assert f"]({CELLS_DIR}/reg__alpha__s0/plots/bnn_predictive.png)" in text


def test_calibration_figures_across_methods_from_the_cells_saved_numbers(tmp_path: Path):
    # a classifier's cells saved their reliability table and entropy summaries beside their
    # plots; the report draws one overlay of the methods' reliability curves and one figure of
    # entropies per method and shift, links both, and reads ood_auroc_<shift> as a score
    from inference.calibration_records import save_ood_entropy, save_reliability

    run = tmp_path / "cls"
    rng = np.random.default_rng(0)
    rows = []
    for label in ("sure", "unsure"):
        cell = f"clf__{label}"
        p1 = rng.uniform(0.5, 1.0 if label == "sure" else 0.7, size=200)
        probs = np.stack([p1, 1 - p1], axis=1)
        labels = (rng.uniform(size=200) > p1).astype(int)
        folder = run / CELLS_DIR / cell / "plots"
        save_reliability(probs, labels, folder)
        save_ood_entropy(rng.gamma(1.0, 0.1, 200), {"noise": rng.gamma(2.0, 0.3, 200),
                                                    "rotated": rng.gamma(2.0, 0.2, 200)}, folder)
        rows.append({"suite": "cls", "cell_id": cell, "model": "clf", "data": "pics",
                     "split": None, "method": "svi", "label": label, "guide": None, "seed": 0,
                     "status": "ok", "error": None, "warnings": None, "wall_time_s": 1.0,
                     "cpu_time_s": 1.0, "fit_time_s": 1.0, "accuracy": 0.9, "ece": 0.05,
                     "ood_entropy_noise": 0.6, "ood_auroc_noise": 0.95})
    # a second model without saved numbers gets neither figure
    rows.append({**rows[0], "cell_id": "reg__a", "model": "reg", "data": "tab", "label": "a"})
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    assert cli_main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    for kind in ("reliability", "ood_entropy"):
        figure = run / "report_figures" / f"{kind}__clf__pics.png"
        assert figure.is_file() and figure.read_bytes()[:4] == b"\x89PNG"
        assert f"](report_figures/{kind}__clf__pics.png)" in text
        assert not (run / "report_figures" / f"{kind}__reg__tab.png").exists()
    assert "ood_auroc_noise ↑" in text  # a score: higher is better
    assert "ood_entropy_noise" in text and "ood_entropy_noise ↑" not in text  # not a score
