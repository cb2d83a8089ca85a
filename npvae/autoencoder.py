"""A plain deterministic autoencoder, built from the same layers as the VAE.

Derivations: ``derivations/04_likelihoods.md`` (the two reconstruction
losses and their gradients), ``derivations/05_backprop.md`` (how the layers
compose backwards).

The encoder is an MLP ``x -> code`` (the last layer linear), the decoder an
MLP ``code -> out`` (the last layer linear).  There is no noise and no prior:
the code of x is one point, and nothing asks the codes to fill any region of
the code space.  That is the contrast with the VAE that notebook 03 draws
(the latent scatter and the manifold grid side by side).

Reconstruction losses, per example, summed over the D pixels and averaged
over the minibatch (nats per example for ``"bernoulli"``):

* ``"bernoulli"`` (cross-entropy): ``out`` are logits and
  loss_i = -log Bernoulli(x_i; sigmoid(out_i)) = -sum_d [x_id out_id - softplus(out_id)]  (4.2),
  with d loss_i / d out_i = -(x_i - sigmoid(out_i))  (4.3).
* ``"squared"``: ``out`` is the reconstruction itself and
  loss_i = 0.5 sum_d (x_id - out_id)^2, which is -log N(x_i; out_i, I) without
  its constant (4.4 with logvar = 0), with d loss_i / d out_i = -(x_i - out_i)  (4.5).

Parameter names: ``enc.W0, enc.b0, ...`` and ``dec.W0, dec.b0, ...``.
"""
import numpy as np

from npvae import distributions as dist
from npvae._checks import check_array, check_dtype, check_rng
from npvae.nn import MLP, ParamStore, check_architecture, param_count, sigmoid

LOSSES = ("bernoulli", "squared")


class Autoencoder:
    """A deterministic autoencoder: x (M, D) -> code (M, J) -> reconstruction (M, D).

    Parameters
    ----------
    x_dim, z_dim : int
        D and J (J = 2 for the pictures of notebook 03).
    hidden : tuple of int
        Hidden sizes of the encoder; the decoder mirrors them.  ``()`` gives a
        linear encoder and a linear decoder.
    activation : str
        One of ``npvae.nn.ACTIVATIONS``, used by every hidden layer.
    loss : {"bernoulli", "squared"}
        The reconstruction loss (module docstring).
    rng : np.random.Generator
        Draws the initial weights.
    dtype : float64 (default) or float32; kept end to end.
    init, init_scale : as for :class:`npvae.VAE`.
    """

    def __init__(self, x_dim, z_dim, hidden=(500,), activation="tanh", loss="bernoulli",
                 *, rng, dtype=np.float64, init="normal", init_scale=0.01):
        x_dim, z_dim, hidden = check_architecture(x_dim, z_dim, hidden, activation, init)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        check_rng(rng)
        self.dtype = check_dtype(dtype)
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.loss, self.init, self.init_scale = activation, loss, init, float(init_scale)

        enc_sizes, dec_sizes = (x_dim,) + hidden + (z_dim,), (z_dim,) + hidden[::-1] + (x_dim,)
        # one flat parameter array, as the VAE (npvae.nn.ParamStore)
        self.store = ParamStore(param_count(enc_sizes) + param_count(dec_sizes), self.dtype)
        kw = dict(rng=rng, dtype=self.dtype, init=init, scale=init_scale, store=self.store)
        self.encoder = MLP(enc_sizes, activation, **kw)
        self.decoder = MLP(dec_sizes, activation, **kw)
        self.params, self.grads = {}, {}
        for prefix, part in (("enc.", self.encoder), ("dec.", self.decoder)):
            for k in part.params:
                self.params[prefix + k] = part.params[k]
                self.grads[prefix + k] = part.grads[k]

    def config(self):
        """The constructor arguments (without rng): enough to rebuild the model."""
        return dict(x_dim=self.x_dim, z_dim=self.z_dim, hidden=list(self.hidden),
                    activation=self.activation, loss=self.loss, dtype=self.dtype.name,
                    init=self.init, init_scale=self.init_scale)

    def __repr__(self):
        return (f"Autoencoder(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, loss={self.loss!r}, dtype={self.dtype.name})")

    def check_x(self, x, name="x"):
        """Validate data: shape (M, D), finite, in [0, 1] for the Bernoulli loss."""
        bounds = (0, 1) if self.loss == "bernoulli" else (None, None)
        return check_array(x, name, shape=(None, self.x_dim), dtype=self.dtype,
                           low=bounds[0], high=bounds[1])

    def check_z(self, z, name="code"):
        return check_array(z, name, shape=(None, self.z_dim), dtype=self.dtype)

    # ------------------------------------------------------------ forward

    def encode(self, x):
        """x (M, D) -> code (M, J): one point per example, no noise."""
        return self.encoder.forward(self.check_x(x))

    def decode(self, code):
        """code (M, J) -> the decoder output (M, D): logits (``"bernoulli"``) or
        the reconstruction itself (``"squared"``)."""
        return self.decoder.forward(self.check_z(code))

    def decoded_mean(self, code):
        """The reconstruction E[x | code] in data space, (M, D)."""
        out = self.decode(code)
        return sigmoid(out) if self.loss == "bernoulli" else out

    def reconstruct(self, x):
        """x (M, D) -> its reconstruction (M, D)."""
        return self.decoded_mean(self.encode(x))

    # ------------------------------------------------------------ loss and backward

    def loss_and_grads(self, x):
        """The mean reconstruction loss over the minibatch and d loss / d params.

        x (M, D) -> (loss, grads): loss a float (per example), grads a dict of new
        arrays with every key of ``params``.  Forward one operation a line,
        backward in reverse.
        """
        x = self.check_x(x)
        M = x.shape[0]
        code = self.encoder.forward(x)                             # (M, J)
        out = self.decoder.forward(code)                           # (M, D)
        if self.loss == "bernoulli":
            logp, dlogp_dout = dist.bernoulli_log_prob_and_grad(x, out)   # (4.2), (4.3)
            loss = -np.mean(logp)
        else:
            diff = x - out                                         # (M, D)
            loss = 0.5 * np.mean(np.sum(diff * diff, axis=-1))     # (4.4), logvar = 0, up to the constant D/2 log 2pi
            dlogp_dout = diff                                      # (4.5), logvar = 0

        dout = -dlogp_dout / M                                     # d loss / d out, (M, D)
        dcode = self.decoder.backward(dout)                        # (M, J), dec.* grads  (5.1)-(5.3)
        self.encoder.backward(dcode, need_dx=False)                # enc.* grads
        return float(loss), {k: g.copy() for k, g in self.grads.items()}


def estimator(model, x, *, rng=None, eps=None, n_samples=1, **options):
    """The autoencoder behind the estimator signature, so a training loop that
    takes an estimator function can fit it.  ``rng``, ``eps`` and ``n_samples``
    are accepted and unused: the autoencoder has no noise."""
    if options:
        raise ValueError(f"the autoencoder takes no estimator options, got {sorted(options)}")
    return model.loss_and_grads(x)
