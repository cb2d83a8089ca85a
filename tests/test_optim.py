"""Optimizers: two steps against a hand computation, convergence on a quadratic,
state save / restore, weight decay as the gradient of the N(0, I) prior."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import optim

P0 = np.array([[1.0, -2.0], [0.5, 3.0]])
G1 = np.array([[0.1, -0.4], [2.0, -1.0]])
G2 = np.array([[-0.3, 0.2], [1.0, 0.5]])


def two_steps(opt_cls, **kw):
    params = {"w": P0.copy(), "b": np.array([0.25])}
    opt = opt_cls(params, **kw)
    opt.step({"w": G1.copy(), "b": np.array([1.0])})
    opt.step({"w": G2.copy(), "b": np.array([-2.0])})
    return params


def test_sgd_two_steps_by_hand():
    p = two_steps(optim.SGD, lr=0.1)
    np.testing.assert_allclose(p["w"], P0 - 0.1 * G1 - 0.1 * G2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p["b"], [0.25 - 0.1 * 1.0 + 0.1 * 2.0], atol=1e-15)


def test_sgd_momentum_two_steps_by_hand():
    p = two_steps(optim.SGD, lr=0.1, momentum=0.9)
    v1 = G1
    v2 = 0.9 * v1 + G2
    np.testing.assert_allclose(p["w"], P0 - 0.1 * v1 - 0.1 * v2, atol=1e-15)


def test_adagrad_two_steps_by_hand():
    p = two_steps(optim.Adagrad, lr=0.5, eps=1e-8)
    s1 = G1 ** 2
    w1 = P0 - 0.5 * G1 / (np.sqrt(s1) + 1e-8)
    s2 = s1 + G2 ** 2
    w2 = w1 - 0.5 * G2 / (np.sqrt(s2) + 1e-8)
    np.testing.assert_allclose(p["w"], w2, atol=1e-14)
    # b: first step moves by -lr sign(g) (|g| / |g|), second by -lr g2 / sqrt(g1^2 + g2^2)
    np.testing.assert_allclose(p["b"], [0.25 - 0.5 + 0.5 * 2.0 / np.sqrt(5.0)], atol=1e-8)


def test_adam_two_steps_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    p = two_steps(optim.Adam, lr=lr, beta1=b1, beta2=b2, eps=eps)
    w = P0.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate([G1, G2], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(p["w"], w, atol=1e-14)
    # first Adam step is -lr * sign(g) (up to eps): the bias correction at work
    q = {"w": P0.copy()}
    optim.Adam(q, lr=lr).step({"w": G1})
    np.testing.assert_allclose(q["w"], P0 - lr * np.sign(G1), atol=1e-8)


@pytest.mark.parametrize("name, kw", [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("adagrad", dict(lr=0.5)),
    ("adam", dict(lr=0.05)),
])
def test_converges_on_a_quadratic(name, kw):
    # f(p) = 0.5 (p - c)^T A (p - c), ill-conditioned: grad = A (p - c)
    A = np.diag([1.0, 4.0, 0.5])
    c = np.array([1.0, -2.0, 3.0])
    params = {"p": np.zeros(3)}
    opt = optim.get(name, params, **kw)
    for _ in range(3000):
        opt.step({"p": A @ (params["p"] - c)})
    np.testing.assert_allclose(params["p"], c, atol=1e-3)


def test_float32_stays_float32():
    params = {"w": np.ones((3, 2), dtype=np.float32)}
    for name in optim.OPTIMIZERS:
        opt = optim.get(name, params, lr=0.1, weight_decay=0.01)
        opt.step({"w": np.full((3, 2), 0.5, dtype=np.float32)})
        assert params["w"].dtype == np.float32
        assert all(a.dtype == np.float32 for k, a in opt.state_dict().items() if "/" in k)


@pytest.mark.parametrize("name, kw", [("sgd", dict(momentum=0.5)), ("adagrad", {}), ("adam", {})])
def test_state_save_restore_continues_identically(name, kw):
    rng = np.random.default_rng(0)
    grads = [{"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)} for _ in range(6)]
    init = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}

    a = {k: v.copy() for k, v in init.items()}
    opt_a = optim.get(name, a, lr=0.01, **kw)
    for g in grads:
        opt_a.step(g)

    b = {k: v.copy() for k, v in init.items()}
    opt_b = optim.get(name, b, lr=0.01, **kw)
    for g in grads[:3]:
        opt_b.step(g)
    saved = opt_b.state_dict()
    c = {k: v.copy() for k, v in b.items()}
    opt_c = optim.get(name, c, lr=123.0, **kw)      # lr restored from the state
    opt_c.load_state_dict(saved)
    assert opt_c.lr == 0.01 and opt_c.t == 3
    for g in grads[3:]:
        opt_c.step(g)
    for k in init:
        assert np.array_equal(a[k], c[k])


def test_state_dict_is_a_copy_and_scalars_are_json():
    import json
    params = {"w": np.zeros(2)}
    opt = optim.Adam(params, lr=0.1)
    opt.step({"w": np.ones(2)})
    d = opt.state_dict()
    json.dumps({k: v for k, v in d.items() if not isinstance(v, np.ndarray)})
    d["m/w"][...] = 99
    assert not np.any(opt.state["m"]["w"] == 99)


def test_load_state_dict_validates_before_changing():
    params = {"w": np.zeros((2, 2))}
    opt = optim.Adagrad(params, lr=0.1)
    opt.step({"w": np.ones((2, 2))})
    before = opt.state_dict()
    bad_shape = dict(before, **{"sum_sq/w": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad_shape)
    missing = {k: v for k, v in before.items() if k != "sum_sq/w"}
    with pytest.raises(ValueError, match="missing"):
        opt.load_state_dict(missing)
    with pytest.raises(ValueError, match="adam"):
        opt.load_state_dict(dict(before, type="adam"))
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(dict(before, lr=-1.0, t=7))
    assert opt.t == 1 and opt.lr == 0.1
    np.testing.assert_array_equal(opt.state["sum_sq"]["w"], np.ones((2, 2)))
    sgd = optim.SGD({"w": np.zeros(2)}, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        sgd.load_state_dict(optim.SGD({"w": np.zeros(2)}, lr=0.1).state_dict())


def test_weight_decay_is_the_gradient_of_the_prior():
    # MAP per example: loss + (1/N) * (-log N(theta; 0, I)), whose gradient is
    # grad + theta / N (9.2).  Check the prior's gradient by finite differences.
    N = 50
    theta = np.array([0.3, -1.2, 2.0])

    def neg_log_prior(t):
        return 0.5 * np.sum(t ** 2) + 0.5 * t.size * np.log(2 * np.pi)

    h = 1e-6
    fd = np.array([(neg_log_prior(theta + h * e) - neg_log_prior(theta - h * e)) / (2 * h)
                   for e in np.eye(3)]) / N
    g = np.array([0.1, 0.2, -0.3])
    p = {"t": theta.copy()}
    optim.SGD(p, lr=1.0, weight_decay=1.0 / N).step({"t": g.copy()})
    np.testing.assert_allclose(theta - p["t"], g + fd, rtol=1e-8)
    # the caller's grads are not modified
    g_in = {"t": g.copy()}
    optim.Adam({"t": theta.copy()}, lr=0.1, weight_decay=0.5).step(g_in)
    np.testing.assert_array_equal(g_in["t"], g)


@pytest.mark.parametrize("kw, match", [
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr="big"), "lr"),
    (dict(lr=0.1, weight_decay=-1), "weight_decay"),
])
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.Adagrad({"w": np.zeros(2)}, **kw)


def test_bad_inputs():
    with pytest.raises(ValueError, match="beta1"):
        optim.Adam({"w": np.zeros(2)}, lr=0.1, beta1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD({"w": np.zeros(2)}, lr=0.1, momentum=-0.1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.get("rmsprop", {"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match="bad option"):
        optim.get("sgd", {"w": np.zeros(2)}, lr=0.1, beta1=0.9)
    with pytest.raises(ValueError, match="params"):
        optim.SGD({}, lr=0.1)
    opt = optim.SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match="missing"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(3)})


def reference_step(name, p, g, state, t, lr, wd):
    """One update in plain (allocating) NumPy, straight from (9.2)-(9.9)."""
    g = g + wd * p                                                      # (9.2)
    if name == "sgd":
        state["velocity"] = 0.9 * state["velocity"] + g                 # (9.4)
        return p - lr * state["velocity"]
    if name == "adagrad":
        state["sum_sq"] = state["sum_sq"] + g ** 2                      # (9.5)
        return p - lr * g / (np.sqrt(state["sum_sq"]) + 1e-8)           # (9.6)
    state["m"] = 0.9 * state["m"] + 0.1 * g                             # (9.7)
    state["v"] = 0.999 * state["v"] + 0.001 * g ** 2
    m_hat, v_hat = state["m"] / (1 - 0.9 ** t), state["v"] / (1 - 0.999 ** t)   # (9.8)
    return p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)                     # (9.9)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["sgd", "adagrad", "adam"]),
       shape=st.tuples(st.integers(1, 4), st.integers(1, 3)),
       seed=st.integers(0, 2 ** 16), wd=st.sampled_from([0.0, 0.01]),
       scale=st.floats(1e-3, 1e3))
def test_in_place_updates_equal_the_plain_formulas(name, shape, seed, wd, scale):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape)
    grads = [scale * rng.standard_normal(shape) for _ in range(3)]
    kw = {"momentum": 0.9} if name == "sgd" else {}
    params = {"w": p0.copy()}
    opt = optim.get(name, params, lr=0.01, weight_decay=wd, **kw)
    state = {s: np.zeros(shape) for s in ("velocity", "sum_sq", "m", "v")}
    p = p0.copy()
    for t, g in enumerate(grads, start=1):
        opt.step({"w": g.copy()})
        p = reference_step(name, p, g, state, t, 0.01, wd)
        np.testing.assert_allclose(params["w"], p, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ subnormal state (9.12)

def _subnormal_count(a):
    return int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kw, slots", [("adam", {}, ("m", "v")),
                                              ("sgd", {"momentum": 0.9}, ("velocity",))])
def test_subnormal_state_is_flushed_every_flush_every_steps(name, kw, slots, dtype):
    """A slot entry that decays under zero gradients gets stuck at the smallest
    subnormal (0.9 of it rounds back up); every FLUSH_EVERY steps it is set to
    zero (9.12), while normal entries, however small, are kept."""
    tiny = np.finfo(dtype).tiny
    params = {"w": np.ones(4, dtype)}
    opt = optim.get(name, params, lr=1e-3, **kw)
    for s in slots:
        sign = 1 if s == "v" else -1                   # v is a mean of squares
        opt.state[s]["w"][...] = [tiny / 8, sign * tiny / 1e3, 4 * tiny, 0.0]
    zero = {"w": np.zeros(4, dtype)}
    for _ in range(optim.FLUSH_EVERY - 1):
        opt.step(zero)
    for s in slots:                                    # not yet: decayed, still subnormal
        assert _subnormal_count(opt.state[s]["w"][:2]) == 2
    opt.step(zero)
    for s in slots:
        a = opt.state[s]["w"]
        assert a[0] == 0 and a[1] == 0 and a[3] == 0
        if s == "v":                                   # 4 tiny * 0.999^63: still normal, kept
            assert a[2] >= tiny
        else:                                          # 4 tiny * 0.9^63 is subnormal by now
            assert a[2] == 0
    np.testing.assert_array_equal(params["w"], np.ones(4, dtype))   # far from zero: unmoved


def test_adagrad_has_no_decaying_slot():
    assert optim.Adagrad({"w": np.ones(2)}).decaying == ()
    opt = optim.SGD({"w": np.ones(2)})                  # no momentum: no state to flush
    for _ in range(optim.FLUSH_EVERY):
        opt.step({"w": np.zeros(2)})
    assert opt.state == {}


def _run(opt_factory, grads, flush):
    """Parameters and state after the given gradient steps, flush on or off."""
    saved = optim.FLUSH_EVERY
    optim.FLUSH_EVERY = saved if flush else 10 ** 9
    try:
        params, opt = opt_factory()
        for g in grads:
            opt.step(g)
    finally:
        optim.FLUSH_EVERY = saved
    return params, opt


def test_adam_keeps_a_subnormal_v_under_a_normal_m():
    """A gradient of 1e-19 in float32 keeps m normal and makes v subnormal; with a
    tiny eps sqrt(v) dominates the denominator, so zeroing v alone would make the
    step jump.  v is flushed only where m is flushed too: the run is unchanged."""
    def make():
        p = {"w": np.ones(3, np.float32)}
        return p, optim.Adam(p, lr=1e-3, eps=1e-20)
    grads = [{"w": np.array([1e-19, 0.0, 1e-3], np.float32)}] * (2 * optim.FLUSH_EVERY + 1)
    (p_on, opt_on), (p_off, opt_off) = _run(make, grads, True), _run(make, grads, False)
    assert _subnormal_count(opt_off.state["v"]["w"]) >= 1           # the case is exercised
    np.testing.assert_array_equal(p_on["w"], p_off["w"])
    np.testing.assert_array_equal(opt_on.state["v"]["w"][0], opt_off.state["v"]["w"][0])


def test_float16_state_is_not_flushed():
    """float16's smallest normal number (6e-5) is an ordinary value of m and v."""
    def make():
        p = {"w": np.ones(2, np.float16)}
        return p, optim.Adam(p, lr=1e-2, eps=1e-4)
    grads = [{"w": np.full(2, 5e-5, np.float16)}] * (optim.FLUSH_EVERY + 5)
    (p_on, _), (p_off, _) = _run(make, grads, True), _run(make, grads, False)
    np.testing.assert_array_equal(p_on["w"], p_off["w"])


