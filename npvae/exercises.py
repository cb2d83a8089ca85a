"""Checkers for the notebook exercises, and ``cmp``.

A checker calls the student's function on a handful of random cases (fixed
seed, shapes from one entry to several) and compares each answer with the
library's own function, which is the reference; the notebooks never redefine
library maths.  On success it prints ``"<name>: all N cases passed"``; on the
first failure it raises ``AssertionError`` saying which case, which output,
by how much, and at which entry, with a hint when the answer matches a known
mistake (e.g. the variance used where the standard deviation belongs).  A
function still raising ``NotImplementedError`` fails with "not implemented
yet".

The student versions of the notebooks are written by :mod:`npvae.student`
(``npvae exercises``).
"""
import numpy as np

from npvae import distributions as dist
from npvae.gradcheck import rel_error
from npvae.student import BEGIN, END


TOL = 1e-7


# ---------------------------------------------------------------- the checking machinery

def _fmt(v):
    return np.array2string(np.asarray(v), precision=6, threshold=8, edgeitems=2)


def _call(check, fn, args, case, n, desc):
    """fn(*args), turning a stub or a crash into a readable AssertionError."""
    if not callable(fn):
        raise AssertionError(f"{check}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise AssertionError(
            f"{check}: not implemented yet. Write your code between {BEGIN} and {END} "
            f"in place of the `raise NotImplementedError` line ({err}).") from None
    except Exception as err:
        raise AssertionError(f"{check}: case {case}/{n} ({desc}) raised "
                             f"{type(err).__name__}: {err}") from err


def _unpack(check, got, names, case, n, desc):
    """Split a returned tuple into the expected number of outputs."""
    if len(names) == 1:
        return [got]
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        what = f"a tuple of {len(got)}" if isinstance(got, (tuple, list)) else type(got).__name__
        raise AssertionError(f"{check}: case {case}/{n} ({desc}): expected a tuple "
                             f"({', '.join(names)}), got {what}")
    return list(got)


