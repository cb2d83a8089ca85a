"""npvae.evaluate on data whose log p(x) is known exactly (ppca)."""
import numpy as np
import pytest

import npvae
from npvae import evaluate


@pytest.fixture(scope="module")
def ppca_setup():
    ds = npvae.data.load("ppca", seed=5, n_train=10, n_test=40)
    model = ds.model.to_vae()
    # an imperfect encoder: the exact posterior's mean shifted and its variance
    # inflated, so the IS estimate has a real gap to close as K grows
    model.params["enc.mu.b"] += 0.3
    model.params["enc.logvar.b"] += 0.5
    return model, ds.x_test, ds.model.log_px(ds.x_test)


def test_is_estimate_converges_to_the_exact_log_px_on_ppca(ppca_setup):
    model, x, exact = ppca_setup
    rng = np.random.default_rng(0)
    gaps, ses = [], []
    for K in (1, 10, 100, 10000):
        # R independent estimates per example give the estimator's spread at this K
        est = np.stack([evaluate.log_likelihood(model, x, n_samples=K, rng=rng) for _ in range(8)])
        gap = exact - est                                 # (8, M): >= 0 in expectation (7.3)
        gaps.append(gap.mean())
        ses.append(gap.std(ddof=1) / np.sqrt(gap.size))
    for a in range(3):                                    # the gap shrinks, each step by > 4 SE
        assert gaps[a] - gaps[a + 1] > 4 * np.hypot(ses[a], ses[a + 1]), (gaps, ses)
    assert gaps[0] > 1.0                                  # K = 1 (the ELBO) is visibly below
    assert abs(gaps[-1]) < max(0.01, 4 * ses[-1]), (gaps, ses)    # K = 10000: converged


def test_chunking_does_not_change_the_estimate(ppca_setup):
    # the noise is drawn in the same order whatever the chunk, so the results agree
    model, x, _ = ppca_setup
    a = evaluate.log_likelihood(model, x, n_samples=50, rng=np.random.default_rng(1))
    b = evaluate.log_likelihood(model, x, n_samples=50, rng=np.random.default_rng(1),
                                chunk=7, batch_size=40)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_elbo_is_below_the_exact_log_px(ppca_setup):
    model, x, exact = ppca_setup
    elbo = evaluate.elbo(model, x, np.random.default_rng(2), n_samples=200)
    assert np.all(elbo < exact)


def test_bad_arguments(ppca_setup):
    model, x, _ = ppca_setup
    with pytest.raises(ValueError, match="n_samples"):
        evaluate.log_likelihood(model, x, n_samples=0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        evaluate.log_likelihood(model, x, n_samples=5, rng=0)
    with pytest.raises(ValueError, match="chunk"):
        evaluate.log_likelihood(model, x, n_samples=5, rng=np.random.default_rng(0), chunk=2.5)
    with pytest.raises(ValueError, match="x"):
        evaluate.log_likelihood(model, x[:, :3], n_samples=5, rng=np.random.default_rng(0))
