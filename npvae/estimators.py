"""Gradient estimators of the negative ELBO, all behind one signature.

    estimator(model, x, *, rng=None, eps=None, n_samples=1, **options) -> (loss, grads)

``loss`` is -ELBO averaged over the minibatch, in nats per example (a float);
``grads`` maps every key of ``model.params`` to d loss / d param, as copies
that no later call changes (views into one new flat array when the model keeps
its gradients flat; the model's own ``grads`` buffers are overwritten by the
next call).
With ``copy=False`` (every estimator here takes it) ``grads`` holds the
model's own buffers instead: what a training loop that uses them at once
wants (no copy of every gradient per step), not an experiment that keeps them.
``eps`` of shape (L, M, J) fixes the noise, making ``loss`` a deterministic
function of the parameters (what a finite-difference test needs); otherwise
it is drawn from ``rng``.

Derivation: ``derivations/03_reparameterization.md``.
"""
import numpy as np

from npvae import distributions as dist
from npvae._checks import check_array, check_rng
from npvae.nn import flat_base

KL_MODES = ("analytic", "mc")


def draw_eps(model, x, rng, eps, n_samples):
    """Validate or draw the standard-normal noise, (L, M, J) in the model's dtype."""
    M = x.shape[0]
    if eps is not None:
        eps = check_array(eps, "eps", dtype=model.dtype)
        if eps.ndim == 2 and n_samples == 1:
            eps = eps[None]
        want = (eps.shape[0] if eps.ndim == 3 else None, M, model.z_dim)
        if eps.ndim != 3 or eps.shape[1:] != want[1:]:
            raise ValueError(f"eps must have shape (L, {M}, {model.z_dim}) for x of shape "
                             f"{x.shape}, got {eps.shape}")
        if n_samples not in (1, eps.shape[0]):
            raise ValueError(f"eps has L={eps.shape[0]} samples but n_samples={n_samples}")
        return eps
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if rng is None:
        raise ValueError("pass rng (a numpy.random.Generator) or eps (fixed noise)")
    check_rng(rng)
    return rng.standard_normal((n_samples, M, model.z_dim)).astype(model.dtype, copy=False)


def _collect(model, copy=True):
    """The grads to return: copies (default) or the model's own buffers."""
    if not copy:
        return dict(model.grads)
    flat = flat_base(model.grads.values())
    if flat is None:
        return {k: g.copy() for k, g in model.grads.items()}
    # a model on a flat ParamStore: one copy of one array, handed out as views
    # (measured 0.32 ms -> 0.2 ms per step for the paper's model, float32)
    flat, out, offset = flat.copy(), {}, 0
    for k, g in model.grads.items():
        out[k] = flat[offset:offset + g.size].reshape(g.shape)
        offset += g.size
    return out