def _compare(check, name, got, want, case, n, desc, tol=TOL, hints=()):
    """Raise AssertionError unless ``got`` matches ``want`` (shape and values)."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{check}: case {case}/{n} ({desc}): {name} is not a numeric "
                             f"array ({err})") from None
    want = np.asarray(want, dtype=np.float64)
    where = f"{check}: case {case}/{n} failed ({desc}): {name}"
    if got.shape != want.shape:
        raise AssertionError(f"{where} has shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
        bad = int(got.size - np.count_nonzero(np.isfinite(got)))
        raise AssertionError(f"{where} has {bad} NaN or infinite value(s) where the answer "
                             f"is finite (overflow? look for exp of a large number or log of 0)")
    err = rel_error(got, want)
    if err <= tol:
        return
    idx = np.unravel_index(np.argmax(np.abs(got - want)), got.shape)
    msg = (f"{where} is wrong: relative error {err:.2e} (tolerance {tol:.0e}); "
           f"largest difference {abs(got[idx] - want[idx]):.4g} at index {tuple(map(int, idx))}: "
           f"got {got[idx]:.10g}, expected {want[idx]:.10g}.\n  got      {_fmt(got)}\n"
           f"  expected {_fmt(want)}")
    for wrong, hint in hints:
        wrong = np.asarray(wrong, dtype=np.float64)
        if wrong.shape == got.shape and rel_error(got, wrong) <= 1e-6:
            msg += f"\n  Hint: {hint}"
            break
    raise AssertionError(msg)


def _run(check, fn, cases, names, tol=TOL):
    """Check ``fn`` on ``cases``: dicts with ``desc``, ``args``, ``want`` (a list,
    one per output) and optionally ``hints`` (a list per output of
    (wrong answer, hint) pairs)."""
    n = len(cases)
    for i, c in enumerate(cases, 1):
        got = _call(check, fn, c["args"], i, n, c["desc"])
        outs = _unpack(check, got, names, i, n, c["desc"])
        hints = c.get("hints") or [()] * len(names)
        for name, g, w, h in zip(names, outs, c["want"], hints):
            _compare(check, name, g, w, i, n, c["desc"], tol, h)
    print(f"{check}: all {n} cases passed")


def _shapes(rng, shapes):
    """Random (mu, logvar) pairs, with values a wrong formula cannot match by chance."""
    for shape in shapes:
        yield rng.normal(0, 1.5, shape), rng.normal(0, 1, shape)


def cmp(name, manual, reference, tol=TOL):
    """Compare a hand-computed array with a reference, like the backprop-ninja notebook:
    prints ``name | exact | close | max diff`` and raises AssertionError unless close.
    Returns None (so a notebook cell ending with it shows only the printed line).

    ``manual`` must have the shape of ``reference`` (``d<name>`` has the shape of
    ``<name>``).  Close means ``npvae.gradcheck.rel_error <= tol``.
    """
    manual = np.asarray(manual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if manual.shape != reference.shape:
        print(f"{name:<12s} | wrong shape {manual.shape}, expected {reference.shape}")
        raise AssertionError(f"cmp {name}: shape {manual.shape}, expected {reference.shape}")
    exact = bool(np.array_equal(manual, reference))
    err = rel_error(manual, reference)
    diff = float(np.max(np.abs(manual - reference))) if manual.size else 0.0
    close = err <= tol
    print(f"{name:<12s} | exact: {str(exact):5s} | close: {str(close):5s} | "
          f"max diff: {diff:.2e} | rel error: {err:.2e}")
    if not close:
        raise AssertionError(f"cmp {name}: relative error {err:.2e} exceeds {tol:.0e} "
                             f"(max |manual - reference| = {diff:.3g})")


# ---------------------------------------------------------------- notebook 01: KL, reparameterization

def check_gaussian_kl(fn, seed=0):
    """``fn(mu, logvar) -> (M,)``: KL(N(mu, diag(exp(logvar))) || N(0, I)) per row (2.6)."""
    rng = np.random.default_rng(seed)
    cases = [{"desc": "q equals the prior (mu = 0, logvar = 0): KL must be 0",
              "args": (np.zeros((2, 3)), np.zeros((2, 3))), "want": [np.zeros(2)]}]
    for mu, lv in _shapes(rng, [(1, 1), (4, 2), (5, 7)]):
        ref = dist.gaussian_kl(mu, lv)
        cases.append({
            "desc": f"mu, logvar of shape {mu.shape}", "args": (mu, lv), "want": [ref],
            "hints": [[(-ref, "the sign is flipped: KL(q || p) >= 0."),
                       (-0.5 * np.sum(1 + lv - mu ** 2 - lv ** 2, axis=-1),
                        "exp(logvar) is the variance; you squared logvar instead."),
                       (-0.5 * np.sum(1 + 2 * lv - mu ** 2 - np.exp(lv), axis=-1),
                        "log sigma^2 = logvar already: no factor 2.")]]})
    return _run("check_gaussian_kl", fn, cases, ["kl"])


def check_gaussian_kl_grad(fn, seed=0):
    """``fn(mu, logvar) -> (dmu, dlogvar)``: the derivatives of the KL (2.7), (2.8)."""
    rng = np.random.default_rng(seed)
    cases = []
    for mu, lv in _shapes(rng, [(1, 1), (3, 2), (4, 5)]):
        dmu, dlv = dist.gaussian_kl_grad(mu, lv)
        cases.append({"desc": f"mu, logvar of shape {mu.shape}", "args": (mu, lv),
                      "want": [dmu, dlv],
                      "hints": [[(-dmu, "the sign of dmu is flipped.")],
                                [(-dlv, "the sign of dlogvar is flipped."),
                                 (np.expm1(lv), "d/dlogvar of -0.5 (logvar - exp(logvar)) "
                                                "carries the factor 0.5.")]]})
    return _run("check_gaussian_kl_grad", fn, cases, ["dmu", "dlogvar"])


def check_reparameterize(fn, seed=0):
    """``fn(mu, logvar, eps) -> z``: z = mu + exp(0.5 logvar) * eps (3.3).

    mu, logvar (M, J), eps (L, M, J) -> z (L, M, J).  A returned tuple's first
    element is taken as z (the library also returns std).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for L, (mu, lv) in zip((1, 3, 2), _shapes(rng, [(1, 1), (4, 2), (3, 5)])):
        eps = rng.standard_normal((L,) + mu.shape)
        z, _ = dist.reparameterize(mu, lv, eps)
        cases.append({"desc": f"mu {mu.shape}, eps {eps.shape}", "args": (mu, lv, eps),
                      "want": [z],
                      "hints": [[(mu + np.exp(lv) * eps,
                                  "exp(logvar) is the variance; the noise is scaled by the "
                                  "standard deviation exp(0.5 logvar)."),
                                 (mu + lv * eps, "logvar is a log-variance, not a scale: "
                                                 "std = exp(0.5 logvar)."),
                                 (mu + 0.5 * lv * eps, "std = exp(0.5 logvar).")]]})

    def first(*args):
        out = fn(*args)
        return out[0] if isinstance(out, tuple) else out
    return _run("check_reparameterize", first, cases, ["z"])


