"""The training loop and checkpoints: learning, history, exact resumption,
bad checkpoints, non-finite losses, Ctrl-C."""
import math
import os

import numpy as np
import pytest

import npvae
from npvae import checkpoint as ckpt_io
from npvae import estimators
from npvae.train import History, NonFiniteError, TrainingInterrupted, fit, kl_weight


def prototype_data(n, rng, d=16, k=4, flip=0.05):
    """Binary data with structure: one of k random prototypes, a few bits flipped."""
    protos = np.random.default_rng(123).random((k, d)) < 0.5
    x = protos[rng.integers(k, size=n)]
    return (x ^ (rng.random((n, d)) < flip)).astype(np.float64)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return prototype_data(200, rng), prototype_data(60, rng)


def new_model(seed=1, z_dim=2, dtype=np.float64):
    return npvae.VAE(16, z_dim, hidden=(8,), rng=np.random.default_rng(seed), dtype=dtype)


QUIET = dict(log=None, batch_size=40, lr=0.1)


def test_fit_improves_the_elbo(data):
    x, xt = data
    model = new_model()
    before, _, _ = npvae.train.evaluate_terms(model, xt, np.random.default_rng(0), n_samples=10)
    hist = fit(model, x, x_test=xt, epochs=25, rng=np.random.default_rng(0), **QUIET)
    after, _, _ = npvae.train.evaluate_terms(model, xt, np.random.default_rng(0), n_samples=10)
    # 16 fair bits cost 11.1 nats; 4 prototypes with 5% flips cost about log 4 + 16 H(0.05) = 4.7
    assert before < -10.5
    assert after > before + 3.0
    assert hist["test_elbo"][-1] > hist["test_elbo"][0] + 2.0
    assert hist["train_elbo"][-1] > hist["train_elbo"][0]


def test_history_fields_and_warmup(data):
    x, xt = data
    hist = fit(new_model(), x, x_test=xt, epochs=3, rng=np.random.default_rng(0),
               eval_every=2, warmup_epochs=2, beta=0.5, **QUIET)
    assert isinstance(hist, History) and len(hist) == 3
    assert set(hist) == set(History.COLUMNS)
    assert hist["epoch"] == [1, 2, 3]
    assert hist["step"] == [5, 10, 15]                  # 200 examples / M = 40
    assert hist["examples_seen"] == [200, 400, 600]
    # beta of the last step of each epoch: steps 4, 9 of 10 warm-up steps, then 0.5
    np.testing.assert_allclose(hist["beta"], [0.5 * 4 / 10, 0.5 * 9 / 10, 0.5])
    assert math.isnan(hist["test_elbo"][0])             # eval_every=2: epoch 1 skipped
    for e in (1, 2):                                    # epoch 2, and the last epoch
        np.testing.assert_allclose(hist["test_elbo"][e], hist["test_rec"][e] - hist["test_kl"][e])
        assert hist["test_kl"][e] >= 0
    assert all(v > 0 for v in hist["examples_per_s"])


