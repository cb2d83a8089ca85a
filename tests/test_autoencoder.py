"""npvae.Autoencoder: hand backprop against finite differences, shapes, dtypes, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npvae
from npvae import gradcheck
from npvae.autoencoder import Autoencoder, estimator


def _data(rng, M, D, loss):
    if loss == "bernoulli":
        return rng.random((M, D))              # soft targets in [0, 1] exercise every term
    return rng.standard_normal((M, D))


@pytest.mark.parametrize("loss", ["bernoulli", "squared"])
@pytest.mark.parametrize("hidden", [(), (4,), (5, 3)])
def test_gradcheck_every_parameter(loss, hidden):
    rng = np.random.default_rng(1)
    # init_scale 0.5: non-trivial weights so that a wrong backward cannot hide behind ~0 values
    model = Autoencoder(6, 2, hidden=hidden, activation="tanh", loss=loss, rng=rng, init_scale=0.5)
    for v in model.params.values():
        v += 0.1 * rng.standard_normal(v.shape)       # non-zero biases too
    x = _data(rng, 3, 6, loss)
    report = gradcheck.check(lambda: model.loss_and_grads(x), model.params)
    assert set(report) == set(model.params)
    assert report.max_error < 1e-7, str(report)


@settings(max_examples=15, deadline=None)
@given(activation=st.sampled_from(["tanh", "relu", "sigmoid", "softplus"]),
       loss=st.sampled_from(["bernoulli", "squared"]),
       M=st.integers(1, 4), J=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_gradcheck_random_direction(activation, loss, M, J, seed):
    rng = np.random.default_rng(seed)
    model = Autoencoder(5, J, hidden=(4,), activation=activation, loss=loss, rng=rng,
                        init="glorot")
    for v in model.params.values():
        v += 0.1 * rng.standard_normal(v.shape)
    x = _data(rng, M, 5, loss)
    err = gradcheck.check_direction(lambda: model.loss_and_grads(x), model.params, rng)
    # relu's kink: a direction may cross it within h; the other activations are smooth
    assert err < (1e-5 if activation == "relu" else 1e-7)


def test_loss_values_match_the_likelihoods():
    rng = np.random.default_rng(2)
    x = rng.random((4, 6))
    model = Autoencoder(6, 2, hidden=(3,), rng=rng, init_scale=0.5)
    logits = model.decode(model.encode(x))
    loss, _ = model.loss_and_grads(x)
    assert np.isclose(loss, -np.mean(npvae.distributions.bernoulli_log_prob(x, logits)))
    sq = Autoencoder(6, 2, hidden=(3,), loss="squared", rng=rng, init_scale=0.5)
    loss, _ = sq.loss_and_grads(x)
    assert np.isclose(loss, 0.5 * np.mean(np.sum((x - sq.reconstruct(x)) ** 2, axis=1)))


def test_shapes_and_reconstruction_range():
    rng = np.random.default_rng(3)
    model = Autoencoder(8, 2, hidden=(5,), rng=rng)
    x = rng.random((7, 8))
    assert model.encode(x).shape == (7, 2)
    r = model.reconstruct(x)
    assert r.shape == (7, 8) and np.all((r > 0) & (r < 1))
    assert model.decoded_mean(np.zeros((3, 2))).shape == (3, 8)


def test_float32_end_to_end():
    rng = np.random.default_rng(4)
    model = Autoencoder(8, 2, hidden=(5,), rng=rng, dtype=np.float32)
    x = rng.random((7, 8)).astype(np.float32)
    loss, grads = model.loss_and_grads(x)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.encode(x).dtype == np.float32 and model.reconstruct(x).dtype == np.float32


def test_grads_are_copies_and_overwritten_not_accumulated():
    rng = np.random.default_rng(5)
    model = Autoencoder(6, 2, hidden=(3,), rng=rng, init_scale=0.5)
    x = rng.random((4, 6))
    _, g1 = model.loss_and_grads(x)
    _, g2 = model.loss_and_grads(x)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])
        assert g1[k] is not model.grads[k]


def test_gradient_descent_reduces_the_loss():
    rng = np.random.default_rng(6)
    x = (rng.random((40, 10)) < 0.3).astype(float)
    model = Autoencoder(10, 2, hidden=(8,), rng=rng, init="glorot")
    start, _ = model.loss_and_grads(x)
    for _ in range(200):
        _, grads = estimator(model, x)
        for k, p in model.params.items():
            p -= 0.05 * grads[k]
    end, _ = model.loss_and_grads(x)
    assert end < start - 0.5


def test_namespace_and_config_round_trip():
    rng = np.random.default_rng(7)
    model = npvae.Autoencoder(6, 2, hidden=[3], loss="squared", rng=rng)
    again = npvae.Autoencoder(**{**model.config(), "rng": rng})
    assert again.config() == model.config()
    assert set(again.params) == set(model.params) == {"enc.W0", "enc.b0", "enc.W1", "enc.b1",
                                                      "dec.W0", "dec.b0", "dec.W1", "dec.b1"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_dim=0, z_dim=2), "x_dim"),
    (dict(x_dim=4, z_dim=2, hidden=(0,)), "hidden"),
    (dict(x_dim=4, z_dim=2, activation="elu"), "activation"),
    (dict(x_dim=4, z_dim=2, loss="l1"), "loss"),
    (dict(x_dim=4, z_dim=2, init="xavier"), "init"),
    (dict(x_dim=4, z_dim=2, dtype=np.int32), "dtype"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Autoencoder(**kwargs, rng=np.random.default_rng(0))


def test_bad_inputs():
    model = Autoencoder(4, 2, hidden=(3,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="x must have shape"):
        model.encode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        model.loss_and_grads(np.full((2, 4), 2.0))
    with pytest.raises(ValueError, match="code must have shape"):
        model.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rng"):
        Autoencoder(4, 2, rng=0)
    with pytest.raises(ValueError, match="options"):
        estimator(model, np.zeros((2, 4)), beta=2.0)