def check_reparameterize_backward(fn, seed=0):
    """``fn(dz, eps, std) -> (dmu, dlogvar)``: pathwise gradients through z = mu + std eps
    (3.4), (3.5); dz, eps (L, M, J), std (M, J)."""
    rng = np.random.default_rng(seed)
    cases = []
    for L, (mu, lv) in zip((1, 3, 2), _shapes(rng, [(1, 1), (4, 2), (3, 5)])):
        eps = rng.standard_normal((L,) + mu.shape)
        std = dist.std_from_logvar(lv)
        dz = rng.standard_normal(eps.shape)
        dmu, dlv = dist.reparameterize_backward(dz, eps, std)
        cases.append({"desc": f"dz, eps {eps.shape}", "args": (dz, eps, std), "want": [dmu, dlv],
                      "hints": [[(dz.mean(axis=0), "z_l = mu + ... for every l: the L paths "
                                                   "add up (sum, not mean).")],
                                [(np.sum(dz * eps, axis=0), "that is d/dstd; chain on "
                                                            "dstd/dlogvar = 0.5 std."),
                                 (np.sum(dz * eps, axis=0) * std, "dstd/dlogvar = 0.5 std: "
                                                                  "the factor 0.5 is missing.")]]})
    return _run("check_reparameterize_backward", fn, cases, ["dmu", "dlogvar"])


def check_mc_kl(fn, seed=0):
    """``fn(mu, logvar, eps) -> (M,)``: the Monte Carlo KL estimate
    (1/L) sum_l [log q(z_l | x) - log p(z_l)] with z_l = mu + std eps_l."""
    rng = np.random.default_rng(seed)
    cases = []
    for L, (mu, lv) in zip((1, 4, 50), _shapes(rng, [(1, 1), (3, 2), (2, 4)])):
        eps = rng.standard_normal((L,) + mu.shape)
        z, _ = dist.reparameterize(mu, lv, eps)
        ref = np.mean(dist.gaussian_log_prob(z, mu, lv) - dist.standard_normal_log_prob(z), axis=0)
        cases.append({"desc": f"mu {mu.shape}, L = {L}", "args": (mu, lv, eps), "want": [ref],
                      "hints": [[(-ref, "the sign is flipped: log q - log p, averaged under q."),
                                 (dist.gaussian_kl(mu, lv), "that is the analytic KL; "
                                  "estimate it from the samples z_l instead.")]]})
    return _run("check_mc_kl", fn, cases, ["kl_estimate"])


# ---------------------------------------------------------------- notebook 02: likelihood and layers

def _bernoulli_cases(rng):
    cases = []
    for shape in [(1, 1), (3, 4), (2, 3, 5)]:
        x = rng.random(shape)
        x[..., 0] = 1.0
        cases.append((f"x, logits of shape {shape}", x, rng.normal(0, 3, shape)))
    x = np.array([[1.0, 0.0, 1.0, 0.0]])
    cases.append(("large |logits| (a naive log(sigmoid) gives -inf or nan here)",
                  x, np.array([[800.0, -800.0, -40.0, 40.0]])))
    return cases


