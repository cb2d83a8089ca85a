"""Tests of npvae.data: generated datasets, IDX / .mat files, downloads, binarization.

No test touches the network: downloads go to a loopback HTTP server serving
files the test wrote.
"""
import numpy as np
import pytest

from npvae import data


# ---------------------------------------------------------------- glyphs

def test_glyphs_shapes_range_labels(tmp_path):
    ds = data.load("glyphs", n_train=200, n_test=50, cache_dir=tmp_path)
    assert ds.x_train.shape == (200, 784) and ds.x_test.shape == (50, 784)
    assert ds.x_train.dtype == np.float64
    assert ds.image_shape == (28, 28)
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    # every image has ink reaching full intensity and mostly dark background
    assert np.allclose(ds.x_train.max(axis=1), 1.0)
    assert 0.03 < ds.x_train.mean() < 0.35
    # balanced labels: exactly n / 10 of each digit
    assert np.array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 20))
    assert np.array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 5))
    assert ds.y_train.dtype == np.int64


def test_glyphs_deterministic_per_seed_and_cached(tmp_path):
    a = data.load("glyphs", n_train=30, n_test=20, seed=3, cache_dir=tmp_path / "a")
    b = data.load("glyphs", n_train=30, n_test=20, seed=3, cache_dir=tmp_path / "b")
    c = data.load("glyphs", n_train=30, n_test=20, seed=4, cache_dir=tmp_path / "a")
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)
    # the cached copy gives the very same numbers as the fresh one
    again = data.load("glyphs", n_train=30, n_test=20, seed=3, cache_dir=tmp_path / "a")
    assert again.source.endswith(".npz")
    assert np.array_equal(again.x_train, a.x_train)
    # the test set does not depend on the number of training examples
    d = data.load("glyphs", n_train=10, n_test=20, seed=3, cache_dir=tmp_path / "a")
    assert np.array_equal(d.x_test, a.x_test)


def test_glyphs_classes_differ(tmp_path):
    """Class means are far apart compared with the spread inside a class."""
    ds = data.load("glyphs", n_train=300, n_test=10, cache_dir=tmp_path)
    means = np.stack([ds.x_train[ds.y_train == k].mean(axis=0) for k in range(10)])
    between = np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(10, dtype=bool)]
    assert between.min() > 1.0


def test_glyphs_corrupt_cache_is_regenerated(tmp_path):
    a = data.load("glyphs", n_train=20, n_test=10, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a zip file")
    b = data.load("glyphs", n_train=20, n_test=10, cache_dir=tmp_path)
    assert np.array_equal(a.x_train, b.x_train)
    assert np.load(path, allow_pickle=False)["x_train"].shape == (20, 784)


def test_glyphs_env_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NPVAE_CACHE", str(tmp_path / "env"))
    data.load("glyphs", n_train=10, n_test=10)
    assert len(list((tmp_path / "env").iterdir())) == 1


def test_glyphs_float32(tmp_path):
    ds = data.load("glyphs", n_train=10, n_test=10, cache_dir=tmp_path, dtype=np.float32)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32


# ---------------------------------------------------------------- load() arguments

def test_unknown_name_lists_names():
    with pytest.raises(ValueError, match="glyphs.*fashion-mnist.*mnist.*frey-faces.*bars.*ppca"):
        data.load("cifar")


def test_bad_binarize_mode():
    with pytest.raises(ValueError, match="binarize"):
        data.load("glyphs", binarize="yes")
