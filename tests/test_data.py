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