def check_bernoulli_log_prob(fn, seed=0):
    """``fn(x, logits) -> (...)``: log Bernoulli(x; sigmoid(logits)) summed over the last
    axis (4.2), stable for large |logits|."""
    rng = np.random.default_rng(seed)
    cases = []
    for desc, x, logits in _bernoulli_cases(rng):
        ref = dist.bernoulli_log_prob(x, logits)
        cases.append({"desc": desc, "args": (x, logits), "want": [ref],
                      "hints": [[(-ref, "this is the log-probability (<= 0), not the loss."),
                                 (np.sum(x * logits - logits, axis=-1), "log(1 + exp(a)) is "
                                  "softplus(a), not a.")]]})
    return _run("check_bernoulli_log_prob", fn, cases, ["log_prob"])


def check_bernoulli_log_prob_grad(fn, seed=0):
    """``fn(x, logits) -> d log p / d logits``, the shape of logits (4.3)."""
    rng = np.random.default_rng(seed)
    cases = []
    for desc, x, logits in _bernoulli_cases(rng):
        ref = dist.bernoulli_log_prob_grad(x, logits)
        cases.append({"desc": desc, "args": (x, logits), "want": [ref],
                      "hints": [[(-ref, "the sign is flipped: d/dlogits log p = x - sigmoid(logits).")]]})
    return _run("check_bernoulli_log_prob_grad", fn, cases, ["dlogits"])


def _linear_cases(rng):
    """(x, W, b, layer) cases: random values and the library's Linear set to W, b."""
    from npvae.nn import Linear
    for N, i, o in [(1, 1, 1), (4, 3, 2), (6, 5, 7)]:
        x, W, b = rng.standard_normal((N, i)), rng.standard_normal((i, o)), rng.standard_normal(o)
        layer = Linear(i, o, rng=rng)
        layer.params["W"][...], layer.params["b"][...] = W, b
        yield x, W, b, layer


def check_linear_forward(fn, seed=0):
    """``fn(x, W, b) -> out``: out = x W + b, x (N, in), W (in, out), b (out,)."""
    rng = np.random.default_rng(seed)
    cases = []
    for x, W, b, layer in _linear_cases(rng):
        cases.append({"desc": f"x {x.shape}, W {W.shape}", "args": (x, W, b),
                      "want": [layer.forward(x)]})
    return _run("check_linear_forward", fn, cases, ["out"])


def check_linear_backward(fn, seed=0):
    """``fn(dout, x, W) -> (dx, dW, db)`` for out = x W + b  (5.1)-(5.3)."""
    rng = np.random.default_rng(seed)
    cases = []
    for x, W, b, layer in _linear_cases(rng):
        dout = rng.standard_normal((x.shape[0], W.shape[1]))
        layer.forward(x)
        dx = layer.backward(dout)
        cases.append({"desc": f"x {x.shape}, W {W.shape}", "args": (dout, x, W),
                      "want": [dx, layer.grads["W"].copy(), layer.grads["b"].copy()],
                      "hints": [[], [], [(dout.mean(axis=0), "each example adds its own "
                                          "dout to db: sum over the batch, not mean.")]]})
    return _run("check_linear_backward", fn, cases, ["dx", "dW", "db"])


def check_tanh_backward(fn, seed=0):
    """``fn(dout, out) -> dx`` for out = tanh(x), from the cached output (5.4)."""
    from npvae.nn import Tanh
    rng = np.random.default_rng(seed)
    cases = []
    for shape in [(1, 1), (3, 4), (5, 2)]:
        layer = Tanh()
        out = layer.forward(rng.normal(0, 2, shape))
        dout = rng.standard_normal(shape)
        ref = layer.backward(dout)
        cases.append({"desc": f"shape {shape}", "args": (dout, out), "want": [ref],
                      "hints": [[(dout * (1 - np.tanh(out) ** 2), "`out` is tanh(x) "
                                  "already: use 1 - out**2."),
                                 (1 - out ** 2, "multiply by the upstream gradient dout.")]]})
    return _run("check_tanh_backward", fn, cases, ["dx"])


