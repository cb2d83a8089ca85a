"""Tests of npvae.data: generated datasets, IDX / .mat files, downloads, binarization.

No test touches the network: downloads go to a loopback HTTP server serving
files the test wrote.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    """The labels mean something: class means are apart, and the nearest class
    mean recognises most test digits (84% for this seed; chance is 10%)."""
    ds = data.load("glyphs", n_train=500, n_test=200, cache_dir=tmp_path)
    means = np.stack([ds.x_train[ds.y_train == k].mean(axis=0) for k in range(10)])
    between = np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(10, dtype=bool)]
    assert between.min() > 1.0
    pred = np.argmin(((ds.x_test[:, None] - means[None]) ** 2).sum(axis=-1), axis=1)
    assert np.mean(pred == ds.y_test) > 0.7


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


def test_unexpected_option():
    with pytest.raises(ValueError, match="unexpected option.*colour"):
        data.load("bars", colour="red")


# ---------------------------------------------------------------- binarization

def test_binarize_threshold_and_none():
    x = np.array([[0.0, 0.2, 0.5, 0.51, 1.0]])
    assert np.array_equal(data.binarize(x, "threshold"), [[0, 0, 0, 1, 1]])
    assert data.binarize(x, None) is x
    assert data.binarize(x.astype(np.float32), "threshold").dtype == np.float32


def test_binarize_dynamic_is_bernoulli():
    """Mean of fresh draws = the grey value, within 4 standard errors."""
    rng = np.random.default_rng(0)
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    draws = data.binarize(np.tile(p, (20000, 1)), "dynamic", rng)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    se = np.sqrt(p * (1 - p) / 20000)
    assert np.all(np.abs(draws.mean(axis=0) - p) <= 4 * se + 1e-12)
    # a second call draws afresh
    again = data.binarize(np.tile(p, (20000, 1)), "dynamic", rng)
    assert not np.array_equal(draws, again)


def test_binarize_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.binarize(np.array([0.5, 1.5]), "threshold")
    with pytest.raises(ValueError, match="mode"):
        data.binarize(np.array([0.5]), "stochastic")
    with pytest.raises(ValueError, match="rng"):
        data.binarize(np.array([0.5]), "dynamic", rng=None)


def test_load_binarization_modes(tmp_path):
    kw = dict(n_train=20, n_test=10, cache_dir=tmp_path)
    grey = data.load("glyphs", **kw)
    thr = data.load("glyphs", binarize="threshold", **kw)
    dyn = data.load("glyphs", binarize="dynamic", **kw)
    assert grey.binarization is None and thr.binarization == "threshold"
    assert np.array_equal(thr.x_train, (grey.x_train > 0.5).astype(float))
    assert np.array_equal(thr.binarize(thr.x_train, np.random.default_rng(0)), thr.x_train)
    # dynamic: the data stay grey, every call of Dataset.binarize draws binary data
    assert dyn.binarization == "dynamic" and np.array_equal(dyn.x_train, grey.x_train)
    rng = np.random.default_rng(1)
    b1, b2 = dyn.binarize(dyn.x_train, rng), dyn.binarize(dyn.x_train, rng)
    assert set(np.unique(b1)) <= {0.0, 1.0} and not np.array_equal(b1, b2)
    with pytest.raises(ValueError, match="real-valued"):
        data.load("ppca", binarize="threshold")


# ---------------------------------------------------------------- bars

def test_bars_3x3_exact_distribution():
    patterns, probs = data.bars_distribution(3)
    assert patterns.shape == (12, 9) and probs.shape == (12,)
    assert np.isclose(probs.sum(), 1.0, atol=1e-15)
    assert len(np.unique(patterns, axis=0)) == 12                  # all distinct
    assert not np.any(patterns.sum(axis=1) == 0) and not np.any(patterns.sum(axis=1) == 9)
    grids = patterns.reshape(12, 3, 3)
    vertical = np.all(grids == grids[:, :1, :], axis=(1, 2))      # every row the same
    horizontal = np.all(grids == grids[:, :, :1], axis=(1, 2))
    assert vertical.sum() == 6 and horizontal.sum() == 6 and not np.any(vertical & horizontal)
    assert np.allclose(probs[vertical], 1 / 9) and np.allclose(probs[horizontal], 1 / 18)
    entropy = -np.sum(probs * np.log(probs))
    assert abs(entropy - 2.428) < 1e-3
    assert np.isclose(entropy, 2 / 3 * np.log(9) + 1 / 3 * np.log(18))


@pytest.mark.parametrize("n", [2, 4, 5])
def test_bars_larger_worlds(n):
    patterns, probs = data.bars_distribution(n)
    assert patterns.shape == (2 * (2 ** n - 2), n * n)
    assert np.isclose(probs.sum(), 1.0)
    assert len(np.unique(patterns, axis=0)) == len(patterns)
    assert set(np.unique(patterns)) == {0.0, 1.0}


def test_bars_samples_follow_the_distribution():
    """Empirical pattern frequencies within 4 standard errors of the exact ones."""
    ds = data.load("bars", n_train=20000, n_test=100, seed=1)
    assert ds.image_shape == (3, 3) and ds.x_train.shape == (20000, 9)
    patterns, probs = data.bars_distribution(3)
    index = {p.tobytes(): i for i, p in enumerate(patterns)}
    counts = np.bincount([index[r.tobytes()] for r in ds.x_train], minlength=12)
    se = np.sqrt(probs * (1 - probs) / 20000)
    assert np.all(np.abs(counts / 20000 - probs) <= 4 * se)
    assert np.array_equal(ds.y_train, (np.all(ds.x_train.reshape(-1, 3, 3)
                                              == ds.x_train.reshape(-1, 3, 3)[:, :, :1],
                                              axis=(1, 2))).astype(int))
    assert abs(ds.info["entropy"] - 2.428) < 1e-3


def test_bars_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        data.bars_distribution(1)


# ---------------------------------------------------------------- ppca

def _ppca(seed=0, x_dim=6, z_dim=3, sigma2=0.3):
    return data.PPCA(x_dim, z_dim, sigma2, rng=np.random.default_rng(seed))


def test_ppca_orthogonal_columns():
    m = _ppca()
    gram = m.W.T @ m.W
    assert np.allclose(gram, np.diag(np.diag(gram)), atol=1e-12)
    assert not np.allclose(np.diag(gram), np.diag(gram)[0])      # distinct lengths


def test_ppca_log_px_matches_scipy():
    from scipy.stats import multivariate_normal
    m = _ppca()
    x, _ = m.sample(50, np.random.default_rng(1))
    ref = multivariate_normal(mean=m.b, cov=m.W @ m.W.T + m.sigma2 * np.eye(6)).logpdf(x)
    assert np.allclose(m.log_px(x), ref, rtol=0, atol=1e-10)


def test_ppca_posterior_matches_joint_gaussian_conditioning():
    """p(z | x) from the joint Gaussian of (z, x) with full matrices:
    mean = C_zx C_xx^{-1} (x - b), cov = I - C_zx C_xx^{-1} C_xz."""
    m = _ppca()
    x, _ = m.sample(20, np.random.default_rng(2))
    c_xx = m.W @ m.W.T + m.sigma2 * np.eye(6)
    c_zx = m.W.T
    gain = np.linalg.solve(c_xx, c_zx.T).T                        # C_zx C_xx^{-1}
    mean = (x - m.b) @ gain.T
    cov = np.eye(3) - gain @ c_zx.T
    mu, logvar = m.posterior(x)
    assert np.allclose(mu, mean, atol=1e-12)
    assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-12)   # diagonal, as derived
    assert np.allclose(np.exp(logvar), np.diag(cov)[None, :], atol=1e-12)


def test_ppca_samples_have_model_covariance():
    m = _ppca(x_dim=3, z_dim=2)
    x, z = m.sample(40000, np.random.default_rng(3))
    # each entry of the sample covariance within 4 SE; SE^2 = (C_ij^2 + C_ii C_jj) / n
    c = m.covariance()
    se = np.sqrt((c ** 2 + np.outer(np.diag(c), np.diag(c))) / 40000)
    assert np.all(np.abs(np.cov(x.T) - c) <= 4 * se)
    assert z.shape == (40000, 2)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-3)])
def test_ppca_to_vae_weights_are_exact_log_px(dtype, tol):
    """q is the exact posterior, so log p(x, z) - log q(z | x) = log p(x) for every z."""
    m = _ppca()
    vae = m.to_vae(dtype=dtype)
    assert vae.dtype == dtype and vae.params["dec.mean.W"].shape == (3, 6)
    x, _ = m.sample(8, np.random.default_rng(4))
    logw = vae.log_importance_weights(x.astype(dtype), 50, np.random.default_rng(5))
    assert logw.shape == (50, 8)
    assert np.allclose(logw, m.log_px(x)[None, :], atol=tol, rtol=0)
    mu, logvar = vae.encode(x.astype(dtype))
    ref_mu, ref_logvar = m.posterior(x)
    assert np.allclose(mu, ref_mu, atol=tol) and np.allclose(logvar, ref_logvar, atol=tol)


def test_ppca_to_vae_weights_vary_for_a_wrong_encoder():
    """The constancy above is a real check: perturb the encoder and it fails."""
    m = _ppca()
    vae = m.to_vae()
    vae.params["enc.logvar.b"][...] += 0.3
    x, _ = m.sample(4, np.random.default_rng(6))
    logw = vae.log_importance_weights(x, 50, np.random.default_rng(7))
    assert np.std(logw, axis=0).min() > 1e-3


def test_load_ppca(tmp_path):
    ds = data.load("ppca", n_train=100, n_test=30, seed=2, x_dim=5, z_dim=2, sigma2=0.2)
    assert ds.x_train.shape == (100, 5) and ds.x_test.shape == (30, 5)
    assert isinstance(ds.model, data.PPCA) and ds.model.sigma2 == 0.2
    assert ds.y_train is None and ds.image_shape is None
    again = data.load("ppca", n_train=100, n_test=30, seed=2, x_dim=5, z_dim=2, sigma2=0.2)
    assert np.array_equal(ds.x_train, again.x_train) and np.array_equal(ds.model.W, again.model.W)


def test_ppca_bad_arguments():
    with pytest.raises(ValueError, match="z_dim"):
        data.PPCA(3, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigma2"):
        data.PPCA(3, 2, 0.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        data.PPCA(3, 2, rng=0)


# ---------------------------------------------------------------- IDX files

def _fake_idx_dir(directory, n_train=12, n_test=7, gz=True, seed=0):
    """Write the four IDX files of a tiny MNIST-like dataset; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        data.write_idx(directory / (name + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    a = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    data.write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    assert path.read_bytes()[:4] == b"\x1f\x8b\x08\x00" or int.from_bytes(
        path.read_bytes()[:4], "big") == 0x0803
    back = data.read_idx(path, magic=2051)
    assert back.dtype == np.uint8 and np.array_equal(back, a)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), gz=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_idx_round_trip_any_shape(tmp_path_factory, shape, gz, seed):
    a = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("idx") / ("a.gz" if gz else "a")
    data.write_idx(path, a)
    back = data.read_idx(path)
    assert back.shape == a.shape and np.array_equal(back, a)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(6, dtype=np.uint8)
    path = tmp_path / "labels"                     # gzip data, no .gz suffix
    data.write_idx(path, a, compress=True)
    assert np.array_equal(data.read_idx(path, magic=2049), a)


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_dataset_from_root(tmp_path, gz):
    arrays = _fake_idx_dir(tmp_path / "m", gz=gz)
    ds = data.load("mnist", root=tmp_path / "m")
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (7, 784)
    assert ds.image_shape == (28, 28) and ds.source == str(tmp_path / "m")
    assert np.array_equal(ds.x_train, arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0)
    assert np.array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.y_train.dtype == np.int64 and ds.x_train.max() <= 1.0
    single = data.load("mnist", root=tmp_path / "m", dtype=np.float32)
    assert single.x_train.dtype == np.float32 and np.allclose(single.x_train, ds.x_train)
    sub = data.load("mnist", root=tmp_path / "m", n_train=5, n_test=3, binarize="threshold")
    assert sub.x_train.shape == (5, 784) and sub.y_train.shape == (5,)
    assert set(np.unique(sub.x_train)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match=r"n_train must lie in \[1, 12\]"):
        data.load("mnist", root=tmp_path / "m", n_train=13)


def _header(magic, dims):
    return int(magic).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("content,message", [
    (b"\x00\x00", "truncated IDX file"),
    (_header(2051, (2, 3, 3))[:10], "truncated IDX header"),
    (_header(2051, (2, 3, 3)) + bytes(17), r"truncated: header \(2, 3, 3\) needs 18"),
    (_header(2051, (2, 3, 3)) + bytes(19), "trailing bytes"),
    (_header(2049, (2,)) + bytes(2), "wrong magic number 2049, expected 2051"),
    (b"PK\x03\x04" + bytes(40), "not an IDX file"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt or truncated gzip"),
])
def test_read_idx_bad_files(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        data.read_idx(path, magic=2051)
    assert "bad-idx" in str(err.value)          # names the file


def test_truncated_gzip_file(tmp_path):
    path = tmp_path / "t.gz"
    data.write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="t.gz.*corrupt or truncated gzip"):
        data.read_idx(path)


def test_label_count_mismatch(tmp_path):
    _fake_idx_dir(tmp_path, n_train=12)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(ValueError, match="11 labels but .*12 images"):
        data.load("mnist", root=tmp_path)


def test_images_and_labels_swapped(tmp_path):
    _fake_idx_dir(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    tmp = tmp_path / "swap"
    images.rename(tmp)
    labels.rename(images)
    tmp.rename(labels)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: wrong magic number 2049"):
        data.load("mnist", root=tmp_path)


def test_missing_dataset_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", (str(tmp_path / "debian"),))
    with pytest.raises(FileNotFoundError) as err:
        data.load("fashion-mnist", cache_dir=tmp_path / "cache")
    msg = str(err.value)
    for part in ("debian", "cache", "apt-get install -y dataset-fashion-mnist", "root=",
                 "download=True"):
        assert part in msg
    with pytest.raises(FileNotFoundError, match="mnist.*not found in .*nowhere"):
        data.load("mnist", root=tmp_path / "nowhere")


def test_incomplete_directory_is_not_used(tmp_path):
    _fake_idx_dir(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load("mnist", root=tmp_path / "m")


def test_system_dir_then_cache(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", (str(tmp_path / "debian"),))
    _fake_idx_dir(tmp_path / "cache" / "fashion-mnist", seed=1)
    ds = data.load("fashion-mnist", cache_dir=tmp_path / "cache")
    assert ds.source == str(tmp_path / "cache" / "fashion-mnist")
    _fake_idx_dir(tmp_path / "debian", gz=False, seed=2)
    ds = data.load("fashion-mnist", cache_dir=tmp_path / "cache")
    assert ds.source == str(tmp_path / "debian")


# ---------------------------------------------------------------- Frey faces

def _fake_frey(path, n=40, seed=0):
    from scipy.io import savemat
    ff = np.random.default_rng(seed).integers(0, 256, (560, n), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"ff": ff})
    return ff


def test_frey_faces_from_root(tmp_path):
    ff = _fake_frey(tmp_path / "frey_rawface.mat")
    ds = data.load("frey-faces", root=tmp_path)
    assert ds.image_shape == (28, 20)
    assert ds.x_train.shape == (36, 560) and ds.x_test.shape == (4, 560)
    assert np.array_equal(ds.x_train[0], ff[:, 0] / 255.0)     # a face is a column of ff
    assert np.array_equal(ds.x_test[-1], ff[:, -1] / 255.0)    # the last 10% is the test set
    assert ds.y_train is None


@pytest.mark.parametrize("content,message", [
    ({"faces": np.zeros((560, 3), np.uint8)}, "no variable 'ff'"),
    ({"ff": np.zeros((100, 3), np.uint8)}, r"shape \(560, N\)"),
    ({"ff": np.zeros((560, 3))}, "unsigned bytes"),
])
def test_frey_faces_bad_content(tmp_path, content, message):
    from scipy.io import savemat
    savemat(tmp_path / "frey_rawface.mat", content)
    with pytest.raises(ValueError, match=message):
        data.load("frey-faces", root=tmp_path)


def test_frey_faces_corrupt_file(tmp_path):
    (tmp_path / "frey_rawface.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(10))
    with pytest.raises(ValueError, match="frey_rawface.mat: not a readable MATLAB file"):
        data.load("frey-faces", root=tmp_path)


def test_frey_faces_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="frey_rawface.mat.*download=True"):
        data.load("frey-faces", cache_dir=tmp_path)


# ---------------------------------------------------------------- downloads (loopback only)

@pytest.fixture
def data_http_server(tmp_path):
    """Serve tmp_path/"served" on 127.0.0.1 from a thread; yields (directory, base_url)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sums(directory):
    return {p.name: data.sha256(p) for p in directory.iterdir()}


def test_download_success(tmp_path, data_http_server):
    served, url = data_http_server
    arrays = _fake_idx_dir(served)
    cache = tmp_path / "cache"
    ds = data.load("mnist", download=True, cache_dir=cache, base_url=url,
                   checksums=_sums(served))
    assert np.array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(
        p.name for p in served.iterdir())                     # no temporary files left
    # the next load finds the cached files without downloading
    for p in served.iterdir():
        p.unlink()
    again = data.load("mnist", cache_dir=cache)
    assert np.array_equal(again.x_test, ds.x_test)


def test_download_checksum_mismatch_leaves_nothing(tmp_path, data_http_server):
    served, url = data_http_server
    _fake_idx_dir(served)
    sums = _sums(served)
    sums["train-images-idx3-ubyte.gz"] = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="SHA-256 mismatch for .*train-images-idx3-ubyte.gz"):
        data.load("mnist", download=True, cache_dir=cache, base_url=url, checksums=sums)
    assert not (cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert [p.name for p in (cache / "mnist").iterdir()] == []


def test_download_uses_the_known_checksum_table(tmp_path, data_http_server):
    """Without checksums= the published SHA-256 applies: fake files fail it."""
    served, url = data_http_server
    _fake_idx_dir(served)
    with pytest.raises(ValueError, match="SHA-256 mismatch.*expected 440fcabf"):
        data.load("mnist", download=True, cache_dir=tmp_path, base_url=url)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_404(tmp_path, data_http_server):
    _, url = data_http_server
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        data.load("mnist", download=True, cache_dir=tmp_path, base_url=url)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_frey_unknown_checksum_warns(tmp_path, data_http_server):
    served, url = data_http_server
    _fake_frey(served / "frey_rawface.mat", n=20)
    with pytest.warns(UserWarning, match="no known SHA-256 for frey_rawface.mat"):
        ds = data.load("frey-faces", download=True, cache_dir=tmp_path / "c", base_url=url)
    assert ds.x_train.shape == (18, 560)
    assert (tmp_path / "c" / "frey-faces" / "frey_rawface.mat").is_file()


def test_download_into_root(tmp_path, data_http_server):
    served, url = data_http_server
    _fake_idx_dir(served)
    ds = data.load("mnist", root=tmp_path / "mine", download=True, base_url=url,
                   checksums=_sums(served))
    assert ds.source == str(tmp_path / "mine") and len(list((tmp_path / "mine").iterdir())) == 4


def test_frey_download_is_parsed_before_it_enters_the_cache(tmp_path, data_http_server):
    # no published checksum for frey_rawface.mat: an HTML error page served in
    # its place must be refused and leave nothing behind, so a later try fetches again
    served, url = data_http_server
    (served / "frey_rawface.mat").write_bytes(b"<html>not found</html>")
    cache = tmp_path / "cache"
    for _ in range(2):
        with pytest.raises(ValueError, match="not a readable MATLAB"):
            data.load("frey-faces", download=True, cache_dir=cache, base_url=url)
        assert not list((cache / "frey-faces").glob("*"))
    ff = _fake_frey(served / "frey_rawface.mat")
    with pytest.warns(UserWarning, match="no known SHA-256"):
        ds = data.load("frey-faces", download=True, cache_dir=cache, base_url=url)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == ff.shape[1]


def test_download_cut_short_is_refused(tmp_path):
    import http.server
    import threading

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)          # then the connection closes

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        dest = tmp_path / "f.bin"
        with pytest.raises(FileNotFoundError, match="cut short: 10 of 1000 bytes"):
            data.download(f"http://127.0.0.1:{server.server_address[1]}/f.bin", dest)
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
