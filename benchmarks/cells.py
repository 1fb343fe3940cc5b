"""Running one benchmark cell: fit, measure, save, and commit its row atomically.

A cell's outputs are built in a temporary folder ``cells/.tmp-<cell_id>-<pid>`` and renamed onto
``cells/<cell_id>`` when complete. The last file written before the rename is ``row.json``, the
cell's row of the results table: a cell folder holding ``row.json`` is committed and a resumed run
skips it; anything else under ``cells/`` is debris of a killed run and is removed.

Usage::

    from benchmarks.cells import run_cell
    from benchmarks.suite import load_suite
    cell = load_suite("quick").cells[0]
    row = run_cell(cell, "runs/quick")       # dict: model, method, seed, status, metrics...
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import traceback
import warnings as warnings_module
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from benchmarks.suite import Cell
from inference.storage import atomic_write_text

ROW_FILE = "row.json"
TRACEBACK_FILE = "traceback.txt"
CELLS_DIR = "cells"
_TMP_PREFIX = ".tmp-"
#: importance samples for the PSIS k-hat of an SVI guide (Yao et al. 2018 use a few hundred+)
PSIS_PARTICLES = 500

#: columns every row has, in table order; metric columns follow
ID_COLUMNS = (
    "suite", "cell_id", "model", "data", "split", "method", "label", "guide", "seed",
    "status", "error", "warnings", "wall_time_s", "cpu_time_s", "fit_time_s",
)


def cell_dir(out_dir: str | Path, cell: Cell) -> Path:
    """Where a committed cell's outputs live."""
    return Path(out_dir) / CELLS_DIR / cell.cell_id


def committed_row(out_dir: str | Path, cell: Cell) -> dict[str, Any] | None:
    """The row of an already committed cell, or ``None``."""
    marker = cell_dir(out_dir, cell) / ROW_FILE
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:  # torn by a machine crash: the cell counts as not done
        return None


