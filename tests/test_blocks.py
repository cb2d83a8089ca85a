"""Cache-sized row blocks (issue 8): ``distributions.row_blocks`` covers an
array exactly once in blocks of whole rows, and the Bernoulli term computed
block by block is bit-identical to the formula applied to the whole array."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npvae import distributions as dist


def reference_log_prob_and_grad(x, logits):
    """The Bernoulli term (4.2), (4.3) on whole arrays, one NumPy call a pass:
    the same arithmetic as the library's, with no blocks."""
    p = 0.5 + 0.5 * np.tanh(logits * 0.5)
    log_sig_abs = np.log(np.maximum(p, 1 - p)) - np.maximum(logits, 0)
    return np.sum(x * logits + log_sig_abs, axis=-1), x - p


def reference_log_prob(x, logits):
    sp = np.log1p(np.exp(-np.abs(logits))) + np.maximum(logits, 0)
    return np.sum(x * logits - sp, axis=-1)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       itemsize=st.sampled_from([4, 8]), block_bytes=st.integers(1, 600))
def test_row_blocks_cover_every_element_once_in_whole_rows(shape, itemsize, block_bytes):
    shape = tuple(shape)
    count = np.zeros(shape, int)
    blocks = list(dist.row_blocks(shape, itemsize, block_bytes))
    for s in blocks:
        count[s] += 1
        assert count[s].shape[-1] == shape[-1]                    # rows stay whole
    np.testing.assert_array_equal(count, 1)
    if len(blocks) > 1:
        # split only when it is more than two blocks' worth, and each block fits
        assert math.prod(shape) * itemsize > 2 * block_bytes
        for s in blocks:
            rows = count[s].size // shape[-1]
            assert count[s].size * itemsize <= block_bytes or rows == 1


def test_row_blocks_keeps_small_arrays_whole():
    assert list(dist.row_blocks((100, 784), 4)) == [(Ellipsis,)]     # the paper's minibatch
    assert len(list(dist.row_blocks((1000, 784), 4))) > 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, logits_shape", [
    ((300, 50), (300, 50)),            # the autoencoder: same shapes
    ((40, 50), (6, 40, 50)),           # the VAE: L samples of an (M, D) minibatch
    ((1, 50), (300, 1, 50)),           # K importance samples of one example
    ((50,), (4, 70, 50)),              # x repeated along two axes
])
def test_blocked_bernoulli_equals_the_whole_array_formula(monkeypatch, dtype, x_shape,
                                                          logits_shape):
    rng = np.random.default_rng(3)
    x = rng.random(x_shape).astype(dtype)
    x[x < 0.5] = 0.0
    logits = (rng.standard_normal(logits_shape) * 5).astype(dtype)
    monkeypatch.setattr(dist, "BLOCK_BYTES", 1000)      # many blocks, some of one row
    assert len(dist._row_blocks_of(x, logits)) > 3      # the blocked path is taken
    lp, g = dist.bernoulli_log_prob_and_grad(x, logits)
    want_lp, want_g = reference_log_prob_and_grad(x, logits)
    np.testing.assert_array_equal(lp, want_lp)
    np.testing.assert_array_equal(g, want_g)
    assert lp.dtype == g.dtype == dtype and g.shape == logits_shape
    np.testing.assert_array_equal(dist.bernoulli_log_prob(x, logits), reference_log_prob(x, logits))


def _cases():
    rng = np.random.default_rng(4)
    bits = (rng.random((300, 50)) < 0.5)
    f32 = (rng.standard_normal((300, 50)) * 5).astype(np.float32)
    return {
        "x float64, logits float32": (bits.astype(np.float64), f32),
        "x int, logits float32": (bits.astype(np.int64), f32),
        "x a list": (bits[0].astype(float).tolist(), f32),
        "x a Python scalar": (1.0, f32),
        "logits int": (bits.astype(np.float32), (f32 * 3).astype(np.int64)),
        "logits Fortran-ordered": (bits[0].astype(np.float32), np.asfortranarray(f32)),
        "logits transposed": (bits[:, 0].astype(np.float32), f32.T),
        "x with a size-1 axis": (bits[:1].astype(np.float32), f32),
        "logits the smaller one": (bits.astype(np.float32), f32[0]),
        "x float32, logits float16": (bits.astype(np.float32), f32.astype(np.float16)),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_other_inputs_keep_the_whole_array_results(monkeypatch, case):
    """Mixed dtypes, Python scalars and lists, other memory layouts and
    broadcasting patterns are computed whole, as the formula is written: same
    bits, dtypes and types as the reference, even where blocks would be cut."""
    x, logits = _cases()[case]
    monkeypatch.setattr(dist, "BLOCK_BYTES", 1000)
    assert dist._row_blocks_of(x, logits) is None
    lp, g = dist.bernoulli_log_prob_and_grad(x, logits)
    want_lp, want_g = reference_log_prob_and_grad(x, logits)
    pairs = [(lp, want_lp), (g, want_g)]
    if logits.dtype.kind == "f":          # (integer logits: the in-place exp cannot hold floats)
        pairs.append((dist.bernoulli_log_prob(x, logits), reference_log_prob(x, logits)))
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
        assert type(got) is type(want) and got.dtype == want.dtype
