"""The Helmholtz machine (Dayan, Hinton, Neal & Zemel 1995) and wake-sleep.

Derivation: ``derivations/08_wake_sleep.md``.

Layers are numbered from the bottom: layer 0 is the data x (D units), layers
1..L the binary latent layers h_1..h_L (``layer_sizes = (D, n_1, ..., n_L)``).
Every unit is a Bernoulli variable whose probability is the sigmoid of an
affine function of the layer next to it:

* generative model p (top-down):
  p(h_L) = Bernoulli(sigmoid(``gen.top.b``)),
  p(s_l | s_{l+1}) = Bernoulli(sigmoid(s_{l+1} @ ``gen.l.W`` + ``gen.l.b``)), l = L-1..0
  (``gen.0`` generates the data);
* recognition model q (bottom-up):
  q(s_l | s_{l-1}) = Bernoulli(sigmoid(s_{l-1} @ ``rec.l.W`` + ``rec.l.b``)), l = 1..L.

Weights are ``(fan_in, fan_out)`` as in :class:`npvae.nn.Linear`.  A list of
latent states ``h = [h_1, ..., h_L]`` has arrays of shape (M, n_l), or
(K, M, n_l) for K samples per example; x is (M, D).

Training ascends log-likelihoods of sampled states (the delta rule, (8.6)):
the wake phase moves p towards states sampled from q given data, the sleep
phase moves q towards states dreamed from p.  With ``reweighted=True`` the
wake phase uses K samples from q with normalized importance weights
(reweighted wake-sleep, Bornschein & Bengio 2015).
"""
import numpy as np
from scipy.special import expit as sigmoid

from npvae._checks import check_array, check_dtype, check_rng

Q_UPDATES = ("sleep", "wake", "both")
MAX_ENUMERATION_BITS = 22


# scipy's expit is the stable logistic in one ufunc call; wake-sleep on small
# layers is dominated by per-call overhead, so the hot path uses single ufuncs
# (expit, logaddexp) where npvae.nn / npvae.distributions chain several.


def softplus(a):
    """log(1 + exp(a)), stable, one ufunc call."""
    return np.logaddexp(0, a)


def _log_bernoulli(s, logits):
    """log Bernoulli(s; sigmoid(logits)) = s a - softplus(a), summed over units  (8.4)."""
    return np.sum(s * logits - softplus(logits), axis=-1)          # (8.4)


def _bits(n, dtype):
    """All 2^n binary vectors of length n as rows, (2^n, n)."""
    codes = np.arange(2 ** n)[:, None]
    return ((codes >> np.arange(n)[::-1]) & 1).astype(dtype)


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m, axis=axis)


