"""Flat parameter storage (issue 8): every parameter of a model in one array,
and what uses it (the optimizers' blocked update, gradient copies, the
finiteness checks) giving exactly the results of the per-array code."""
import numpy as np
import pytest

import npvae
from npvae import estimators, optim
from npvae._checks import check_array
from npvae.nn import MLP, Linear, ParamStore, flat_base, param_count


def small_vae(likelihood="bernoulli", hidden=(7,), dtype=np.float64, seed=0):
    return npvae.VAE(6, 3, hidden=hidden, likelihood=likelihood,
                     rng=np.random.default_rng(seed), dtype=dtype)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("hidden", [(), (7,), (5, 4)])
def test_vae_parameters_tile_one_array(likelihood, hidden):
    m = small_vae(likelihood, hidden)
    assert m.store.used == m.store.params.size
    assert flat_base(m.params.values()) is m.store.params
    assert flat_base(m.grads.values()) is m.store.grads
    # the layers' own dicts hold the same views: an update of the flat array is seen
    m.store.params += 1.0
    assert np.all(m.enc_mu.params["b"] == 1.0)


def test_store_keeps_the_initial_weights_of_unstored_layers():
    """Same seed, same draws: a layer built on a store equals one built without."""
    a = Linear(4, 3, rng=np.random.default_rng(5), init="glorot")
    store = ParamStore(param_count((4, 3)), np.float64)
    b = Linear(4, 3, rng=np.random.default_rng(5), init="glorot", store=store)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    np.testing.assert_array_equal(b.params["b"], 0)


def test_autoencoder_parameters_tile_one_array():
    m = npvae.Autoencoder(6, 3, hidden=(5,), rng=np.random.default_rng(0))
    assert flat_base(m.params.values()) is m.store.params


def test_flat_base_refuses_what_does_not_tile():
    m = small_vae()
    values = list(m.params.values())
    assert flat_base(values[::-1]) is None                       # out of order
    assert flat_base(values[:-1]) is None                        # not the whole array
    assert flat_base([v.copy() for v in values]) is None         # separate arrays
    assert flat_base([]) is None
    assert flat_base([np.zeros(3)]) is None                      # owns its data


def test_store_errors():
    store = ParamStore(5, np.float32)
    store.take((2, 2))
    with pytest.raises(ValueError, match="full"):
        store.take((2,))
    with pytest.raises(ValueError, match="float32"):
        Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64, store=ParamStore(6, np.float32))
    with pytest.raises(ValueError, match="full"):
        MLP((3, 4, 2), rng=np.random.default_rng(0), store=ParamStore(10, np.float64))


OPTIMIZERS = [("sgd", {}), ("sgd", {"momentum": 0.9}), ("adagrad", {}), ("adam", {}),
              ("adam", {"weight_decay": 0.1}), ("adagrad", {"weight_decay": 0.01})]


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_blocked_update_equals_the_per_array_update(name, kw, dtype, monkeypatch):
    """The flat path (blocks of BLOCK entries, made small here so that arrays
    span several blocks) and the per-array path give bit-identical parameters
    and optimizer state."""
    monkeypatch.setattr(optim, "BLOCK", 16)
    flat_model = small_vae(hidden=(9,), dtype=dtype)
    separate = {k: p.copy() for k, p in flat_model.params.items()}
    a = optim.get(name, flat_model.params, 0.05, **kw)
    b = optim.get(name, separate, 0.05, **kw)
    assert a._flat is not None and b._flat is None
    rng = np.random.default_rng(1)
    x = (rng.random((5, 6)) < 0.5).astype(dtype)
    for _ in range(4):
        _, grads = estimators.reparam(flat_model, x, rng=rng, copy=False)
        copies = {k: g.copy() for k, g in grads.items()}         # not flat: per-array path
        assert flat_base(grads.values()) is not None
        a.step(grads)
        b.step(copies)
    for k in separate:
        np.testing.assert_array_equal(flat_model.params[k], separate[k])
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])


def test_flat_optimizer_accepts_gradients_that_are_not_flat():
    m = small_vae()
    ref = {k: p.copy() for k, p in m.params.items()}
    opt = optim.Adagrad(m.params, lr=0.1)
    grads = {k: np.full(p.shape, 0.5) for k, p in m.params.items()}
    opt.step(grads)
    for k in ref:
        np.testing.assert_allclose(m.params[k], ref[k] - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-15)