def test_kl_weight_schedule():
    assert kl_weight(0, 1.0, 0) == 1.0
    assert [kl_weight(s, 2.0, 4) for s in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_history_csv_and_dict(tmp_path):
    h = History()
    h.append(epoch=1, train_elbo=-3.5)
    h.append(epoch=2, train_elbo=-3.0, test_elbo=-3.25)
    path = h.to_csv(tmp_path / "h.csv")
    lines = open(path).read().splitlines()
    assert lines[0].split(",") == list(History.COLUMNS)
    row2 = dict(zip(lines[0].split(","), lines[2].split(",")))
    assert row2["epoch"] == "2" and float(row2["test_elbo"]) == -3.25
    assert dict(zip(lines[0].split(","), lines[1].split(",")))["test_elbo"] == ""
    assert npvae.plots.history_columns(str(path))["train_elbo"].tolist() == [-3.5, -3.0]
    assert History(h.to_dict()).truncate(1)["epoch"] == [1]


def test_checkpoint_round_trip(tmp_path, data):
    x, xt = data
    path = tmp_path / "checkpoint.npz"
    model = new_model(dtype=np.float32)
    rng = np.random.default_rng(3)
    hist = fit(model, x, x_test=xt, epochs=2, rng=rng, optimizer="adam",
               checkpoint_path=path, **QUIET)
    ck = ckpt_io.read(path)
    assert ck.counters["epoch"] == 2 and ck.counters["step"] == 10
    assert ck.history == hist.to_dict()
    assert ck.train_config["optimizer"] == "adam" and ck.train_config["epochs"] == 2
    assert ck.rng_state == rng.bit_generator.state
    rebuilt, _ = ckpt_io.load_model(tmp_path)          # a run directory works too
    assert rebuilt.config() == model.config()
    for k, p in model.params.items():
        assert rebuilt.params[k].dtype == np.float32
        assert np.array_equal(rebuilt.params[k], p)
    assert ck.optimizer["type"] == "adam" and ck.optimizer["t"] == 10
    with np.load(path, allow_pickle=False) as f:        # no pickle anywhere
        assert "model_config" in f.files and f["model_config"].dtype.kind == "U"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def straight_and_resumed(tmp_path, x, xt, make_options, **kw):
    """3 epochs straight vs 2 epochs, then resume for the 3rd: both models."""
    a = new_model()
    straight = fit(a, x, x_test=xt, epochs=3, rng=np.random.default_rng(5),
                   estimator_options=make_options(), **kw)
    path = tmp_path / "c.npz"
    b = new_model()
    fit(b, x, x_test=xt, epochs=2, rng=np.random.default_rng(5), checkpoint_path=path,
        estimator_options=make_options(), **kw)
    c = new_model(seed=99)                              # different init: all comes from the file
    hist = fit(c, x, x_test=xt, epochs=3, resume=path, estimator_options=make_options(), **kw)
    for col in ("train_elbo", "test_elbo", "test_kl", "beta", "examples_seen"):
        assert hist[col] == straight[col], col
    return a, c, hist


@pytest.mark.parametrize("make_options, kw", [
    (dict, dict(binarize="dynamic", warmup_epochs=2)),
    (lambda: {"baseline": "moving-average", "state": estimators.BaselineState()},
     dict(estimator="reinforce", optimizer="adam", n_samples=2)),
    (lambda: {"kl": "mc"}, dict(optimizer="sgd", optimizer_options={"momentum": 0.9},
                                weight_decay=1 / 200)),
], ids=["reparam-dynamic-warmup", "reinforce-baseline-adam", "mc-sgd-momentum-decay"])
def test_resume_is_bit_identical(tmp_path, data, make_options, kw):
    x, xt = data
    a, c, hist = straight_and_resumed(tmp_path, x, xt, make_options, **QUIET, **kw)
    for k in a.params:
        assert np.array_equal(a.params[k], c.params[k]), k
    assert len(hist) == 3 and hist["epoch"] == [1, 2, 3]


def test_resume_extends_and_refuses_other_settings(tmp_path, data):
    x, xt = data
    path = tmp_path / "c.npz"
    fit(new_model(), x, epochs=1, rng=np.random.default_rng(0), checkpoint_path=path, **QUIET)
    before = path.read_bytes()
    model = new_model(seed=42)
    init = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, x, epochs=2, resume=path, **dict(QUIET, batch_size=20))
    with pytest.raises(ValueError, match="another model"):
        fit(new_model(z_dim=3), x, epochs=2, resume=path, **QUIET)
    assert all(np.array_equal(init[k], model.params[k]) for k in init)
    assert path.read_bytes() == before
    lines = []
    fit(model, x, epochs=1, resume=path, **dict(QUIET, log=lines.append))
    assert "nothing to do" in lines[-1]