class HelmholtzMachine:
    """A Helmholtz machine with binary stochastic sigmoid layers.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(D, n_1, ..., n_L)``, at least one latent layer.
    rng : np.random.Generator
        Draws the initial weights.
    dtype : float64 (default) or float32; kept end to end.
    init_scale : float
        Standard deviation of the N(0, init_scale^2) initial weights; biases
        start at 0.  ``0`` is the seeds' all-zero start (sampling alone
        breaks the symmetry between units).
    """

    def __init__(self, layer_sizes, *, rng, dtype=np.float64, init_scale=0.1):
        try:
            sizes = tuple(int(n) for n in layer_sizes)
        except TypeError:
            raise ValueError(f"layer_sizes must be a sequence of ints, got {layer_sizes!r}"
                             ) from None
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"layer_sizes must be (D, n_1, ..., n_L) with L >= 1 and positive "
                             f"sizes, got {layer_sizes!r}")
        init_scale = float(init_scale)
        if not np.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be a finite number >= 0, got {init_scale}")
        check_rng(rng)
        self.dtype = check_dtype(dtype)
        self.sizes = sizes
        self.x_dim = sizes[0]
        self.n_layers = len(sizes) - 1
        self.init_scale = init_scale

        def weight(fan_in, fan_out):
            return (init_scale * rng.standard_normal((fan_in, fan_out))).astype(self.dtype)

        L = self.n_layers
        p = {"gen.top.b": np.zeros(sizes[L], dtype=self.dtype)}
        for l in range(L - 1, -1, -1):
            p[f"gen.{l}.W"] = weight(sizes[l + 1], sizes[l])
            p[f"gen.{l}.b"] = np.zeros(sizes[l], dtype=self.dtype)
        for l in range(1, L + 1):
            p[f"rec.{l}.W"] = weight(sizes[l - 1], sizes[l])
            p[f"rec.{l}.b"] = np.zeros(sizes[l], dtype=self.dtype)
        self.params = p

    # ------------------------------------------------------------ configuration

    def config(self):
        """The constructor arguments (without rng): enough to rebuild the model."""
        return dict(layer_sizes=list(self.sizes), dtype=self.dtype.name,
                    init_scale=self.init_scale)

    def __repr__(self):
        return f"HelmholtzMachine(layer_sizes={self.sizes}, dtype={self.dtype.name})"

    def check_x(self, x, name="x"):
        """Validate data: shape (M, D), finite, in [0, 1] (binary data, or
        probabilities that :func:`npvae.data.binarize` would turn into bits)."""
        return check_array(x, name, shape=(None, self.x_dim), dtype=self.dtype, low=0, high=1)

    def check_h(self, h, x, name="h"):
        """Validate a latent state list against x: L arrays (..., M, n_l)."""
        if not isinstance(h, (list, tuple)) or len(h) != self.n_layers:
            raise ValueError(f"{name} must be a list of {self.n_layers} arrays (one per latent "
                             f"layer), got {type(h).__name__}"
                             + (f" of length {len(h)}" if isinstance(h, (list, tuple)) else ""))
        out = []
        lead = None
        for l, s in enumerate(h, start=1):
            s = check_array(s, f"{name}[{l - 1}]", dtype=self.dtype, low=0, high=1)
            if s.ndim not in (2, 3) or s.shape[-2:] != (x.shape[0], self.sizes[l]):
                raise ValueError(f"{name}[{l - 1}] must have shape ([K,] {x.shape[0]}, "
                                 f"{self.sizes[l]}), got {s.shape}")
            if lead is not None and s.shape[:-1] != lead:
                raise ValueError(f"{name}: all layers need the same leading shape {lead}, "
                                 f"got {s.shape[:-1]} for layer {l}")
            lead = s.shape[:-1]
            out.append(s)
        return out

    # ------------------------------------------------------------ the two models

    def _gen_logits(self, l, above):
        """Logits of p(s_l | s_{l+1} = above); the top layer's are its biases."""
        if l == self.n_layers:
            return self.params["gen.top.b"]
        return above @ self.params[f"gen.{l}.W"] + self.params[f"gen.{l}.b"]

    def _rec_logits(self, l, below):
        return below @ self.params[f"rec.{l}.W"] + self.params[f"rec.{l}.b"]

    def _sample(self, probs, rng):
        return (rng.random(probs.shape, dtype=self.dtype) < probs).astype(self.dtype)

    def _up(self, x, rng, n_samples=None):
        """Sample h ~ q(h | x) bottom-up.  Returns the states [x, h_1, ..., h_L]
        and log q(h | x), (M,) or (K, M) when ``n_samples=K`` is given."""
        s = x if n_samples is None else np.broadcast_to(x, (n_samples,) + x.shape)
        states, log_q = [s], 0.0
        for l in range(1, self.n_layers + 1):
            logits = self._rec_logits(l, s)
            s = self._sample(sigmoid(logits), rng)
            log_q = log_q + _log_bernoulli(s, logits)
            states.append(s)
        return states, log_q

    def _down(self, n, rng):
        """Dream n samples top-down: states [x, h_1, ..., h_L], each (n, n_l)."""
        L = self.n_layers
        s = self._sample(np.broadcast_to(sigmoid(self.params["gen.top.b"]), (n, self.sizes[L])),
                         rng)
        states = [s]
        for l in range(L - 1, -1, -1):
            s = self._sample(sigmoid(self._gen_logits(l, s)), rng)
            states.append(s)
        return states[::-1]

    def _log_joint(self, states):
        out = _log_bernoulli(states[-1], self.params["gen.top.b"])
        for l in range(self.n_layers):
            out = out + _log_bernoulli(states[l], self._gen_logits(l, states[l + 1]))
        return out                                                 # (8.1)

    def _log_q(self, states):
        out = 0.0
        for l in range(1, self.n_layers + 1):
            out = out + _log_bernoulli(states[l], self._rec_logits(l, states[l - 1]))
        return out                                                 # (8.2)

    def log_joint(self, x, h):
        """log p(x, h) for x (M, D) and h = [h_1..h_L], each ([K,] M, n_l) -> ([K,] M)  (8.1)."""
        x = self.check_x(x)
        h = self.check_h(h, x)
        return self._log_joint([x] + h)

    def log_recognition(self, x, h):
        """log q(h | x) for x (M, D) and h = [h_1..h_L], each ([K,] M, n_l) -> ([K,] M)  (8.2)."""
        x = self.check_x(x)
        h = self.check_h(h, x)
        return self._log_q([x] + h)

    def sample_posterior(self, x, n_samples, rng):
        """K = ``n_samples`` draws h ~ q(h | x): (h, log_q) with h a list of L
        arrays (K, M, n_l) and log_q = log q(h | x), (K, M)."""
        x = self.check_x(x)
        n_samples = _positive_int(n_samples, "n_samples")
        states, log_q = self._up(x, check_rng(rng), n_samples)
        return states[1:], log_q

    def log_importance_weights(self, x, n_samples, rng=None):
        """log w_k = log p(x, h_k) - log q(h_k | x) for h_k ~ q(h | x): (K, M).

        The input of :func:`npvae.evaluate.log_likelihood` (7.1), (8.3).
        """
        x = self.check_x(x)
        n_samples = _positive_int(n_samples, "n_samples")
        states, log_q = self._up(x, check_rng(rng), n_samples)
        return self._log_joint(states) - log_q                     # (8.3)

    # ------------------------------------------------------------ gradients of sampled states

    def _gen_grads(self, states, weights):
        """d/d gen.* of sum_{k,m} weights_km log p(x_m, h_km)  (8.6), (8.7)."""
        grads = {}
        w = weights[..., None]
        top = states[-1]
        delta = (top - sigmoid(self.params["gen.top.b"])) * w            # (8.7)
        grads["gen.top.b"] = delta.reshape(-1, delta.shape[-1]).sum(axis=0)
        for l in range(self.n_layers):
            s, above = states[l], states[l + 1]
            delta = (s - sigmoid(self._gen_logits(l, above))) * w        # (8.5)
            grads[f"gen.{l}.W"] = (above.reshape(-1, above.shape[-1]).T
                                   @ delta.reshape(-1, delta.shape[-1]))  # (8.6)
            grads[f"gen.{l}.b"] = delta.reshape(-1, delta.shape[-1]).sum(axis=0)   # (8.6)
        return grads

    def _rec_grads(self, states, weights):
        """d/d rec.* of sum_{k,m} weights_km log q(h_km | x_m)  (8.6), (8.9)."""
        grads = {}
        w = weights[..., None]
        for l in range(1, self.n_layers + 1):
            s, below = states[l], states[l - 1]
            delta = (s - sigmoid(self._rec_logits(l, below))) * w        # (8.5)
            grads[f"rec.{l}.W"] = (below.reshape(-1, below.shape[-1]).T
                                   @ delta.reshape(-1, delta.shape[-1]))  # (8.9)
            grads[f"rec.{l}.b"] = delta.reshape(-1, delta.shape[-1]).sum(axis=0)   # (8.9)
        return grads

    def _default_weights(self, states):
        lead = states[1].shape[:-1]
        return np.full(lead, 1.0 / int(np.prod(lead)), dtype=self.dtype)

    def _check_weights(self, weights, states):
        lead = states[1].shape[:-1]
        if weights is None:
            return self._default_weights(states)
        weights = check_array(weights, "weights", dtype=self.dtype)
        if weights.shape != lead:
            raise ValueError(f"weights must have shape {lead} (the states' leading axes), "
                             f"got {weights.shape}")
        return weights

    def wake_gradients(self, x, h, weights=None):
        """Gradients of the wake objective sum_{k,m} weights_km log p(x_m, h_km)
        with respect to every ``gen.*`` parameter, at fixed states  (8.6), (8.7).

        ``weights`` ([K,] M) defaults to 1 / (number of states): the mean of
        log p(x, h) over the minibatch (and samples).  Reweighted wake-sleep
        passes normalized importance weights divided by M.  Returns
        ``(objective, grads)``; the wake phase *adds* lr * grads (ascent).
        """
        x = self.check_x(x)
        h = self.check_h(h, x)
        states = [np.broadcast_to(x, h[0].shape[:-1] + x.shape[-1:])] + h
        weights = self._check_weights(weights, states)
        value = float(np.sum(weights * self._log_joint(states)))
        return value, self._gen_grads(states, weights)

    def sleep_gradients(self, x, h, weights=None):
        """Gradients of sum_{k,m} weights_km log q(h_km | x_m) with respect to
        every ``rec.*`` parameter, at fixed states  (8.6), (8.9).

        The sleep phase calls it on dreams (x, h) ~ p; reweighted wake-sleep's
        wake-phase q update on samples from q with importance weights.
        Returns ``(objective, grads)``.
        """
        x = self.check_x(x)
        h = self.check_h(h, x)
        states = [np.broadcast_to(x, h[0].shape[:-1] + x.shape[-1:])] + h
        weights = self._check_weights(weights, states)
        value = float(np.sum(weights * self._log_q(states)))
        return value, self._rec_grads(states, weights)

    # ------------------------------------------------------------ learning

    def _apply(self, grads, lr):
        for k, g in grads.items():
            self.params[k] += lr * g

    def _step(self, x, lr, rng, n_samples, reweighted, q_update, stats=True):
        """One wake-sleep update on a checked minibatch x (M, D); see
        :meth:`wake_sleep_step`.  ``stats=False`` skips what only the
        statistics need (log q and log p of plain wake-sleep samples)."""
        M = x.shape[0]
        # wake: sample up through q, move p towards the sampled states
        if n_samples == 1 and not reweighted:
            states, log_q = self._up(x, rng)                           # (M, n_l)
        else:
            states, log_q = self._up(x, rng, n_samples)                # (K, M, n_l)
        log_w = None
        if reweighted or stats:
            log_w = self._log_joint(states) - log_q                    # (8.3)
        if reweighted:
            w = np.exp(log_w - log_w.max(axis=0))
            w_norm = w / w.sum(axis=0)                                 # (8.12)
            weights = (w_norm / M).astype(self.dtype)
        else:
            lead = states[1].shape[:-1]
            weights = np.full(lead, 1.0 / int(np.prod(lead)), dtype=self.dtype)
        self._apply(self._gen_grads(states, weights), lr)             # (8.8), (8.13)
        q_wake = (self._rec_grads(states, weights)                     # (8.14)
                  if q_update in ("wake", "both") else None)
        # sleep: dream down through p, move q towards the dreamed states
        q_sleep = None
        if q_update in ("sleep", "both"):
            dream = self._down(M, rng)
            q_sleep = self._rec_grads(dream, np.full(M, 1.0 / M, dtype=self.dtype))   # (8.10)
        if q_update == "both":
            self._apply({k: 0.5 * (q_wake[k] + q_sleep[k]) for k in q_wake}, lr)    # (8.14)
        else:
            self._apply(q_wake if q_wake is not None else q_sleep, lr)
        if not stats:
            return None
        out = {"elbo": float(np.mean(log_w))}
        if log_w.ndim == 2:
            K = log_w.shape[0]
            ess = 1.0 / np.sum(w_norm ** 2, axis=0) if reweighted else np.full(M, float(K))
            out["log_px_k"] = float(np.mean(_logsumexp(log_w, 0) - np.log(K)))
            out["ess"] = float(np.mean(ess))
        return out

    def wake_sleep_step(self, x, lr, rng, *, n_samples=1, reweighted=False, q_update=None):
        """One wake-sleep update on a binary minibatch x (M, D), in place.

        Wake: h ~ q(h | x), then gen.* += lr * d/d gen.* mean log p(x, h)  (8.8).
        Sleep: (x', h') ~ p dreamed top-down (M dreams), then
        rec.* += lr * d/d rec.* mean log q(h' | x')  (8.10).

        ``reweighted=True``: K = ``n_samples`` draws from q per example and the
        wake gradient weighted by the normalized importance weights (8.12),
        (8.13).  ``q_update`` chooses the q gradient: ``"sleep"`` (dreams),
        ``"wake"`` (the weighted wake samples, Bornschein & Bengio's wake-phase
        q update) or ``"both"`` (their average); default ``"sleep"`` for
        wake-sleep and ``"both"`` for the reweighted variant.  Without
        ``reweighted``, K > 1 samples are averaged with equal weights.

        Returns a dict: ``elbo`` (mean log w over samples and examples, a
        stochastic lower bound on the mean log p(x)), and for K-sample steps
        ``log_px_k`` (the K-sample importance estimate, mean over examples)
        and ``ess`` (mean effective sample size of the weights).
        """
        x = self.check_x(x)
        lr = float(lr)
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive number, got {lr}")
        check_rng(rng)
        n_samples = _positive_int(n_samples, "n_samples")
        q_update = _check_q_update(q_update, reweighted)
        return self._step(x, lr, rng, n_samples, bool(reweighted), q_update)

    # ------------------------------------------------------------ using the model

    def dream(self, n, rng):
        """n ancestral samples (x, h) ~ p(x, h): x (n, D) and h a list of L
        arrays (n, n_l), binary in the model's dtype (the sleep phase's input)."""
        states = self._down(_positive_int(n, "n"), check_rng(rng))
        return states[0], states[1:]

    def sample(self, n, rng, *, mean=True):
        """Dream n examples top-down, (n, D): the bottom layer's probabilities
        p(x = 1 | h_1) at a dreamed h_1 (``mean=True``) or binary x ~ p(x | h_1)."""
        n = _positive_int(n, "n")
        states = self._down(n, check_rng(rng))
        if not mean:
            return states[0]
        return sigmoid(self._gen_logits(0, states[1]))

    def reconstruct(self, x, rng=None):
        """p(x = 1 | h_1) with h_1 from the recognition model, (M, D).

        Without ``rng`` (deterministic, what the plots use) h_1 is the
        recognition mean E_q[h_1 | x] = sigmoid(x @ rec.1.W + rec.1.b), like
        the VAE's decoded encoder mean; with ``rng`` h_1 ~ q(h_1 | x).  Only the
        first latent layer is used: higher layers do not change p(x | h_1).
        """
        x = self.check_x(x)
        h1 = sigmoid(self._rec_logits(1, x))
        if rng is not None:
            h1 = self._sample(h1, check_rng(rng))
        return sigmoid(self._gen_logits(0, h1))

    def exact_log_likelihood(self, x, *, batch_size=256):
        """log p(x) by summing over every latent configuration, (M,) float64 nats.

        Marginalizes one layer at a time from the top:
        log p(h_l) = logsumexp_{h_{l+1}} [log p(h_l | h_{l+1}) + log p(h_{l+1})]  (8.11),
        so the cost is sum_l 2^(n_l + n_{l+1}) + M 2^(n_1) D rather than
        2^(all latent bits).  Needs n_l + n_{l+1} <= 22 for adjacent latent
        layers and n_1 <= 22.
        """
        x = self.check_x(x).astype(np.float64)
        L, sizes = self.n_layers, self.sizes
        too_big = [l for l in range(1, L + 1)
                   if sizes[l] + (sizes[l + 1] if l < L else 0) > MAX_ENUMERATION_BITS]
        if too_big:
            raise ValueError(f"exact_log_likelihood enumerates 2^(n_l + n_l+1) configurations; "
                             f"layer_sizes {sizes} exceed {MAX_ENUMERATION_BITS} bits at latent "
                             f"layer {too_big[0]}: use npvae.evaluate.log_likelihood instead")
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        upper = _bits(sizes[L], np.float64)
        log_marg = _log_bernoulli(upper, p["gen.top.b"])              # log p(h_L), (2^n_L,)
        for l in range(L - 1, 0, -1):
            lower = _bits(sizes[l], np.float64)
            logits = upper @ p[f"gen.{l}.W"] + p[f"gen.{l}.b"]        # (2^n_{l+1}, n_l)
            log_cond = lower @ logits.T - softplus(logits).sum(axis=1)   # (2^n_l, 2^n_{l+1})
            log_marg = _logsumexp(log_cond + log_marg[None, :], axis=1)   # (8.11)
            upper = lower
        logits = upper @ p["gen.0.W"] + p["gen.0.b"]                  # (2^n_1, D)
        sp = softplus(logits).sum(axis=1)
        out = np.empty(x.shape[0])
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            log_px_h = xb @ logits.T - sp                              # (m, 2^n_1)
            out[start:start + xb.shape[0]] = _logsumexp(log_px_h + log_marg[None, :], axis=1)
        return out


