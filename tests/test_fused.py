"""The compiled one-pass updates (``fused=True``, npvae/_fused.py) give the very
bits of the NumPy updates (9.13), take the compiled path where they should,
and fall back to NumPy where the kernels would differ (other dtypes, read-only
or overlapping arrays, an np.errstate that raises)."""
import contextlib
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npvae
from npvae import _fused, optim

CONFIGS = [("sgd", {}), ("sgd", {"momentum": 0.9}), ("adagrad", {}), ("adam", {})]
KERNELS = ("sgd", "sgd_momentum", "adagrad", "adam")


@contextlib.contextmanager
def counting():
    """Counts the calls of each compiled kernel while the block runs."""
    calls = dict.fromkeys(KERNELS, 0)
    saved = {name: getattr(_fused, name) for name in KERNELS}

    def counter(name, kernel):
        def counted(*args):
            calls[name] += 1
            return kernel(*args)
        return counted
    try:
        for name, kernel in saved.items():
            setattr(_fused, name, counter(name, kernel))
        yield calls
    finally:
        for name, kernel in saved.items():
            setattr(_fused, name, kernel)


@pytest.fixture
def kernel_calls():
    with counting() as calls:
        yield calls


def step_pair(name, kw, a, b, grads, lr=0.01, wd=0.0):
    """The same steps through the NumPy update of ``a`` and the fused update of ``b``."""
    oa = optim.get(name, a, lr, weight_decay=wd, fused=False, **kw)
    ob = optim.get(name, b, lr, weight_decay=wd, fused=True, **kw)
    for g in grads:
        oa.step(g)
        ob.step(g)
    return a, b, oa, ob


def run_pair(name, kw, params, grads, steps=5, wd=0.0):
    """step_pair on two copies of ``params``."""
    return step_pair(name, kw, copy.deepcopy(params), copy.deepcopy(params), grads[:steps], wd=wd)


def assert_same_bits(a, b, oa, ob):
    for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k], strict=True)
        for s in oa.slots:
            np.testing.assert_array_equal(oa.state[s][k], ob.state[s][k], strict=True)


@pytest.mark.parametrize("name,kw", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_fused_training_is_bit_identical_on_a_flat_model(name, kw, dtype, wd, kernel_calls):
    """A VAE on its flat store, trained 6 steps with real gradients (the
    optimizer's flat path, more than one BLOCK of parameters)."""
    rng = np.random.default_rng(3)
    model = npvae.VAE(784, 20, hidden=(100,), rng=rng, dtype=dtype)
    assert model.store.params.size > optim.BLOCK
    x = (rng.random((16, 784)) < 0.3).astype(dtype)
    twin = copy.deepcopy(model)
    oa = optim.get(name, model.params, 0.01, weight_decay=wd, fused=False, **kw)
    ob = optim.get(name, twin.params, 0.01, weight_decay=wd, fused=True, **kw)
    for t in range(6):
        eps = np.random.default_rng(t).standard_normal((1, 16, 20)).astype(dtype)
        la, ga = npvae.estimators.reparam(model, x, eps=eps, copy=False)
        oa.step(ga)
        lb, gb = npvae.estimators.reparam(twin, x, eps=eps, copy=False)
        ob.step(gb)
        assert la == lb
    assert_same_bits(model.params, twin.params, oa, ob)
    kernel = "sgd_momentum" if kw.get("momentum") else name
    assert kernel_calls[kernel] == 6                   # one call per step: the flat path


@settings(max_examples=60, deadline=None)
@given(config=st.sampled_from(CONFIGS), dtype=st.sampled_from([np.float32, np.float64]),
       shapes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 30)), min_size=1, max_size=3),
       wd=st.sampled_from([0.0, 1e-3, 0.5]), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e4]),
       seed=st.integers(0, 2 ** 16))
