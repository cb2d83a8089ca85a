"""Tests of the VAE core: nn, distributions, vae, estimators.reparam, gradcheck.

Gradient checks run in float64 on tiny shapes with parameters redrawn from
N(0, 0.5^2) (non-zero, so that a wrong backward cannot hide behind zeros);
the bound is a relative error below 1e-7 (npvae.gradcheck.rel_error).
Statistical tests fix their seed and state their tolerance in standard errors.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from scipy import integrate, special, stats

from npvae import distributions as dist
from npvae import estimators, evaluate, gradcheck, nn
from npvae.vae import VAE

ACTS = sorted(nn.ACTIVATIONS)
GRAD_TOL = 1e-7
NP_ACT = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
    "sigmoid": special.expit,
    "softplus": lambda a: np.logaddexp(0, a),
    "identity": lambda a: a,
}


def randomize(params, rng, scale=0.5):
    for p in params.values():
        p[...] = scale * rng.standard_normal(p.shape)


def make_vae(likelihood="bernoulli", activation="tanh", hidden=(4,), x_dim=3, z_dim=2,
             seed=0, dtype=np.float64, **kw):
    rng = np.random.default_rng(seed)
    model = VAE(x_dim, z_dim, hidden=hidden, activation=activation, likelihood=likelihood,
                rng=rng, dtype=dtype, **kw)
    randomize(model.params, rng)
    return model


def make_x(model, M, rng):
    if model.likelihood == "bernoulli":
        x = (rng.random((M, model.x_dim)) < 0.5).astype(float)
        x[0, 0] = 0.3                                   # a soft target too
        return x
    return rng.random((M, model.x_dim))


def away_from_kinks(model, activation):
    """ReLU is not differentiable at 0: shift biases so no pre-activation sits near it."""
    if activation == "relu":
        for k, p in model.params.items():
            if k.endswith("b") or ".b" in k:
                p += 0.05 * np.sign(p)


# ============================================================ gradcheck

def test_rel_error_properties():
    a = np.array([1.0, -2.0, 3.0])
    assert gradcheck.rel_error(a, a) == 0.0
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    b = a + np.array([0.0, 0.0, 1e-3])
    assert gradcheck.rel_error(a, b) == gradcheck.rel_error(b, a)
    assert gradcheck.rel_error(a, b) == pytest.approx(1e-3 / (6 + 1e-3))
    # scale invariant
    assert gradcheck.rel_error(1e6 * a, 1e6 * b) == pytest.approx(gradcheck.rel_error(a, b))
    # opposite signs: the largest possible value, 1
    assert gradcheck.rel_error(a, -a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        gradcheck.rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_known_functions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2))
    x0 = x.copy()
    g = gradcheck.numerical_gradient(lambda: np.sum(x ** 3) + np.sin(x[0, 1]), x)
    want = 3 * x0 ** 2
    want[0, 1] += np.cos(x0[0, 1])
    assert gradcheck.rel_error(g, want) < 1e-9
    np.testing.assert_array_equal(x, x0)               # restored after perturbing
    W = rng.standard_normal((2, 4))
    dout = rng.standard_normal((3, 4))
    g = gradcheck.numerical_gradient_array(lambda: x @ W, x, dout)
    assert gradcheck.rel_error(g, dout @ W.T) < 1e-9


def test_check_reports_worst_entry():
    rng = np.random.default_rng(2)
    params = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal(4)}

    def f():
        loss = 0.5 * np.sum(params["a"] ** 2) + np.sum(np.exp(params["b"]))
        grads = {"a": params["a"].copy(), "b": np.exp(params["b"])}
        grads["b"][2] *= 1.5                            # one wrong entry
        return loss, grads

    report = gradcheck.check(f, params)
    assert report["a"] < 1e-9
    assert report["b"] > 1e-2
    assert report.worst == "b" and report.worst_index == (2,)
    assert report.max_error == report["b"]
    ana, num = report.worst_values
    assert ana == pytest.approx(1.5 * num, rel=1e-6)
    assert "worst: b[2]" in str(report)
    with pytest.raises(ValueError, match="'c'"):
        gradcheck.check(f, {**params, "c": np.zeros(1)})


def test_check_direction_detects_wrong_gradient():
    rng = np.random.default_rng(3)
    params = {"a": rng.standard_normal(5)}
    good = lambda: (np.sum(np.sin(params["a"])), {"a": np.cos(params["a"])})
    bad = lambda: (np.sum(np.sin(params["a"])), {"a": 1.1 * np.cos(params["a"])})
    before = params["a"].copy()
    assert gradcheck.check_direction(good, params, np.random.default_rng(0)) < 1e-8
    assert gradcheck.check_direction(bad, params, np.random.default_rng(0)) > 1e-3
    np.testing.assert_array_equal(params["a"], before)


# ============================================================ nn: layers and activations

def test_linear_forward_backward():
    rng = np.random.default_rng(4)
    lin = nn.Linear(3, 4, rng=rng)
    randomize(lin.params, rng)
    x = rng.standard_normal((5, 3))
    out = lin.forward(x)
    np.testing.assert_allclose(out, x @ lin.params["W"] + lin.params["b"], rtol=1e-14)
    dout = rng.standard_normal(out.shape)
    dx = lin.backward(dout)
    f = lambda: lin.forward(x)
    assert gradcheck.rel_error(dx, gradcheck.numerical_gradient_array(f, x, dout)) < GRAD_TOL
    for k in ("W", "b"):
        ana = lin.grads[k].copy()
        num = gradcheck.numerical_gradient_array(f, lin.params[k], dout)
        assert gradcheck.rel_error(ana, num) < GRAD_TOL, k
    # backward overwrites, never accumulates
    lin.forward(x)
    lin.backward(dout)
    lin.backward(dout)
    np.testing.assert_allclose(lin.grads["W"], x.T @ dout)
    assert lin.backward(dout, need_dx=False) is None


@pytest.mark.parametrize("name", ACTS)
def test_activation_forward_backward(name):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)) * 2
    x[np.abs(x) < 1e-3] = 0.5                           # ReLU kink
    act = nn.make_activation(name)
    out = act.forward(x)
    np.testing.assert_allclose(out, NP_ACT[name](x), rtol=1e-14, atol=1e-300)
    dout = rng.standard_normal(x.shape)
    dx = act.backward(dout)
    num = gradcheck.numerical_gradient_array(lambda: NP_ACT[name](x), x, dout)
    assert gradcheck.rel_error(dx, num) < GRAD_TOL
    assert act.params == {} and act.grads == {}


def test_sigmoid_softplus_stable():
    a = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = nn.sigmoid(a)
        sp = nn.softplus(a)
    # absolute accuracy is what a backward pass needs (relative accuracy deep in the
    # lower tail, e.g. sigmoid(-30) ~ 1e-13, is not used anywhere)
    np.testing.assert_allclose(s, special.expit(a), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(sp, np.logaddexp(0, a), rtol=1e-15)
    assert sp[0] == 0.0 and sp[-1] == 1e4
    assert nn.sigmoid(np.float32(3.0)).dtype == np.float32


@pytest.mark.parametrize("name", ACTS)
def test_mlp_matches_numpy_and_gradients(name):
    rng = np.random.default_rng(6)
    mlp = nn.MLP((3, 4, 5, 2), name, rng=rng)
    randomize(mlp.params, rng)
    assert sorted(mlp.params) == ["W0", "W1", "W2", "b0", "b1", "b2"]
    assert all(mlp.params[k] is mlp.linears[int(k[1])].params[k[0]] for k in mlp.params)
    x = rng.standard_normal((6, 3))
    h = x
    for i in range(3):
        h = h @ mlp.params[f"W{i}"] + mlp.params[f"b{i}"]
        if i < 2:
            h = NP_ACT[name](h)
    np.testing.assert_allclose(mlp.forward(x), h, rtol=1e-12)
    dout = rng.standard_normal(h.shape)
    dx = mlp.backward(dout)
    ana = {k: g.copy() for k, g in mlp.grads.items()}
    f = lambda: mlp.forward(x)
    assert gradcheck.rel_error(dx, gradcheck.numerical_gradient_array(f, x, dout)) < GRAD_TOL
    for k in mlp.params:
        num = gradcheck.numerical_gradient_array(f, mlp.params[k], dout)
        assert gradcheck.rel_error(ana[k], num) < GRAD_TOL, k
    mlp.forward(x)
    assert mlp.backward(dout, need_dx=False) is None
    np.testing.assert_allclose(mlp.grads["W0"], ana["W0"])


@pytest.mark.parametrize("init, want", [
    ("normal", lambda fi, fo: 0.01),
    ("glorot", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
    ("he", lambda fi, fo: np.sqrt(2.0 / fi)),
])
def test_init_std(init, want):
    fi, fo = 300, 200
    W = nn.init_weight((fi, fo), init, np.random.default_rng(7), np.float64)
    n = W.size
    # the sample std of n normals has std ~ sigma / sqrt(2n); allow 4 of those
    sd = want(fi, fo)
    assert abs(W.std() - sd) < 4 * sd / np.sqrt(2 * n)
    assert abs(W.mean()) < 4 * sd / np.sqrt(n)
    lin = nn.Linear(fi, fo, rng=np.random.default_rng(7), init=init)
    np.testing.assert_array_equal(lin.params["W"], W)   # same rng stream, same weights
    assert np.all(lin.params["b"] == 0)
    W2 = nn.init_weight((fi, fo), "normal", np.random.default_rng(7), np.float64, scale=0.1)
    assert abs(W2.std() - 0.1) < 4 * 0.1 / np.sqrt(2 * n)


def test_float32_layers_stay_float32():
    rng = np.random.default_rng(8)
    mlp = nn.MLP((3, 4, 2), "softplus", rng=rng, dtype=np.float32, init="glorot")
    assert all(p.dtype == np.float32 for p in mlp.params.values())
    x = rng.standard_normal((5, 3)).astype(np.float32)
    out = mlp.forward(x)
    dx = mlp.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in mlp.grads.values())
    for name in ACTS:
        act = nn.make_activation(name)
        assert act.forward(x).dtype == np.float32
        assert act.backward(x).dtype == np.float32


def test_nn_bad_names():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="activation"):
        nn.make_activation("swish")
    with pytest.raises(ValueError, match="init"):
        nn.Linear(2, 3, rng=rng, init="xavier")
    with pytest.raises(ValueError, match="rng"):
        nn.Linear(2, 3, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="dtype"):
        nn.Linear(2, 3, rng=rng, dtype=np.int32)
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP((3,), rng=rng)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match="activation"):
        nn.MLP((3, 4, 2), "swish", rng=rng)
    assert rng.bit_generator.state == state               # nothing drawn before the error


# ============================================================ distributions vs SciPy

def test_gaussian_log_prob_vs_scipy_and_grads():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 2))
    mu = rng.standard_normal((4, 2))
    logvar = rng.standard_normal((4, 2))
    want = stats.norm.logpdf(x, mu, np.exp(0.5 * logvar)).sum(-1)
    got = dist.gaussian_log_prob(x, mu, logvar)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # gradients, elementwise: use x, mu, logvar of one common shape
    mu3, lv3 = np.broadcast_to(mu, x.shape).copy(), np.broadcast_to(logvar, x.shape).copy()
    dx, dmu, dlv = dist.gaussian_log_prob_grad(x, mu3, lv3)
    f = lambda: dist.gaussian_log_prob(x, mu3, lv3).sum()
    for ana, arr in ((dx, x), (dmu, mu3), (dlv, lv3)):
        assert gradcheck.rel_error(ana, gradcheck.numerical_gradient(f, arr)) < GRAD_TOL


def test_standard_normal_log_prob_vs_scipy_and_grad():
    rng = np.random.default_rng(10)
    z = rng.standard_normal((2, 3, 4)) * 2
    np.testing.assert_allclose(dist.standard_normal_log_prob(z),
                               stats.norm.logpdf(z).sum(-1), rtol=1e-13)
    num = gradcheck.numerical_gradient(lambda: dist.standard_normal_log_prob(z).sum(), z)
    assert gradcheck.rel_error(dist.standard_normal_log_prob_grad(z), num) < GRAD_TOL


def test_bernoulli_log_prob_vs_scipy_and_grad():
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((5, 6)) * 3
    x = (rng.random((5, 6)) < 0.5).astype(float)
    want = stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)
    np.testing.assert_allclose(dist.bernoulli_log_prob(x, logits), want, rtol=1e-12)
    x[0, :3] = [0.2, 0.5, 0.9]                          # soft targets: the cross-entropy
    num = gradcheck.numerical_gradient(lambda: dist.bernoulli_log_prob(x, logits).sum(), logits)
    g = dist.bernoulli_log_prob_grad(x, logits)
    assert gradcheck.rel_error(g, num) < GRAD_TOL
    lp, g2 = dist.bernoulli_log_prob_and_grad(x, logits)
    np.testing.assert_allclose(lp, dist.bernoulli_log_prob(x, logits), rtol=1e-15)
    np.testing.assert_allclose(g2, g, rtol=1e-15)


def test_log_densities_broadcast_leading_axes():
    """The module's convention: the last axis is the event, leading axes are batch
    axes and broadcast, either argument being the larger."""
    rng = np.random.default_rng(14)
    x = (rng.random((4, 3)) < 0.5).astype(float)
    a = rng.standard_normal(3)
    want = stats.bernoulli.logpmf(x, special.expit(a)).sum(-1)
    np.testing.assert_allclose(dist.bernoulli_log_prob(x, a), want, rtol=1e-12)
    np.testing.assert_allclose(dist.bernoulli_log_prob_and_grad(x, a)[0], want, rtol=1e-12)
    a2 = rng.standard_normal((2, 4, 3))
    np.testing.assert_allclose(dist.bernoulli_log_prob(x, a2),
                               stats.bernoulli.logpmf(x, special.expit(a2)).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bernoulli_stable_for_huge_logits(dtype):
    a = np.array([1e4, 1e4, -1e4, -1e4, 700.0, -700.0], dtype=dtype)
    x = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        lp = dist.bernoulli_log_prob(x[:, None], a[:, None])
        lp2, g = dist.bernoulli_log_prob_and_grad(x[:, None], a[:, None])
        g1 = dist.bernoulli_log_prob_grad(x[:, None], a[:, None])
    # limits: (x - 1) a for a -> +inf, x a for a -> -inf
    want = np.array([0.0, -1e4, -1e4, 0.0, -700.0, -700.0])
    np.testing.assert_allclose(lp, want, rtol=1e-6)
    np.testing.assert_allclose(lp2, want, rtol=1e-6)
    np.testing.assert_array_equal(g1[:, 0], [0.0, -1.0, 1.0, 0.0, -1.0, 1.0])
    np.testing.assert_array_equal(g, g1)
    assert lp.dtype == g.dtype == dtype


def test_reparameterize_and_backward():
    rng = np.random.default_rng(12)
    mu, logvar = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    eps = rng.standard_normal((4, 2, 3))
    z, std = dist.reparameterize(mu, logvar, eps)
    np.testing.assert_allclose(std, np.sqrt(np.exp(logvar)), rtol=1e-14)
    np.testing.assert_allclose(z, mu + np.sqrt(np.exp(logvar)) * eps, rtol=1e-14)
    dz = rng.standard_normal(z.shape)
    dmu, dlogvar = dist.reparameterize_backward(dz, eps, std)
    f = lambda: dist.reparameterize(mu, logvar, eps)[0]
    assert gradcheck.rel_error(dmu, gradcheck.numerical_gradient_array(f, mu, dz)) < GRAD_TOL
    assert gradcheck.rel_error(dlogvar, gradcheck.numerical_gradient_array(f, logvar, dz)) < GRAD_TOL


def test_gaussian_kl_vs_monte_carlo_and_grads():
    rng = np.random.default_rng(13)
    mu = np.array([[0.0, 0.0], [1.5, -0.5], [0.3, 2.0]])
    logvar = np.array([[0.0, 0.0], [-1.0, 0.7], [0.5, -2.0]])
    kl = dist.gaussian_kl(mu, logvar)
    assert kl[0] == 0.0
    n = 200_000
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((n,) + mu.shape)
    terms = (stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)) - stats.norm.logpdf(z)).sum(-1)
    mc, se = terms.mean(0), terms.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(mc[1:] - kl[1:]) < 4 * se[1:]), (mc, kl, se)
    dmu, dlv = dist.gaussian_kl_grad(mu, logvar)
    f = lambda: dist.gaussian_kl(mu, logvar).sum()
    assert gradcheck.rel_error(dmu, gradcheck.numerical_gradient(f, mu)) < GRAD_TOL
    assert gradcheck.rel_error(dlv, gradcheck.numerical_gradient(f, logvar)) < GRAD_TOL


# ============================================================ the whole VAE: gradients

def _grad_check(model, x, eps, kl):
    f = lambda: estimators.reparam(model, x, eps=eps, kl=kl)
    report = gradcheck.check(f, model.params)
    assert set(report) == set(model.params)
    assert report.max_error < GRAD_TOL, str(report)
    return report


@pytest.mark.parametrize("L", [1, 3])
@pytest.mark.parametrize("kl", ["analytic", "mc"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ACTS)
def test_vae_gradients_every_parameter(activation, likelihood, kl, L):
    seed = ACTS.index(activation) * 8 + L
    model = make_vae(likelihood, activation, hidden=(4,), seed=seed)
    away_from_kinks(model, activation)
    rng = np.random.default_rng(seed + 100)
    x = make_x(model, 2, rng)
    eps = rng.standard_normal((L, 2, model.z_dim))
    _grad_check(model, x, eps, kl)


@pytest.mark.parametrize("hidden", [(), (3, 4)])
@pytest.mark.parametrize("gaussian_mean", ["sigmoid", "identity"])
def test_vae_gradients_depths_and_gaussian_mean(hidden, gaussian_mean):
    model = make_vae("gaussian", "tanh", hidden=hidden, seed=21, gaussian_mean=gaussian_mean)
    rng = np.random.default_rng(22)
    x = make_x(model, 3, rng)
    eps = rng.standard_normal((2, 3, model.z_dim))
    for kl in ("analytic", "mc"):
        _grad_check(model, x, eps, kl)


def test_vae_gradients_beta_and_2d_eps():
    model = make_vae("bernoulli", "tanh", seed=23)
    rng = np.random.default_rng(24)
    x = make_x(model, 2, rng)
    eps = rng.standard_normal((2, model.z_dim))        # (M, J) accepted as L = 1
    for kl in ("analytic", "mc"):
        f = lambda: estimators.reparam(model, x, eps=eps, kl=kl, beta=0.3)
        assert gradcheck.check(f, model.params).max_error < GRAD_TOL


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_check_direction(likelihood):
    model = make_vae(likelihood, "softplus", hidden=(5, 4), x_dim=6, z_dim=3, seed=25)
    rng = np.random.default_rng(26)
    x = make_x(model, 4, rng)
    eps = rng.standard_normal((2, 4, 3))
    for kl in ("analytic", "mc"):
        f = lambda: estimators.reparam(model, x, eps=eps, kl=kl)
        assert gradcheck.check_direction(f, model.params, rng, n_directions=3) < GRAD_TOL


@settings(max_examples=15, deadline=None)
@given(M=st.integers(1, 3), x_dim=st.integers(1, 4), z_dim=st.integers(1, 3),
       hidden=st.lists(st.integers(1, 4), min_size=0, max_size=2),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus", "identity"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian"]),
       kl=st.sampled_from(["analytic", "mc"]), L=st.integers(1, 3),
       scale=st.floats(0.1, 1.5), seed=st.integers(0, 2 ** 16))
@example(M=1, x_dim=1, z_dim=1, hidden=[], activation="tanh", likelihood="gaussian",
         kl="analytic", L=1, scale=1.5, seed=17)        # tiny dec.mean gradient: the fallback
def test_vae_gradients_hypothesis(M, x_dim, z_dim, hidden, activation, likelihood, kl, L,
                                  scale, seed):
    rng = np.random.default_rng(seed)
    model = VAE(x_dim, z_dim, hidden=tuple(hidden), activation=activation,
                likelihood=likelihood, rng=rng)
    randomize(model.params, rng, scale)
    x = make_x(model, M, rng) if M > 1 or likelihood == "gaussian" else \
        (rng.random((1, x_dim)) < 0.5).astype(float)
    eps = rng.standard_normal((L, M, z_dim))
    f = lambda: estimators.reparam(model, x, eps=eps, kl=kl)
    report = gradcheck.check(f, model.params)
    loss, grads = f()
    for name, err in report.items():
        if err >= GRAD_TOL:
            # Drawn values can make a whole array's gradient tiny (a saturated sigmoid
            # mean: |g| ~ 1e-5); centred differences then carry a rounding error of
            # ~1e-16 |loss| / h ~ 1e-11 |loss| that no backward pass can beat, so such
            # an array passes on an absolute bound of 1e-9 max(1, |loss|) instead.
            num = gradcheck.numerical_gradient(lambda: f()[0], model.params[name])
            assert np.max(np.abs(grads[name] - num)) < 1e-9 * max(1.0, abs(loss)), str(report)


# ============================================================ the ELBO vs SciPy densities

def _numpy_forward(model, x, eps):
    """mu, logvar, z and the decoder outputs, computed from ``params`` with plain NumPy."""
    P, act = model.params, NP_ACT[model.activation]
    h = x
    for i in range(len(model.hidden)):
        h = act(h @ P[f"enc.W{i}"] + P[f"enc.b{i}"])
    mu = h @ P["enc.mu.W"] + P["enc.mu.b"]
    logvar = h @ P["enc.logvar.W"] + P["enc.logvar.b"]
    z = mu + np.sqrt(np.exp(logvar)) * eps
    h = z
    for i in range(len(model.hidden)):
        h = act(h @ P[f"dec.W{i}"] + P[f"dec.b{i}"])
    if model.likelihood == "bernoulli":
        return mu, logvar, z, (h @ P["dec.logits.W"] + P["dec.logits.b"],)
    mean = h @ P["dec.mean.W"] + P["dec.mean.b"]
    if model.gaussian_mean == "sigmoid":
        mean = special.expit(mean)
    return mu, logvar, z, (mean, h @ P["dec.logvar.W"] + P["dec.logvar.b"])


def _scipy_log_px(model, x, out):
    if model.likelihood == "bernoulli":
        return stats.bernoulli.logpmf(x, special.expit(out[0])).sum(-1)
    mean, logvar = out
    return stats.norm.logpdf(x, mean, np.sqrt(np.exp(logvar))).sum(-1)


def _quad_kl(mu, logvar):
    """KL(q || N(0, 1)) per example by numerical integration, coordinate by coordinate."""
    out = np.zeros(mu.shape[0])
    for m in range(mu.shape[0]):
        for j in range(mu.shape[1]):
            s = np.exp(0.5 * logvar[m, j])
            f = lambda t: stats.norm.pdf(t, mu[m, j], s) * (
                stats.norm.logpdf(t, mu[m, j], s) - stats.norm.logpdf(t))
            out[m] += integrate.quad(f, mu[m, j] - 12 * s, mu[m, j] + 12 * s,
                                     epsabs=1e-13, epsrel=1e-12)[0]
    return out


@pytest.mark.parametrize("likelihood, activation, hidden",
                         [("bernoulli", "tanh", (4,)), ("gaussian", "relu", (3, 4)),
                          ("bernoulli", "softplus", ())])
def test_elbo_matches_scipy(likelihood, activation, hidden):
    model = make_vae(likelihood, activation, hidden=hidden, x_dim=4, seed=31)
    rng = np.random.default_rng(32)
    x = make_x(model, 3, rng)
    if likelihood == "bernoulli":
        x[0, 0] = 1.0                                   # SciPy's logpmf is for binary data
    eps = rng.standard_normal((2, 3, model.z_dim))
    mu, logvar, z, out = _numpy_forward(model, x, eps)
    log_px = _scipy_log_px(model, x, out)               # (L, M)
    kl = _quad_kl(mu, logvar)
    elbo_b = log_px.mean(0) - kl
    log_pz = stats.norm.logpdf(z).sum(-1)
    log_q = stats.norm.logpdf(z, mu, np.sqrt(np.exp(logvar))).sum(-1)
    elbo_a = (log_px + log_pz - log_q).mean(0)
    loss_b, _ = estimators.reparam(model, x, eps=eps, kl="analytic")
    loss_a, _ = estimators.reparam(model, x, eps=eps, kl="mc")
    assert loss_b == pytest.approx(-elbo_b.mean(), rel=1e-10)
    assert loss_a == pytest.approx(-elbo_a.mean(), rel=1e-10)
    # the same quantities through the model's other entry points
    np.testing.assert_allclose(model.log_importance_weights(x, 2, eps=eps),
                               log_px + log_pz - log_q, rtol=1e-10)
    rec, kl_model = model.elbo_terms(x, 2, np.random.default_rng(5))
    eps5 = np.random.default_rng(5).standard_normal((2, 3, model.z_dim))
    _, _, _, out5 = _numpy_forward(model, x, eps5)
    np.testing.assert_allclose(rec, _scipy_log_px(model, x, out5).mean(0), rtol=1e-10)
    np.testing.assert_allclose(kl_model, kl, rtol=1e-9)
    np.testing.assert_allclose(evaluate.elbo(model, x, np.random.default_rng(5), n_samples=2),
                               rec - kl_model, rtol=1e-12)
    np.testing.assert_allclose(model.encode(x)[0], mu, rtol=1e-12)


def test_estimators_a_and_b_agree_in_expectation():
    """Mean over R draws of (grad_A - grad_B), paired on the same eps, is 0 for every entry.

    Tolerance: |mean| <= k SE per entry with k = max(4, Bonferroni z for a family-wise
    false-alarm rate of 1e-4 over all n compared entries), k = Phi^-1(1 - 5e-5 / n);
    for the 42 encoder entries here k = 4.9.  Decoder gradients see only
    log p(x|z), identical in A and B for the same eps, so they must agree exactly.
    The losses are compared the same way (one comparison, 4 SE), and for this model
    B's loss, which replaces the random log p(z) - log q by its mean, is the quieter.
    """
    model = make_vae("bernoulli", "tanh", hidden=(3,), x_dim=3, z_dim=2, seed=41)
    rng = np.random.default_rng(42)
    x = rng.random((2, 3))                              # soft targets: no all-zero column
    R = 800
    diffs = {k: [] for k in model.params if k.startswith("enc.")}
    losses = []
    for _ in range(R):
        eps = rng.standard_normal((1, 2, 2))
        la, ga = estimators.reparam(model, x, eps=eps, kl="mc")
        lb, gb = estimators.reparam(model, x, eps=eps, kl="analytic")
        losses.append((la, lb))
        for k in model.params:
            if k.startswith("dec."):
                np.testing.assert_allclose(ga[k], gb[k], rtol=1e-12, atol=1e-15)
            else:
                diffs[k].append(ga[k] - gb[k])
    n = sum(model.params[k].size for k in diffs)
    k_se = max(4.0, stats.norm.isf(1e-4 / (2 * n)))
    for k, d in diffs.items():
        d = np.array(d)
        mean, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(R)
        assert np.all(se > 0), k                        # A really differs from B draw by draw
        assert np.all(np.abs(mean) <= k_se * se), (k, mean / se)
    la, lb = np.array(losses).T
    d = la - lb
    assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(R)
    assert lb.var() < la.var()


# ============================================================ dtypes

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_float32_model_float32_everywhere(likelihood):
    model = make_vae(likelihood, "relu", dtype=np.float32, seed=51)
    assert all(p.dtype == np.float32 for p in model.params.values())
    rng = np.random.default_rng(52)
    x = make_x(model, 3, rng)                           # float64 data is cast
    mu, logvar = model.encode(x)
    assert mu.dtype == logvar.dtype == np.float32
    for kl in ("analytic", "mc"):
        loss, grads = estimators.reparam(model, x, rng=rng, n_samples=2, kl=kl)
        assert np.isfinite(loss)
        assert all(g.dtype == np.float32 for g in grads.values()), kl
        loss, grads = estimators.reparam(model, x, eps=rng.standard_normal((2, 3, 2)), kl=kl)
        assert all(g.dtype == np.float32 for g in grads.values()), kl
    out = model.decode(mu)
    outs = out if isinstance(out, tuple) else (out,)
    assert all(o.dtype == np.float32 for o in outs)
    assert model.sample(4, rng).dtype == np.float32
    assert model.sample(4, rng, mean=False).dtype == np.float32
    assert model.reconstruct(x).dtype == np.float32
    assert model.log_importance_weights(x, 3, rng).dtype == np.float32


def test_float64_gradients_match_float32_roughly():
    m64 = make_vae("bernoulli", "tanh", seed=53)
    m32 = make_vae("bernoulli", "tanh", seed=53, dtype=np.float32)
    rng = np.random.default_rng(54)
    x = make_x(m64, 3, rng)
    eps = rng.standard_normal((1, 3, 2))
    l64, g64 = estimators.reparam(m64, x, eps=eps)
    l32, g32 = estimators.reparam(m32, x, eps=eps)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in g64:
        assert gradcheck.rel_error(g32[k], g64[k]) < 1e-4, k


# ============================================================ the VAE's API

def test_vae_api_shapes_and_keys():
    model = make_vae("gaussian", "tanh", hidden=(4, 5), x_dim=3, z_dim=2, seed=61)
    assert set(model.params) == set(model.grads)
    assert {k.split(".")[0] for k in model.params} == {"enc", "dec"}
    for k in ("enc.W0", "enc.W1", "enc.mu.W", "enc.logvar.b", "dec.W0", "dec.W1",
              "dec.mean.W", "dec.logvar.W"):
        assert k in model.params
    assert model.params["enc.W0"].shape == (3, 4) and model.params["dec.W0"].shape == (2, 5)
    rng = np.random.default_rng(62)
    x = make_x(model, 4, rng)
    mean, logvar = model.decode(rng.standard_normal((4, 2)))
    assert mean.shape == logvar.shape == (4, 3) and np.all((mean > 0) & (mean < 1))
    assert model.decode(rng.standard_normal((2, 4, 2)))[0].shape == (8, 3)
    assert model.reconstruct(x).shape == (4, 3)
    assert model.sample(5, rng).shape == (5, 3)
    loss, grads = estimators.reparam(model, x, rng=rng, n_samples=3)
    assert set(grads) == set(model.params)
    assert all(grads[k].shape == model.params[k].shape for k in grads)
    assert all(grads[k] is not model.grads[k] for k in grads)   # copies
    rebuilt = VAE(rng=np.random.default_rng(0), **{**model.config(), "dtype": np.float64})
    assert set(rebuilt.params) == set(model.params)
    assert estimators.get("reparam") is estimators.reparam
    with pytest.raises(ValueError, match="estimator"):
        estimators.get("nope")


def test_live_params_are_the_layers_arrays():
    model = make_vae("bernoulli", "tanh", seed=63)
    x = make_x(model, 2, np.random.default_rng(64))
    before = model.encode(x)[0].copy()
    model.params["enc.mu.b"] += 1.0
    np.testing.assert_allclose(model.encode(x)[0], before + 1.0)


def test_bernoulli_samples_are_binary_and_reconstruct_in_unit_interval():
    model = make_vae("bernoulli", "tanh", seed=65)
    rng = np.random.default_rng(66)
    s = model.sample(50, rng, mean=False)
    assert set(np.unique(s)) <= {0.0, 1.0}
    r = model.reconstruct(make_x(model, 3, rng))
    assert np.all((r > 0) & (r < 1))


# ============================================================ bad input

def _snapshot(model):
    return ({k: p.copy() for k, p in model.params.items()},
            {k: g.copy() for k, g in model.grads.items()})


def _assert_untouched(model, snap):
    params, grads = snap
    for k in params:
        np.testing.assert_array_equal(model.params[k], params[k])
        np.testing.assert_array_equal(model.grads[k], grads[k])


@pytest.fixture
def primed():
    """A model whose grads hold known non-zero values from one step."""
    model = make_vae("bernoulli", "tanh", seed=71)
    rng = np.random.default_rng(72)
    x = make_x(model, 3, rng)
    estimators.reparam(model, x, rng=rng)
    return model, x


BAD_CALLS = [
    # (description, kwargs-builder, match)
    ("x wrong width", lambda x: dict(x=np.zeros((3, 4))), r"^x must have shape \(\*, 3\)"),
    ("x 1-d", lambda x: dict(x=np.zeros(3)), r"^x must have shape"),
    ("x 3-d", lambda x: dict(x=np.zeros((1, 3, 3))), r"^x must have shape"),
    ("x NaN", lambda x: dict(x=np.where(np.eye(3, dtype=bool), np.nan, x)), r"^x contains .*NaN"),
    ("x inf", lambda x: dict(x=np.where(np.eye(3, dtype=bool), np.inf, x)), r"^x contains"),
    ("x above 1", lambda x: dict(x=x + 1.5), r"^x must lie in \[0, 1\]"),
    ("x below 0", lambda x: dict(x=x - 0.5), r"^x must lie in \[0, 1\]"),
    ("x strings", lambda x: dict(x=np.array([["a", "b", "c"]])), r"^x must hold real numbers"),
    ("x empty", lambda x: dict(x=np.zeros((0, 3))), r"^x is empty"),
    ("eps wrong M", lambda x: dict(x=x, eps=np.zeros((1, 4, 2))), r"^eps must have shape"),
    ("eps wrong J", lambda x: dict(x=x, eps=np.zeros((1, 3, 3))), r"^eps must have shape"),
    ("eps 4-d", lambda x: dict(x=x, eps=np.zeros((1, 1, 3, 2))), r"^eps must have shape"),
    ("eps NaN", lambda x: dict(x=x, eps=np.full((1, 3, 2), np.nan)), r"^eps contains"),
    ("eps vs n_samples", lambda x: dict(x=x, eps=np.zeros((2, 3, 2)), n_samples=3),
     r"^eps has L=2 samples but n_samples=3"),
    ("kl name", lambda x: dict(x=x, rng=np.random.default_rng(0), kl="exact"), r"^kl must be"),
    ("rng legacy", lambda x: dict(x=x, rng=np.random.RandomState(0)), r"^rng must be a numpy"),
    ("rng int", lambda x: dict(x=x, rng=0), r"^rng must be a numpy"),
    ("no rng no eps", lambda x: dict(x=x), r"rng .*eps"),
    ("n_samples 0", lambda x: dict(x=x, rng=np.random.default_rng(0), n_samples=0),
     r"^n_samples must be >= 1"),
]


@pytest.mark.parametrize("desc, build, match", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_reparam_bad_input_raises_before_work(primed, desc, build, match):
    model, x = primed
    snap = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        estimators.reparam(model, **build(x))
    _assert_untouched(model, snap)


def test_gaussian_data_may_leave_unit_interval_but_not_be_nan():
    model = make_vae("gaussian", "tanh", seed=73)
    x = np.array([[-3.0, 0.5, 7.0]])
    loss, _ = estimators.reparam(model, x, rng=np.random.default_rng(0))
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match="^x contains"):
        estimators.reparam(model, x * np.nan, rng=np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="swish"), r"^activation must be one of"),
    (dict(activation=None), r"^activation must be one of"),
    (dict(likelihood="poisson"), r"^likelihood must be one of"),
    (dict(init="xavier"), r"^init must be one of"),
    (dict(gaussian_mean="exp"), r"^gaussian_mean must be"),
    (dict(dtype=np.float16), r"^dtype must be float32 or float64"),
    (dict(rng=np.random.RandomState(0)), r"^rng must be a numpy"),
    (dict(rng=None), r"^rng must be a numpy"),
    (dict(hidden=(4, 0)), r"^hidden sizes must be positive"),
    (dict(z_dim=0), r"z_dim must be positive"),
])
def test_vae_constructor_bad_input(kwargs, match):
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    args = dict(x_dim=3, z_dim=2, hidden=(4,), rng=rng)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        VAE(**args)
    assert rng.bit_generator.state == state               # nothing drawn before the error


def test_vae_methods_bad_input():
    model = make_vae("bernoulli", "tanh", seed=74)
    x = make_x(model, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^x must have shape"):
        model.encode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"^z must have shape \(\.\.\., 2\)"):
        model.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^z contains"):
        model.decode(np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match=r"^rng must be"):
        model.sample(3, rng=1)
    with pytest.raises(ValueError, match=r"^x must lie in"):
        model.reconstruct(x + 2)
    with pytest.raises(ValueError, match=r"^eps must have shape"):
        model.log_importance_weights(x, 1, eps=np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match=r"^rng must be"):
        evaluate.log_likelihood(model, x, 5, rng=np.random.RandomState(0))