def _positive_int(n, name):
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {n!r}") from None
    if value < 1 or value != n:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return value


def _check_q_update(q_update, reweighted):
    if q_update is None:
        return "both" if reweighted else "sleep"
    if q_update not in Q_UPDATES:
        raise ValueError(f"q_update must be one of {Q_UPDATES} or None, got {q_update!r}")
    if q_update != "sleep" and not reweighted:
        # with equal weights on h ~ q the wake-phase q gradient is the mean score
        # of q, whose expectation is zero: a random walk, not learning
        raise ValueError(f"q_update={q_update!r} needs reweighted=True (without importance "
                         "weights the wake-phase q update has expectation zero)")
    return q_update


def fit(hm, x, *, steps, lr, rng, batch_size=1, n_samples=1, reweighted=False, q_update=None,
        callback=None, every=0):
    """Train ``hm`` by wake-sleep on the rows of x (N, D) for ``steps`` updates.

    Each epoch visits the rows in a fresh random order, ``batch_size`` per
    step (the seeds' "sample from the world" when x is a large sample of it).
    ``callback(step, examples_seen)`` runs after every ``every`` steps (and
    after the last); training statistics (``elbo``, and ``log_px_k``, ``ess``
    for K-sample steps) are recorded at the same points, for that step's
    minibatch.  Returns the history: dict of lists ``step``, ``examples`` and
    the statistics.
    """
    x = hm.check_x(x)
    check_rng(rng)
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    n_samples = _positive_int(n_samples, "n_samples")
    lr = float(lr)
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr}")
    q_update = _check_q_update(q_update, reweighted)
    every = int(every) if every else steps
    N = x.shape[0]
    history = {"step": [], "examples": []}
    order, pos = rng.permutation(N), 0
    for step in range(1, steps + 1):
        if pos + batch_size > N:
            order, pos = rng.permutation(N), 0
        xb = x[order[pos:pos + batch_size]]
        pos += batch_size
        record = step % every == 0 or step == steps
        stats = hm._step(xb, lr, rng, n_samples, bool(reweighted), q_update, stats=record)
        if record:
            history["step"].append(step)
            history["examples"].append(step * batch_size)
            for k, v in stats.items():
                history.setdefault(k, []).append(v)
            if not np.isfinite(stats["elbo"]):
                raise FloatingPointError(f"wake-sleep diverged at step {step}: elbo {stats['elbo']}"
                                         f" (lower lr={lr})")
            if callback is not None:
                callback(step, step * batch_size)
    return history


def world_kl(hm, patterns, probs):
    """KL(world || model) = sum_x p_world(x) [log p_world(x) - log p_model(x)]
    in nats, with log p_model(x) exact by enumeration  (8.15).

    ``patterns`` (P, D) are the world's distinct binary vectors and ``probs``
    (P,) their probabilities (summing to 1)."""
    patterns = hm.check_x(patterns, "patterns")
    probs = check_array(probs, "probs", shape=(patterns.shape[0],), dtype=np.float64,
                        low=0, high=1)
    if abs(probs.sum() - 1) > 1e-9:
        raise ValueError(f"probs must sum to 1, got {probs.sum()!r}")
    keep = probs > 0
    log_model = hm.exact_log_likelihood(patterns[keep])
    return float(np.sum(probs[keep] * (np.log(probs[keep]) - log_model)))   # (8.15)


def bars_kl(hm, n=3):
    """KL(bars world || model) in nats for the n x n bars world of
    :func:`npvae.data.bars_distribution`  (8.15)."""
    from npvae import data
    patterns, probs = data.bars_distribution(n=n)
    return world_kl(hm, patterns, probs)