def test_bad_checkpoints_raise_before_touching_the_model(tmp_path, data):
    x, _ = data
    good = tmp_path / "good.npz"
    fit(new_model(), x, epochs=1, rng=np.random.default_rng(0), checkpoint_path=good, **QUIET)
    raw = good.read_bytes()
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    corrupt = tmp_path / "corrupt.npz"
    mid = len(raw) // 2
    corrupt.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid:mid + 64]) + raw[mid + 64:])
    text = tmp_path / "text.npz"
    text.write_text("hello")
    model = new_model(seed=42)
    init = {k: v.copy() for k, v in model.params.items()}
    for bad in (truncated, corrupt, text):
        with pytest.raises(ValueError, match="corrupt or truncated|not an npvae"):
            ckpt_io.read(bad)
        with pytest.raises(ValueError):
            fit(model, x, epochs=2, resume=bad, **QUIET)
    with pytest.raises(FileNotFoundError):
        ckpt_io.read(tmp_path / "missing.npz")
    other = npvae.VAE(16, 2, hidden=(9,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="another model"):
        ckpt_io.restore_params(ckpt_io.read(good), other)
    assert all(np.array_equal(init[k], model.params[k]) for k in init)
    assert good.read_bytes() == raw


def nan_at(step_to_fail, what):
    """An estimator like reparam that returns a NaN loss or gradient at one global step."""
    calls = {"n": 0}

    def flaky(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", beta=1.0):
        loss, grads = estimators.reparam(model, x, rng=rng, n_samples=n_samples, kl=kl, beta=beta)
        calls["n"] += 1
        if calls["n"] == step_to_fail:
            if what == "loss":
                loss = float("nan")
            else:
                grads["dec.W0"][0, 0] = np.inf
        return loss, grads
    return flaky


@pytest.mark.parametrize("what, term", [("loss", "loss"), ("grad", "gradient of dec.W0")])
def test_non_finite_stops_and_keeps_the_last_good_checkpoint(tmp_path, data, what, term):
    x, _ = data
    path = tmp_path / "c.npz"
    model = new_model()
    with pytest.raises(NonFiniteError) as info:
        # 5 steps per epoch: global step 8 is epoch 2, step 3
        fit(model, x, epochs=3, rng=np.random.default_rng(0), checkpoint_path=path,
            estimator=nan_at(8, what), **QUIET)
    err = info.value
    assert (err.epoch, err.step) == (2, 3)
    msg = str(err)
    assert f"non-finite {term}" in msg and "epoch 2, step 3/5" in msg
    assert str(path) in msg and "after epoch 1" in msg
    ck = ckpt_io.read(path)
    assert ck.counters["epoch"] == 1
    assert all(np.all(np.isfinite(p)) for p in model.params.values())   # bad step not applied


def test_huge_learning_rate_is_caught(data):
    x, _ = data
    model = new_model()
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="non-finite"):
        fit(model, x * 0 + 1, epochs=50, rng=np.random.default_rng(0), optimizer="sgd",
            **dict(QUIET, lr=1e6))


def interrupt_at(step_to_fail):
    calls = {"n": 0}

    def stoppable(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", beta=1.0):
        calls["n"] += 1
        if calls["n"] == step_to_fail:
            raise KeyboardInterrupt
        return estimators.reparam(model, x, rng=rng, n_samples=n_samples, kl=kl, beta=beta)
    stoppable.__name__ = "reparam_stoppable"
    return stoppable


@pytest.mark.parametrize("every", [1, 2])
def test_ctrl_c_saves_and_the_run_resumes_exactly(tmp_path, data, every):
    x, xt = data
    straight = new_model()
    fit(straight, x, x_test=xt, epochs=3, rng=np.random.default_rng(5),
        estimator=interrupt_at(-1), checkpoint_every=every, **QUIET)
    path = tmp_path / "c.npz"
    with pytest.raises(TrainingInterrupted) as info:
        # 5 steps per epoch: step 8 is in epoch 2; with every=2 epoch 1 was not yet on disk
        fit(new_model(), x, x_test=xt, epochs=3, rng=np.random.default_rng(5),
            estimator=interrupt_at(8), checkpoint_path=path, checkpoint_every=every, **QUIET)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.epoch == 1 and str(path) in str(info.value)
    assert ckpt_io.read(path).counters["epoch"] == 1
    resumed = new_model(seed=9)
    fit(resumed, x, x_test=xt, epochs=3, resume=path, estimator=interrupt_at(-1),
        checkpoint_every=every, **QUIET)
    for k in straight.params:
        assert np.array_equal(straight.params[k], resumed.params[k]), k


def test_ctrl_c_in_the_first_epoch_saves_the_initial_state(tmp_path, data):
    x, _ = data
    path = tmp_path / "c.npz"
    model = new_model()
    init = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(TrainingInterrupted, match="after epoch 0"):
        fit(model, x, epochs=2, rng=np.random.default_rng(0), estimator=interrupt_at(2),
            checkpoint_path=path, **QUIET)
    ck = ckpt_io.read(path)
    assert ck.counters["epoch"] == 0
    assert all(np.array_equal(ck.params[k], init[k]) for k in init)


@pytest.mark.parametrize("kw, match", [
    (dict(estimator="nope"), "estimator must be one of"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=2.5), "epochs"),
    (dict(binarize="maybe"), "binarize"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(lr=-1.0), "lr"),
    (dict(n_samples=0), "n_samples"),
    (dict(estimator="iwae", beta=0.5), "no beta argument"),
    (dict(estimator_options={"kll": "mc"}), "no option"),
    (dict(estimator_options={"rng": None}), "must not contain"),
    (dict(rng=None), "rng"),
    (dict(rng=np.random.default_rng(0), x_test=np.ones((3, 5))), "x_test"),
])
def test_bad_arguments(data, kw, match):
    x, _ = data
    args = dict(dict(QUIET, epochs=1, rng=np.random.default_rng(0)), **kw)
    model = new_model()
    init = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=match):
        fit(model, x, **args)
    assert all(np.array_equal(init[k], model.params[k]) for k in init)