# ---------------------------------------------------------------- notebook 02: the whole backward pass

def vae_backward_reference(model, x, eps):
    """Every gradient of the staged forward pass of notebook 02, from the library.

    For a VAE with one hidden layer in each MLP, a Bernoulli decoder and the
    analytic KL (estimator B), loss = -mean ELBO on x (M, D) with fixed noise
    eps (L, M, J).  Returns a dict: ``"loss"``; every parameter gradient under
    its library key (``"enc.W0"``, ..., from :func:`npvae.estimators.reparam`);
    and the intermediate gradients ``dlogits`` (L*M, D), ``dh2``, ``da2``
    (L*M, H), ``dz`` (L, M, J), ``dmu``, ``dlogvar`` (M, J), ``dh1``, ``da1``
    (M, H), each computed by the library's own layers' backward methods.
    """
    from npvae import estimators
    if len(model.hidden) != 1 or model.likelihood != "bernoulli":
        raise ValueError("vae_backward_reference needs a VAE with hidden=(H,) and "
                         f"likelihood='bernoulli', got {model!r}")
    loss, grads = estimators.reparam(model, x, eps=eps)
    x = model.check_x(x)
    L, M, J = eps.shape
    mu, logvar = model._encode(x)                          # refreshes the encoder's caches
    z, std = dist.reparameterize(mu, logvar, eps)
    logits = model._decode(z.reshape(L * M, J))            # and the decoder's
    dlog_px = np.full((L, M), -1.0 / (L * M))
    dlogits = (dlog_px[:, :, None] * dist.bernoulli_log_prob_grad(
        x, logits.reshape(L, M, -1))).reshape(L * M, -1)
    dec = model.dec_trunk.mlp
    dh2 = model.dec_heads["logits"].backward(dlogits)
    da2 = dec.activations[0].backward(dh2)
    dz = dec.linears[0].backward(da2).reshape(L, M, J)
    dmu, dlogvar = dist.reparameterize_backward(dz, eps, std)
    dmu_kl, dlogvar_kl = dist.gaussian_kl_grad(mu, logvar)
    dmu, dlogvar = dmu + dmu_kl / M, dlogvar + dlogvar_kl / M
    dh1 = model.enc_mu.backward(dmu) + model.enc_logvar.backward(dlogvar)
    da1 = model.enc_trunk.mlp.activations[0].backward(dh1)
    model.zero_grads()                                     # the layers' buffers held partial sums
    for k, g in grads.items():
        model.grads[k][...] = g
    return dict(grads, loss=loss, dlogits=dlogits, dh2=dh2, da2=da2, dz=dz, dmu=dmu,
                dlogvar=dlogvar, dh1=dh1, da1=da1)


def check_posterior_kl(fn, seed=0):
    """``fn(z, mu_q, logvar_q, mu_p, logvar_p) -> (M,)``: the Monte Carlo estimate of
    KL(q || p) = E_q[log q(z) - log p(z)] for two diagonal Gaussians, from samples
    z (L, M, J) of q: (1/L) sum_l [log q(z_l) - log p(z_l)]."""
    rng = np.random.default_rng(seed)
    cases = []
    for L, (mq, lq) in zip((1, 3, 40), _shapes(rng, [(1, 1), (4, 2), (2, 3)])):
        mp, lp = rng.normal(0, 1, mq.shape), rng.normal(0, 0.5, mq.shape)
        z, _ = dist.reparameterize(mq, lq, rng.standard_normal((L,) + mq.shape))
        log_q, log_p = dist.gaussian_log_prob(z, mq, lq), dist.gaussian_log_prob(z, mp, lp)
        ref = np.mean(log_q - log_p, axis=0)
        cases.append({"desc": f"z {z.shape}", "args": (z, mq, lq, mp, lp), "want": [ref],
                      "hints": [[(-ref, "KL(q || p) averages log q - log p (q first)."),
                                 (np.sum(log_q - log_p, axis=0), "average over the L samples, "
                                                                 "do not sum.")]]})
    return _run("check_posterior_kl", fn, cases, ["kl_estimate"])