def test_fused_update_is_bit_identical_per_array(config, dtype, shapes, wd, scale, seed):
    """Separate arrays (the per-array path), gradient scales from tiny to large."""
    name, kw = config
    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(shapes)}
    grads = [{k: (scale * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
             for _ in range(4)]
    with counting() as calls:
        assert_same_bits(*run_pair(name, kw, params, grads, wd=wd))
    assert sum(calls.values()) == 4 * len(shapes)          # every array, every step


def test_zero_gradients_and_a_decay_that_rounds_to_zero(kernel_calls):
    """Exactly-zero gradients (0/0 is avoided by eps, as in NumPy), and a weight
    decay that is 0 in float32 but still switches the decay path on."""
    params = {"w": np.array([1.0, -0.0, 0.0, np.inf, -2.5], np.float32)}
    grads = [{"w": np.zeros(5, np.float32)}] * 3
    for name, kw in CONFIGS:
        for wd in (0.0, 1e-60):
            with np.errstate(all="ignore"):         # inf * 0 and the like, in both
                a, b, oa, ob = run_pair(name, kw, params, grads, wd=wd)
            assert_same_bits(a, b, oa, ob)
    assert sum(kernel_calls.values()) == len(CONFIGS) * 2 * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype, kernel_calls):
    """inf, nan, signed zeros, subnormals and the largest numbers, in the
    parameters and the gradients, with and without weight decay."""
    fi = np.finfo(dtype)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, fi.tiny / 4, -fi.tiny / 4,
                        fi.max, -fi.max, 1.0, -3.5], dtype)
    p, g = np.meshgrid(special, special)
    params = {"w": p.ravel().copy()}
    grads = [{"w": g.ravel().copy()}, {"w": g.ravel()[::-1].copy()}]
    for name, kw in CONFIGS:
        for wd in (0.0, 0.1):
            with np.errstate(all="ignore"):
                assert_same_bits(*run_pair(name, kw, params, grads, steps=2, wd=wd))
    assert sum(kernel_calls.values()) == len(CONFIGS) * 2 * 2


def test_long_adam_run_through_flushes_with_other_hyperparameters(kernel_calls):
    """150 steps (two subnormal flushes, 9.12) with entries whose gradient is
    always 0, and non-default lr, betas and eps."""
    rng = np.random.default_rng(5)
    params = {"w": rng.standard_normal(3000).astype(np.float32)}
    mask = rng.random(3000) < 0.3
    grads = [{"w": np.where(mask, 0, rng.standard_normal(3000)).astype(np.float32)}
             for _ in range(150)]
    for name, kw in [("adam", dict(beta1=0.5, beta2=0.9, eps=1e-30)),
                     ("sgd", dict(momentum=0.5))]:
        assert_same_bits(*step_pair(name, kw, copy.deepcopy(params), copy.deepcopy(params),
                                    grads, lr=0.003))
    assert kernel_calls["adam"] == 150 and kernel_calls["sgd_momentum"] == 150


def test_strided_one_dimensional_arrays_are_fused(kernel_calls):
    rng = np.random.default_rng(4)
    base = rng.standard_normal(200)
    g = [{"w": rng.standard_normal(200)[::2]} for _ in range(3)]
    for name, kw in CONFIGS:
        ba, bb = base.copy(), base.copy()
        assert_same_bits(*step_pair(name, kw, {"w": ba[::2]}, {"w": bb[::2]}, g))
        np.testing.assert_array_equal(ba, bb)       # the entries in between untouched alike
        np.testing.assert_array_equal(ba[1::2], base[1::2])
    assert sum(kernel_calls.values()) == len(CONFIGS) * 3