def test_gaussian_model_cannot_be_binarized():
    m = npvae.VAE(4, 1, hidden=(3,), likelihood="gaussian", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="Bernoulli"):
        fit(m, np.random.default_rng(0).random((10, 4)), epochs=1, binarize="threshold",
            rng=np.random.default_rng(0), log=None)


def test_custom_estimator_with_a_numpy_scalar_loss_checkpoints(tmp_path, data):
    # np.mean of a float32 array is np.float32, which JSON cannot hold
    x, xt = data

    def est(model, xb, *, rng=None, eps=None, n_samples=1):
        loss, grads = estimators.reparam(model, xb, rng=rng, n_samples=n_samples)
        return np.float32(loss), grads

    model = new_model(dtype=np.float32)
    h = fit(model, x, x_test=xt, estimator=est, epochs=1, batch_size=20, lr=0.01,
            rng=np.random.default_rng(0), checkpoint_path=tmp_path / "ck.npz")
    assert isinstance(h["train_elbo"][0], float)
    assert ckpt_io.read(tmp_path / "ck.npz").counters["epoch"] == 1


def test_checkpoint_path_may_be_a_run_directory(tmp_path, data):
    x, xt = data
    fit(new_model(), x, epochs=1, batch_size=20, rng=np.random.default_rng(0),
        checkpoint_path=tmp_path)
    assert (tmp_path / "checkpoint.npz").exists()


def test_resume_on_other_training_data_is_refused(tmp_path, data):
    x, xt = data
    fit(new_model(), x, epochs=1, batch_size=20, rng=np.random.default_rng(0),
        checkpoint_path=tmp_path / "ck.npz")
    model = new_model()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="n_train"):
        fit(model, x[:-5], epochs=2, batch_size=20, resume=tmp_path / "ck.npz")
    assert all(np.array_equal(before[k], model.params[k]) for k in before)


def test_history_csv_leaves_no_temporary_file_on_failure(tmp_path):
    class Boom:
        def __str__(self):
            raise KeyboardInterrupt

    h = History()
    h.append(epoch=Boom())                # Ctrl-C while the file is half written
    with pytest.raises(KeyboardInterrupt):
        h.to_csv(tmp_path / "history.csv")
    assert list(tmp_path.iterdir()) == []