def check_elbo_identity(elbo, kl_to_posterior, log_px, tol=1e-9):
    """Check ELBO + KL(q(z|x) || p(z|x)) = log p(x) example by example.

    All three (M,) arrays; the ELBO and the KL estimated *from the same
    samples z*, for which the identity holds exactly (to rounding), since
    log p(x) = log p(x, z) - log p(z | x) for every z.  Prints the largest
    deviation; raises AssertionError if it exceeds ``tol`` (absolute, nats).
    """
    elbo, kl, log_px = (np.asarray(a, dtype=np.float64) for a in (elbo, kl_to_posterior, log_px))
    if not elbo.shape == kl.shape == log_px.shape:
        raise AssertionError(f"check_elbo_identity: shapes differ: elbo {elbo.shape}, "
                             f"kl {kl.shape}, log_px {log_px.shape}")
    dev = np.abs(elbo + kl - log_px)
    i = int(np.argmax(dev))
    if not np.all(np.isfinite(dev)) or dev[i] > tol:
        raise AssertionError(
            f"check_elbo_identity: example {i}: ELBO {elbo[i]:.10g} + KL {kl[i]:.10g} = "
            f"{elbo[i] + kl[i]:.10g}, but log p(x) = {log_px[i]:.10g} (off by {dev[i]:.3g} nats)")
    if np.any(kl < -tol):
        j = int(np.argmin(kl))
        print(f"note: the KL estimate of example {j} is negative ({kl[j]:.3g}): a Monte Carlo "
              f"estimate can be, the KL itself cannot")
    print(f"check_elbo_identity: ELBO + KL = log p(x) for all {elbo.size} examples "
          f"(largest deviation {dev[i]:.1e} nats)")


# ---------------------------------------------------------------- notebook 03: codes and the prior

def check_code_kl(fn, seed=0):
    """``fn(codes) -> float``: fit a diagonal Gaussian to codes (N, J) (the mean and the
    variance of each column) and return its KL to N(0, I)  (2.6)."""
    rng = np.random.default_rng(seed)
    cases = [{"desc": "codes drawn from N(0, I) itself: KL near 0",
              "codes": rng.standard_normal((5000, 2))}]
    for shape, scale, shift in [((10, 1), 1.0, 0.0), ((200, 2), 3.0, 1.0), ((50, 3), 0.2, -2.0)]:
        cases.append({"desc": f"codes {shape}, scale {scale}, shift {shift}",
                      "codes": shift + scale * rng.standard_normal(shape)})
    for c in cases:
        codes = c.pop("codes")
        mean, var = codes.mean(axis=0), codes.var(axis=0)
        ref = dist.gaussian_kl(mean, np.log(var))
        c["args"] = (codes,)
        c["want"] = [ref]
        c["hints"] = [[(dist.gaussian_kl(mean, np.log(codes.std(axis=0))),
                        "logvar is the log of the variance, not of the standard deviation."),
                       (dist.gaussian_kl(mean, np.log(codes.var(axis=0, ddof=1))),
                        "use the plain variance (np.var, ddof=0).")]]
    return _run("check_code_kl", fn, cases, ["kl"], tol=1e-9)


# ---------------------------------------------------------------- notebook 04: the 1-D laboratory

def _lab_cases(rng):
    from npvae import lab1d
    cases = []
    for cost, mu, sigma, n in [(lab1d.Quadratic(-3.0), 1.0, 1.0, 5),
                               (lab1d.Exponential(0.5), -0.3, 0.7, 8),
                               (lab1d.Cosine(2.0), 0.4, 1.6, 6)]:
        eps = rng.standard_normal(n)
        cases.append((cost, mu, sigma, eps, lab1d.estimates(cost, mu, sigma, eps=eps)))
    return cases


