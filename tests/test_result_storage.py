"""Saving results: atomic files with ordinary permissions, no stale state from an older run."""

import os

import numpy as np

from inference.result import InferenceResult
from inference.storage import atomic_write_text
from zoo.cli import main


def _result(method: str, **extra) -> InferenceResult:
    rng = np.random.default_rng(0)
    return InferenceResult(method, {"mu": rng.normal(size=(2, 10))}, seed=0, **extra)


def test_saving_mcmc_over_an_svi_folder_drops_the_old_svi_state(tmp_path):
    _result("svi", loss_history=np.arange(5.0), guide_params={"loc": np.ones(2)}).save(tmp_path)
    _result("nuts").save(tmp_path)
    loaded = InferenceResult.load(tmp_path)
    assert loaded.method == "nuts"
    assert loaded.loss_history is None and loaded.guide_params is None


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").read_text() == "{}"
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_unknown_model_config_key_is_a_one_line_error(tmp_path, capsys):
    code = main(["fit", "conjugate_linear_regression", "--method", "svi", "--steps", "5",
                 "--config", "no_such_option=1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "no_such_option" in err and "conjugate_linear_regression" in err