def clean_partial(out_dir: str | Path) -> list[Path]:
    """Remove the temporary folders (and uncommitted cell folders) a killed run left behind."""
    root = Path(out_dir) / CELLS_DIR
    removed = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        if child.is_dir() and (child.name.startswith(_TMP_PREFIX)
                               or not (child / ROW_FILE).is_file()):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def run_cell(
    cell: Cell, out_dir: str | Path, *, suite: str = "", imports: tuple[str, ...] = (),
    threads: int = 1,
) -> dict[str, Any]:
    """Fit one cell, write its outputs under ``out_dir/cells/<cell_id>``, return its row.

    Never raises for a failing fit: the row has ``status="error"``, ``error`` holds the stage,
    exception type and message, and ``traceback.txt`` the traceback. A cell already committed
    is not run again; its stored row is returned.
    """
    done = committed_row(out_dir, cell)
    if done is not None:
        return done
    import importlib

    import torch

    for module in imports:  # suites may register extra models from their own modules
        importlib.import_module(module)
    root = Path(out_dir) / CELLS_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{_TMP_PREFIX}{cell.cell_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    warm_imports()  # so that timings measure inference, not a fresh worker's imports
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        row = _measure(cell, tmp)
    finally:
        torch.set_num_threads(old_threads)
    row = {
        "suite": suite,
        "cell_id": cell.cell_id,
        "model": cell.model,
        "data": cell.data or _default_data(cell.model),
        "split": cell.split,
        "method": cell.method,
        "label": cell.label,
        "guide": cell.guide,
        "seed": cell.seed,
        **row,
        "wall_time_s": time.perf_counter() - start,
        # CPU seconds of this process: on a shared machine, the cost without the waiting
        "cpu_time_s": time.process_time() - cpu_start,
    }
    row = {key: _plain(value) for key, value in row.items()}
    atomic_write_text(tmp / ROW_FILE, json.dumps(row, indent=1, sort_keys=True))  # commit marker
    final = cell_dir(out_dir, cell)
    if final.exists():  # an uncommitted leftover; committed cells returned above
        shutil.rmtree(final)
    os.replace(tmp, final)
    return row


def warm_imports() -> None:
    """Import the drivers, diagnostics and model registry once per process."""
    import inference.diagnostics  # noqa: F401
    import inference.mcmc  # noqa: F401
    import inference.svi  # noqa: F401
    import zoo
    import zoo.fit  # noqa: F401
    from inference.methods import list_methods

    list_methods()
    zoo.list_models()


def _default_data(model: str) -> str | None:
    """The data set a cell without ``data`` uses: the model's registered default."""
    try:
        import zoo

        return zoo.spec(model).default_data
    except KeyError:
        return None


def _measure(cell: Cell, out: Path) -> dict[str, Any]:
    """Run the stages of one cell, recording the first failing stage's error."""
    import pyro

    row: dict[str, Any] = {"status": "ok", "error": None, "warnings": None, "fit_time_s": None}
    warnings: list[str] = []
    stage = "fit"
    try:
        from zoo.fit import fit

        pyro.clear_param_store()
        settings = {"progress_bar": False, **cell.settings}
        t0 = time.perf_counter()
        with warnings_module.catch_warnings(record=True) as caught:
            warnings_module.simplefilter("always")
            result, model, dataset = fit(
                cell.model, cell.method, data=cell.data, data_options=cell.all_data_options,
                guide=cell.guide, seed=cell.seed, config=dict(cell.config), **settings,
            )
        row["fit_time_s"] = time.perf_counter() - t0
        # the drivers' own warnings (divergences, R-hat, ESS) go into the table, once each
        for message in dict.fromkeys(str(w.message) for w in caught
                                     if issubclass(w.category, RuntimeWarning)):
            warnings.append(message)
        stage = "diagnostics"
        with warnings_module.catch_warnings():  # ArviZ's small-sample notes; the row has ESS
            warnings_module.simplefilter("ignore", RuntimeWarning)
            row["num_train"] = _num_train(dataset)
            row.update(inference_metrics(result, result.family in ("mcmc", "sgmcmc")))
        if cell.psis_khat and result.family == "vi":
            stage = "psis_khat"
            row["psis_khat"] = _psis_khat(result, model, dataset)
        stage = "reference"
        from zoo.evaluation import reference_agreement

        row.update(reference_agreement(model, dataset, result))
        stage = "evaluate"
        if cell.eval_split in dataset.splits:
            # ZooModel.evaluate is zoo.evaluation.evaluate_fit: metrics by what the model is
            metrics = _scalars(model.evaluate(dataset, result, cell.eval_split,
                                              dict(cell.evaluation)))
            # a metric named like a bookkeeping column (a classifier's "error" rate) is
            # renamed after the split ("test_error") rather than overwrite it
            row.update({(f"{cell.eval_split}_{k}" if k in ID_COLUMNS else k): v
                        for k, v in metrics.items()})
        stage = "save"
        result.save(out)
    except Exception as err:  # the grid goes on; the row says what failed and where
        row["status"] = "error"
        row["error"] = f"{stage}: {type(err).__name__}: {err}"
        row["warnings"] = "; ".join(warnings) or None
        atomic_write_text(out / TRACEBACK_FILE, traceback.format_exc())
        return row
    if cell.plots:
        plot_dir = out / "plots"
        for name, make in (("standard plots", _standard_plots), ("model plots", _model_plots)):
            try:
                with warnings_module.catch_warnings():  # plotting chatter is not a result
                    warnings_module.simplefilter("ignore")
                    make(result, model, dataset, plot_dir)
            except Exception as err:  # a failed figure does not void the numbers
                warnings.append(f"{name}: {type(err).__name__}: {err}")
                with open(out / TRACEBACK_FILE, "a") as fh:
                    fh.write(traceback.format_exc())
    row["warnings"] = "; ".join(warnings) or None
    return row


def _num_train(dataset: Any) -> int | None:
    """Number of training points (the leading size of the training split's arrays)."""
    sizes = [len(v) for v in dataset.split("train").values() if getattr(v, "ndim", 0) >= 1]
    return max(sizes) if sizes else None


#: R-hat and ESS are computed on at most this many scalar parameters (az.summary loops over
#: scalars in Python: on the 500k weights of an MNIST net it takes minutes)
MAX_DIAGNOSED_PARAMS = 2000


def _diagnosable(result: Any) -> Any:
    """``result`` itself, or, with more than :data:`MAX_DIAGNOSED_PARAMS` scalar parameters,
    a copy whose posterior holds an evenly spaced subset of each site's scalars (so the worst
    ESS and R-hat are over that subset, recorded as ``diagnosed_params``)."""
    sizes = {k: int(np.prod(v.shape[2:], dtype=int)) for k, v in result.posterior.items()}
    total = sum(sizes.values())
    if total <= MAX_DIAGNOSED_PARAMS:
        return result
    subset = {}
    for name, value in result.posterior.items():
        keep = max(1, MAX_DIAGNOSED_PARAMS * sizes[name] // total)
        flat = np.asarray(value).reshape(value.shape[0], value.shape[1], -1)
        index = np.linspace(0, flat.shape[-1] - 1, num=min(keep, flat.shape[-1])).astype(int)
        subset[name] = flat[:, :, np.unique(index)]
    return result.with_updates(posterior=subset)


def inference_metrics(result: Any, mcmc: bool) -> dict[str, Any]:
    """Headline scalars of a result: the final ELBO for SVI; ESS, R-hat, divergences for MCMC.

    The ELBO is the whole-data-set sum the loss is; the row's ``num_train`` lets the report
    show it per point.

    The MCMC numbers come from :func:`inference.diagnostics.summarize` (``az.summary``): the
    worst variable's bulk and tail ESS, bulk ESS per second of sampling and R-hat; beside them
    ``ess_per_wall_s`` (the worst bulk ESS over the chains' whole wall time, warm-up and
    compilation included) and ``leapfrog_per_s`` (sampling-phase gradient evaluations per
    second, summed over chains).
    """
    metrics: dict[str, Any] = {}
    if result.loss_history is not None and len(result.loss_history):
        losses = np.asarray(result.loss_history, dtype=float)
        tail = max(1, min(100, len(losses) // 20))  # average the last 5% to damp SGD noise
        metrics["elbo"] = float(-np.mean(losses[-tail:]))
    if result.settings.get("train_elbo") is not None:  # SVI's many-particle ELBO monitor
        metrics["train_elbo"] = float(result.settings["train_elbo"])
    if result.timings.get("per_step"):
        metrics["step_ms"] = 1000.0 * float(result.timings["per_step"])
    # cost and convergence as the methods record them (gradient evaluations include L-BFGS,
    # step-size trials and MCMC warm-up; converged is 1 or 0 so that it averages over seeds)
    if result.settings.get("grad_evals") is not None:
        metrics["grad_evals"] = int(result.settings["grad_evals"])
    if result.settings.get("converged") is not None:
        metrics["converged"] = int(bool(result.settings["converged"]))
    if mcmc:
        from inference.diagnostics import summarize

        diagnosed = _diagnosable(result)
        if diagnosed is not result:
            metrics["diagnosed_params"] = sum(int(np.prod(v.shape[2:], dtype=int))
                                              for v in diagnosed.posterior.values())
        table = summarize(diagnosed)
        for column, name, reduce in (("ess_bulk", "min_ess_bulk", "min"),
                                     ("ess_tail", "min_ess_tail", "min"),
                                     ("ess_bulk_per_s", "ess_per_s", "min"),
                                     ("r_hat", "max_rhat", "max")):
            if column in table and table[column].notna().any():
                metrics[name] = float(getattr(table[column], reduce)())
        if "diverging" in result.sample_stats:
            metrics["divergences"] = int(np.asarray(result.sample_stats["diverging"]).sum())
        # whole-run speed (issue 12): warm-up and compilation count, as a user waits for them
        wall = result.timings.get("chains_wall")
        if wall and "min_ess_bulk" in metrics:
            metrics["ess_per_wall_s"] = metrics["min_ess_bulk"] / float(wall)
        steps, sampling = result.sample_stats.get("n_steps"), result.timings.get("sampling")
        if steps is not None and sampling:
            metrics["leapfrog_per_s"] = float(np.asarray(steps).sum()) / float(sampling)
    return metrics


def _psis_khat(result: Any, model: Any, dataset: Any) -> float:
    from inference.diagnostics import psis_khat

    khat = psis_khat(model.model, result.fitted["guide"], model.model_kwargs(dataset, "train"),
                     num_particles=PSIS_PARTICLES, max_simultaneous_particles=PSIS_PARTICLES)
    return float(khat)


def _standard_plots(result: Any, model: Any, dataset: Any, out: Path) -> None:
    from inference.plots import save_standard_plots

    out.mkdir(parents=True, exist_ok=True)
    save_standard_plots(result, out)


def _model_plots(result: Any, model: Any, dataset: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.plot(dataset, result, out)


def _scalars(values: Any) -> dict[str, Any]:
    """Keep the scalar numbers (and short strings) of a metrics mapping."""
    if not isinstance(values, Mapping):
        return {}
    out = {}
    for key, value in values.items():
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[str(key)] = value
    return out


def _plain(value: Any) -> Any:
    """JSON-safe value: numpy scalars unwrapped, NaN/inf stored as null."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