def test_read_only_overlapping_and_errstate_raise_use_numpy(kernel_calls):
    """Where the kernels would behave differently, the NumPy update runs:
    a read-only parameter (NumPy's ValueError), a gradient that is a view of
    the state or overlaps the parameter, an np.errstate that raises."""
    ro = np.ones(10)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        optim.Adagrad({"w": ro}, fused=True).step({"w": np.ones(10)})

    buf_a, buf_b = np.linspace(-1, 1, 41), np.linspace(-1, 1, 41)
    oa = optim.Adam({"w": buf_a[1:]}, fused=False)
    ob = optim.Adam({"w": buf_b[1:]}, fused=True)
    for _ in range(3):
        oa.step({"w": buf_a[:-1]})                  # overlaps the parameter, shifted
        ob.step({"w": buf_b[:-1]})
    np.testing.assert_array_equal(buf_a, buf_b)

    pa, pb = {"w": np.ones(10)}, {"w": np.ones(10)}
    oa, ob = optim.Adagrad(pa, fused=False), optim.Adagrad(pb, fused=True)
    oa.step({"w": np.full(10, 0.5)})
    ob.step({"w": np.full(10, 0.5)})
    oa.step({"w": oa.state["sum_sq"]["w"]})         # the gradient is the state itself
    ob.step({"w": ob.state["sum_sq"]["w"]})
    assert_same_bits(pa, pb, oa, ob)

    big = {"w": np.array([1e30, 0.0], np.float32)}
    opt = optim.Adagrad(big, fused=True)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        opt.step({"w": np.array([1e30, 0.0], np.float32)})
    # one kernel call in all: the first Adagrad step above, whose gradient is
    # a separate array
    assert kernel_calls == {"sgd": 0, "sgd_momentum": 0, "adagrad": 1, "adam": 0}


def test_mixed_or_half_dtypes_use_numpy(kernel_calls):
    """float16, and gradients of another dtype than the parameters, stay on the
    NumPy update (no kernel is called; both optimizers then run the same code)."""
    rng = np.random.default_rng(0)
    cases = [({"w": rng.standard_normal(50).astype(np.float16)},
              {"w": rng.standard_normal(50).astype(np.float16)}),
             ({"w": rng.standard_normal(50).astype(np.float32)},
              {"w": rng.standard_normal(50)})]                     # float64 gradient
    for params, g in cases:
        for name, kw in CONFIGS:
            with np.errstate(all="ignore"):     # Adam's eps sqrt(c2) is 0 in float16
                assert_same_bits(*run_pair(name, kw, params, [g] * 3))
    assert sum(kernel_calls.values()) == 0


def test_non_contiguous_parameters_use_numpy(kernel_calls):
    """A strided 2-D view (no 1-D view of it exists) keeps its NumPy update."""
    rng = np.random.default_rng(1)
    base_a, g = rng.standard_normal((6, 8)), {"w": rng.standard_normal((6, 4))}
    base_b, before = base_a.copy(), base_a.copy()
    a, b = {"w": base_a[:, ::2]}, {"w": base_b[:, ::2]}
    oa, ob = optim.Adam(a, fused=False), optim.Adam(b, fused=True)
    for _ in range(3):
        oa.step(g)
        ob.step(g)
    assert_same_bits(a, b, oa, ob)
    np.testing.assert_array_equal(base_a, base_b)              # the views were updated
    assert not np.array_equal(base_a, before)
    assert sum(kernel_calls.values()) == 0


def test_fused_state_dict_round_trip_and_deepcopy():
    """fused is not a hyperparameter: the state dict is the same either way,
    and loads into an optimizer of the other kind."""
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal(300)}
    grads = [{"w": rng.standard_normal(300)} for _ in range(3)]
    a, b, oa, ob = run_pair("adam", {}, params, grads)
    da, db = oa.state_dict(), ob.state_dict()
    assert da.keys() == db.keys() and "fused" not in da
    c = {"w": a["w"].copy()}
    oc = optim.Adam(c, fused=True)
    oc.load_state_dict(da)
    assert oc.fused and copy.deepcopy(oc).fused
    oa.step(grads[0])
    oc.step(grads[0])
    np.testing.assert_array_equal(a["w"], c["w"])


