"""Layers with hand-written backward passes: Linear, activations, MLP.

Derivation: ``derivations/05_backprop.md``.

Contract (every layer): ``forward(x)`` returns ``out`` and stores in
``self.cache`` exactly what ``backward`` needs; ``backward(dout)`` returns
``dx`` (d loss / d x) and *overwrites* ``self.grads`` (never accumulates
across calls).  ``params`` and ``grads`` are dicts with identical keys; the
arrays in ``params`` are the live parameters that optimizers update in place.

Shapes: a minibatch is ``(N, in_dim)``; the VAE folds its L samples into N.

Storage: a model may keep all its parameters in one flat array (and all its
gradients in another), each layer's ``W`` and ``b`` being views into it; see
:class:`ParamStore`.  Nothing in the maths changes; the optimizer then updates
one array in cache-sized blocks instead of many arrays one pass at a time.
"""
import copy

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


def param_count(sizes):
    """Number of parameters of the Linear layers ``sizes[0] -> sizes[1] -> ...``."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


class ParamStore:
    """One flat parameter array and one flat gradient array of ``size`` entries,
    handed out to layers as consecutive views by :meth:`take`.

    A model that builds its layers with a store has ``model.params`` made of
    views that tile ``store.params`` in order (and the same for the grads), so
    code that wants every parameter at once (the optimizer, a gradient copy)
    can use the flat array: see :func:`flat_base`.

    Copies: ``copy.deepcopy`` of a model keeps the layout, and so does a deep
    copy of a model together with its optimizer as long as the model (or its
    store) comes first, e.g. ``copy.deepcopy((model, opt))``; see
    :meth:`__deepcopy__`.  Other copies, and ``pickle``, which cannot keep
    views of one array, give a model whose parameters are arrays of their own.
    It trains exactly as before (the optimizer falls back to its per-array
    update, which gives the same numbers), but its ``store`` no longer holds
    its parameters (it keeps the values of the time of the copy): check
    ``flat_base(model.params.values()) is model.store.params`` before relying
    on it, or save and load with ``npvae.checkpoint`` instead.
    """

    def __init__(self, size, dtype):
        self.dtype = check_dtype(dtype)
        self.params = np.zeros(int(size), self.dtype)
        self.grads = np.zeros(int(size), self.dtype)
        self.used = 0
        self.views = []                  # (slice, shape, param view, grad view) as handed out

    def take(self, shape):
        """The next ``(param, grad)`` views of ``shape``."""
        n = int(np.prod(shape))
        if self.used + n > self.params.size:
            raise ValueError(f"ParamStore of size {self.params.size} is full "
                             f"({self.used} used, {n} more asked)")
        sl = slice(self.used, self.used + n)
        self.used += n
        p, g = self.params[sl].reshape(shape), self.grads[sl].reshape(shape)
        self.views.append((sl, tuple(shape), p, g))
        return p, g

    def __deepcopy__(self, memo):
        """A copy whose views are views of the copy's flat arrays.

        ``copy.deepcopy`` of a model reaches its store before its layers (the
        model makes the store first).  Entering each new view in ``memo`` under
        the id of the view it replaces makes every copied reference to a view
        (the layers', the model's dicts, an optimizer's copied along) the new
        view: the copy keeps one flat array, like the original.  (Plain copying
        would turn each view into an array of its own: still correct, but the
        store would no longer hold the parameters.)  If some view was copied
        before the store, nothing can be re-pointed: the copy falls back to
        that plain behaviour, and so does a store whose views are no longer
        views of its flat arrays (an unpickled one, or such a plain copy).
        """
        views = getattr(self, "views", None)         # (None: pickled by an older npvae)
        intact = views is not None and all(
            _is_view_at(p, self.params, sl) and _is_view_at(g, self.grads, sl)
            for sl, _, p, g in views)
        arrays = [self.params, self.grads] + [a for *_, p, g in (views or ()) for a in (p, g)]
        new = object.__new__(type(self))
        memo[id(self)] = new
        if not intact or any(id(a) in memo for a in arrays):
            new.__dict__.update(copy.deepcopy(self.__dict__, memo))
            return new
        new.dtype, new.used = self.dtype, self.used
        new.params, new.grads = self.params.copy(), self.grads.copy()
        memo[id(self.params)], memo[id(self.grads)] = new.params, new.grads
        new.views = []
        for sl, shape, p, g in self.views:
            p2, g2 = new.params[sl].reshape(shape), new.grads[sl].reshape(shape)
            memo[id(p)], memo[id(g)] = p2, g2
            new.views.append((sl, shape, p2, g2))
        memo.setdefault(id(memo), []).append(self)      # keep the originals alive (as deepcopy does)
        return new


def _is_view_at(view, base, sl):
    """True if ``view`` is a C-ordered view of the 1-D array ``base`` over ``base[sl]``."""
    return (isinstance(view, np.ndarray) and view.base is base and view.flags.c_contiguous
            and view.dtype == base.dtype and view.size == sl.stop - sl.start
            and view.__array_interface__["data"][0]
            == base.__array_interface__["data"][0] + sl.start * base.itemsize)


def flat_base(arrays):
    """The 1-D array that ``arrays`` tile exactly, in order, as views; else None.

    True for the ``params`` (and ``grads``) of a model built with a
    :class:`ParamStore`, and for the gradient copies the estimators return.
    """
    arrays = list(arrays)
    if not arrays or not all(isinstance(a, np.ndarray) for a in arrays):
        return None
    base = arrays[0].base
    if (not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous
            or sum(a.size for a in arrays) != base.size):
        return None
    address = base.__array_interface__["data"][0]
    for a in arrays:
        if (a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != address):
            return None
        address += a.nbytes
    return base


class Linear:
    """Affine map ``out = x @ W + b``, with W of shape (in_dim, out_dim).

    Gradients (5.1)-(5.3): ``dW = x^T dout``, ``db = sum_n dout_n``,
    ``dx = dout W^T``.  With ``store`` (a :class:`ParamStore`) W, b and their
    gradients are views into the store's flat arrays.
    """

    def __init__(self, in_dim, out_dim, *, rng, dtype=np.float64, init="normal", scale=0.01,
                 store=None):
        self.dtype = check_dtype(dtype)
        W = init_weight((in_dim, out_dim), init, rng, self.dtype, scale)
        if store is None:
            self.params = {"W": W, "b": np.zeros(out_dim, dtype=self.dtype)}
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        else:
            if store.dtype != self.dtype:
                raise ValueError(f"store holds {store.dtype}, the layer is {self.dtype}")
            (pW, gW), (pb, gb) = store.take(W.shape), store.take((out_dim,))
            pW[...] = W
            pb[...] = 0
            self.params, self.grads = {"W": pW, "b": pb}, {"W": gW, "b": gb}
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
    the layer's own, so updating one updates the other.  ``store``: see
    :class:`ParamStore` (passed to every layer).
    """

    def __init__(self, sizes, activation="tanh", *, rng, dtype=np.float64,
                 init="normal", scale=0.01, out_activation="identity", store=None):
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
                                       init=init, scale=scale, store=store))
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
