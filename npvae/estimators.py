"""Gradient estimators of the negative ELBO, all behind one signature.

    estimator(model, x, *, rng=None, eps=None, n_samples=1, **options) -> (loss, grads)

``loss`` is -ELBO averaged over the minibatch, in nats per example (a float);
``grads`` maps every key of ``model.params`` to d loss / d param, as new
arrays (the model's own ``grads`` buffers are overwritten by the next call).
``eps`` of shape (L, M, J) fixes the noise, making ``loss`` a deterministic
function of the parameters (what a finite-difference test needs); otherwise
it is drawn from ``rng``.

Derivation: ``derivations/03_reparameterization.md``.
"""
import numpy as np

from npvae import distributions as dist
from npvae._checks import check_array, check_rng

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


def _collect(model):
    return {k: g.copy() for k, g in model.grads.items()}


def reparam(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", beta=1.0):
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
        log_q = dist.gaussian_log_prob(z, mu, logvar)              # (L, M)
        log_pz = dist.standard_normal_log_prob(z)                  # (L, M)
        kl_term = np.mean(log_q - log_pz, axis=0)                  # (M,)
    loss = np.mean(beta * kl_term - np.mean(log_px, axis=0))       # (3.6), (3.7), (3.8)

    # backward, in reverse
    dlog_px = np.full((L, M), -1.0 / (L * M), dtype=model.dtype)   # d loss / d log p(x|z_lm)
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
    model.encoder_backward(dmu + dmu_direct, dlogvar + dlogvar_direct)
    return float(loss), _collect(model)


ESTIMATORS = {"reparam": reparam}


def get(name):
    """An estimator function by name (see ``ESTIMATORS``)."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {name!r}") from None
