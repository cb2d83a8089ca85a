"""The variational auto-encoder: Gaussian encoder, Bernoulli or Gaussian decoder.

Derivations: ``derivations/03_reparameterization.md`` (sampling, estimators),
``derivations/04_likelihoods.md`` (decoders), ``derivations/05_backprop.md``
(how the pieces compose).

Encoder q_phi(z | x) = N(mu, diag(exp(logvar))): an MLP trunk ``x -> h``
followed by two linear heads ``h -> mu`` and ``h -> logvar``.
Decoder p_theta(x | z): an MLP ``z -> h`` followed by
  * Bernoulli: one linear head to the logits;
  * Gaussian: a mean head (through a sigmoid by default, as the paper's Frey
    Face model, or identity) and a linear log-variance head.

Parameter names: ``enc.W0, enc.b0, ...`` (trunk), ``enc.mu.W``,
``enc.mu.b``, ``enc.logvar.W``, ``enc.logvar.b``; ``dec.W0, ...`` (trunk),
then ``dec.logits.*`` (Bernoulli) or ``dec.mean.*`` and ``dec.logvar.*``
(Gaussian).  Keys starting with ``enc.`` are phi, with ``dec.`` theta.
"""
import numpy as np

from npvae import distributions as dist
from npvae._checks import check_array, check_dtype, check_rng
from npvae.nn import MLP, Linear, ParamStore, check_architecture, make_activation, param_count

LIKELIHOODS = ("bernoulli", "gaussian")


class _Trunk:
    """An MLP whose every layer, the last included, is followed by the activation.

    With no hidden sizes it is the identity (a linear model overall).
    """

    def __init__(self, in_dim, hidden, activation, rng, dtype, init, scale, store=None):
        self.out_dim = hidden[-1] if hidden else in_dim
        self.mlp = (MLP((in_dim,) + tuple(hidden), activation, rng=rng, dtype=dtype, init=init,
                        scale=scale, out_activation=activation, store=store) if hidden else None)
        self.params = self.mlp.params if self.mlp else {}
        self.grads = self.mlp.grads if self.mlp else {}

    def forward(self, x):
        return self.mlp.forward(x) if self.mlp else x

    def backward(self, dh, need_dx=True):
        return self.mlp.backward(dh, need_dx=need_dx) if self.mlp else dh


