"""Bad input through the ``zoo`` command line: a clear one-line error naming what is wrong.

One table of bad inputs, each run through ``zoo.cli.main`` in this process: every case must
exit non-zero, print no traceback, print at most three lines on stderr, and name the setting,
value or file at fault. The cases stop before any training, so the table is cheap.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.data.paths import checkout_data_dir

SHARED = checkout_data_dir()
NONCENTRED = "eight_schools-eight_schools_noncentered"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``zoo ARGV`` run in this process (argparse exits count)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse refuses its own arguments by exiting
        code = stop.code if isinstance(stop.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    """A data root holding broken copies of the shared files, one kind of damage per set."""
    root = tmp_path_factory.mktemp("bad-data")

    def copy(relpath: str) -> Path:
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / relpath, target)
        return target

    # a NaN in one feature of one row
    data = copy("uci/yacht/data.csv")
    copy("uci/yacht/splits.json")
    lines = data.read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "nan"
    lines[5] = ",".join(cells)
    data.write_text("\n".join(lines) + "\n")
    # an empty CSV
    (root / "uci/energy").mkdir(parents=True)
    (root / "uci/energy/data.csv").write_text("")
    copy("uci/energy/splits.json")
    # a splits file without its keys
    copy("uci/concrete/data.csv")
    (root / "uci/concrete/splits.json").write_text(json.dumps({"n_splits": 20}))
    # a half-written posteriordb data file
    name = NONCENTRED
    for file in ("reference_draws.json", "reference_summary.json", "info.json"):
        copy(f"posteriordb/{name}/{file}")
    text = (SHARED / f"posteriordb/{name}/data.json").read_text()
    (root / f"posteriordb/{name}/data.json").write_text(text[: len(text) // 2])
    return root


def _cases(tmp: Path, bad_data: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, fragments the error message must contain)."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("x")
    full = tmp / "full"
    full.mkdir(exist_ok=True)
    (full / "notes.txt").write_text("keep me")
    fit = ["fit", NONCENTRED]
    return {
        "unknown model": (["fit", "no_such_model", "--method", "svi"], ["no_such_model"]),
        "unknown method": (fit + ["--method", "no_such_method"], ["no_such_method"]),
        "boolean for an integer config": (["fit", "vae", "--method", "svi", "--config",
                                           "latent_dim=true"], ["latent_dim", "integer"]),
        "string for an integer config": (["fit", "vae", "--method", "svi", "--config",
                                          "latent_dim=a"], ["latent_dim", "'a'"]),
        "unknown config key": (["fit", "vae", "--method", "svi", "--config", "latnt_dim=3"],
                               ["latnt_dim", "latent_dim"]),
        "config without =": (["fit", "vae", "--method", "svi", "--config", "latent_dim"],
                             ["key=value"]),
        "batch size 0": (["fit", "bnn", "--method", "svi", "--batch-size", "0"],
                         ["batch_size", "0"]),
        "svi flag with nuts": (fit + ["--method", "nuts", "--steps", "10"],
                               ["--steps", "nuts", "svi"]),
        "mcmc flag with svi": (fit + ["--method", "svi", "--chains", "2"],
                               ["--chains", "svi"]),
        "zero chains": (fit + ["--method", "nuts", "--chains", "0"], ["num_chains", "0"]),
        "negative learning rate": (fit + ["--method", "svi", "--lr", "-1"], ["lr", "-1"]),
        "non-integer steps": (fit + ["--method", "svi", "--steps", "ten"], ["--steps", "ten"]),
        "setting of the wrong type": (fit + ["--method", "svi", "--set", "num_steps=abc"],
                                      ["num_steps", "abc"]),
        "unknown setting": (fit + ["--method", "svi", "--set", "num_stepz=3"], ["num_stepz"]),
        "boolean for an integer setting": (fit + ["--method", "svi", "--set",
                                                  "num_steps=true"], ["num_steps", "True"]),
        "guide with nuts": (fit + ["--method", "nuts", "--guide", "auto_normal"],
                            ["guide", "nuts"]),
        "unknown guide": (fit + ["--method", "svi", "--guide", "auto_nrmal"], ["auto_nrmal"]),
        "negative seed": (fit + ["--method", "svi", "--seed", "-1"], ["seed", "-1"]),
        "non-integer seed": (fit + ["--method", "svi", "--seed", "abc"], ["seed", "abc"]),
        "out is a file": (fit + ["--method", "svi", "--out", str(a_file)],
                          [str(a_file), "file"]),
        "out below a file": (fit + ["--method", "svi", "--out", str(a_file / "run")],
                             ["a_file.txt", "not a folder"]),
        "out holds other files": (fit + ["--method", "svi", "--out", str(full)],
                                  [str(full), "--overwrite"]),
        "resume with nothing to resume": (fit + ["--method", "svi", "--out",
                                                 str(tmp / "fresh"), "--resume"],
                                          ["--resume", "no interrupted run"]),
        "resume with mcmc": (fit + ["--method", "nuts", "--out", str(tmp / "m"), "--resume"],
                             ["--resume", "nuts"]),
        "unknown data set": (fit + ["--method", "svi", "--data", "no_such_data"],
                             ["no_such_data"]),
        "split out of range": (["fit", "bnn", "--method", "svi", "--data", "uci-yacht",
                                "--split", "99", "--out", str(tmp / "s")], ["split", "99"]),
        "NaN in a data file": (["fit", "bnn", "--method", "svi", "--data", "uci-yacht",
                                "--data-dir", str(bad_data), "--out", str(tmp / "n")],
                               ["data.csv", "NaN", "x2", "rows 4"]),
        "empty CSV": (["fit", "bnn", "--method", "svi", "--data", "uci-energy", "--data-dir",
                       str(bad_data), "--out", str(tmp / "e")], ["uci/energy/data.csv"]),
        "splits file without keys": (["fit", "bnn", "--method", "svi", "--data",
                                      "uci-concrete", "--data-dir", str(bad_data), "--out",
                                      str(tmp / "k")], ["splits.json", "'train'"]),
        "half-written JSON": (fit + ["--method", "svi", "--data-dir", str(bad_data), "--out",
                                     str(tmp / "j")], ["data.json"]),
        "missing data folder": (fit + ["--method", "svi", "--data-dir", str(tmp / "nowhere"),
                                       "--out", str(tmp / "d")], [str(tmp / "nowhere")]),
        "evaluate a folder with no run": (["evaluate", str(tmp / "no_run")], ["no_run"]),
        "fetch an unknown data set": (["data", "fetch", "no_such_data", "--url",
                                       "http://127.0.0.1:9"], ["no_such_data"]),
        "fetch with no mirror": (["data", "fetch", "uci-yacht", "--data-dir",
                                  str(tmp / "dl")], ["--url", "ZOO_DATA_URL"]),
        "unknown suite": (["bench", "no_such_suite", "--out", str(tmp / "b")],
                          ["no_such_suite"]),
        "unknown budget key": (["bench", "quick", "--budget", "stepz=3", "--out",
                                str(tmp / "b2")], ["stepz"]),
        "report of an empty folder": (["report", str(tmp / "empty_report")],
                                      ["empty_report"]),
    }


def _case_names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return list(_cases(Path(tmp), Path(tmp)))


@pytest.mark.parametrize("case", _case_names())
def test_bad_input_exits_non_zero_with_one_clear_line(case, bad_data, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.delenv("ZOO_DATA_URL", raising=False)
    (tmp_path / "empty_report").mkdir()
    argv, fragments = _cases(tmp_path, bad_data)[case]
    code, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, f"{case}: exit status 0"
    assert "Traceback" not in err, f"{case}: traceback printed:\n{err}"
    assert 1 <= len(lines) <= 3, f"{case}: {len(lines)} lines on stderr:\n{err}"
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not named in:\n{err}"
