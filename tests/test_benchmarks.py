"""Tests of the benchmark harness: suites, resumable runs, failing cells, backends, the report.

The cells are tiny (50 SVI steps on eight schools and the conjugate regression, 20 NUTS draws)
so the whole file runs in well under 90 s on one core; the numbers are not meant to be good,
only reproducible: a seed fixes every number in a row except the timings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import run_suite, write_report
from benchmarks.cells import CELLS_DIR, ROW_FILE
from benchmarks.cli import main as cli_main
from benchmarks.suite import SuiteError, builtin_suites, load_suite, parse_suite

ROOT = Path(__file__).resolve().parents[1]
ES = "eight_schools-eight_schools_noncentered"

TINY_SUITE = f"""
name = "tiny"
description = "test suite: tiny cells"

[methods.svi]
method = "svi"
guide = "auto_normal"
tuning = "fixed"  # 50 plain steps; the untuned path is tested elsewhere
num_steps = 50
num_posterior_draws = 50

[methods.svi_diag]
method = "svi"
guide = "auto_diagonal_normal"
tuning = "fixed"
num_steps = 50
num_posterior_draws = 50

[methods.broken]           # an option auto_normal does not take: the driver raises at run time
method = "svi"
num_steps = 50
guide_options = {{ rank = 3 }}

[methods.nuts]
method = "nuts"
num_chains = 1
num_warmup = 20
num_samples = 20

[[cell]]
model = "{ES}"
method = ["svi", "broken", "svi_diag"]
seed = [0, 1]

[[cell]]
model = "{ES}"
method = "nuts"

[[cell]]
model = "conjugate_linear_regression"
method = "svi"

[[published]]
model = "{ES}"
method = "svi"
metric = "elbo"
value = -12.5
source = "Made-up et al. 2099"

[[published]]
model = "{ES}"
method = "pbp"
metric = "elbo"
value = -6.789
source = "Other et al. 2098"
"""

#: columns that depend on the clock, not on the seed
TIMING_COLUMNS = ["wall_time_s", "cpu_time_s", "fit_time_s", "ess_per_s", "step_ms",
                  "ess_per_wall_s", "leapfrog_per_s"]


def _write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _deterministic(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in TIMING_COLUMNS if c in table]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The tiny suite run uninterrupted, two cells at a time in spawned worker processes."""
    root = tmp_path_factory.mktemp("bench")
    suite = _write(root, TINY_SUITE)
    table = run_suite(suite, root / "reference", jobs=2, progress=False)
    return suite, root / "reference", table


# --------------------------------------------------------------------------- suites
def test_grid_expands_into_cells_in_declared_order(tmp_path):
    suite = load_suite(_write(tmp_path, TINY_SUITE))
    # 3 methods x 2 seeds, then 1 NUTS cell, then 1 regression cell
    assert len(suite.cells) == 8
    assert [(c.label, c.seed) for c in suite.cells[:6]] == [
        ("svi", 0), ("svi", 1), ("broken", 0), ("broken", 1), ("svi_diag", 0), ("svi_diag", 1)
    ]
    nuts = suite.cells[6]
    assert nuts.method == "nuts" and nuts.guide is None and nuts.seed == 0
    assert dict(nuts.settings) == {"num_chains": 1, "num_warmup": 20, "num_samples": 20}
    assert suite.cells[2].settings["guide_options"] == {"rank": 3}
    assert len({c.cell_id for c in suite.cells}) == 8
    assert suite.published[0]["value"] == -12.5


def test_split_grid_and_cell_overrides(tmp_path):
    suite = parse_suite({
        "defaults": {"settings": {"num_steps": 10}, "seed": [0, 1]},
        "methods": {"svi": {"method": "svi", "num_steps": 5, "lr": 0.1}},
        "cell": [{"model": "bnn", "data": "uci-yacht", "split": [0, 1, 2], "method": "svi",
                  "settings": {"lr": 0.5}}],
    })
    assert len(suite.cells) == 6  # 3 splits x 2 seeds
    cell = suite.cells[0]
    assert cell.all_data_options == {"split": 0}
    assert dict(cell.settings) == {"num_steps": 10, "lr": 0.5}  # cell beats method preset
    assert cell.guide == "auto_normal"


