"""REINFORCE, STL and IWAE estimators: exact identities and finite-difference checks.

Derivations: derivations/06_reinforce.md, derivations/07_importance_sampling.md.
Gradient checks run in float64 with relative error < 1e-7.  The score-function
and STL gradients are not gradients of the loss they return; each is checked
against centred differences of the surrogate whose gradient it is (noise,
learning signal and, for STL, q's parameters held fixed), which tests the
score formulas (6.4)-(6.6) and the path-only gradient (7.10).
"""
import numpy as np
import pytest

import npvae
from npvae import distributions as dist
from npvae import estimators as E
from npvae import gradcheck

TOL = 1e-7


def tiny(likelihood="bernoulli", seed=0, dtype=np.float64, hidden=(5,)):
    rng = np.random.default_rng(seed)
    model = npvae.VAE(6, 2, hidden=hidden, likelihood=likelihood, rng=rng, dtype=dtype,
                      init_scale=0.5, gaussian_mean="identity")
    for p in model.params.values():          # non-zero biases so a wrong backward cannot hide
        p += (0.1 * rng.standard_normal(p.shape)).astype(dtype)
    if likelihood == "bernoulli":
        x = (rng.random((4, 6)) > 0.5).astype(dtype)
    else:
        x = rng.standard_normal((4, 6)).astype(dtype)
    return model, x, rng


