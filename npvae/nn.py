"""Layers with hand-written backward passes: Linear, activations, MLP.

Derivation: ``derivations/05_backprop.md``.

Contract (every layer): ``forward(x)`` returns ``out`` and stores in
``self.cache`` exactly what ``backward`` needs; ``backward(dout)`` returns
``dx`` (d loss / d x) and *overwrites* ``self.grads`` (never accumulates
across calls).  ``params`` and ``grads`` are dicts with identical keys; the
arrays in ``params`` are the live parameters that optimizers update in place.

Shapes: a minibatch is ``(N, in_dim)``; the VAE folds its L samples into N.
"""
import numpy as np

from npvae._checks import check_dtype

INITS = ("normal", "glorot", "he")


def init_weight(shape, init, rng, dtype, scale=0.01):
    """Draw a weight matrix of ``shape = (fan_in, fan_out)``.

    ``"normal"``: N(0, scale^2) entries, the paper's choice (scale 0.01).
    ``"glorot"``: N(0, 2 / (fan_in + fan_out)), for tanh / sigmoid nets.
    ``"he"``: N(0, 2 / fan_in), for ReLU nets.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    fan_in, fan_out = shape
    if init == "normal":
        std = scale
    elif init == "glorot":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        std = np.sqrt(2.0 / fan_in)
    return (std * rng.standard_normal(shape)).astype(dtype)


class Linear:
    """Affine map ``out = x @ W + b``, with W of shape (in_dim, out_dim).

    Gradients (5.1)-(5.3): ``dW = x^T dout``, ``db = sum_n dout_n``,
    ``dx = dout W^T``.
    """

    def __init__(self, in_dim, out_dim, *, rng, dtype=np.float64, init="normal", scale=0.01):
        self.dtype = check_dtype(dtype)
        self.params = {
            "W": init_weight((in_dim, out_dim), init, rng, self.dtype, scale),
            "b": np.zeros(out_dim, dtype=self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.cache = None

    def forward(self, x):
        """x (N, in_dim) -> out (N, out_dim)."""
        self.cache = x
        out = x @ self.params["W"]
        out += self.params["b"]          # in place: no second (N, out_dim) array
        return out

    def backward(self, dout, need_dx=True):
        """dout (N, out_dim) -> dx (N, in_dim), or None when ``need_dx`` is False.

        Skipping dx for a layer that reads the data saves the largest matrix
        product of the encoder's backward pass.
        """
        x = self.cache
        np.matmul(x.T, dout, out=self.grads["W"])        # (5.2)
        np.sum(dout, axis=0, out=self.grads["b"])        # (5.3)
        if not need_dx:
            return None
        return dout @ self.params["W"].T                 # (5.1)


class Tanh:
    """out = tanh(x); backward uses the cached output: dx = dout (1 - out^2)  (5.4)."""

    params = grads = {}

    def forward(self, x):
        out = np.tanh(x)
        self.cache = out
        return out

    def backward(self, dout):
        out = self.cache
        dx = out * out
        np.subtract(1, dx, out=dx)                       # one buffer for the three passes
        dx *= dout
        return dx                                        # (5.4): dout (1 - out^2)


class ReLU:
    """out = max(x, 0); dx = dout [x > 0]  (5.5)."""

    params = grads = {}

    def forward(self, x):
        out = np.maximum(x, 0)
        self.cache = out                                 # out > 0 exactly where x > 0
        return out

    def backward(self, dout):
        return dout * (self.cache > 0)                   # (5.5)


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2.

    The tanh form never overflows, needs one transcendental call and no
    ``np.where`` (whose random branches cost ~10x a multiply on (100, 784)).
    """
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for large |x|."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class Sigmoid:
    """out = sigmoid(x); dx = dout out (1 - out)  (5.6)."""

    params = grads = {}

    def forward(self, x):
        out = sigmoid(x)
        self.cache = out
        return out

    def backward(self, dout):
        out = self.cache
        return dout * out * (1 - out)                    # (5.6)


class Softplus:
    """out = log(1 + exp(x)); dx = dout sigmoid(x)  (5.7)."""

    params = grads = {}

    def forward(self, x):
        self.cache = x
        return softplus(x)

    def backward(self, dout):
        return dout * sigmoid(self.cache)                # (5.7)


class Identity:
    """out = x; dx = dout."""

    params = grads = {}

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


ACTIVATIONS = {
    "tanh": Tanh,
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "softplus": Softplus,
    "identity": Identity,
}


def make_activation(name):
    """An activation layer by name: one of ``ACTIVATIONS``."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


def check_architecture(x_dim, z_dim, hidden, activation, init):
    """Validate the sizes and names shared by the VAE and the autoencoder.

    Returns ``(x_dim, z_dim, hidden)`` as ints and a tuple of ints (a single
    int ``hidden`` means one hidden layer).  Raises ``ValueError`` naming the
    argument.
    """
    try:
        x_dim, z_dim = int(x_dim), int(z_dim)
    except (TypeError, ValueError):
        raise ValueError(f"x_dim and z_dim must be integers, got {x_dim!r}, {z_dim!r}") from None
    if x_dim < 1 or z_dim < 1:
        raise ValueError(f"x_dim and z_dim must be positive, got {x_dim}, {z_dim}")
    if isinstance(hidden, (int, np.integer)):
        hidden = (int(hidden),)
    try:
        hidden = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        raise ValueError(f"hidden must be a tuple of positive sizes, got {hidden!r}") from None
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be positive, got {hidden}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return x_dim, z_dim, hidden


class MLP:
    """Linear layers with an activation after each hidden one.

    ``sizes = (in_dim, h_1, ..., out_dim)``.  The last Linear is followed by
    ``out_activation`` (identity by default).  Parameter keys are ``W0, b0,
    W1, b1, ...`` in layer order; ``params[k]`` is the same array object as
    the layer's own, so updating one updates the other.
    """

    def __init__(self, sizes, activation="tanh", *, rng, dtype=np.float64,
                 init="normal", scale=0.01, out_activation="identity"):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive sizes, got {sizes}")
        for name in (activation, out_activation):
            make_activation(name)                       # raise on a bad name before drawing
        self.sizes = sizes
        self.dtype = check_dtype(dtype)
        self.linears = []
        self.activations = []
        n = len(sizes) - 1
        for i in range(n):
            self.linears.append(Linear(sizes[i], sizes[i + 1], rng=rng, dtype=self.dtype,
                                       init=init, scale=scale))
            self.activations.append(make_activation(activation if i < n - 1 else out_activation))
        self.params = {}
        self.grads = {}
        for i, lin in enumerate(self.linears):
            for k in ("W", "b"):
                self.params[f"{k}{i}"] = lin.params[k]
                self.grads[f"{k}{i}"] = lin.grads[k]

    def forward(self, x):
        """x (N, sizes[0]) -> out (N, sizes[-1])."""
        h = x
        for lin, act in zip(self.linears, self.activations):
            h = act.forward(lin.forward(h))
        return h

    def backward(self, dout, need_dx=True):
        """dout (N, sizes[-1]) -> dx (N, sizes[0]) (None if not ``need_dx``); fills grads."""
        d = dout
        last = len(self.linears) - 1
        for i in range(last, -1, -1):
            d = self.activations[i].backward(d)
            d = self.linears[i].backward(d, need_dx=need_dx or i > 0)
        return d