@pytest.mark.parametrize(
    "cell, message",
    [
        ({"model": "no_such_model", "method": "svi"}, "unknown model 'no_such_model'"),
        ({"model": ES, "method": "slice"}, "unknown method 'slice'"),
        ({"model": ES, "method": "svi", "guide": "not_a_guide"}, "unknown guide 'not_a_guide'"),
        ({"model": ES, "method": "nuts", "settings": {"num_sample": 5}},
         "takes no setting(s) ['num_sample']"),
        ({"model": ES, "method": "svi", "data": "no_such_data"}, "unknown data set"),
        ({"model": "conjugate_linear_regression", "method": "svi", "split": 3},
         "takes no option(s) ['split']"),
        ({"model": ES, "method": "svi", "sed": 1}, "unknown keys ['sed']"),
        ({"method": "svi"}, "missing required key 'model'"),
    ],
)
def test_suite_validation_errors_name_the_cell_and_the_bad_value(tmp_path, cell, message):
    lines = [f"{key} = {value!r}".replace("'", '"') if not isinstance(value, dict) else
             f"{key} = {{ " + ", ".join(f"{k} = {v}" for k, v in value.items()) + " }"
             for key, value in cell.items()]
    path = _write(tmp_path, "[[cell]]\n" + "\n".join(lines) + "\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert message in str(info.value)
    if "model" in cell:  # the [[cell]] entry (parse errors) or the expanded cell is named
        assert "cell]] #0" in str(info.value) or "cell #0 (model=" in str(info.value)


def test_suite_imports_and_published_rows_are_checked(tmp_path):
    cell = f'[[cell]]\nmodel = "{ES}"\nmethod = "svi"\n'
    with pytest.raises(SuiteError, match="cannot import 'no_such_module_xyz'"):
        load_suite(_write(tmp_path, 'imports = ["no_such_module_xyz"]\n' + cell))
    with pytest.raises(SuiteError, match="missing required key 'source'"):
        load_suite(_write(tmp_path, cell + '[[published]]\nmodel = "m"\nmethod = "svi"\n'
                                    'metric = "rmse"\nvalue = 1.0\n'))


def test_suite_format_example_in_the_docstring_is_valid(tmp_path):
    import benchmarks.suite as module

    block = module.__doc__.split("Suite file format::")[1].split("Keys of")[0]
    text = "\n".join(line[4:] for line in block.splitlines())
    suite = load_suite(_write(tmp_path, text))
    assert [c.label for c in suite.cells] == ["nuts", "nuts", "svi_normal", "svi_normal",
                                              "nuts", "nuts"]
    assert suite.cells[0].settings["num_samples"] == 200
    assert suite.cells[-1].settings["num_samples"] == 1000  # the cell's override wins
    assert suite.published[0]["value"] == 2.97


def test_unknown_suite_name_lists_the_built_in_suites():
    with pytest.raises(SuiteError, match="built-in suites: .*quick"):
        load_suite("no-such-suite")


@pytest.mark.parametrize("name", ["quick", "posteriordb", "uci", "mnist-vae", "sparse-vd", "cvae"])
def test_built_in_suites_parse_and_record_published_numbers(name):
    assert name in builtin_suites()
    suite = load_suite(name, validate=False)
    assert suite.cells
    if name != "quick":
        assert suite.published, f"suite {name} records no published numbers"


def test_built_in_suites_validate_against_the_registry():
    """Every cell of every built-in suite names a registered model, method, guide and data."""
    import zoo

    registered = {spec.name for spec in zoo.list_models()}
    for name in builtin_suites():
        suite = load_suite(name, validate=False)
        if {cell.model for cell in suite.cells} <= registered:
            load_suite(name)  # raises SuiteError naming the bad cell


# --------------------------------------------------------------------------- running
def test_failing_cell_is_recorded_and_the_grid_goes_on(reference_run):
    _, out, table = reference_run
    assert len(table) == 8 and table["cell_id"].is_unique
    broken = table[table["label"] == "broken"]
    assert list(broken["status"]) == ["error", "error"]
    assert broken["error"].str.contains(
        "fit: ValueError: guide 'auto_normal' does not take option").all()
    for cell_id in broken["cell_id"]:
        assert "ValueError" in (out / CELLS_DIR / cell_id / "traceback.txt").read_text()
    ok = table[table["label"] != "broken"]
    assert (ok["status"] == "ok").all()
    assert ok.loc[ok["method"] == "svi", "elbo"].notna().all()
    nuts = table[table["method"] == "nuts"].iloc[0]
    assert nuts["min_ess_bulk"] > 0 and nuts["divergences"] >= 0
    # every committed cell holds its InferenceData and the tables were written
    for cell_id in ok["cell_id"]:
        assert (out / CELLS_DIR / cell_id / "posterior.nc").is_file()
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    assert list(csv["cell_id"]) == list(table["cell_id"]) == list(parquet["cell_id"])


def test_seed_fixes_the_numbers_and_seeds_differ(reference_run):
    _, _, table = reference_run
    svi = table[(table["label"] == "svi") & (table["model"] == ES)].set_index("seed")["elbo"]
    assert svi[0] != svi[1]


def test_killed_run_resumes_to_the_same_table(reference_run, tmp_path):
    """SIGKILL a run after its first committed cell; --resume loses and duplicates nothing."""
    suite, _, reference = reference_run
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.cli", "bench", str(suite), "--out", str(out),
         "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(f"{CELLS_DIR}/*/{ROW_FILE}")):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no cell committed within 60 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    committed = {p.parent.name: p.stat().st_mtime_ns
                 for p in out.glob(f"{CELLS_DIR}/*/{ROW_FILE}")}
    assert 1 <= len(committed) < len(reference)
    # debris as a kill in the middle of a cell leaves it: a temp folder and a torn cell folder
    (out / CELLS_DIR / ".tmp-half-written-123").mkdir()
    (out / CELLS_DIR / "torn_cell_without_row").mkdir()

    # exit status 1: the suite's "broken" cells failed (and were recorded)
    assert cli_main(["bench", str(suite), "--out", str(out), "--resume", "--no-progress"]) == 1

    resumed = pd.read_csv(out / "results.csv")
    expected = pd.read_csv(reference_run[1] / "results.csv")
    pd.testing.assert_frame_equal(_deterministic(resumed), _deterministic(expected))
    for cell_id, mtime in committed.items():  # committed cells were not run again
        assert (out / CELLS_DIR / cell_id / ROW_FILE).stat().st_mtime_ns == mtime
    leftovers = sorted(p.name for p in (out / CELLS_DIR).iterdir())
    assert leftovers == sorted(reference["cell_id"])


#: the Ray run below: a fresh driver process that starts a local Ray instance (2 CPUs, no
#: dashboard), runs cells on the "ray" backend and shuts Ray down; PYTHONPATH does not name the
#: project, so the workers find it through ray_runtime_env() (or an installed package)
RAY_DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
import ray
from benchmarks.backends import ray_runtime_env
from benchmarks.runner import run_suite
from benchmarks.suite import load_suite

suite = load_suite(sys.argv[2])
subset = type(suite)(name="tiny", description="", cells=suite.cells[:int(sys.argv[4])],
                     published=(), source="")
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
         object_store_memory=100 * 1024**2, runtime_env=ray_runtime_env())
