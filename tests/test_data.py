"""Tests of the data loaders: documented shapes and splits, train-only standardisation,
checksums, data-directory resolution and error messages.

Tests that read the shared data skip when no data folder can be found (see zoo.data.paths).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo.data as zd
from zoo.data import checksums, paths
from zoo.data.posteriordb import POSTERIORS
from zoo.data.uci import UCI_SETS


@pytest.fixture(scope="module")
def data_root() -> Path:
    """The data root the loaders use by default; skip when there is none."""
    try:
        root, _ = paths.find_file("CHECKSUMS.sha256")
    except zd.DataNotFoundError as error:
        pytest.skip(f"no data folder: {error}")
    return root


@pytest.fixture(scope="module")
def mnist(data_root) -> zd.Dataset:
    return zd.load("mnist")


@pytest.fixture(scope="module")
def binarized(data_root) -> zd.Dataset:
    return zd.load("binarized_mnist")


def _copy_subset(root: Path, relpaths: list[str], dest: Path, *, with_checksums=True) -> Path:
    """Copy some data files and their CHECKSUMS lines into ``dest`` (a private data root)."""
    for rel in relpaths:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
    if with_checksums:
        lines = [
            line
            for line in (root / "CHECKSUMS.sha256").read_text().splitlines()
            if line.split(maxsplit=1)[1].strip() in relpaths
        ]
        assert len(lines) == len(relpaths)
        (dest / "CHECKSUMS.sha256").write_text("\n".join(lines) + "\n")
    return dest


YACHT = ["uci/yacht/data.csv", "uci/yacht/splits.json"]


# ---------------------------------------------------------------- MNIST


def test_mnist_shapes_labels_and_grey_levels(mnist):
    assert mnist.train["x"].shape == (60000, 784) and mnist.test["x"].shape == (10000, 784)
    assert mnist.train["x"].dtype == torch.float32 and mnist.train["y"].dtype == torch.int64
    assert mnist.train["x"].min() == 0.0 and mnist.train["x"].max() == 1.0
    # Standard MNIST label counts (data README).
    assert torch.bincount(mnist.train["y"]).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(mnist.test["y"]).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # Mean training pixel is 33.318 / 255 = 0.13066 (data README, rounded to 3 decimals).
    assert mnist.train["x"].double().mean().item() == pytest.approx(33.318 / 255, abs=1e-5)


def test_binarized_mnist_splits(binarized):
    sizes = {part: tuple(binarized.split(part)["x"].shape) for part in ("train", "valid", "test")}
    assert sizes == {"train": (50000, 784), "valid": (10000, 784), "test": (10000, 784)}
    x = binarized.train["x"]
    assert x.dtype == torch.float32 and bool(((x == 0) | (x == 1)).all())
    # Mean pixels given in the data README to 5 decimals.
    for part, mean in (("train", 0.13056), ("valid", 0.13113), ("test", 0.13251)):
        assert binarized.split(part)["x"].double().mean().item() == pytest.approx(mean, abs=1e-5)


def test_dynamic_binarize_is_bernoulli_of_grey_levels_and_reproducible(mnist):
    x = mnist.train["x"][:2000]
    a = zd.dynamic_binarize(x, torch.Generator().manual_seed(1))
    b = zd.dynamic_binarize(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    # Pixels of value 0 or 1 are deterministic.
    assert torch.all(a[x == 0] == 0) and torch.all(a[x == 1] == 1)
    # Mean of 1.57M independent Bernoullis: sd <= 0.5 / sqrt(1.57e6) = 4e-4; 0.002 is 5 sd.
    assert a.mean().item() == pytest.approx(x.mean().item(), abs=2e-3)


# ---------------------------------------------------------------- UCI

# Rows, train/test sizes per split and number of splits, from the data README table.
UCI_TABLE = {
    "boston-housing": (506, 14, 20, 455, 51),
    "concrete": (1030, 9, 20, 927, 103),
    "energy": (768, 9, 20, 691, 77),
    "kin8nm": (8192, 9, 20, 7373, 819),
    "naval-propulsion-plant": (11934, 17, 20, 10741, 1193),
    "power-plant": (9568, 5, 20, 8611, 957),
    "protein-tertiary-structure": (45730, 10, 5, 41157, 4573),
    "wine-quality-red": (1599, 12, 20, 1439, 160),
    "yacht": (308, 7, 20, 277, 31),
}


def test_uci_table_covers_every_set():
    assert set(UCI_TABLE) == set(UCI_SETS)
    listed = [name for name in zd.list_datasets() if name.startswith("uci-")]
    assert sorted(f"uci-{folder}" for folder in UCI_TABLE) == listed


@pytest.mark.parametrize("folder", sorted(UCI_TABLE))
def test_uci_shapes_splits_and_train_only_standardisation(data_root, folder):
    rows, cols, n_splits, n_train, n_test = UCI_TABLE[folder]
    name = f"uci-{folder}"
    last = zd.load(name, split=n_splits - 1)
    for ds in (zd.load(name), last):
        assert ds.train["x"].shape == (n_train, cols - 1) and ds.train["y"].shape == (n_train,)
        assert ds.test["x"].shape == (n_test, cols - 1) and ds.test["y"].shape == (n_test,)
        assert ds.info["n_splits"] == n_splits and ds.info["n_rows"] == rows
        assert np.intersect1d(ds.info["train_index"], ds.info["test_index"]).size == 0
    x, y = last.train["x"].double(), last.train["y"].double()
    constant = last.info["constant_features"]
    varying = [j for j in range(cols - 1) if j not in constant]
    # Fitted on the training split in float64, stored as float32: moments exact to ~1e-6.
    zeros, ones = torch.zeros(cols - 1).double(), torch.ones(len(varying)).double()
    assert torch.allclose(x.mean(0), zeros, atol=1e-5)
    assert torch.allclose(x[:, varying].std(0, unbiased=False), ones, atol=1e-5)
    assert y.mean().abs() < 1e-5 and (y.std(unbiased=False) - 1).abs() < 1e-5
    assert torch.isfinite(last.test["x"]).all() and torch.isfinite(last.test["y"]).all()
    # The test split was not used for fitting: its standardised mean is not exactly 0.
    assert last.test["y"].double().mean().abs() > 1e-4
    with pytest.raises(ValueError, match=rf"0\.\.{n_splits - 1}"):
        zd.load(name, split=n_splits)


def test_uci_constant_columns_guarded_and_inverse_round_trip(data_root):
    ds = zd.load("uci-naval-propulsion-plant", split=4)
    raw = zd.load("uci-naval-propulsion-plant", split=4, standardize=False)
    xs, ys = ds.info["x_scaler"], ds.info["y_scaler"]
    assert ds.info["constant_features"] == [8, 11]  # the data README's constant columns
    assert xs.std[8] == 1.0 and xs.std[11] == 1.0
    assert torch.all(ds.train["x"][:, [8, 11]] == 0) and torch.isfinite(ds.train["x"]).all()
    # Scaler statistics are those of the raw training rows only.
    raw_y = raw.train["y"].double().numpy()
    assert ys.mean == pytest.approx(raw_y.mean(), rel=1e-6)
    assert ys.std == pytest.approx(raw_y.std(), rel=1e-5)
    # Inverse transforms give back the raw values (float32 storage: relative 1e-6).
    for part in ("train", "test"):
        back_y = ys.inverse_transform(ds.split(part)["y"].double())
        back_x = xs.inverse_transform(ds.split(part)["x"].double())
        assert torch.allclose(back_y, raw.split(part)["y"].double(), rtol=1e-5, atol=1e-7)
        assert torch.allclose(back_x, raw.split(part)["x"].double(), rtol=1e-5, atol=1e-6)


def test_standardizer_inverse_transforms_of_scales_variances_and_log_densities():
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.5, size=200)
    scaler = zd.Standardizer.fit(y)
    z = scaler.transform(y)
    assert np.allclose(scaler.inverse_transform(z), y)
    assert np.allclose(scaler.inverse_transform(torch.tensor(z)).numpy(), y)
    # A Normal(m, s) predictive for z is Normal(m*std + mean, s*std) for y: check the exact density.
    m, s = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    zt = torch.tensor(z)
    log_pz = torch.distributions.Normal(m, s).log_prob(zt)
    mean_y, sd_y = scaler.inverse_transform(m), scaler.inverse_transform_scale(s)
    log_py = torch.distributions.Normal(mean_y, sd_y).log_prob(torch.tensor(y))
    assert torch.allclose(scaler.inverse_transform_log_density(log_pz), log_py)
    assert torch.allclose(scaler.inverse_transform_variance(s**2), sd_y**2)
    # Constant columns are guarded and reported.
    cols = zd.Standardizer.fit(np.c_[y, np.full(200, 7.0)])
    assert cols.std[1] == 1.0 and cols.constant_columns.tolist() == [1]
    assert np.all(cols.transform(np.c_[y, np.full(200, 7.0)])[:, 1] == 0)


# ---------------------------------------------------------------- sklearn sets


def test_digits_split_is_fixed_and_scaled():
    a, b, other = zd.load("digits"), zd.load("digits"), zd.load("digits", seed=1)
    assert a.train["x"].shape == (1438, 64) and a.test["x"].shape == (359, 64)
    assert torch.equal(a.train["x"], b.train["x"]) and torch.equal(a.test["y"], b.test["y"])
    assert not np.array_equal(a.info["test_index"], other.info["test_index"])
    every = np.concatenate([a.info["train_index"], a.info["test_index"]])
    assert np.array_equal(np.sort(every), np.arange(1797))
    assert a.train["x"].min() == 0.0 and a.train["x"].max() == 1.0  # 16 grey levels / 16
    assert a.train["y"].dtype == torch.int64 and set(a.train["y"].tolist()) == set(range(10))


def test_diabetes_standardised_with_training_statistics():
    from sklearn.datasets import load_diabetes

    ds = zd.load("diabetes")
    raw = load_diabetes(scaled=False)
    train = ds.info["train_index"]
    assert ds.train["x"].shape == (354, 10) and ds.test["x"].shape == (88, 10)
    x = ds.train["x"].double()
    assert torch.allclose(x.mean(0), torch.zeros(10).double(), atol=1e-6)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(10).double(), atol=1e-6)
    assert ds.info["y_scaler"].mean == pytest.approx(raw.target[train].mean())
    back = ds.info["y_scaler"].inverse_transform(ds.test["y"].double()).numpy()
    assert np.allclose(back, raw.target[ds.info["test_index"]], rtol=1e-6)


# ---------------------------------------------------------------- faces


def test_faces_counts_and_images(data_root):
    ds = zd.load("faces")
    assert ds.train["x"].shape == (320, 4096) and ds.test["x"].shape == (80, 4096)
    assert ds.train["x"].dtype == torch.float32
    assert torch.equal(ds.train["x"], ds.train["x"].round())  # counts
    assert ds.train["x"].min() == 0 and ds.train["x"].max() == 242  # README: 0..242
    assert ds.test["x"].min() == 1 and ds.test["x"].max() == 238  # README: 1..238
    img = zd.olivetti_images()
    assert img["images"].shape == (400, 64, 64) and img["target"].max() == 39
    # README: row.reshape(64, 64).T is the upright image of face train_index[row].
    for part, index in (("train", img["train_index"]), ("test", img["test_index"])):
        for row in (0, len(index) - 1):
            upright = ds.split(part)["x"][row].numpy().reshape(64, 64).T
            assert np.array_equal(upright, img["images"][index[row]])


# ---------------------------------------------------------------- posteriordb

POSTERIOR_PARAMS = {
    "eight_schools-eight_schools_noncentered": [f"theta[{i}]" for i in range(1, 9)] + ["mu", "tau"],
    "eight_schools-eight_schools_centered": [f"theta[{i}]" for i in range(1, 9)] + ["mu", "tau"],
    "arK-arK": ["alpha"] + [f"beta[{i}]" for i in range(1, 6)] + ["sigma"],
    "earnings-logearn_height": ["beta[1]", "beta[2]", "sigma"],
    "kidiq-kidscore_momiq": ["beta[1]", "beta[2]", "sigma"],
    "mesquite-logmesquite_logvolume": ["beta[1]", "beta[2]", "sigma"],
    "sblrc-blr": [f"beta[{i}]" for i in range(1, 6)] + ["sigma"],
}
POSTERIOR_N = {
    "eight_schools-eight_schools_noncentered": ("J", 8, "y"),
    "eight_schools-eight_schools_centered": ("J", 8, "y"),
    "arK-arK": ("T", 200, "y"),
    "earnings-logearn_height": ("N", 1192, "earn"),
    "kidiq-kidscore_momiq": ("N", 434, "kid_score"),
    "mesquite-logmesquite_logvolume": ("N", 46, "weight"),
    "sblrc-blr": ("N", 100, "y"),
}


@pytest.mark.parametrize("name", POSTERIORS)
def test_posteriordb_data_and_reference_draws(data_root, name):
    assert set(POSTERIOR_PARAMS) == set(POSTERIORS)
    ds = zd.load(name)
    draws = ds.info["reference_draws"]
    assert list(draws) == POSTERIOR_PARAMS[name]
    assert all(v.shape == (10, 1000) and v.dtype == np.float64 for v in draws.values())
    size_key, n, obs = POSTERIOR_N[name]
    assert ds.train[size_key].dtype == torch.int64 and ds.train[size_key].item() == n
    assert ds.train[obs].shape == (n,)
    assert all(t.dtype in (torch.int64, torch.float64) for t in ds.train.values())
    # posteriordb's reference means were computed from these draws (README); mean squares are
    # stored to ~8 significant digits.
    summary = ds.info["reference_summary"]
    means = dict(zip(summary["mean_value"]["names"], summary["mean_value"]["mean_value"]))
    sq = summary["mean_squared_value"]
    squares = dict(zip(sq["names"], sq["mean_squared_value"]))
    for param, values in draws.items():
        assert values.mean() == pytest.approx(means[param], rel=1e-9, abs=1e-12)
        assert (values**2).mean() == pytest.approx(squares[param], rel=1e-6)
    assert ds.info["posteriordb"]["posterior"]["name"] == name
    again = zd.load_reference_draws(name)
    assert all(np.array_equal(again[k], draws[k]) for k in draws)


def test_posteriordb_real_data_are_float64(data_root):
    ds = zd.load("sblrc-blr")
    assert ds.train["X"].shape == (100, 5) and ds.train["X"].dtype == torch.float64
    assert ds.train["y"].dtype == torch.float64


# ---------------------------------------------------------------- checksums and paths


def test_corrupted_copy_fails_checksum_naming_file_and_hashes(data_root, tmp_path):
    root = _copy_subset(data_root, YACHT, tmp_path / "data")
    assert zd.load("uci-yacht", data_dir=root).train["x"].shape == (277, 6)
    target = root / "uci/yacht/data.csv"
    expected = checksums.read_checksums(root)["uci/yacht/data.csv"]
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0x01
    target.write_bytes(bytes(blob))
    stat = target.stat()  # make sure the change is seen even on a coarse-mtime file system
    import os

    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(zd.ChecksumError) as error:
        zd.load("uci-yacht", data_dir=root)
    message = str(error.value)
    assert str(target) in message and expected in message
    assert checksums.sha256_of(target) in message


def test_each_unchanged_file_is_hashed_once_per_process(data_root, tmp_path, monkeypatch):
    root = _copy_subset(data_root, YACHT, tmp_path / "data")
    hashed = []
    real = checksums.sha256_of
    monkeypatch.setattr(checksums, "sha256_of", lambda path: hashed.append(path) or real(path))
    zd.load("uci-yacht", data_dir=root)
    zd.load("uci-yacht", data_dir=root, split=1)
    assert sorted(p.name for p in hashed) == ["data.csv", "splits.json"]


def test_root_without_checksums_passes_without_warning(data_root, tmp_path):
    root = _copy_subset(data_root, YACHT, tmp_path / "data", with_checksums=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zd.load("uci-yacht", data_dir=root).test["x"].shape == (31, 6)


def test_unlisted_file_in_checksummed_root_warns(data_root, tmp_path):
    root = _copy_subset(data_root, YACHT, tmp_path / "data")
    listing = root / "CHECKSUMS.sha256"
    listing.write_text(
        "".join(l + "\n" for l in listing.read_text().splitlines() if "data.csv" not in l)
    )
    with pytest.warns(UserWarning, match="not listed"):
        zd.load("uci-yacht", data_dir=root)


def test_wrong_data_dir_gives_one_line_error_with_tried_paths(tmp_path):
    wrong = tmp_path / "no-such-dir"
    with pytest.raises(zd.DataNotFoundError) as error:
        zd.load("uci-yacht", data_dir=wrong)
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert "\n" not in message
    assert "uci/yacht/data.csv" in message and str(wrong / "uci/yacht/data.csv") in message
    assert "ZOO_DATA" in message and "data_dir" in message and "github.com" in message


def test_zoo_data_env_var_is_honoured(data_root, tmp_path, monkeypatch):
    root = _copy_subset(data_root, YACHT, tmp_path / "env-data")
    monkeypatch.setenv("ZOO_DATA", str(root))
    assert zd.load("uci-yacht").info["path"] == str(root / "uci/yacht/data.csv")
    # An explicit data_dir wins over the variable.
    assert zd.load("uci-yacht", data_dir=data_root).info["path"].startswith(str(data_root))
    # A set variable is not silently replaced by another folder.
    with pytest.raises(zd.DataNotFoundError, match=r"\$ZOO_DATA") as error:
        zd.load("uci-concrete")
    assert str(root / "uci/concrete/data.csv") in str(error.value)


def test_default_search_order_and_error_lists_every_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    roots = paths.candidate_roots()
    assert roots[-1] == (tmp_path / "cache" / "ppl-zoo" / "data", "user cache")
    beside = paths.checkout_data_dir()
    assert (roots[0][0] == beside) == beside.is_dir()
    with pytest.raises(zd.DataNotFoundError) as error:
        paths.find_file("no/such/file.npz")
    message = str(error.value)
    assert "\n" not in message
    assert all(str(root / "no/such/file.npz") in message for root, _ in roots)


def test_unknown_name_and_bad_options():
    with pytest.raises(KeyError) as error:
        zd.load("mnsit")
    message = str(error.value)
    assert "'mnsit'" in message and "mnist" in message and "uci-yacht" in message
    assert "eight_schools-eight_schools_noncentered" in message
    with pytest.raises(ValueError, match="split"):
        zd.load("digits", split=1)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        zd.load("uci-protein-tertiary-structure", split=99)
    with pytest.raises(ValueError, match=r"0\.\.19"):
        zd.load("uci-yacht", split=-1)
    with pytest.raises(ValueError, match="download=True is not supported.*github.com"):
        zd.load("mnist", download=True)


def test_describe_reports_presence_and_paths(tmp_path):
    rows = {row.name: row for row in zd.describe(data_dir=tmp_path)}
    assert set(rows) == set(zd.list_datasets())
    assert rows["digits"].present and rows["diabetes"].present
    assert not rows["mnist"].present and str(tmp_path) in rows["mnist"].note
    assert "mnist/mnist.npz" in rows["mnist"].note
    # Rows read as records, mappings (as the `zoo data` command does) and tuples.
    row = rows["digits"]
    name, present, path, note = row
    assert row["name"] == name == "digits" and row.get("note") == note and present is True
    assert dict(row)["path"] == path


def test_describe_finds_the_shared_data(data_root):
    rows = zd.describe(data_dir=data_root)
    assert all(row.present for row in rows), [row for row in rows if not row.present]
    by_name = {row.name: row for row in rows}
    assert by_name["uci-yacht"].path == str(data_root / "uci" / "yacht")