class VAE:
    """A VAE with a diagonal-Gaussian encoder and a Bernoulli or Gaussian decoder.

    Parameters
    ----------
    x_dim, z_dim : int
        D and J.
    hidden : tuple of int
        Hidden sizes of the encoder trunk; the decoder mirrors them.  ``()``
        gives linear encoder heads and a linear decoder.
    activation : str
        One of ``npvae.nn.ACTIVATIONS``, used by every hidden layer.
    likelihood : {"bernoulli", "gaussian"}
    rng : np.random.Generator
        Draws the initial weights.
    dtype : float64 (default) or float32; kept end to end.
    init : {"normal", "glorot", "he"}
        ``"normal"`` is the paper's N(0, 0.01^2) (``init_scale`` sets the std).
    gaussian_mean : {"sigmoid", "identity"}
        Output nonlinearity of the Gaussian decoder's mean.
    """

    def __init__(self, x_dim, z_dim, hidden=(500,), activation="tanh", likelihood="bernoulli",
                 *, rng, dtype=np.float64, init="normal", init_scale=0.01,
                 gaussian_mean="sigmoid"):
        x_dim, z_dim, hidden = check_architecture(x_dim, z_dim, hidden, activation, init)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if gaussian_mean not in ("sigmoid", "identity"):
            raise ValueError(f"gaussian_mean must be 'sigmoid' or 'identity', got {gaussian_mean!r}")
        check_rng(rng)
        self.dtype = check_dtype(dtype)
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.likelihood = activation, likelihood
        self.init, self.init_scale, self.gaussian_mean = init, float(init_scale), gaussian_mean

        # every parameter in one flat array (and every gradient in another),
        # in the order of ``self.params``: see npvae.nn.ParamStore
        h_enc, h_dec = (hidden[-1] if hidden else x_dim), (hidden[0] if hidden else z_dim)
        n_heads = 1 if likelihood == "bernoulli" else 2
        self.store = ParamStore(param_count((x_dim,) + hidden) + 2 * param_count((h_enc, z_dim))
                                + param_count((z_dim,) + hidden[::-1])
                                + n_heads * param_count((h_dec, x_dim)), self.dtype)
        kw = dict(rng=rng, dtype=self.dtype, init=init, scale=init_scale, store=self.store)
        self.enc_trunk = _Trunk(x_dim, hidden, activation, **kw)
        self.enc_mu = Linear(self.enc_trunk.out_dim, z_dim, **kw)
        self.enc_logvar = Linear(self.enc_trunk.out_dim, z_dim, **kw)
        self.dec_trunk = _Trunk(z_dim, hidden[::-1], activation, **kw)
        h = self.dec_trunk.out_dim
        if likelihood == "bernoulli":
            self.dec_heads = {"logits": Linear(h, x_dim, **kw)}
        else:
            self.dec_heads = {"mean": Linear(h, x_dim, **kw), "logvar": Linear(h, x_dim, **kw)}
            self.mean_act = make_activation(gaussian_mean)

        self.params, self.grads = {}, {}
        parts = [("enc.", self.enc_trunk), ("enc.mu.", self.enc_mu),
                 ("enc.logvar.", self.enc_logvar), ("dec.", self.dec_trunk)]
        parts += [(f"dec.{k}.", layer) for k, layer in self.dec_heads.items()]
        for prefix, part in parts:
            for k in part.params:
                self.params[prefix + k] = part.params[k]
                self.grads[prefix + k] = part.grads[k]
        self._dec_cache = None

    # ------------------------------------------------------------ configuration

    def config(self):
        """The constructor arguments (without rng): enough to rebuild the model."""
        return dict(x_dim=self.x_dim, z_dim=self.z_dim, hidden=list(self.hidden),
                    activation=self.activation, likelihood=self.likelihood,
                    dtype=self.dtype.name, init=self.init, init_scale=self.init_scale,
                    gaussian_mean=self.gaussian_mean)

    def __repr__(self):
        return (f"VAE(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, likelihood={self.likelihood!r}, "
                f"dtype={self.dtype.name})")

    def check_x(self, x, name="x"):
        """Validate data: shape (M, D), finite, in [0, 1] for a Bernoulli decoder."""
        bounds = (0, 1) if self.likelihood == "bernoulli" else (None, None)
        return check_array(x, name, shape=(None, self.x_dim), dtype=self.dtype,
                           low=bounds[0], high=bounds[1])

    def check_z(self, z, name="z"):
        z = check_array(z, name, dtype=self.dtype)
        if z.ndim < 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"{name} must have shape (..., {self.z_dim}), got {z.shape}")
        return z

    # ------------------------------------------------------------ encoder

    def encode(self, x):
        """x (M, D) -> mu (M, J), logvar (M, J).  Stores the cache for
        :meth:`encoder_backward`."""
        x = self.check_x(x)
        return self._encode(x)

    def _encode(self, x):
        h = self.enc_trunk.forward(x)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def encoder_backward(self, dmu, dlogvar):
        """Fill the ``enc.*`` grads from dmu, dlogvar (M, J) (d loss / d mu, d logvar)."""
        dh = self.enc_mu.backward(dmu)
        dh += self.enc_logvar.backward(dlogvar)                        # (5.9)
        self.enc_trunk.backward(dh, need_dx=False)

    # ------------------------------------------------------------ decoder

    def decode(self, z):
        """z (N, J) -> the decoder's distribution parameters.

        Bernoulli: logits (N, D).  Gaussian: (mean, logvar), each (N, D).
        """
        z = self.check_z(z)
        return self._decode(z.reshape(-1, self.z_dim))

    def _decode(self, z):
        h = self.dec_trunk.forward(z)
        if self.likelihood == "bernoulli":
            return self.dec_heads["logits"].forward(h)
        mean = self.mean_act.forward(self.dec_heads["mean"].forward(h))
        return mean, self.dec_heads["logvar"].forward(h)

    def _decoder_backward(self, dout):
        """dout: d loss / d (decoder outputs) -> dz (N, J); fills ``dec.*`` grads."""
        if self.likelihood == "bernoulli":
            dh = self.dec_heads["logits"].backward(dout)
        else:
            dmean, dlogvar = dout
            dh = self.dec_heads["mean"].backward(self.mean_act.backward(dmean))
            dh += self.dec_heads["logvar"].backward(dlogvar)          # (5.9)
        return self.dec_trunk.backward(dh)

    def log_px(self, x, z, *, backward=True):
        """log p(x | z) for x (M, D) and z (L, M, J) -> (L, M).

        The L samples are folded into the batch axis: one decoder pass on
        (L*M, J).  Stores what :meth:`log_px_backward` needs; with
        ``backward=False`` (evaluation) the Bernoulli gradient is not made.
        """
        L, M, J = z.shape
        out = self._decode(z.reshape(L * M, J))                          # (5.8)
        if self.likelihood == "bernoulli":
            logits = out.reshape(L, M, self.x_dim)
            if not backward:
                self._dec_cache = None
                return dist.bernoulli_log_prob(x, logits)                 # (4.2)
            logp, dlogits = dist.bernoulli_log_prob_and_grad(x, logits)   # (4.2), (4.3)
            self._dec_cache = (L, M, dlogits)
        else:
            mean, logvar = (o.reshape(L, M, self.x_dim) for o in out)
            logp = dist.gaussian_log_prob(x, mean, logvar)                # (4.4)
            self._dec_cache = (L, M, (x, mean, logvar))
        return logp

    def log_px_backward(self, dlogp):
        """dlogp (L, M) = d loss / d log p(x | z_lm) -> dz (L, M, J); fills ``dec.*`` grads."""
        if self._dec_cache is None:
            raise ValueError("log_px_backward needs a preceding log_px(x, z) with backward=True")
        L, M, saved = self._dec_cache
        w = dlogp[:, :, None]
        if self.likelihood == "bernoulli":
            dout = (w * saved).reshape(L * M, self.x_dim)                 # (4.3), (5.10)
        else:
            x, mean, logvar = saved
            _, dmean, dlogvar = dist.gaussian_log_prob_grad(x, mean, logvar)   # (4.5), (4.6)
            dout = ((w * dmean).reshape(L * M, -1), (w * dlogvar).reshape(L * M, -1))   # (5.10)
        return self._decoder_backward(dout).reshape(L, M, self.z_dim)     # (5.8)

    # ------------------------------------------------------------ using the model

    def decoded_mean(self, z):
        """E[x | z] for z (N, J): sigmoid(logits) or the Gaussian mean, (N, D)."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            from npvae.nn import sigmoid
            return sigmoid(out)
        return out[0]

    def sample(self, n, rng, *, mean=True):
        """Generate n examples: z ~ N(0, I), then E[x | z] (``mean=True``) or x ~ p(x | z)."""
        check_rng(rng)
        z = rng.standard_normal((int(n), self.z_dim)).astype(self.dtype)
        m = self.decoded_mean(z)
        if mean:
            return m
        if self.likelihood == "bernoulli":
            return (rng.random(m.shape) < m).astype(self.dtype)
        _, logvar = self.decode(z)
        return (m + dist.std_from_logvar(logvar) * rng.standard_normal(m.shape)).astype(self.dtype)

    def reconstruct(self, x):
        """E[x | z = mu(x)]: the decoded mean at the encoder mean, (M, D)."""
        mu, _ = self.encode(x)
        return self.decoded_mean(mu)

    def log_importance_weights(self, x, n_samples, rng=None, eps=None):
        """log p(x, z_k) - log q(z_k | x) for z_k ~ q(z | x): (K, M).

        The input of :func:`npvae.evaluate.log_likelihood` (7.1).
        """
        x = self.check_x(x)
        if eps is not None:
            eps = check_array(eps, "eps", dtype=self.dtype)
            if eps.ndim != 3 or eps.shape[1:] != (x.shape[0], self.z_dim):
                raise ValueError(f"eps must have shape (K, {x.shape[0]}, {self.z_dim}), "
                                 f"got {eps.shape}")
        mu, logvar = self._encode(x)
        if eps is None:
            eps = check_rng(rng).standard_normal((int(n_samples),) + mu.shape).astype(self.dtype)
        z, _ = dist.reparameterize(mu, logvar, eps)
        log_q = dist.gaussian_log_prob(z, mu, logvar)
        return self.log_px(x, z, backward=False) + dist.standard_normal_log_prob(z) - log_q

    def elbo_terms(self, x, n_samples, rng):
        """Per-example reconstruction term E_q[log p(x | z)] (L-sample estimate)
        and analytic KL(q(z | x) || p(z)): two (M,) arrays  (3.7)."""
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        x = self.check_x(x)
        mu, logvar = self._encode(x)
        eps = check_rng(rng).standard_normal((int(n_samples),) + mu.shape).astype(self.dtype)
        z, _ = dist.reparameterize(mu, logvar, eps)
        return np.mean(self.log_px(x, z, backward=False), axis=0), dist.gaussian_kl(mu, logvar)

    def zero_grads(self):
        for g in self.grads.values():
            g[...] = 0