# ---------------------------------------------------------------- IWAE

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_k1_equals_estimator_a(likelihood):
    model, x, rng = tiny(likelihood)
    eps = rng.standard_normal((1, 4, 2))
    loss_a, grads_a = E.reparam(model, x, eps=eps, kl="mc")
    loss_k, grads_k = E.iwae(model, x, eps=eps)
    assert loss_k == pytest.approx(loss_a, rel=1e-14, abs=1e-13)
    for k in model.params:
        np.testing.assert_allclose(grads_k[k], grads_a[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_gradcheck(likelihood):
    model, x, rng = tiny(likelihood, seed=1)
    eps = rng.standard_normal((5, 4, 2))
    report = gradcheck.check(lambda: E.iwae(model, x, eps=eps), model.params)
    assert report.max_error < TOL, str(report)
    assert gradcheck.check_direction(lambda: E.iwae(model, x, eps=eps), model.params, rng) < TOL


def test_iwae_bound_increases_with_k_and_stays_below_log_likelihood():
    # (7.3), (7.7): E[L_K] rises with K and stays below log p(x); averaged over many draws
    model, x, rng = tiny("bernoulli", seed=2)
    draws = [np.array([E.iwae(model, x, rng=rng, n_samples=k)[0] for _ in range(300)])
             for k in (1, 5, 50)]
    means = [d.mean() for d in draws]
    ses = [d.std(ddof=1) / np.sqrt(len(d)) for d in draws]
    # losses are -L_K: each step down in K must exceed 4 standard errors of the difference
    for a in range(2):
        assert means[a] - means[a + 1] > 4 * np.hypot(ses[a], ses[a + 1])
    # L_50 <= log p(x): the IS estimate with K = 20000 is itself a (tighter) lower
    # bound, so -E[loss_50] must not exceed it by more than 4 standard errors
    ll = npvae.evaluate.log_likelihood(model, x, n_samples=20000, rng=rng).mean()
    assert -means[2] <= ll + 4 * ses[2]


# ---------------------------------------------------------------- STL

def frozen_q_surrogate(model, x, eps):
    """mean_{l,i} [log q_{phi0}(z_phi) - log p(z_phi) - log p_theta(x | z_phi)] with q's
    mean and log-variance frozen at the current parameters: its gradient is STL's (7.10)."""
    mu0, logvar0 = (a.copy() for a in model.encode(x))

    def f():
        mu, logvar = model.encode(x)
        z, _ = dist.reparameterize(mu, logvar, eps)
        log_w = (model.log_px(x, z) + dist.standard_normal_log_prob(z)
                 - dist.gaussian_log_prob(z, mu0, logvar0))
        return -np.mean(log_w)
    return f


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_stl_is_the_gradient_of_the_frozen_q_surrogate(likelihood):
    model, x, rng = tiny(likelihood, seed=3)
    eps = rng.standard_normal((3, 4, 2))
    loss, grads = E.stl(model, x, eps=eps)
    assert loss == pytest.approx(E.reparam(model, x, eps=eps, kl="mc")[0], rel=1e-14)
    surrogate = frozen_q_surrogate(model, x, eps)
    report = gradcheck.check(lambda: (surrogate(), grads), model.params)
    assert report.max_error < TOL, str(report)


def test_stl_is_estimator_a_minus_the_direct_score_term():
    # the direct term: d/dphi of mean log q_phi(z | x) with z held fixed, by finite differences
    model, x, rng = tiny("bernoulli", seed=4)
    eps = rng.standard_normal((3, 4, 2))
    _, g_a = E.reparam(model, x, eps=eps, kl="mc")
    _, g_stl = E.stl(model, x, eps=eps)
    mu0, logvar0 = model.encode(x)
    z0, _ = dist.reparameterize(mu0, logvar0, eps)

    def direct():
        mu, logvar = model.encode(x)
        return np.mean(dist.gaussian_log_prob(z0, mu, logvar))
    for k, p in model.params.items():
        want = g_a[k] - (gradcheck.numerical_gradient(direct, p) if k.startswith("enc.") else 0)
        assert gradcheck.rel_error(g_stl[k], want) < TOL, k
    assert any(gradcheck.rel_error(g_stl[k], g_a[k]) > 1e-3 for k in model.params
               if k.startswith("enc."))


def ppca_vae(seed=0, D=5, J=2, sigma2=0.3):
    """A linear-Gaussian model whose encoder is set to the exact posterior.

    W = Q diag(s) with orthonormal Q, so W^T W = diag(s^2) and the posterior (7.12)
    N((W^T W + sigma2 I)^-1 W^T (x - b), sigma2 (W^T W + sigma2 I)^-1) is diagonal.
    """
    rng = np.random.default_rng(seed)
    model = npvae.VAE(D, J, hidden=(), likelihood="gaussian", gaussian_mean="identity", rng=rng)
    Q, _ = np.linalg.qr(rng.standard_normal((D, J)))
    s = np.array([2.0, 0.7])[:J]
    W, b = Q * s, rng.standard_normal(D)
    prec = s * s + sigma2                          # diagonal of W^T W + sigma2 I
    A = W / prec                                   # (D, J): mu = (x - b) @ A
    P = model.params
    P["enc.mu.W"][...] = A
    P["enc.mu.b"][...] = -b @ A
    P["enc.logvar.W"][...] = 0
    P["enc.logvar.b"][...] = np.log(sigma2 / prec)
    P["dec.mean.W"][...] = W.T
    P["dec.mean.b"][...] = b
    P["dec.logvar.W"][...] = 0
    P["dec.logvar.b"][...] = np.log(sigma2)
    z = rng.standard_normal((8, J))
    x = z @ W.T + b + np.sqrt(sigma2) * rng.standard_normal((8, D))
    return model, x, rng


def test_stl_encoder_gradient_vanishes_at_the_exact_posterior():
    model, x, rng = ppca_vae()
    # sanity: log w = log p(x) for every sample when q is the exact posterior
    log_w = model.log_importance_weights(x, 4, rng)
    assert np.ptp(log_w, axis=0).max() < 1e-12
    for _ in range(5):
        eps = rng.standard_normal((3, 8, 2))
        _, g_stl = E.stl(model, x, eps=eps)
        _, g_a = E.reparam(model, x, eps=eps, kl="mc")
        for k in model.params:
            if k.startswith("enc."):
                assert np.max(np.abs(g_stl[k])) < 1e-12, k
        assert max(np.max(np.abs(g_a[k])) for k in g_a if k.startswith("enc.")) > 1e-2


# ---------------------------------------------------------------- REINFORCE

def score_surrogate(model, x, eps, kl, baseline_value):
    """-(1/(L M)) sum (f0 - b0) log q_phi(z0 | x) [+ mean KL(phi)] - (1/(L M)) sum log p_theta(x | z0),
    with z0, f0, b0 computed once at the current parameters and held fixed: its gradient
    is the REINFORCE estimate (6.6), (6.9)."""
    mu0, logvar0 = model.encode(x)
    z0, _ = dist.reparameterize(mu0, logvar0, eps)
    log_px0 = model.log_px(x, z0)
    if kl == "analytic":
        signal = log_px0
    else:
        signal = log_px0 + dist.standard_normal_log_prob(z0) - dist.gaussian_log_prob(z0, mu0, logvar0)
    L = eps.shape[0]
    if baseline_value == "loo":
        b = (signal.sum(axis=0) - signal) / (L - 1)
    else:
        b = baseline_value
    weight = (signal - b).copy()

    def f():
        mu, logvar = model.encode(x)
        s = -np.mean(weight * dist.gaussian_log_prob(z0, mu, logvar)) - np.mean(model.log_px(x, z0))
        if kl == "analytic":
            s = s + np.mean(dist.gaussian_kl(mu, logvar))
        return s
    return f


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("kl", ["analytic", "mc"])
@pytest.mark.parametrize("baseline", [None, "leave-one-out", "moving-average"])
def test_reinforce_is_the_gradient_of_its_surrogate(likelihood, kl, baseline):
    model, x, rng = tiny(likelihood, seed=6)
    eps = rng.standard_normal((3, 4, 2))
    opts = {}
    b = 0.0
    if baseline == "moving-average":
        opts["state"] = E.BaselineState(value=-3.25)
        b = -3.25
    elif baseline == "leave-one-out":
        b = "loo"
    loss, grads = E.reinforce(model, x, eps=eps, kl=kl, baseline=baseline, **opts)
    assert loss == pytest.approx(E.reparam(model, x, eps=eps, kl=kl)[0], rel=1e-14)
    surrogate = score_surrogate(model, x, eps, kl, b)
    report = gradcheck.check(lambda: (surrogate(), grads), model.params)
    assert report.max_error < TOL, str(report)


def test_reinforce_decoder_gradient_is_the_pathwise_one():
    model, x, rng = tiny("bernoulli", seed=7)
    eps = rng.standard_normal((2, 4, 2))
    for kl in ("analytic", "mc"):
        _, g_sf = E.reinforce(model, x, eps=eps, kl=kl)
        _, g_rep = E.reparam(model, x, eps=eps, kl=kl)
        for k in g_sf:
            if k.startswith("dec."):
                np.testing.assert_allclose(g_sf[k], g_rep[k], rtol=1e-13, atol=1e-15, err_msg=k)


def test_gaussian_score_matches_finite_differences_of_log_q():
    rng = np.random.default_rng(8)
    mu, logvar = rng.standard_normal((2, 3, 2))
    eps = rng.standard_normal((4, 3, 2))
    z, std = dist.reparameterize(mu, logvar, eps)
    smu, slogvar = E.gaussian_score(eps, std)
    dout = rng.standard_normal((4, 3))
    num_mu = gradcheck.numerical_gradient_array(lambda: dist.gaussian_log_prob(z, mu, logvar), mu, dout)
    num_lv = gradcheck.numerical_gradient_array(lambda: dist.gaussian_log_prob(z, mu, logvar), logvar, dout)
    assert gradcheck.rel_error(np.einsum("lm,lmj->mj", dout, smu), num_mu) < TOL
    assert gradcheck.rel_error(np.einsum("lm,lmj->mj", dout, slogvar), num_lv) < TOL


def test_moving_average_state_uses_earlier_calls_only():
    model, x, rng = tiny("bernoulli", seed=9)
    eps = rng.standard_normal((2, 4, 2))
    state = E.BaselineState()
    _, g_first = E.reinforce(model, x, eps=eps, baseline="moving-average", state=state, decay=0.5)
    _, g_none = E.reinforce(model, x, eps=eps)
    for k in g_none:                                 # first call: b = 0
        np.testing.assert_array_equal(g_first[k], g_none[k])
    mu, logvar = model.encode(x)
    z, _ = dist.reparameterize(mu, logvar, eps)
    s1 = model.log_px(x, z).mean()
    assert state.value == pytest.approx(s1) and state.n_updates == 1
    E.reinforce(model, x, eps=2 * eps, baseline="moving-average", state=state, decay=0.5)
    z2, _ = dist.reparameterize(mu, logvar, 2 * eps)
    assert state.value == pytest.approx(0.5 * s1 + 0.5 * model.log_px(x, z2).mean())


def test_reinforce_rejects_bad_options():
    model, x, rng = tiny()
    with pytest.raises(ValueError, match="baseline"):
        E.reinforce(model, x, rng=rng, baseline="mean")
    with pytest.raises(ValueError, match="BaselineState"):
        E.reinforce(model, x, rng=rng, baseline="moving-average")
    with pytest.raises(ValueError, match="n_samples >= 2"):
        E.reinforce(model, x, rng=rng, baseline="leave-one-out", n_samples=1)
    with pytest.raises(ValueError, match="decay"):
        E.reinforce(model, x, rng=rng, baseline="moving-average", state=E.BaselineState(), decay=1.0)
    with pytest.raises(ValueError, match="kl"):
        E.reinforce(model, x, rng=rng, kl="exact")


@pytest.mark.parametrize("name", ["reinforce", "stl", "iwae"])
def test_float32_end_to_end_and_registered(name):
    model, x, rng = tiny(dtype=np.float32)
    est = E.get(name)
    loss, grads = est(model, x, rng=rng, n_samples=3)
    assert np.isfinite(loss)
    assert set(grads) == set(model.params)
    for k, g in grads.items():
        assert g.dtype == np.float32 and g.shape == model.params[k].shape, k


# ---------------------------------------------------------------- training with REINFORCE

def prototype_data(seed=0, n=300, D=16):
    rng = np.random.default_rng(seed)
    protos = (rng.random((4, D)) < 0.5).astype(float)
    x = protos[rng.integers(0, 4, n)]
    return np.abs(x - (rng.random(x.shape) < 0.05))


@pytest.mark.parametrize("baseline", ["leave-one-out", "moving-average"])
def test_training_with_reinforce_improves_the_elbo(baseline):
    # fit(estimator="reinforce") is the path `npvae train --estimator reinforce --baseline ...`
    # takes.  Tolerance: the final test ELBO (L = 1 estimate on 60 examples, seed fixed)
    # must beat the initial one by at least 1.5 nats of the ~3 nats available here.
    x = prototype_data()
    rng = np.random.default_rng(1)
    model = npvae.VAE(16, 2, hidden=(16,), rng=rng)
    before = npvae.evaluate.elbo(model, x[240:], rng=np.random.default_rng(2), n_samples=10).mean()
    opts = {"baseline": baseline}
    if baseline == "moving-average":
        opts["state"] = E.BaselineState()
    history = npvae.train.fit(model, x[:240], x_test=x[240:], estimator="reinforce",
                              estimator_options=opts, n_samples=2, optimizer="adam", lr=0.02,
                              batch_size=20, epochs=8, rng=rng, log=None)
    after = npvae.evaluate.elbo(model, x[240:], rng=np.random.default_rng(2), n_samples=10).mean()
    assert after > before + 1.5, (before, after, history["test_elbo"])
    if baseline == "moving-average":
        assert opts["state"].n_updates == 8 * 12 and opts["state"].value < 0