try:
    run_suite(subset, sys.argv[3], jobs=2, backend="ray", progress=False)
finally:
    ray.shutdown()
"""
#: seconds the Ray run may take before it is killed (it takes about 30 s on 2 busy cores)
RAY_TIMEOUT_S = 300


def test_ray_backend_matches_the_local_backend(reference_run, tmp_path):
    """The same cells on a local Ray instance give the local backend's table: the same rows in
    the same order, every non-timing column equal (a failing cell included)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise  # the test extra installs ray: in CI a missing ray is a failure, not a skip
        pytest.skip("ray is not installed (pip install -e '.[test]')")
    suite, _, reference = reference_run
    cells = 3  # svi seeds 0 and 1, and the first "broken" cell
    out = tmp_path / "ray"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env.update(OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", RAY_DRIVER, str(ROOT), str(suite), str(out), str(cells)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=RAY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)  # the driver and every Ray process it started
        output, _ = proc.communicate()
        pytest.fail(f"the Ray run took over {RAY_TIMEOUT_S} s; its output:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    table = pd.read_csv(out / "results.csv")
    expected = pd.read_csv(reference_run[1] / "results.csv").iloc[:cells]
    assert list(table["cell_id"]) == list(reference["cell_id"].iloc[:cells])
    assert list(table["status"]) == ["ok", "ok", "error"]
    pd.testing.assert_frame_equal(
        _deterministic(table).dropna(axis=1, how="all"),
        _deterministic(expected).dropna(axis=1, how="all"),
    )


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid``: Ray's workers leave the driver's process group
    (so ``killpg`` misses them) but keep its session."""
    os.killpg(sid, signal.SIGKILL)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


class _FakeRay:
    """Stands in for the ``ray`` module: records ``init``/``shutdown``, runs tasks inline."""

    def __init__(self, initialized: bool = False):
        self.initialized, self.init_kwargs, self.shutdowns = initialized, None, 0

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs):
        self.initialized, self.init_kwargs = True, kwargs

    def shutdown(self):
        self.initialized, self.shutdowns = False, self.shutdowns + 1

    def remote(self, **options):
        class Task:  # task.remote(cell, ...) returns a hashable object reference
            @staticmethod
            def remote(cell, *args):
                return type("Ref", (), {"cell": cell})()

        return lambda fn: Task()

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return {"cell_id": ref.cell.cell_id, "status": "ok"}


@pytest.mark.parametrize("already_running", [False, True])
def test_ray_backend_starts_a_local_instance_and_shuts_down_only_its_own(
    monkeypatch, tmp_path, already_running
):
    """Without RAY_ADDRESS the backend starts Ray with ``jobs`` CPUs, no dashboard and the
    workers' runtime env, and shuts it down; a Ray the caller started is left running."""
    from benchmarks.backends import get_backend, ray_runtime_env

    fake = _FakeRay(initialized=already_running)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cells = load_suite(_write(tmp_path, TINY_SUITE)).cells[:3]
    rows = list(get_backend("ray", jobs=2).run(cells, tmp_path, suite="tiny"))
    assert [cell.cell_id for cell, _ in rows] == [cell.cell_id for cell in cells]
    if already_running:
        assert fake.init_kwargs is None and fake.shutdowns == 0 and fake.initialized
        return
    assert fake.init_kwargs["num_cpus"] == 2 and fake.init_kwargs["include_dashboard"] is False
    env = fake.init_kwargs["runtime_env"]["env_vars"]
    assert env == ray_runtime_env()["env_vars"] and env["OMP_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    assert fake.shutdowns == 1 and not fake.initialized


# --------------------------------------------------------------------------- report
def test_report_shows_published_numbers_beside_measured_ones(reference_run):
    _, out, table = reference_run
    path = write_report(out)
    text = path.read_text()
    html = path.with_suffix(".html").read_text()
    rows_svi = table[(table["label"] == "svi") & (table["model"] == ES)]
    measured = rows_svi["elbo"] / rows_svi["num_train"]  # the report shows the ELBO per point
    mean = measured.mean()
    se = measured.std(ddof=1) / len(measured) ** 0.5
    # the eight schools table (one per model, methods as rows): the svi row holds n and
    # mean +- se of the ELBO per training point, and the row right after it the published
    # value and its source
    lines = text.splitlines()
    start = lines.index(f"### {ES}")
    table = [line for line in lines[start + 1:start + 20] if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    header, body = cells[0], cells[2:]
    rows = {row[0]: dict(zip(header, row)) for row in body}
    elbo = "elbo / point ↑"
    assert rows["svi"]["n"] == "2" and rows["svi"][elbo] == f"{mean:.4g} +- {se:.4g}"
    assert [row[0] for row in body].index("svi (published)") == [row[0] for row in body].index(
        "svi") + 1
    assert rows["svi (published)"][elbo] == "-12.5"
    assert rows["svi (published)"]["source"] == "Made-up et al. 2099"
    # a method the zoo does not run
    assert rows["pbp (published)"][elbo] == "-6.789"
    assert rows["pbp (published)"]["source"] == "Other et al. 2098"
    assert "Failed cells" in text and "does not take option" in text
    assert "Made-up et al. 2099" in html
    # forest plot of svi vs svi_diag vs nuts on eight schools, linked by a relative path
    assert "report_figures/forest__" in text
    for target in [line.split("](")[1].rstrip(")") for line in text.splitlines()
                   if line.startswith("![")]:
        assert (out / target).is_file()


def test_cli_lists_suites(capsys):
    assert cli_main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("quick", "posteriordb", "uci", "mnist-vae", "sparse-vd"):
        assert name in out


def test_cell_row_keeps_bookkeeping_columns_and_reads_the_final_elbo(tmp_path, monkeypatch):
    """A model metric called "error" (a classifier's error rate) must not overwrite the error
    message column; the final ELBO is minus the mean loss of the last 5% of steps."""
    import numpy as np

    import zoo.fit
    from benchmarks.cells import run_cell
    from benchmarks.suite import Cell
    from inference.result import InferenceResult
    from zoo.data.dataset import Dataset

    class Stub:
        def evaluate(self, dataset, result, split="test", settings=None):
            return {"error": 0.25, "accuracy": 0.75}

        def reference_posterior(self, dataset):
            return None

    losses = np.arange(100.0, 0.0, -1.0)  # 100 steps: the last 5 are 5, 4, 3, 2, 1
    result = InferenceResult(method="svi", posterior={"mu": np.zeros((1, 4))},
                             loss_history=losses)
    dataset = Dataset("stub", splits={"train": {}, "test": {}})
    monkeypatch.setattr(zoo.fit, "fit", lambda *args, **kwargs: (result, Stub(), dataset))
    cell = Cell(model=ES, method="svi", label="svi", guide="auto_normal", plots=False)
    row = run_cell(cell, tmp_path)
    assert row["status"] == "ok" and row["error"] is None
    assert row["test_error"] == 0.25 and row["accuracy"] == 0.75
    assert row["elbo"] == -3.0
    assert (tmp_path / CELLS_DIR / cell.cell_id / ROW_FILE).is_file()


CRASHING_MODEL = '''
import os
import pyro
import pyro.distributions as dist
import zoo
from zoo.models.base import ZooModel


@zoo.register("crashes_its_worker", description="ends its process", default_data="diabetes",
              methods=("svi",))
class CrashesItsWorker(ZooModel):
    def model(self, y=None):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    def model_kwargs(self, dataset, split="train"):
        os._exit(1)
'''


def test_a_crashing_worker_is_blamed_alone_and_healthy_cells_finish(tmp_path, monkeypatch):
    """A cell that kills its worker process breaks the whole pool; only that cell may be
    recorded as failed, the cells that happened to share the pool must still succeed."""
    (tmp_path / "crash_model_for_test.py").write_text(CRASHING_MODEL)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = _write(tmp_path, textwrap.dedent('''
        name = "crash"
        description = "one cell ends its worker"
        imports = ["crash_model_for_test"]
        [methods.svi]
        method = "svi"
        guide = "auto_normal"
        tuning = "fixed"
        num_steps = 5
        num_posterior_draws = 5
        [[cell]]
        model = "crashes_its_worker"
        method = "svi"
        plots = false
        [[cell]]
        model = "conjugate_linear_regression"
        method = "svi"
        seed = [0, 1]
        plots = false
    '''))
    try:
        table = run_suite(suite, tmp_path / "out", jobs=2, progress=False)
    finally:  # validating the suite imported the module here: keep the registry as it was
        from zoo.registry import _REGISTRY

        _REGISTRY.pop("crashes_its_worker", None)
        sys.modules.pop("crash_model_for_test", None)
    status = dict(zip(table["model"] + "/" + table["seed"].astype(str), table["status"]))
    assert status.pop("crashes_its_worker/0") == "error"
    assert set(status.values()) == {"ok"} and len(status) == 2
