"""The ``zoo`` command line: help on every verb, model listing, clear errors."""

import subprocess
import sys

import pytest

import zoo
from zoo.cli import build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.smoke
def test_smoke_zoo_help_runs():
    done = run_cli("--help")
    assert done.returncode == 0
    for verb in ("list", "data", "fit"):
        assert verb in done.stdout


@pytest.mark.parametrize("verb", ["list", "data", "fit"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([verb, "--help"])
    assert stop.value.code == 0
    assert "usage: zoo " + verb in capsys.readouterr().out


def test_zoo_list_prints_one_model_per_line_name_first():
    done = run_cli("list")
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    names = [spec.name for spec in zoo.list_models()]
    assert len(lines) == len(names) >= 8
    assert [line.split()[0] for line in lines] == names


def test_fit_unknown_model_names_the_known_ones(capsys, tmp_path):
    code = main(["fit", "no_such_model", "--method", "nuts", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown model 'no_such_model'" in err and "eight_schools" in err


def test_wrong_data_dir_gives_one_line_error_naming_the_paths(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code = main(["fit", "eight_schools-eight_schools_noncentered", "--method", "nuts",
                 "--data-dir", str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert str(missing) in err


FIT_CASES = {
    "bnn-bbb": ["bnn", "--method", "svi", "--guide", "bbb", "--steps", "100"],
    "bnn-mc_dropout": ["bnn", "--method", "svi", "--guide", "mc_dropout", "--steps", "100"],
    "bnn-vd": ["bnn", "--method", "svi", "--guide", "vd", "--steps", "100",
               "--config", "prior=log_uniform"],
    "bnn-sparse_vd": ["bnn", "--method", "svi", "--guide", "sparse_vd", "--steps", "100",
                      "--config", "prior=log_uniform"],
    # trees capped at depth 5: early warm-up trees of depth 10 made this case take 60-100 s
    "bnn-nuts": ["bnn", "--method", "nuts", "--chains", "1", "--warmup", "20", "--draws", "20",
                 "--set", "max_tree_depth=5", "--config", "hidden=[4]"],
    "bnn-sghmc": ["bnn", "--method", "sghmc", "--set", "num_steps=40", "num_chains=2",
                  "pretrain_steps=5",
                  "thin=5", "batch_size=32", "--config", "hidden=[4]"],
    "bnn-swag": ["bnn", "--method", "swag", "--set", "num_steps=40", "batch_size=32",
                 "num_posterior_draws=20", "--config", "hidden=[4]"],
    "vae-planar": ["vae", "--method", "svi", "--guide", "planar", "--steps", "50", "--lr", "3e-3",
                   "--batch-size", "100", "--config", "latent_dim=2"],
}


@pytest.mark.smoke
@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_smoke_zoo_fit_writes_posterior_summary_metrics_and_plots(case, tmp_path, capsys):
    import json

    out = tmp_path / case
    assert main(["fit", *FIT_CASES[case], "--seed", "0", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    for name in ("posterior.nc", "result.json", "summary.csv", "metrics.json", "settings.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    key = "test_ll"
    assert key in metrics and metrics[key] == metrics[key]  # present and not NaN
    assert list((out / "plots").glob("*.png"))