def test_flush_schedule_follows_the_restored_step_count():
    """The flush runs at steps t = k FLUSH_EVERY of the optimizer's own count,
    which state_dict saves: a run resumed across a flush flushes where the
    straight run did."""
    tiny = np.finfo(np.float32).tiny

    def make():
        p = {"w": np.ones(3, np.float32)}
        opt = optim.Adam(p, lr=1e-3)
        opt.state["m"]["w"][...] = [tiny / 4, -tiny / 4, 0.0]
        return p, opt
    zero = {"w": np.zeros(3, np.float32)}
    _, straight = _run(make, [zero] * (optim.FLUSH_EVERY + 3), True)
    _, first = _run(make, [zero] * 30, True)
    p2 = {"w": np.ones(3, np.float32)}
    resumed = optim.Adam(p2, lr=1e-3)
    resumed.load_state_dict(first.state_dict())
    for _ in range(optim.FLUSH_EVERY + 3 - 30):
        resumed.step(zero)
    np.testing.assert_array_equal(straight.state["m"]["w"], 0.0)
    np.testing.assert_array_equal(resumed.state["m"]["w"], straight.state["m"]["w"])


def test_flushing_leaves_a_long_adam_run_bit_identical(monkeypatch):
    """Adam in float32 on data with always-zero inputs and dead units: after ~800
    steps m holds subnormals (checked with the flush switched off), and the run
    with the flush gives the very same parameters (derivations/09, section 9.7)."""
    import npvae
    from npvae import estimators
    rng = np.random.default_rng(0)
    x = (rng.random((16, 8)) < 0.5).astype(np.float32)
    x[:, :3] = 0                                       # pixels that are 0 in every image
    runs = []
    for flush_every in (10 ** 9, optim.FLUSH_EVERY):
        monkeypatch.setattr(optim, "FLUSH_EVERY", flush_every)
        model = npvae.VAE(8, 2, hidden=(6,), activation="relu", init="he",
                          rng=np.random.default_rng(1), dtype=np.float32)
        opt = optim.get("adam", model.params, lr=1e-2)
        r = np.random.default_rng(2)
        for _ in range(1000):
            opt.step(estimators.reparam(model, x, rng=r, copy=False)[1])
        runs.append((model.store.params.copy(), _subnormal_count(opt._flat_state[0])))
    (p_off, sub_off), (p_on, sub_on) = runs
    assert sub_off > 0                                 # the test exercises the flush
    assert sub_on < sub_off
    np.testing.assert_array_equal(p_on, p_off)