def test_flat_optimizer_state_restores_into_its_views():
    m = small_vae()
    opt = optim.Adam(m.params, lr=0.01)
    grads = {k: np.ones_like(p) for k, p in m.params.items()}
    opt.step(grads)
    saved = opt.state_dict()
    fresh = optim.Adam(m.params, lr=0.01)
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh._flat_state[0], opt._flat_state[0])
    assert flat_base(fresh.state["m"].values()) is fresh._flat_state[0]


@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_copy_false_returns_the_models_buffers(name):
    m = small_vae()
    x = (np.random.default_rng(0).random((4, 6)) < 0.5).astype(float)
    eps = np.random.default_rng(1).standard_normal((3, 4, 3))
    est = estimators.ESTIMATORS[name]
    loss_c, copied = est(m, x, eps=eps, n_samples=3)
    loss_v, views = est(m, x, eps=eps, n_samples=3, copy=False)
    assert loss_c == loss_v
    for k in m.grads:
        assert views[k] is m.grads[k]
        assert not np.shares_memory(copied[k], m.grads[k])
        np.testing.assert_array_equal(copied[k], views[k])
    # the copies are one flat array too, so the optimizer's flat path takes them
    assert flat_base(copied.values()) is not None


def test_check_array_finds_nan_and_inf_with_min_and_max():
    x = np.zeros((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        check_array(x, "x")
    x[1, 2], x[0, 0] = np.inf, -np.inf
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        check_array(x, "x", low=0, high=1)
    x[1, 2], x[0, 0] = 2.0, 0.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        check_array(x, "x", low=0, high=1)
    check_array(np.array([np.nan]), "x", finite=False)       # asked not to check


def test_fit_without_gradient_copies_is_the_same_run():
    """fit passes copy=False to estimators that take it; a wrapper that does
    not take it gets copies.  Both runs must end with identical parameters."""
    from npvae.train import fit
    x = (np.random.default_rng(3).random((40, 6)) < 0.4).astype(float)

    def reparam_copying(model, x, *, rng=None, eps=None, n_samples=1, beta=1.0):
        return estimators.reparam(model, x, rng=rng, eps=eps, n_samples=n_samples, beta=beta)

    runs = []
    for est in ("reparam", reparam_copying):
        m = small_vae(seed=4)
        fit(m, x, estimator=est, epochs=2, batch_size=8, rng=np.random.default_rng(5), log=None,
            optimizer="adam", lr=0.01)
        runs.append(m.params)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_fit_reserves_copy():
    from npvae.train import fit
    with pytest.raises(ValueError, match="'copy'"):
        fit(small_vae(), np.zeros((4, 6)), estimator_options={"copy": True}, epochs=1,
            rng=np.random.default_rng(0), log=None)


def test_finite_check_tells_overflow_from_non_finite():
    """The flat check's sum of squares overflows for huge finite gradients; the
    exact check then lets the step through.  A single NaN is still named."""
    from npvae.train import NonFiniteError, _check_finite
    m = small_vae(dtype=np.float32)
    counters = {"step": 0}
    m.store.grads[:] = 1e30                       # squares overflow float32
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.dot(m.store.grads, m.store.grads))
    _check_finite(1.0, m.grads, 1, 1, 1, counters, "", 0.1)    # no error
    m.store.grads[:] = 0
    m.grads["dec.logits.b"][2] = np.nan
    with pytest.raises(NonFiniteError, match="gradient of dec.logits.b"):
        _check_finite(1.0, m.grads, 1, 1, 1, counters, "", 0.1)


def test_replacing_a_params_entry_leaves_the_flat_path():
    """An optimizer built on a flat model keeps working, on the arrays the dict
    holds, after an entry is replaced (the tiling is checked at every step)."""
    m = small_vae()
    opt = optim.SGD(m.params, lr=0.5)
    new_b = np.zeros_like(m.params["dec.logits.b"])
    m.params["dec.logits.b"] = new_b
    grads = {k: np.ones_like(p) for k, p in m.params.items()}
    opt.step(grads)
    np.testing.assert_array_equal(new_b, -0.5)
    np.testing.assert_array_equal(m.params["enc.mu.b"], -0.5)


def test_flat_base_ignores_non_arrays():
    m = small_vae()
    assert flat_base(list(m.grads.values())[:-1] + [[0.0] * 6]) is None


# ------------------------------------------------------------ copies of models and optimizers

def _train_steps(model, opt, n=3, seed=4):
    rng = np.random.default_rng(seed)
    x = (rng.random((5, model.x_dim)) < 0.5).astype(model.dtype)
    losses = []
    for _ in range(n):
        loss, grads = estimators.reparam(model, x, rng=rng, copy=False)
        opt.step(grads)
        losses.append(loss)
    return losses


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam"])
def test_deepcopy_of_model_and_optimizer_keeps_the_flat_storage(name):
    """A deep copy (what a researcher makes to compare estimators from one
    starting point) keeps one flat array, its optimizer updates the copy's
    parameters through it, and the original is untouched."""
    import copy
    m = small_vae()
    opt = optim.get(name, m.params, lr=0.05, **({"momentum": 0.9} if name == "sgd" else {}))
    _train_steps(m, opt, n=2)                            # non-trivial optimizer state
    before = {k: v.copy() for k, v in m.params.items()}
    m2, opt2 = copy.deepcopy((m, opt))
    assert flat_base(m2.params.values()) is m2.store.params
    assert flat_base(m2.grads.values()) is m2.store.grads
    assert m2.store.params is not m.store.params
    assert m2.enc_mu.params["W"] is m2.params["enc.mu.W"]          # layers share the views
    assert all(opt2.params[k] is m2.params[k] for k in m.params)
    assert opt2._flat is m2.store.params
    for s, flat in zip(opt2.slots, opt2._flat_state):
        assert flat_base(opt2.state[s].values()) is flat
    # the copy trains exactly like the original, and independently of it
    want = _train_steps(m, opt)
    after = {k: v.copy() for k, v in m.params.items()}
    for k, v in before.items():
        m.params[k][...] = v                             # the copy must not have moved these
    got = _train_steps(m2, opt2)
    assert got == want
    for k in m.params:
        np.testing.assert_array_equal(m2.params[k], after[k])
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    for k in sd:
        np.testing.assert_array_equal(sd[k], sd2[k])


def test_deepcopy_of_the_model_alone_and_of_the_autoencoder():
    import copy
    for m in (small_vae(hidden=(5, 4)), npvae.Autoencoder(6, 3, hidden=(5,),
                                                           rng=np.random.default_rng(0))):
        m2 = copy.deepcopy(m)
        assert flat_base(m2.params.values()) is m2.store.params
        m2.store.params += 1.0
        assert not np.shares_memory(m.store.params, m2.store.params)
        for k in m.params:
            np.testing.assert_array_equal(m2.params[k], m.params[k] + 1.0)


def test_copies_made_in_another_order_stay_correct():
    """Optimizer copied before its model: the views are copied before the store
    is reached, so nothing can be re-pointed; the copy falls back to arrays of
    their own (the per-array path) and still trains like the original."""
    import copy
    m = small_vae()
    opt = optim.get("adam", m.params, lr=0.05)
    opt2, m2 = copy.deepcopy((opt, m))
    assert all(opt2.params[k] is m2.params[k] for k in m.params)
    assert _train_steps(m2, opt2) == _train_steps(m, opt)
    for k in m.params:
        np.testing.assert_array_equal(m2.params[k], m.params[k])


def test_pickled_model_and_optimizer_train_like_the_original():
    """pickle cannot keep views of one array: the unpickled model's parameters
    are arrays of their own (documented), and training is still exact."""
    import pickle
    m = small_vae()
    opt = optim.get("adagrad", m.params, lr=0.05)
    m2, opt2 = pickle.loads(pickle.dumps((m, opt)))
    assert all(opt2.params[k] is m2.params[k] for k in m.params)
    assert _train_steps(m2, opt2) == _train_steps(m, opt)
    for k in m.params:
        np.testing.assert_array_equal(m2.params[k], m.params[k])


def test_optimizer_state_copied_first_stays_consistent():
    """Deep-copying the optimizer's state dict before the optimizer (an odd but
    legal order): the copy must read and write one set of state arrays."""
    import copy
    m = small_vae()
    opt = optim.get("adagrad", m.params, lr=0.05)
    _train_steps(m, opt, n=1)
    state2, m2, opt2 = copy.deepcopy((opt.state, m, opt))
    assert opt2.state is state2
    assert _train_steps(m2, opt2) == _train_steps(m, opt)
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    for k in sd:
        np.testing.assert_array_equal(sd[k], sd2[k])


@pytest.mark.parametrize("how", ["pickle", "optimizer first"])
def test_deepcopy_of_a_detached_copy_copies_its_current_values(how):
    """A model whose parameters are no longer views of its store (unpickled, or
    copied optimizer-first) and then trained: a deep copy of it must copy the
    trained values, not the store's stale ones."""
    import copy
    import pickle
    m = small_vae()
    opt = optim.get("adam", m.params, lr=0.05)
    if how == "pickle":
        m2, opt2 = pickle.loads(pickle.dumps((m, opt)))
    else:
        opt2, m2 = copy.deepcopy((opt, m))
    _train_steps(m2, opt2)
    m3, opt3 = copy.deepcopy((m2, opt2))
    for k in m2.params:
        np.testing.assert_array_equal(m3.params[k], m2.params[k])
    sd2, sd3 = opt2.state_dict(), opt3.state_dict()
    for k in sd2:
        np.testing.assert_array_equal(sd3[k], sd2[k])
    assert _train_steps(m3, opt3) == _train_steps(m2, opt2)


def test_deepcopy_of_a_store_without_recorded_views():
    """A model unpickled from before the store recorded its views still copies."""
    import copy
    m = small_vae()
    del m.store.views
    m2 = copy.deepcopy(m)
    for k in m.params:
        np.testing.assert_array_equal(m2.params[k], m.params[k])


# ------------------------------------------------------------ the remembered tiling

def test_replacing_a_params_entry_after_steps_leaves_the_flat_path():
    """The optimizer remembers which arrays it last found to tile its flat
    array; replacing an entry after some steps must still be noticed."""
    m = small_vae()
    opt = optim.SGD(m.params, lr=0.5)
    _train_steps(m, opt, n=2)
    old_b = m.params["dec.logits.b"]
    before = old_b.copy()
    new_b = np.zeros_like(old_b)
    m.params["dec.logits.b"] = new_b
    for g in m.grads.values():                          # the same gradient buffers as before
        g[...] = 1.0
    opt.step(dict(m.grads))
    np.testing.assert_array_equal(new_b, -0.5)
    np.testing.assert_array_equal(old_b, before)        # the flat array's slot: untouched


def test_new_gradient_arrays_every_step_give_the_same_run():
    """copy=True hands the optimizer fresh gradient arrays at every step, copy=False
    the same buffers: the updates must be identical."""
    rng = np.random.default_rng(2)
    x = (rng.random((5, 6)) < 0.5).astype(np.float64)
    runs = []
    for copy in (False, True):
        m = small_vae()
        opt = optim.get("adam", m.params, lr=0.05)
        r = np.random.default_rng(3)
        for _ in range(4):
            opt.step(estimators.reparam(m, x, rng=r, copy=copy)[1])
        runs.append(m.store.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("how", ["pickle", "model-first", "optimizer-first"])
def test_copies_made_after_training_train_like_the_original(how):
    """A copy of a model and optimizer that have already stepped (so that the
    optimizer has remembered its arrays) must check its own arrays afresh."""
    import copy
    import pickle
    m = small_vae()
    opt = optim.get("adagrad", m.params, lr=0.05)
    _train_steps(m, opt, n=2)
    if how == "pickle":
        m2, opt2 = pickle.loads(pickle.dumps((m, opt)))
    elif how == "model-first":
        m2, opt2 = copy.deepcopy((m, opt))
    else:
        opt2, m2 = copy.deepcopy((opt, m))
    assert all(opt2.params[k] is m2.params[k] for k in m.params)
    assert _train_steps(m2, opt2) == _train_steps(m, opt)
    for k in m.params:
        np.testing.assert_array_equal(m2.params[k], m.params[k])
