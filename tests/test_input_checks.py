"""Checks on what goes in and what comes out: configurations, data values, loss traces,
downloads and report tables. All cheap: no training beyond a trace of the model."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch
from pyro import poutine

import zoo
from inference import methods
from inference.methods.inputs import DataValueError
from inference.svi.health import loss_problems
from zoo.config_check import ConfigError, check_config, matches
from zoo.data import load
from zoo.data._common import DataFileError, check_finite
from zoo.data.checksums import ChecksumError
from zoo.data.fetch import expected_digests, fetch
from zoo.data.paths import checkout_data_dir

SHARED = checkout_data_dir()


# ---------------------------------------------------------------- model configurations
def test_booleans_are_not_integers_and_lists_are_checked_item_by_item():
    assert matches(3, int) and not matches(True, int) and not matches(True, float)
    assert matches(2, float) and matches([1, 2], Sequence[int]) and not matches([1, "a"],
                                                                               Sequence[int])
    assert matches(None, int | None) and matches("learned", float | str)


def test_a_model_configuration_is_checked_against_its_constructor():
    factory = zoo.registry.spec("vae").factory
    check_config(factory, {"latent_dim": 10, "hidden": [64, 64]}, model="vae")
    with pytest.raises(ConfigError, match="latent_dim=True .* integer"):
        check_config(factory, {"latent_dim": True}, model="vae")
    with pytest.raises(ConfigError, match="no configuration key 'latnt_dim'.*latent_dim"):
        zoo.get("vae", latnt_dim=3)


# ---------------------------------------------------------------- data values
def test_non_finite_values_are_refused_naming_file_column_and_rows():
    values = np.zeros((10, 3))
    values[[2, 7], 1] = np.nan
    with pytest.raises(DataFileError, match=r"f\.csv has 2 NaN .* column\(s\) b .*rows 2, 7"):
        check_finite(values, "f.csv", ["a", "b", "c"])
    check_finite(np.arange(5), "ints.csv")  # integers are always finite


def test_nan_observations_are_a_data_error_before_inference_starts():
    model = zoo.get("conjugate_linear_regression")
    kwargs = model.model_kwargs(load("diabetes"))
    y = kwargs["y"].clone()
    y[[3, 10, 50]] = float("nan")
    target = methods.Target(model.model, {**kwargs, "y": y}, name="plain")
    with pytest.raises(DataValueError, match=r"'y' .* 3 NaN .*rows 3, 10, 50.*not in the "
                                             r"inference"):
        methods.get("nuts").run(target, {"num_chains": 1})


def test_masked_responses_leave_exactly_their_rows_out_of_the_likelihood():
    model = zoo.get("conjugate_linear_regression")
    kwargs = model.model_kwargs(load("diabetes"))
    x, y = kwargs["x"], kwargs["y"].clone()
    y[[3, 10, 50]] = float("nan")
    kept = ~torch.isnan(y)
    full = poutine.trace(model.model).get_trace(x, y)
    latents = {name: full.nodes[name]["value"] for name in ("beta", "sigma2")}
    dropped = poutine.trace(poutine.condition(model.model, latents)).get_trace(x[kept], y[kept])
    assert torch.allclose(full.log_prob_sum(), dropped.log_prob_sum(), rtol=0, atol=1e-9)
    post, reference = model.exact_posterior(x, y), model.exact_posterior(x[kept], y[kept])
    assert torch.equal(post.beta_mean, reference.beta_mean) and post.a == reference.a


# ---------------------------------------------------------------- loss traces
def test_loss_problems_flags_a_run_that_ended_far_above_its_best_or_still_falling():
    rng = np.random.default_rng(0)
    steps = np.arange(2000)
    noise = rng.normal(0.0, 5.0, 2000)
    assert loss_problems(100 + 900 * np.exp(-steps / 100) + noise) == []
    falling = loss_problems(100 + 900 * np.exp(-steps / 1500) + noise)
    assert len(falling) == 1 and "still falling" in falling[0]
    blown = np.r_[100 + 900 * np.exp(-steps[:1500] / 100), np.full(500, 5000.0)] + noise
    problems = loss_problems(blown)
    assert len(problems) == 1 and "far above its best" in problems[0]
    one_wild_step = 100 + 900 * np.exp(-steps / 100) + noise
    one_wild_step[1000] = 1e25  # a single wild step does not move a running median
    assert loss_problems(one_wild_step) == []


# ---------------------------------------------------------------- downloads
@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A loopback HTTP server over a copy of two shared files and a corrupted copy."""
    root = tmp_path_factory.mktemp("mirror")
    for name in ("good", "bad"):
        folder = root / name / "uci" / "yacht"
        folder.mkdir(parents=True)
        for file in ("data.csv", "splits.json"):
            (folder / file).write_bytes((SHARED / "uci" / "yacht" / file).read_bytes())
    corrupted = root / "bad" / "uci" / "yacht" / "data.csv"
    corrupted.write_bytes(corrupted.read_bytes().replace(b"0", b"1", 1))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_packaged_checksums_match_the_shared_data_list():
    listed = (SHARED / "CHECKSUMS.sha256").read_text()
    assert expected_digests() == {line.split()[1]: line.split()[0]
                                  for line in listed.splitlines() if line.strip()}


def test_fetch_downloads_verified_files_and_refuses_a_corrupted_copy(mirror, tmp_path):
    paths = fetch("uci-yacht", data_dir=tmp_path, base_url=f"{mirror}/good",
                  progress_bar=False)
    digests = expected_digests()
    for path in paths:
        relpath = path.relative_to(tmp_path).as_posix()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digests[relpath]
    assert load("uci-yacht", data_dir=tmp_path).train["x"].shape[1] == 6
    good = (tmp_path / "uci/yacht/data.csv").read_bytes()
    with pytest.raises(ChecksumError, match="does not match its SHA-256"):
        fetch("uci-yacht", data_dir=tmp_path, base_url=f"{mirror}/bad", force=True,
              progress_bar=False)
    assert (tmp_path / "uci/yacht/data.csv").read_bytes() == good  # the good copy stays
    assert not list(tmp_path.rglob("*.part"))  # and no partial file is kept
    fresh = tmp_path / "fresh"
    with pytest.raises(ChecksumError):
        fetch("uci-yacht", data_dir=fresh, base_url=f"{mirror}/bad", progress_bar=False)
    assert not (fresh / "uci/yacht/data.csv").exists()


# ---------------------------------------------------------------- report tables
def test_results_are_read_from_the_committed_cells_when_the_table_is_truncated(tmp_path):
    from benchmarks.runner import RESULTS_CSV, read_results, rows_to_frame

    rows = [{"suite": "s", "cell_id": f"c{i}", "model": "m", "method": "nuts", "seed": i,
             "status": "ok", "test_ll": -float(i)} for i in range(5)]
    for row in rows:
        folder = tmp_path / "cells" / row["cell_id"]
        folder.mkdir(parents=True)
        (folder / "row.json").write_text(json.dumps(row))
    rows_to_frame(rows[:2]).to_csv(tmp_path / RESULTS_CSV, index=False)  # a truncated copy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_results(tmp_path)
    assert len(frame) == 5
    assert any("lists 2 cells but 5 are committed" in str(w.message) for w in caught)
    (tmp_path / "cells" / "c4" / "row.json").write_text('{"torn": ')
    with pytest.warns(RuntimeWarning, match=r"c4/row.json"):
        assert len(read_results(tmp_path)) == 4
