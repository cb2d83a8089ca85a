"""Optimizers that update a params dict in place: SGD (with momentum), Adagrad, Adam.

Derivation: ``derivations/09_optimizers.md``.

    opt = npvae.optim.Adagrad(model.params, lr=0.01)
    loss, grads = estimator(model, x, rng=rng)
    opt.step(grads)                     # model.params changed in place

``grads[name]`` is d loss / d ``params[name]`` (the library minimizes
loss = -ELBO), so every update moves *against* the gradient.

Every update is written with in-place NumPy operations (``out=``) into
buffers allocated once: at M = 100 the optimizer update was measured at
23-35% of a whole training step, and temporaries the size of the weights
were a large part of that.  The maths is in the comment tagged on each line.

``weight_decay`` adds ``weight_decay * param`` to each gradient, which is the
gradient of the N(0, I) prior on the parameters; pass ``weight_decay = 1 / N``
(N = training-set size) for the paper's MAP objective scaled per example (9.2).

Every optimizer can save and restore its state: ``state_dict()`` returns a
flat dict whose values are JSON-able scalars or arrays (keys ``"<slot>/<param
name>"``); ``load_state_dict(d)`` checks it fully before changing anything.
"""
import numbers

import numpy as np


class Optimizer:
    """Base class: holds the live params, the hyperparameters and per-parameter slots.

    Subclasses set ``name``, ``hyper`` (the hyperparameter names besides
    ``lr`` and ``weight_decay``) and ``slots`` (the names of the per-parameter
    state arrays), and implement ``_update(name, param, grad, slots, tmp)``.
    """

    name = None
    hyper = ()
    slots = ()

    def __init__(self, params, lr, *, weight_decay=0.0):
        if not isinstance(params, dict) or not params:
            raise ValueError("params must be a non-empty dict of name -> ndarray "
                             f"(e.g. model.params), got {type(params).__name__}")
        for k, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise ValueError(f"params[{k!r}] must be a floating-point ndarray, "
                                 f"got {type(p).__name__}")
        self.params = params
        self.lr = _positive("lr", lr)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.t = 0
        self.state = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slots}
        self._tmp = {k: np.empty_like(p) for k, p in params.items()}
        self._decayed = None      # buffers for grad + weight_decay * param, made when needed

    def step(self, grads):
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        if grads.keys() != self.params.keys():
            missing = sorted(self.params.keys() - grads.keys())
            extra = sorted(grads.keys() - self.params.keys())
            raise ValueError(f"grads must have the keys of params; missing {missing}, "
                             f"unexpected {extra}")
        if self.weight_decay and self._decayed is None:
            self._decayed = {k: np.empty_like(p) for k, p in self.params.items()}
        self.t += 1
        for k, p in self.params.items():
            g = grads[k]
            if g.shape != p.shape:
                raise ValueError(f"grads[{k!r}] has shape {g.shape}, params[{k!r}] has {p.shape}")
            if self.weight_decay:
                g = np.multiply(p, self.weight_decay, out=self._decayed[k])
                g += grads[k]                                        # (9.2)
            self._update(k, p, g, {s: self.state[s][k] for s in self.slots}, self._tmp[k])

    def _update(self, name, p, g, slots, tmp):
        raise NotImplementedError

    # ------------------------------------------------------------ state

    def hyperparameters(self):
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                **{h: getattr(self, h) for h in self.hyper}}

    def state_dict(self):
        """A flat dict: ``"type"``, ``"t"``, the hyperparameters (JSON-able
        scalars) and ``"<slot>/<param>"`` -> a copy of each state array."""
        d = {"type": self.name, "t": self.t, **self.hyperparameters()}
        for s in self.slots:
            for k, a in self.state[s].items():
                d[f"{s}/{k}"] = a.copy()
        return d

    def load_state_dict(self, d):
        """Restore a :meth:`state_dict`: hyperparameters, step count, slots.

        Everything is checked (type, keys, shapes) before anything changes;
        a mismatch raises ``ValueError``.
        """
        if not isinstance(d, dict):
            raise ValueError(f"optimizer state must be a dict, got {type(d).__name__}")
        if d.get("type") != self.name:
            raise ValueError(f"optimizer state is for {d.get('type')!r}, this optimizer is "
                             f"{self.name!r}")
        want = {"type", "t", *self.hyperparameters(), *(f"{s}/{k}" for s in self.slots
                                                        for k in self.params)}
        if d.keys() != want:
            raise ValueError(f"optimizer state keys do not match this {self.name} over these "
                             f"params: missing {sorted(want - d.keys())}, unexpected "
                             f"{sorted(d.keys() - want)}")
        arrays = {}
        for s in self.slots:
            for k, p in self.params.items():
                a = np.asarray(d[f"{s}/{k}"])
                if a.shape != p.shape:
                    raise ValueError(f"optimizer state {s}/{k} has shape {a.shape}, "
                                     f"the parameter has {p.shape}")
                arrays[s, k] = a
        t = int(d["t"])
        if t < 0:
            raise ValueError(f"optimizer step count t must be >= 0, got {t}")
        hyper = {h: float(d[h]) for h in self.hyperparameters()}
        _positive("lr", hyper["lr"])
        _nonnegative("weight_decay", hyper["weight_decay"])
        for h, v in hyper.items():
            setattr(self, h, v)
        self.t = t
        for (s, k), a in arrays.items():
            self.state[s][k][...] = a

    def __repr__(self):
        hp = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} params, {hp})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (heavy-ball) momentum.

    momentum = 0:  p <- p - lr g                          (9.3)
    momentum = mu: v <- mu v + g;  p <- p - lr v          (9.4)
    """

    name = "sgd"
    hyper = ("momentum",)

    def __init__(self, params, lr=0.01, momentum=0.0, *, weight_decay=0.0):
        self.momentum = _in_unit("momentum", momentum)
        self.slots = ("velocity",) if self.momentum else ()
        super().__init__(params, lr, weight_decay=weight_decay)

    def load_state_dict(self, d):
        saved = d.get("momentum") if isinstance(d, dict) else None
        if saved is not None and bool(float(saved)) != bool(self.momentum):
            raise ValueError("optimizer state was saved with momentum "
                             f"{float(d['momentum']):g}, this SGD has {self.momentum:g}; "
                             "one has a velocity slot and the other not")
        super().load_state_dict(d)

    def _update(self, name, p, g, slots, tmp):
        if self.momentum:
            v = slots["velocity"]
            v *= self.momentum
            v += g                                             # (9.4)
            g = v
        np.multiply(g, self.lr, out=tmp)
        p -= tmp                                               # (9.3)


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), the paper's optimizer.

    G <- G + g^2;  p <- p - lr g / (sqrt(G) + eps)        (9.5), (9.6)
    """

    name = "adagrad"
    hyper = ("eps",)
    slots = ("sum_sq",)

    def __init__(self, params, lr=0.01, eps=1e-8, *, weight_decay=0.0):
        self.eps = _positive("eps", eps)
        super().__init__(params, lr, weight_decay=weight_decay)

    def _update(self, name, p, g, slots, tmp):
        G = slots["sum_sq"]
        np.multiply(g, g, out=tmp)
        G += tmp                                               # (9.5)
        np.sqrt(G, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p -= tmp                                               # (9.6)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2                        (9.7)
    p <- p - lr m_hat / (sqrt(v_hat) + eps),
         m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)                        (9.8), (9.9)
    """

    name = "adam"
    hyper = ("beta1", "beta2", "eps")
    slots = ("m", "v")

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, *, weight_decay=0.0):
        self.beta1 = _in_unit("beta1", beta1)
        self.beta2 = _in_unit("beta2", beta2)
        self.eps = _positive("eps", eps)
        super().__init__(params, lr, weight_decay=weight_decay)

    def _update(self, name, p, g, slots, tmp):
        m, v = slots["m"], slots["v"]
        np.multiply(g, 1.0 - self.beta1, out=tmp)
        m *= self.beta1
        m += tmp                                               # (9.7)
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.beta2
        v *= self.beta2
        v += tmp                                               # (9.7)
        # (9.8) folded into two Python scalars so no bias-corrected copy is made:
        # lr m_hat / (sqrt(v_hat) + eps) = (lr / c1) m / (sqrt(v) / sqrt(c2) + eps)
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / c2 ** 0.5
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr / c1
        p -= tmp                                               # (9.9)


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


def get(name, params, lr, **options):
    """Build an optimizer by name (see ``OPTIMIZERS``) over ``params``."""
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}") from None
    try:
        return cls(params, lr, **options)
    except TypeError as err:
        raise ValueError(f"bad option for optimizer {name!r}: {err}") from None


# ------------------------------------------------------------ validation

def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)   # a Python float keeps float32 params float32 (no NEP 50 upcast)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(name, value):
    value = _real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value:g}")
    return value


def _nonnegative(name, value):
    value = _real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value:g}")
    return value


def _in_unit(name, value):
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value:g}")
    return value
