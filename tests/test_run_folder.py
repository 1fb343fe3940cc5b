"""Output folders of ``zoo fit``: whole runs only, refused overwrites, Ctrl-C and resume.

The fits are 30-step SVI runs on eight schools (a second or two each); the kill test runs one
fit in a child process that kills itself with SIGKILL in the middle of writing its files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.run_folder import RunFolder

MODEL = "eight_schools-eight_schools_noncentered"
FIT = ["fit", MODEL, "--method", "svi", "--steps", "30", "--draws", "50", "--set", "tuning=fixed"]
ROOT = Path(__file__).resolve().parent.parent


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fit_into_a_run_folder_refuses_then_overwrites_with_only_the_new_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(FIT + ["--out", str(out)]) == 0
    (out / "stray.txt").write_text("from an older run")
    before = _files(out)
    capsys.readouterr()
    assert main(FIT + ["--seed", "1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _files(out) == before  # refused: untouched
    assert main(FIT + ["--seed", "1", "--out", str(out), "--overwrite"]) == 0
    after = _files(out)
    assert "stray.txt" not in after  # only the new run is there
    assert json.loads(after["result.json"])["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left behind


def test_fit_without_out_writes_under_runs_model_method_and_says_where(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(FIT) == 0
    runs = list((tmp_path / "runs" / MODEL).iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("svi-")
    assert (runs[0] / "result.json").is_file()
    assert str(Path("runs") / MODEL / runs[0].name) in capsys.readouterr().out


KILL_SCRIPT = """
import os, signal, sys
import inference.result as result
original = result.InferenceResult.save
def save_then_die(self, directory):
    original(self, directory)              # posterior.nc and result.json are written ...
    os.kill(os.getpid(), signal.SIGKILL)   # ... then the process dies mid-run
result.InferenceResult.save = save_then_die
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_fit_killed_while_writing_leaves_the_old_run_whole(tmp_path):
    out = tmp_path / "run"
    assert main(FIT + ["--out", str(out)]) == 0
    before = _files(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *FIT, "--seed", "2", "--out",
                           str(out), "--overwrite"], env=env, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert _files(out) == before  # the old run, whole: no file of the new one mixed in
    # the next fit into the folder starts afresh and leaves only its own run
    assert main(FIT + ["--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "result.json").read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach only the main thread")
def test_ctrl_c_stops_with_one_line_and_resume_finishes_the_run(tmp_path, capsys, monkeypatch):
    from inference.svi.engine import SVIEngine

    step = SVIEngine.step

    def step_then_interrupt(self):
        loss = step(self)
        if self.step_count == 12:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after step 12
        return loss

    out = tmp_path / "run"
    monkeypatch.setattr(SVIEngine, "step", step_then_interrupt)
    assert main(FIT + ["--out", str(out)]) == 130
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("svi:")]  # the progress bar's lines
    assert len(err) == 1 and "interrupted after step 12 of 30" in err[0]
    assert err[0].endswith(f"--out {out} --resume")
    assert not out.exists()
    staging = RunFolder(out).staging
    assert (staging / "checkpoint.pt").is_file()
    monkeypatch.setattr(SVIEngine, "step", step)
    assert main(FIT + ["--out", str(out), "--resume"]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["settings"]["resumed_from_step"] == 12
    assert record["settings"]["steps_run"] == 30
    assert not staging.exists()


def test_resume_refuses_a_different_command(tmp_path, capsys):
    out = tmp_path / "run"
    folder = RunFolder(out)
    folder.start({"model": "a"})
    (folder.staging / "checkpoint.pt").write_bytes(b"")
    resumed = RunFolder(out, resume=True)
    resumed.check()
    with pytest.raises(ValueError, match="different command"):
        resumed.start({"model": "b"})
