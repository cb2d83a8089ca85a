"""The Helmholtz machine: delta rules vs finite differences, enumeration vs
importance sampling, wake-sleep steps vs their definition, the bars world.

Derivation: derivations/08_wake_sleep.md.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npvae
from npvae import evaluate, gradcheck
from npvae.helmholtz import HelmholtzMachine, _bits, _logsumexp, fit, world_kl


def bars_world(n=3):
    """The bars world written out independently of npvae.data: vertical bar
    sets (neither none nor all) with total probability 2/3, horizontal 1/3."""
    combos = [c for c in itertools.product([0, 1], repeat=n) if 0 < sum(c) < n]
    patterns, probs = [], []
    for weight, axis in ((2 / 3, 1), (1 / 3, 0)):
        for c in combos:
            on = np.array(c, dtype=bool)
            img = np.zeros((n, n))
            if axis == 1:
                img[:, on] = 1
            else:
                img[on, :] = 1
            patterns.append(img.ravel())
            probs.append(weight / len(combos))
    return np.array(patterns), np.array(probs)


def random_machine(sizes, seed, scale=0.7, dtype=np.float64):
    """A machine with random non-zero weights and biases (so no gradient term
    can hide behind a zero)."""
    rng = np.random.default_rng(seed)
    hm = HelmholtzMachine(sizes, rng=rng, init_scale=scale, dtype=dtype)
    for v in hm.params.values():
        v[...] = scale * rng.standard_normal(v.shape)
    return hm, rng


def all_latents(hm, M):
    """Every latent configuration, broadcast over M examples: list of L
    arrays (C, M, n_l) with C = 2^(sum n_l)."""
    sizes = hm.sizes[1:]
    H = _bits(sum(sizes), np.float64)
    out, start = [], 0
    for n in sizes:
        out.append(np.broadcast_to(H[:, None, start:start + n], (H.shape[0], M, n)))
        start += n
    return out


# ---------------------------------------------------------------- structure and input checks

def test_parameter_names_and_shapes():
    hm = HelmholtzMachine((7, 5, 3), rng=np.random.default_rng(0))
    shapes = {k: v.shape for k, v in hm.params.items()}
    assert shapes == {"gen.top.b": (3,), "gen.1.W": (3, 5), "gen.1.b": (5,),
                      "gen.0.W": (5, 7), "gen.0.b": (7,),
                      "rec.1.W": (7, 5), "rec.1.b": (5,), "rec.2.W": (5, 3), "rec.2.b": (3,)}


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer_sizes=(5,)), "layer_sizes"),
    (dict(layer_sizes=(5, 0)), "layer_sizes"),
    (dict(layer_sizes=(5, 3), init_scale=-1), "init_scale"),
    (dict(layer_sizes=(5, 3), dtype=np.int32), "dtype"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HelmholtzMachine(rng=np.random.default_rng(0), **kwargs)


def test_bad_inputs_raise_value_errors():
    hm, rng = random_machine((4, 3, 2), 0)
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 4\)"):
        hm.wake_sleep_step(np.ones((2, 5)), 0.1, rng)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        hm.wake_sleep_step(2 * x, 0.1, rng)
    with pytest.raises(ValueError, match="lr"):
        hm.wake_sleep_step(x, -0.1, rng)
    with pytest.raises(ValueError, match="rng"):
        hm.wake_sleep_step(x, 0.1, 0)
    with pytest.raises(ValueError, match="q_update"):
        hm.wake_sleep_step(x, 0.1, rng, q_update="dream")
    with pytest.raises(ValueError, match="needs reweighted=True"):
        hm.wake_sleep_step(x, 0.1, rng, q_update="wake")
    with pytest.raises(ValueError, match="n_samples"):
        hm.log_importance_weights(x, 0, rng)
    with pytest.raises(ValueError, match="list of 2 arrays"):
        hm.log_joint(x, [np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"h\[1\] must have shape"):
        hm.log_joint(x, [np.ones((2, 3)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="exceed"):
        HelmholtzMachine((4, 12, 12), rng=rng).exact_log_likelihood(x)


# ---------------------------------------------------------------- delta rules = gradients

@pytest.mark.parametrize("sizes", [(5, 4), (6, 4, 3), (5, 3, 4, 2)])
def test_wake_delta_rule_is_gradient_of_log_joint(sizes):
    hm, rng = random_machine(sizes, 1)
    x = (rng.random((3, sizes[0])) < 0.5).astype(float)
    h, _ = hm.sample_posterior(x, 1, rng)
    h = [s[0] for s in h]                                   # (M, n_l): fixed sampled states
    f = lambda: hm.wake_gradients(x, h)                     # noqa: E731
    report = gradcheck.check(f, hm.params, names=[k for k in hm.params if k.startswith("gen.")])
    assert report.max_error < 1e-7, str(report)
    assert len(report) == 1 + 2 * (len(sizes) - 1)
    # the objective is the minibatch mean of log p(x, h)
    assert np.isclose(f()[0], np.mean(hm.log_joint(x, h)))


@pytest.mark.parametrize("sizes", [(5, 4), (6, 4, 3), (5, 3, 4, 2)])
def test_sleep_delta_rule_is_gradient_of_log_recognition(sizes):
    hm, rng = random_machine(sizes, 2)
    x, h = hm.dream(4, rng)
    f = lambda: hm.sleep_gradients(x, h)                    # noqa: E731
    report = gradcheck.check(f, hm.params, names=[k for k in hm.params if k.startswith("rec.")])
    assert report.max_error < 1e-7, str(report)
    assert len(report) == 2 * (len(sizes) - 1)
    assert np.isclose(f()[0], np.mean(hm.log_recognition(x, h)))


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       K=st.integers(1, 3), M=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_weighted_gradients_match_finite_differences(sizes, K, M, seed):
    """With K samples per example and arbitrary weights (what reweighted
    wake-sleep passes), both delta rules stay exact gradients."""
    hm, rng = random_machine(tuple(sizes), seed)
    x = (rng.random((M, sizes[0])) < 0.5).astype(float)
    h, _ = hm.sample_posterior(x, K, rng)
    weights = rng.random((K, M))
    report = gradcheck.check(lambda: hm.wake_gradients(x, h, weights), hm.params,
                             names=[k for k in hm.params if k.startswith("gen.")])
    assert report.max_error < 1e-7, str(report)
    report = gradcheck.check(lambda: hm.sleep_gradients(x, h, weights), hm.params,
                             names=[k for k in hm.params if k.startswith("rec.")])
    assert report.max_error < 1e-7, str(report)


# ---------------------------------------------------------------- densities, enumeration, IS

def test_log_joint_and_recognition_are_normalized():
    hm, _ = random_machine((3, 2, 2), 3)
    x = _bits(3, np.float64)                                # all 8 data vectors
    h = all_latents(hm, 8)
    log_joint = hm.log_joint(x, h)                          # (16, 8)
    assert np.isclose(np.exp(_logsumexp(log_joint.ravel(), 0)), 1.0, atol=1e-12)
    assert np.allclose(np.exp(_logsumexp(hm.log_recognition(x, h), 0)), 1.0, atol=1e-12)


@pytest.mark.parametrize("sizes", [(4, 3), (5, 3, 2), (4, 2, 3, 2)])
def test_exact_log_likelihood_matches_brute_force_and_sums_to_one(sizes):
    hm, _ = random_machine(sizes, 4)
    x = _bits(sizes[0], np.float64)
    exact = hm.exact_log_likelihood(x, batch_size=5)        # layer by layer (8.11)
    brute = _logsumexp(hm.log_joint(x, all_latents(hm, x.shape[0])), 0)   # all bits at once
    assert np.allclose(exact, brute, rtol=0, atol=1e-12)
    assert np.isclose(np.exp(exact).sum(), 1.0, atol=1e-12)


def test_importance_sampling_agrees_with_enumeration():
    """npvae.evaluate.log_likelihood with the recognition model as proposal.

    The tolerance comes from the exact variance of the weights: the relative
    variance r = E_q[w^2] / p(x)^2 - 1 is enumerated, and the estimate of
    p(x) from K samples has relative standard error sqrt(r / K); we allow 4
    of them (plus the O(r/K) bias of the log)."""
    hm, rng = random_machine((6, 3, 2), 5, scale=0.3)
    x = _bits(6, np.float64)[::7]
    K = 4000
    est = evaluate.log_likelihood(hm, x, n_samples=K, rng=rng)
    exact = hm.exact_log_likelihood(x)
    h = all_latents(hm, x.shape[0])
    lj, lq = hm.log_joint(x, h), hm.log_recognition(x, h)
    r = np.exp(_logsumexp(2 * lj - lq, 0) - 2 * exact) - 1
    tol = 4 * np.sqrt(r / K) + r / K
    assert np.all(np.abs(est - exact) < tol), (est - exact, tol)
    assert np.all(tol < 0.15)                                # the check has teeth
    # log w from one sample is a lower bound on average (Jensen)
    assert np.mean(evaluate.elbo(hm, x, rng, n_samples=200)) < np.mean(exact)


def test_sample_and_reconstruct_shapes_and_marginals():
    hm, rng = random_machine((4, 3, 2), 6)
    probs = hm.sample(5000, rng)
    assert probs.shape == (5000, 4) and np.all((probs > 0) & (probs < 1))
    bits = hm.sample(5000, rng, mean=False)
    assert set(np.unique(bits)) <= {0.0, 1.0}
    # E[x] of the dreams vs the exact marginal from enumeration, 4 SE
    x = _bits(4, np.float64)
    marginal = np.exp(hm.exact_log_likelihood(x)) @ x
    se = np.sqrt(marginal * (1 - marginal) / 5000)
    assert np.all(np.abs(probs.mean(axis=0) - marginal) < 4 * se)
    assert np.all(np.abs(bits.mean(axis=0) - marginal) < 4 * se)
    rec = hm.reconstruct(x)
    assert rec.shape == x.shape
    assert np.array_equal(rec, hm.reconstruct(x))          # deterministic without rng
    assert hm.reconstruct(x, rng=rng).shape == x.shape


def test_float32_is_kept_end_to_end():
    hm, rng = random_machine((5, 4, 2), 7, dtype=np.float32)
    x = (rng.random((3, 5)) < 0.5).astype(np.float32)
    hm.wake_sleep_step(x, 0.1, rng)
    hm.wake_sleep_step(x, 0.1, rng, reweighted=True, n_samples=3)
    assert all(v.dtype == np.float32 for v in hm.params.values())
    assert hm.sample(3, rng).dtype == np.float32
    assert hm.log_importance_weights(x, 2, rng).dtype == np.float32


# ---------------------------------------------------------------- the steps follow their definition

def _copy(hm):
    other = HelmholtzMachine(hm.sizes, rng=np.random.default_rng(0), dtype=hm.dtype)
    for k, v in hm.params.items():
        other.params[k][...] = v
    return other


def test_wake_sleep_step_is_wake_then_sleep_delta_rule():
    hm, _ = random_machine((6, 4, 2), 8)
    ref = _copy(hm)
    x = (np.random.default_rng(1).random((5, 6)) < 0.5).astype(float)
    lr = 0.3
    hm.wake_sleep_step(x, lr, np.random.default_rng(9))
    rng = np.random.default_rng(9)                           # same draws, same order
    h, _ = ref.sample_posterior(x, 1, rng)
    _, g = ref.wake_gradients(x, [s[0] for s in h])
    for k in g:
        ref.params[k] += lr * g[k]                           # (8.8)
    xd, hd = ref.dream(5, rng)                               # dreams from the updated p
    _, g = ref.sleep_gradients(xd, hd)
    for k in g:
        ref.params[k] += lr * g[k]                           # (8.10)
    for k in hm.params:
        assert np.allclose(hm.params[k], ref.params[k], rtol=0, atol=1e-14), k


@pytest.mark.parametrize("q_update", ["wake", "both"])
def test_reweighted_step_uses_normalized_importance_weights(q_update):
    hm, _ = random_machine((6, 4, 2), 10)
    ref = _copy(hm)
    x = (np.random.default_rng(2).random((3, 6)) < 0.5).astype(float)
    lr, K = 0.2, 5
    stats = hm.wake_sleep_step(x, lr, np.random.default_rng(11), reweighted=True, n_samples=K,
                               q_update=q_update)
    rng = np.random.default_rng(11)
    h, log_q = ref.sample_posterior(x, K, rng)
    log_w = ref.log_joint(x, h) - log_q                      # (K, M)
    w = np.exp(log_w - log_w.max(axis=0))
    w = w / w.sum(axis=0)                                    # (8.12)
    assert np.isclose(stats["ess"], np.mean(1 / np.sum(w ** 2, axis=0)))
    assert np.isclose(stats["log_px_k"], np.mean(_logsumexp(log_w, 0) - np.log(K)))
    _, gp = ref.wake_gradients(x, h, w / 3)
    _, gq = ref.sleep_gradients(x, h, w / 3)
    for k in gp:
        ref.params[k] += lr * gp[k]                          # (8.13)
    if q_update == "both":
        xd, hd = ref.dream(3, rng)
        _, gs = ref.sleep_gradients(xd, hd)
        gq = {k: 0.5 * (gq[k] + gs[k]) for k in gq}         # (8.14)
    for k in gq:
        ref.params[k] += lr * gq[k]
    for k in hm.params:
        assert np.allclose(hm.params[k], ref.params[k], rtol=0, atol=1e-14), k


# ---------------------------------------------------------------- the bars world

def test_bars_world_fixture_matches_the_issue():
    patterns, probs = bars_world()
    assert patterns.shape == (12, 9) and np.isclose(probs.sum(), 1)
    assert np.isclose(-np.sum(probs * np.log(probs)), 2.428, atol=5e-4)
    if hasattr(npvae.data, "bars_distribution"):
        p2, q2 = npvae.data.bars_distribution(n=3)
        mine = {tuple(p): q for p, q in zip(patterns, probs)}
        assert len(p2) == 12
        assert all(np.isclose(mine[tuple(p)], q) for p, q in zip(p2, q2))


def test_world_kl_is_zero_only_for_the_world():
    patterns, probs = bars_world()
    hm = HelmholtzMachine((9, 6, 1), rng=np.random.default_rng(0), init_scale=0.0)
    # the untrained machine is uniform over 2^9 images: KL = log 512 - H(world)
    assert np.isclose(world_kl(hm, patterns, probs),
                      9 * np.log(2) + np.sum(probs * np.log(probs)), atol=1e-12)
    with pytest.raises(ValueError, match="probs"):
        world_kl(hm, patterns, probs / 2)


def test_wake_sleep_learns_the_bars_world():
    """Bars 3x3, layers (9, 6, 1), all weights starting at zero.

    The issue's criterion is single-example steps: KL(world || model) < 0.4
    nats within 60k steps for most seeds (measured for 5 seeds at lr = 0.2 in
    derivations/08_wake_sleep.md: that run takes minutes).  To stay fast this
    test takes minibatches of M = 20 at lr = 2.0 (0.1 per example) for 2000
    steps (40k examples, 2/3 of the budget) and asks the same bound, 0.4
    nats, of at least 3 of 5 seeds, and 0.6 of all (untrained: 3.81).  Then,
    on a trained machine, the importance-sampled log p(x) with K = 1000
    (recognition model as proposal) is within 0.05 nats of enumeration."""
    patterns, probs = bars_world()
    kls = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = npvae.data.load("bars", n_train=40000, n_test=1, seed=seed).x_train
        hm = HelmholtzMachine((9, 6, 1), rng=rng, init_scale=0.0)
        fit(hm, x, steps=2000, lr=2.0, rng=rng, batch_size=20)
        kls.append(world_kl(hm, patterns, probs))
        if seed == 0:
            est = evaluate.log_likelihood(hm, patterns, n_samples=1000, rng=rng)
            assert np.max(np.abs(est - hm.exact_log_likelihood(patterns))) < 0.05
    assert sum(kl < 0.4 for kl in kls) >= 3, kls
    assert max(kls) < 0.6, kls