def reparam(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", beta=1.0, copy=True):
    """The SGVB estimators of Kingma & Welling (2013), reparameterized.

    ``kl="analytic"``: estimator B (the paper's eq. 10), per example
    -ELBO_i = KL(q(z|x_i) || p(z)) - (1/L) sum_l log p(x_i | z_il)   (3.7)
    ``kl="mc"``: estimator A (eq. 6), per example
    -ELBO_i = (1/L) sum_l [log q(z_il | x_i) - log p(z_il) - log p(x_i | z_il)]   (3.6)
    with z_il = mu_i + std_i * eps_il.  ``beta`` weights the KL part (beta = 1
    is the ELBO).  Returns (loss, grads); loss = mean_i (-ELBO_i)  (3.8).
    """
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {KL_MODES}, got {kl!r}")
    x = model.check_x(x)
    eps = draw_eps(model, x, rng, eps, n_samples)
    L, M, _ = eps.shape

    # forward, one operation a line
    mu, logvar = model._encode(x)                                  # (M, J) each
    z, std = dist.reparameterize(mu, logvar, eps)                  # (L, M, J)  (3.3)
    log_px = model.log_px(x, z)                                    # (L, M)
    if kl == "analytic":
        kl_term = dist.gaussian_kl(mu, logvar)                     # (M,)  (2.6)
    else:
        log_q = dist.gaussian_log_prob(z, mu, logvar)              # (L, M)  (2.2)
        log_pz = dist.standard_normal_log_prob(z)                  # (L, M)  (2.1)
        kl_term = np.mean(log_q - log_pz, axis=0)                  # (M,)  (3.6)
    loss = np.mean(beta * kl_term - np.mean(log_px, axis=0))       # (3.6), (3.7), (3.8)

    # backward, in reverse
    dlog_px = np.full((L, M), -1.0 / (L * M), dtype=model.dtype)   # d loss / d log p(x|z_lm)  (5.10)
    dz = model.log_px_backward(dlog_px)                            # (L, M, J), dec.* grads
    if kl == "analytic":
        dmu_kl, dlogvar_kl = dist.gaussian_kl_grad(mu, logvar)    # (2.7), (2.8)
        scale = beta / M
        dmu_direct, dlogvar_direct = scale * dmu_kl, scale * dlogvar_kl
    else:
        # log q(z|x) depends on z (through the path) and on mu, logvar directly
        dz_q, dmu_q, dlogvar_q = dist.gaussian_log_prob_grad(z, mu, logvar)   # (4.5), (4.6)
        scale = beta / (L * M)
        dz = dz + scale * (dz_q - dist.standard_normal_log_prob_grad(z))
        dmu_direct = scale * dmu_q.sum(axis=0)
        dlogvar_direct = scale * dlogvar_q.sum(axis=0)
    dmu, dlogvar = dist.reparameterize_backward(dz, eps, std)     # (3.4), (3.5)
    model.encoder_backward(dmu + dmu_direct, dlogvar + dlogvar_direct)   # (5.11)
    return float(loss), _collect(model, copy)


# ---------------------------------------------------------------- score function (REINFORCE)
#
# Derivation: ``derivations/06_reinforce.md``.

BASELINES = (None, "moving-average", "leave-one-out")


class BaselineState:
    """The moving-average baseline carried between calls of :func:`reinforce`.

    The caller keeps one object per training run (or experiment) and passes
    it as ``state=``; nothing is stored in a global.  ``value`` is the
    current baseline b (None before the first update), ``n_updates`` how many
    calls have updated it.  A call uses the value from *before* its own
    update, so b never depends on the samples it is subtracted from (6.7).
    """

    def __init__(self, value=None):
        self.value = None if value is None else float(value)
        self.n_updates = 0

    def update(self, signal_mean, decay):
        """b <- decay * b + (1 - decay) * mean learning signal  (6.8); the first
        call sets b to the mean itself."""
        s = float(signal_mean)
        self.value = s if self.value is None else decay * self.value + (1 - decay) * s   # (6.8)
        self.n_updates += 1

    def __repr__(self):
        return f"BaselineState(value={self.value!r}, n_updates={self.n_updates})"


def gaussian_score(eps, std):
    """The score of q = N(mu, diag(exp(logvar))) at z = mu + std * eps.

    eps (L, M, J), std (M, J) -> (d log q / d mu, d log q / d logvar), each (L, M, J):
    d/dmu = (z - mu) / std^2 = eps / std  (6.4);  d/dlogvar = 0.5 (eps^2 - 1)  (6.5).
    """
    return eps / std, 0.5 * (eps * eps - 1)              # (6.4), (6.5)


def _check_baseline(baseline, state, decay, L):
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if baseline == "moving-average":
        if not isinstance(state, BaselineState):
            raise ValueError("baseline='moving-average' needs state=npvae.estimators.BaselineState() "
                             f"kept by the caller between calls, got state={state!r}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
    if baseline == "leave-one-out" and L < 2:
        raise ValueError(f"baseline='leave-one-out' needs n_samples >= 2, got {L}")


def reinforce(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", baseline=None,
              state=None, decay=0.9, copy=True):
    """The score-function (REINFORCE) estimator of the negative-ELBO gradient.

    Encoder (phi): with z_il = mu_i + std_i * eps_il held fixed,
    grad_phi ELBO_i ~ (1/L) sum_l (f_il - b_il) grad_phi log q(z_il | x_i)  (6.3), (6.6)
    where the learning signal is
      ``kl="analytic"``: f = log p(x | z), and -grad_phi KL(q || p) is added analytically (6.9);
      ``kl="mc"``:       f = log p(x, z) - log q(z | x); the direct derivative of
                         -log q in phi has expectation zero (6.10) and is left out.
    Decoder (theta): pathwise, as in :func:`reparam` (theta does not move q).
    ``baseline``: None (b = 0); ``"moving-average"``: b = ``state.value`` from
    earlier calls, then updated with this call's mean signal (6.8), ``state``
    (a :class:`BaselineState`) is required; ``"leave-one-out"``: b_il = mean of
    f_il' over the other L - 1 samples of example i (6.11), needs L >= 2.
    Every choice leaves the estimator unbiased (6.7).
    Returns (loss, grads) with loss the same -ELBO estimate as :func:`reparam`
    with the same ``kl``, so losses are comparable.
    Derivation: ``derivations/06_reinforce.md``.
    """
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {KL_MODES}, got {kl!r}")
    x = model.check_x(x)
    eps = draw_eps(model, x, rng, eps, n_samples)
    L, M, _ = eps.shape
    _check_baseline(baseline, state, decay, L)

    # forward
    mu, logvar = model._encode(x)                                  # (M, J) each
    z, std = dist.reparameterize(mu, logvar, eps)                  # (L, M, J)  (3.3)
    log_px = model.log_px(x, z)                                    # (L, M)
    if kl == "analytic":
        kl_term = dist.gaussian_kl(mu, logvar)                     # (M,)  (2.6)
        signal = log_px                                            # (L, M)  (6.9)
    else:
        log_q = dist.gaussian_log_prob(z, mu, logvar)              # (L, M)
        log_pz = dist.standard_normal_log_prob(z)                  # (L, M)
        signal = log_px + log_pz - log_q                           # (L, M)  (6.10)
        kl_term = np.mean(log_q - log_pz, axis=0)                  # (M,)
    loss = np.mean(kl_term - np.mean(log_px, axis=0))              # (3.6), (3.7), (3.8)

    if baseline == "moving-average":
        b = 0.0 if state.value is None else state.value            # from earlier calls only  (6.7)
        state.update(signal.mean(), decay)                         # (6.8)
    elif baseline == "leave-one-out":
        b = (signal.sum(axis=0) - signal) / (L - 1)                # (L, M)  (6.11)
    else:
        b = 0.0
    centred = (signal - b)[:, :, None]                             # (L, M, 1)

    # decoder: pathwise; the dz it returns is not used (z is held fixed for phi)
    model.log_px_backward(np.full((L, M), -1.0 / (L * M), dtype=model.dtype))
    # encoder: score function, d loss = -(1/(L M)) sum_l (f - b) * score  (6.6)
    dscore_mu, dscore_logvar = gaussian_score(eps, std)            # (6.4), (6.5)
    dmu = -np.sum(centred * dscore_mu, axis=0) / (L * M)           # (6.6)
    dlogvar = -np.sum(centred * dscore_logvar, axis=0) / (L * M)   # (6.6)
    if kl == "analytic":
        dmu_kl, dlogvar_kl = dist.gaussian_kl_grad(mu, logvar)     # (2.7), (2.8)
        dmu = dmu + dmu_kl / M                                     # (6.9)
        dlogvar = dlogvar + dlogvar_kl / M                         # (6.9)
    model.encoder_backward(dmu.astype(model.dtype, copy=False),
                           dlogvar.astype(model.dtype, copy=False))
    return float(loss), _collect(model, copy)


# ---------------------------------------------------------------- importance weighting, STL
#
# Derivation: ``derivations/07_importance_sampling.md``.

def _log_weight_backward(model, z, mu, logvar, eps, std, dlogw):
    """Backpropagate d loss / d log w (L, M), log w = log p(x|z) + log p(z) - log q(z|x),
    with z = mu + std * eps.  Fills dec.* grads; returns the pathwise (dmu, dlogvar)
    through z and the direct (dmu, dlogvar) of -log q, each (M, J).
    """
    w = dlogw[:, :, None]
    dz = model.log_px_backward(dlogw)                              # log p(x|z) part, dec.* grads
    dz_q, dmu_q, dlogvar_q = dist.gaussian_log_prob_grad(z, mu, logvar)   # (4.5), (4.6)
    dz = dz + w * (dist.standard_normal_log_prob_grad(z) - dz_q)   # log p(z) - log q(z|x) via z
    dmu_path, dlogvar_path = dist.reparameterize_backward(dz, eps, std)   # (3.4), (3.5)
    return (dmu_path, dlogvar_path), (-np.sum(w * dmu_q, axis=0), -np.sum(w * dlogvar_q, axis=0))


def _log_weights(model, x, eps):
    mu, logvar = model._encode(x)                                  # (M, J)
    z, std = dist.reparameterize(mu, logvar, eps)                  # (L, M, J)  (3.3)
    log_q = dist.gaussian_log_prob(z, mu, logvar)                  # (L, M)
    log_w = model.log_px(x, z) + dist.standard_normal_log_prob(z) - log_q   # (L, M)  (7.1)
    return log_w, (z, mu, logvar, std)


def stl(model, x, *, rng=None, eps=None, n_samples=1, copy=True):
    """Sticking the landing, STL (Roeder, Wu & Duvenaud 2017).

    The loss is estimator A's (:func:`reparam` with ``kl="mc"``); the gradient
    is its reparameterized gradient with the direct (score) term of
    log q(z | x) in phi removed: only the path through z is kept (7.10).
    The removed term has expectation zero (6.10), so the estimator stays
    unbiased, and when q is the exact posterior the encoder gradient is zero
    for every eps (7.11).
    Derivation: ``derivations/07_importance_sampling.md``.
    """
    x = model.check_x(x)
    eps = draw_eps(model, x, rng, eps, n_samples)
    L, M, _ = eps.shape
    log_w, (z, mu, logvar, std) = _log_weights(model, x, eps)
    loss = -np.mean(log_w)                                         # (7.1), (3.6)
    dlogw = np.full((L, M), -1.0 / (L * M), dtype=model.dtype)
    (dmu, dlogvar), _ = _log_weight_backward(model, z, mu, logvar, eps, std, dlogw)  # (7.10)
    model.encoder_backward(dmu, dlogvar)
    return float(loss), _collect(model, copy)


def iwae(model, x, *, rng=None, eps=None, n_samples=1, copy=True):
    """The importance-weighted bound of Burda, Grosse & Salakhutdinov (2015).

    With K = ``n_samples`` reparameterized samples per example,
    L_K(x) = log (1/K) sum_k w_k,  w_k = p(x, z_k) / q(z_k | x)   (7.7)
    and loss = -mean_i L_K(x_i).  Its exact gradient for fixed eps weights each
    sample's grad log w_k by the normalized weight w_k / sum_k' w_k'  (7.8):
    d loss / d log w_ik = -softmax_k(log w_i)_k / M.  With K = 1 this is
    estimator A (``reparam(kl="mc")``) exactly.
    Derivation: ``derivations/07_importance_sampling.md``.
    """
    x = model.check_x(x)
    eps = draw_eps(model, x, rng, eps, n_samples)
    K, M, _ = eps.shape
    log_w, (z, mu, logvar, std) = _log_weights(model, x, eps)
    top = np.max(log_w, axis=0)                                    # (M,), for a stable log-sum-exp
    diff = log_w - top
    shifted = np.exp(diff)                                         # (K, M)
    total = shifted.sum(axis=0)                                    # (M,)
    bound = np.log(total / K) + top                                # (M,)  (7.7)
    loss = -np.mean(bound)
    # in the gradient, a sample whose weight is below the dtype's epsilon times
    # the largest is dropped: it is below what the sum can resolve, and its
    # products with small gradient entries underflowed to denormals, which
    # slowed the whole backward pass 8x (measured: 0.11 s -> 0.9 s per K = 50
    # float32 step of the paper model once training spread the weights)
    shifted[diff < np.log(np.finfo(shifted.dtype).eps)] = 0
    w_norm = shifted / total                                       # (K, M)  (7.8)
    dlogw = (-w_norm / M).astype(model.dtype, copy=False)          # (7.8)
    (dmu, dlogvar), (dmu_q, dlogvar_q) = _log_weight_backward(model, z, mu, logvar, eps, std, dlogw)
    model.encoder_backward(dmu + dmu_q, dlogvar + dlogvar_q)
    return float(loss), _collect(model, copy)


ESTIMATORS = {"reparam": reparam, "reinforce": reinforce, "stl": stl, "iwae": iwae}


def get(name):
    """An estimator function by name (see ``ESTIMATORS``)."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {name!r}") from None