def test_bad_fused_value():
    with pytest.raises(ValueError, match="fused must be"):
        optim.Adam({"w": np.zeros(3)}, fused="yes")


def test_without_numba_fused_fails_at_construction():
    """ImportError with the install hint, raised when the optimizer is built."""
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from npvae import optim\n"
            "p = {'w': np.zeros(3)}\n"
            "assert not optim.Adam(p).fused\n"
            "try:\n"
            "    optim.Adam(p, fused=True)\n"
            "except ImportError as err:\n"
            "    print('ERR', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "NPVAE_FUSED": ""}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR fused=True (or NPVAE_FUSED=1) needs numba" in out.stdout
    assert "pip install 'npvae[fast]'" in out.stdout


@pytest.mark.parametrize("value,expected", [("1", True), ("yes", True), ("0", False),
                                            ("", False)])
def test_environment_variable_sets_the_default(value, expected):
    code = ("import numpy as np\nfrom npvae import optim\n"
            "print(optim.FUSED, optim.Adagrad({'w': np.zeros(2)}).fused, "
            "optim.Adagrad({'w': np.zeros(2)}, fused=False).fused)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "NPVAE_FUSED": value}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(expected), str(expected), "False"]


def test_fit_with_fused_gives_the_same_run_and_resumes_either_way(tmp_path, kernel_calls):
    """fit(fused=True) trains to the very same parameters and history; fused
    is not a training setting, so a run resumes with or without it."""
    data = (np.random.default_rng(0).random((120, 30)) < 0.4).astype(np.float32)

    def run(fused, epochs, path, resume=None):
        model = npvae.VAE(30, 2, hidden=(8,), rng=np.random.default_rng(1), dtype=np.float32)
        h = npvae.train.fit(model, data, optimizer="adam", lr=0.01, batch_size=40,
                            epochs=epochs, rng=np.random.default_rng(2), log=None,
                            checkpoint_path=path, resume=resume, fused=fused)
        return model, h

    plain, hp = run(False, 3, tmp_path / "plain.npz")
    assert kernel_calls["adam"] == 0
    fused, hf = run(True, 3, tmp_path / "fused.npz")
    assert kernel_calls["adam"] == 9                         # 3 epochs of 3 minibatches
    assert hp["train_elbo"] == hf["train_elbo"]
    for k in plain.params:
        np.testing.assert_array_equal(plain.params[k], fused.params[k], strict=True)
    run(True, 2, tmp_path / "split.npz")                     # 2 epochs fused, then plain
    resumed, _ = run(False, 3, tmp_path / "split.npz", resume=tmp_path / "split.npz")
    for k in plain.params:
        np.testing.assert_array_equal(plain.params[k], resumed.params[k], strict=True)


def test_cli_fused_flag(tmp_path, monkeypatch, kernel_calls):
    from npvae import cli
    monkeypatch.setenv("NPVAE_CACHE", str(tmp_path / "cache"))
    tiny = ["--data", "bars", "--n-train", "100", "--n-test", "40", "--hidden", "8",
            "--z-dim", "2", "--batch-size", "50", "--eval-samples", "5", "--eval-examples",
            "10", "--no-figures", "--epochs", "2"]
    assert cli.main(["train", *tiny, "--out", str(tmp_path / "a")]) == 0
    assert kernel_calls["adam"] == 0
    assert cli.main(["train", *tiny, "--fused", "--out", str(tmp_path / "b")]) == 0
    assert kernel_calls["adam"] == 4                         # 2 epochs of 2 minibatches
    a = (tmp_path / "a" / "history.csv").read_text().splitlines()
    b = (tmp_path / "b" / "history.csv").read_text().splitlines()
    # the same numbers; only the timing columns (seconds, examples/s) may differ
    assert [r.split(",")[:8] for r in a] == [r.split(",")[:8] for r in b]
