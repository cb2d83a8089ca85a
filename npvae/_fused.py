"""The optimizers' updates in one compiled pass each (optional; needs numba), (9.13).

Imported only when an optimizer is built with ``fused=True`` (or with the
environment variable ``NPVAE_FUSED=1``); npvae itself needs only NumPy.  See
``npvae.optim`` for the readable NumPy form and ``derivations/09_optimizers.md``
(section 9.8) for why both give the same bits.

Each kernel does, element by element, the very operations that the NumPy
update in ``npvae.optim`` does pass by pass, in the same order and in the
arrays' dtype (the scalars arrive already cast to it, as NumPy casts a Python
float against a float32 array): no reassociation, no fused multiply-add
(numba does not contract without ``fastmath``).  So the parameters and the
state come out bit-identical (``tests/test_fused.py``), and what changes is
the memory traffic: one read of p, g and the state and one write of p and the
state, instead of seven (Adagrad) to twelve (Adam) NumPy passes on one core.
Measured (benchmarks/README.md, Session 6): the paper model's Adagrad update
0.09 ms against 0.53 ms, the whole training step 1.15-1.21x (``paper``) and
1.20-1.26x (``pytorch-example``) faster on 2 cores.

``error_model="numpy"`` lets a division by zero give inf/nan as NumPy does
instead of testing every divisor, which also keeps the loops vectorized
(without it the Adagrad update took 1.42 ms).  The kernels are single-threaded
on purpose: right after a matrix product OpenBLAS's idle worker spin-waits on
the other core (benchmarks/experiments/split_ops.py).  ``cache=True`` keeps
the compiled code on disk between processes.

Every kernel takes ``decay`` (whether the optimizer has weight decay at all,
the NumPy update's ``if wd:``) apart from ``wd`` (its value in the arrays'
dtype), so that a decay too small for the dtype still takes the same path.
"""
import numba
import numpy as np

_jit = numba.njit(cache=True, error_model="numpy", nogil=True)


@numba.njit(inline="always", error_model="numpy")
def _gradient(p, g, i, decay, wd):
    """Entry i of the gradient the rule sees: g_i, or wd p_i + g_i with weight decay."""
    if decay:
        return p[i] * wd + g[i]                                # (9.2)
    return g[i]


@_jit
def sgd(p, g, decay, wd, lr):
    """p <- p - lr g  (9.3); with weight decay g <- g + wd p first  (9.2)."""
    for i in range(p.size):
        gi = _gradient(p, g, i, decay, wd)
        p[i] -= gi * lr                                        # (9.3)


@_jit
def sgd_momentum(p, g, v, decay, wd, mu, lr):
    """v <- mu v + g;  p <- p - lr v  (9.4)."""
    for i in range(p.size):
        gi = _gradient(p, g, i, decay, wd)
        vi = v[i] * mu + gi                                    # (9.4)
        v[i] = vi
        p[i] -= vi * lr                                        # (9.4)


@_jit
def adagrad(p, g, G, decay, wd, lr, eps):
    """G <- G + g^2;  p <- p - lr g / (sqrt(G) + eps)  (9.5), (9.6)."""
    for i in range(p.size):
        gi = _gradient(p, g, i, decay, wd)
        Gi = G[i] + gi * gi                                    # (9.5)
        G[i] = Gi
        p[i] -= (gi / (np.sqrt(Gi) + eps)) * lr                # (9.6)


@_jit
def adam(p, g, m, v, decay, wd, b1, one_minus_b1, b2, one_minus_b2, eps_c2, step):
    """(9.7), then (9.8)-(9.9) folded as in ``npvae.optim.Adam._update``:
    p <- p - step m / (sqrt(v) + eps_c2), step = lr sqrt(c2) / c1,
    eps_c2 = eps sqrt(c2)."""
    for i in range(p.size):
        gi = _gradient(p, g, i, decay, wd)
        mi = m[i] * b1 + gi * one_minus_b1                     # (9.7)
        vi = v[i] * b2 + (gi * gi) * one_minus_b2              # (9.7)
        m[i] = mi
        v[i] = vi
        p[i] -= (mi / (np.sqrt(vi) + eps_c2)) * step           # (9.8), (9.9)

