"""Evaluation: the test ELBO and the importance-sampled log-likelihood.

Derivation: ``derivations/07_importance_sampling.md``.

Any model with a method ``log_importance_weights(x, n_samples, rng) -> (K, M)``
returning log w_k = log p(x, z_k) - log q(z_k | x) for z_k ~ q(z | x) can be
evaluated: the VAE and the Helmholtz machine alike.
"""
import numpy as np

from npvae._checks import check_rng


def logmeanexp(a, axis=0):
    """log mean exp(a) along ``axis``, with the max taken out (stable)."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def log_likelihood(model, x, n_samples=1000, rng=None, *, batch_size=100, chunk=None):
    """Importance-sampled log p(x) per example, in nats: (M,)  (7.2).

    log p(x) ~ log (1/K) sum_k exp(log w_k),  log w_k = log p(x, z_k) - log q(z_k | x).
    Examples are processed ``batch_size`` at a time and the K samples in
    chunks (default: at most ~1e4 samples*examples in flight), combined by a
    running log-sum-exp, so memory is bounded whatever K is.  The estimate is
    a lower bound in expectation that tightens as K grows (7.3).
    """
    check_rng(rng)
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    for name, v in (("batch_size", batch_size), ("chunk", chunk)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    x = model.check_x(x)
    M = x.shape[0]
    out = np.empty(M, dtype=np.float64)
    for start in range(0, M, batch_size):
        xb = x[start:start + batch_size]
        m = xb.shape[0]
        # 1e4 rows in flight: ~30 MB per (rows, 784) float32 array; measured as
        # fast as 1e5 rows, whose Bernoulli temporaries peaked at ~1.5 GB
        step = chunk or max(1, min(n_samples, 10_000 // max(m, 1)))
        run_max = np.full(m, -np.inf)
        run_sum = np.zeros(m)
        done = 0
        while done < n_samples:
            k = min(step, n_samples - done)
            logw = np.asarray(model.log_importance_weights(xb, k, rng), dtype=np.float64)
            new_max = np.maximum(run_max, logw.max(axis=0))
            # finite references: an example whose weights so far are all zero
            # (log w = -inf) keeps run_sum = 0 instead of turning into nan
            ref = np.where(np.isfinite(new_max), new_max, 0.0)
            old = np.where(np.isfinite(run_max), run_max, ref)
            run_sum = run_sum * np.exp(old - ref) + np.exp(logw - ref).sum(axis=0)
            run_max = new_max
            done += k
        ref = np.where(np.isfinite(run_max), run_max, 0.0)
        with np.errstate(divide="ignore"):
            out[start:start + m] = np.log(run_sum / n_samples) + ref   # (7.2)
    return out


def elbo(model, x, rng=None, *, n_samples=1, batch_size=1000):
    """The ELBO per example (M,), estimated with ``n_samples`` draws: the mean
    of log w over samples (7.1).  For the VAE the analytic-KL form is used."""
    check_rng(rng)
    x = model.check_x(x)
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        if hasattr(model, "elbo_terms"):
            rec, kl = model.elbo_terms(xb, n_samples, rng)
            out[start:start + xb.shape[0]] = rec - kl
        else:
            out[start:start + xb.shape[0]] = np.mean(
                model.log_importance_weights(xb, n_samples, rng), axis=0)
    return out