def check_score_function(fn, seed=0):
    """``fn(f, mu, sigma, eps) -> (g_mu, g_sigma)``: single-sample score-function
    estimates of dE[f(z)]/dmu and dE[f(z)]/dsigma, z = mu + sigma eps, one per entry
    of eps (n,)  (6.12)."""
    rng = np.random.default_rng(seed)
    cases = []
    for cost, mu, sigma, eps, ref in _lab_cases(rng):
        z = mu + sigma * eps
        cases.append({"desc": f"f = {cost.name}, mu = {mu}, sigma = {sigma}, {eps.size} draws",
                      "args": (cost.f, mu, sigma, eps),
                      "want": [ref["score", "mu"], ref["score", "sigma"]],
                      "hints": [[(cost.f(z) * eps, "d/dmu log N(z; mu, sigma^2) = (z - mu) / "
                                                   "sigma^2 = eps / sigma.")],
                                [(cost.f(z) * eps * eps / sigma,
                                  "d/dsigma log N = ((z - mu)^2 / sigma^2 - 1) / sigma: the -1 "
                                  "comes from the normalizer 1 / sigma."),
                                 (cost.df(z) * eps, "that is the pathwise estimate; the score "
                                                    "function multiplies f(z), not f'(z).")]]})
    return _run("check_score_function", fn, cases, ["g_mu", "g_sigma"])


def check_pathwise(fn, seed=0):
    """``fn(df, mu, sigma, eps) -> (g_mu, g_sigma)``: single-sample pathwise estimates
    f'(z) dz/dmu and f'(z) dz/dsigma, z = mu + sigma eps  (6.12)."""
    rng = np.random.default_rng(seed)
    cases = []
    for cost, mu, sigma, eps, ref in _lab_cases(rng):
        z = mu + sigma * eps
        cases.append({"desc": f"f = {cost.name}, mu = {mu}, sigma = {sigma}, {eps.size} draws",
                      "args": (cost.df, mu, sigma, eps),
                      "want": [ref["pathwise", "mu"], ref["pathwise", "sigma"]],
                      "hints": [[], [(cost.df(z), "dz/dsigma = eps: multiply by it."),
                                     (cost.df(z) * sigma, "dz/dsigma = eps, not sigma.")]]})
    return _run("check_pathwise", fn, cases, ["g_mu", "g_sigma"])


# ---------------------------------------------------------------- notebook 05: wake-sleep

def check_wake_delta_rule(fn, seed=0):
    """``fn(s, above, W, b) -> (dW, db)``: the gradient of the mean over the batch of
    log p(s | above) for a sigmoid belief layer with logits ``above @ W + b``:
    the delta rule dW = above^T (s - sigmoid(logits)) / M, db = mean of (s - sigmoid(logits))
    (8.6), (8.7).  s (M, n_below) and above (M, n_above) binary, W (n_above, n_below).
    Reference: :meth:`npvae.HelmholtzMachine.wake_gradients`."""
    from npvae.helmholtz import HelmholtzMachine
    from npvae.nn import sigmoid
    rng = np.random.default_rng(seed)
    cases = []
    for M, n_below, n_above in [(1, 1, 1), (5, 4, 3), (8, 9, 6)]:
        hm = HelmholtzMachine((n_below, n_above), rng=rng)
        W, b = rng.normal(0, 1, (n_above, n_below)), rng.normal(0, 1, n_below)
        hm.params["gen.0.W"][...], hm.params["gen.0.b"][...] = W, b
        s = (rng.random((M, n_below)) < 0.5).astype(float)
        above = (rng.random((M, n_above)) < 0.5).astype(float)
        _, grads = hm.wake_gradients(s, [above])
        delta = s - sigmoid(above @ W + b)
        cases.append({"desc": f"M = {M}, {n_above} units above {n_below}",
                      "args": (s, above, W, b), "want": [grads["gen.0.W"], grads["gen.0.b"]],
                      "hints": [[(above.T @ delta, "average over the batch: divide by M."),
                                 (-above.T @ delta / M, "the sign is flipped: this is the "
                                                        "gradient of log p, for ascent.")],
                                [(delta.sum(axis=0), "average over the batch: divide by M.")]]})
    return _run("check_wake_delta_rule", fn, cases, ["dW", "db"])
