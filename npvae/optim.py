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

Adam and SGD with momentum set subnormal entries of their state to zero every
``FLUSH_EVERY`` steps (9.12): state that decays under exactly-zero gradients
would otherwise stick among the smallest subnormal numbers, where every pass
over it is slow.  What this can change is bounded in derivations/09, 9.7:
below float rounding for the parameters in float32 and float64.

``fused=True`` (or the environment variable ``NPVAE_FUSED=1``, read when
npvae is imported) runs each update as one compiled pass instead
(``npvae/_fused.py``; needs numba, ``pip install 'npvae[fast]'``): the same
operations in the same order, so the same bits (9.13), measured 1.15-1.26x
faster per training step at M = 100.  The NumPy form below stays the
reference, and the default; it also runs, with fused=True, wherever the
compiled loop could differ (see ``_fusable``).  The compiled loop gives no
RuntimeWarning on an overflow or an invalid operation.

Every optimizer can save and restore its state: ``state_dict()`` returns a
flat dict whose values are JSON-able scalars or arrays (keys ``"<slot>/<param
name>"``); ``load_state_dict(d)`` checks it fully before changing anything.
"""
import copy
import numbers
import os

import numpy as np

from npvae.nn import flat_base

BLOCK = 2 ** 16      # entries per block of the update (see Optimizer._update_blocks)
FLUSH_EVERY = 64     # steps between flushes of subnormal state (see Optimizer._flush_subnormal)
# the default of ``fused`` (see the module docstring)
FUSED = os.environ.get("NPVAE_FUSED", "").strip().lower() in ("1", "true", "yes", "on")


class Optimizer:
    """Base class: holds the live params, the hyperparameters and per-parameter slots.

    Subclasses set ``name``, ``hyper`` (the hyperparameter names besides
    ``lr`` and ``weight_decay``) and ``slots`` (the names of the per-parameter
    state arrays), and implement ``_update(p, g, slots, tmp)``: the in-place
    update of one 1-D block ``p`` from its gradient ``g``, with ``slots`` the
    matching blocks of the state arrays (a tuple in the order of ``slots``)
    and ``tmp`` a scratch block of the same size; and ``_fused_update(k, p,
    g, slots)``, the same update through the compiled kernels ``k``
    (``npvae._fused``) on whole 1-D arrays of one dtype.
    """

    name = None
    hyper = ()
    slots = ()
    decaying = ()        # slots that shrink geometrically where the gradient is zero (9.12)

    def __init__(self, params, lr, *, weight_decay=0.0, fused=None):
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
        if fused is None:
            fused = FUSED
        if not isinstance(fused, (bool, np.bool_)):
            raise ValueError(f"fused must be True, False or None, got {fused!r}")
        self.fused = bool(fused)
        if self.fused:
            fused_kernels()                 # fails here, before any step, without numba
        self.t = 0
        # a model built on a flat ParamStore (the VAE, the autoencoder) is updated
        # as one array, and its state lives in flat arrays too; the per-name
        # state arrays are views into them
        self._flat = flat_base(params.values())
        if self._flat is not None:
            self._flat_state = tuple(np.zeros_like(self._flat) for _ in self.slots)
            self.state = {}
            for s, flat in zip(self.slots, self._flat_state):
                self.state[s], offset = {}, 0
                for k, p in params.items():
                    self.state[s][k] = flat[offset:offset + p.size].reshape(p.shape)
                    offset += p.size
        else:
            self.state = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slots}
        self._scratch = {}

    def __deepcopy__(self, memo):
        """A copy whose per-name state arrays are views of its own flat state
        arrays, as in the original (see ``npvae.nn.ParamStore.__deepcopy__``);
        copied together with its model, its params are the copy's params."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        if self._flat is None:
            new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
            return new
        state = [self.state] + list(self.state.values()) + list(self._flat_state)
        state += [a for d in self.state.values() for a in d.values()]
        intact = all(flat_base(self.state[s].values()) is flat
                     for s, flat in zip(self.slots, self._flat_state))
        if not intact or any(id(a) in memo for a in state):
            # part of the state was copied before this optimizer, or its state
            # arrays are no longer views of the flat ones (after pickle): the
            # copy keeps to the per-array update, which reads exactly the
            # arrays its state dict holds
            new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
            new._flat = None
            return new
        for s, flat in zip(self.slots, self._flat_state):
            flat2 = memo[id(flat)] = flat.copy()
            offset = 0
            for a in self.state[s].values():
                memo[id(a)] = flat2[offset:offset + a.size].reshape(a.shape)
                offset += a.size
        new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        return new

    def __getstate__(self):
        # without the remembered tiling (see _flat_grads): a copy or an
        # unpickled optimizer checks its arrays afresh
        return {k: v for k, v in self.__dict__.items() if k != "_seen"}

    def step(self, grads):
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        if grads.keys() != self.params.keys():
            missing = sorted(self.params.keys() - grads.keys())
            extra = sorted(grads.keys() - self.params.keys())
            raise ValueError(f"grads must have the keys of params; missing {missing}, "
                             f"unexpected {extra}")
        for k, p in self.params.items():
            if grads[k].shape != p.shape:
                raise ValueError(f"grads[{k!r}] has shape {grads[k].shape}, params[{k!r}] "
                                 f"has {p.shape}")
        self.t += 1
        if self.decaying and self.t % FLUSH_EVERY == 0:
            self._flush_subnormal()
        if self._flat is not None:
            g = self._flat_grads(grads)
            if g is not None:
                self._update_blocks(self._flat, g, self._flat_state)
                return
        for k, p in self.params.items():
            slots = tuple(self.state[s][k] for s in self.slots)
            if p.flags.c_contiguous:
                self._update_blocks(p.reshape(-1), grads[k].reshape(-1),
                                    tuple(a.reshape(-1) for a in slots))
            else:                           # no flat view of p: one block, in its shape
                self._update_blocks(p, grads[k], slots)

    def _flush_subnormal(self):
        """Set subnormal entries of the decaying state slots to zero (9.12);
        each optimizer's ``_flush`` holds its rule (Adam zeroes v only where
        it zeroes m).

        Runs at the start of every step t with t % FLUSH_EVERY == 0, before
        that step's update.  Where a gradient entry stays exactly zero (a pixel
        that is 0 in every image, a dead ReLU unit), Adam's m and v and SGD's
        velocity shrink by a constant factor at every step until they are
        subnormal, and there they stay: the factor times a small enough
        subnormal rounds back to it.  Every later pass over them then takes
        the CPU's slow path.  Measured (pytorch-example model, Adam,
        float32): on one fixed random batch the step went from 7.5 ms to
        14-15 ms after ~900 steps, on the benchmark's glyphs from ~7 to
        ~10.5 ms after ~1500; with this flush it stayed, and the parameters
        after 1600 steps were bit-identical.  A flush of that model's two
        slots takes ~0.9 ms, ~15 us per step (it allocates two temporaries
        per parameter array, 64 times less often than a step runs).

        Only float32 and float64 state is flushed: float16's smallest normal
        number (6e-5) is a value Adam's v really takes.
        """
        for k in self.params:
            arrays = [self.state[s][k] for s in self.slots if s in self.decaying]
            if arrays and arrays[0].dtype in (np.float32, np.float64):
                self._flush(arrays, np.finfo(arrays[0].dtype).tiny)

    def _flush(self, arrays, tiny):
        """The rule (9.12) on one parameter's decaying slots: subclasses."""
        raise NotImplementedError

    def _flat_grads(self, grads):
        """The flat array that ``grads`` tile in the order of ``params``, if
        ``params`` still tile ``self._flat``; else None (per-array update).

        A params entry replaced since construction breaks the tiling: then the
        per-array path updates the arrays the dict now holds.  The arrays last
        found to tile are remembered, so that the usual step (the same params
        and the same gradient buffers each time) is recognised by identity:
        ``flat_base`` reads each array's address and costs ~30 us per call
        (10 arrays), against ~2 us for the identity test; measured, with the
        identity test the paper model's whole update takes 0.93-0.95 of the
        time it took before (float32).  This trusts that an array object keeps
        its memory layout: a view whose ``dtype`` or ``strides`` attribute is
        reassigned in place is not noticed (replace the dict entry instead).
        """
        params = tuple(self.params.values())
        gs = tuple(grads[k] for k in self.params)
        seen = getattr(self, "_seen", None)
        if seen is not None and _same(params, seen[0]) and _same(gs, seen[1]):
            return seen[2]
        if flat_base(params) is not self._flat:
            return None
        g = flat_base(gs)
        if g is not None:
            self._seen = (params, gs, g)
        return g

    def _update_blocks(self, p, g, slots):
        """Run :meth:`_update` over ``BLOCK``-sized pieces of 1-D arrays.

        Measured (paper model, 816k float32 parameters, Adagrad): 1.73 ms per
        step in blocks of 2^15 against 2.2 ms for whole arrays.  Each
        update is several passes over its arrays; a block stays in the CPU
        cache from one pass to the next, a whole array does not.  The
        arithmetic is the same either way.  Blocks of 2^16 then took 0.92-0.96
        of the time of 2^15 (float32, paper and pytorch-example models, caches
        flushed between updates, two runs; 2^14: 1.1-1.15, 2^17: as 2^16;
        float64: 0.92-1.0): half the Python-level calls, and the four to six
        arrays one block of an update touches (256 KB each in float32) still
        fit the measuring machine's 2 MB L2 cache.
        """
        if getattr(self, "fused", False) and _fusable(p, g, slots):
            self._fused_update(fused_kernels(), p, g, slots)
            return
        if p.ndim != 1:
            blocks = [slice(None)]
            tmp = np.empty_like(p)
        else:
            blocks = [slice(i, i + BLOCK) for i in range(0, p.size, BLOCK)]
            tmp = self._scratch.get(p.dtype)
            if tmp is None or tmp.size < 2 * BLOCK:
                tmp = self._scratch[p.dtype] = np.empty(2 * BLOCK, p.dtype)
        wd = self.weight_decay
        for b in blocks:
            pb = p[b]
            t = tmp[:pb.size].reshape(pb.shape)
            gb = g[b]
            if wd:
                gd = tmp[pb.size:2 * pb.size].reshape(pb.shape) if p.ndim == 1 else np.empty_like(pb)
                np.multiply(pb, wd, out=gd)
                gd += gb                                             # (9.2)
                gb = gd
            self._update(pb, gb, tuple(a[b] for a in slots), t)

    def _update(self, p, g, slots, tmp):
        raise NotImplementedError

    def _fused_update(self, k, p, g, slots):
        raise NotImplementedError

    def _scalars(self, p):
        """Whether there is weight decay, and its value in p's dtype."""
        return bool(self.weight_decay), p.dtype.type(self.weight_decay)

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
    decaying = ("velocity",)     # when there is momentum (then ``slots`` has it)

    def __init__(self, params, lr=0.01, momentum=0.0, *, weight_decay=0.0, fused=None):
        self.momentum = _in_unit("momentum", momentum)
        self.slots = ("velocity",) if self.momentum else ()
        super().__init__(params, lr, weight_decay=weight_decay, fused=fused)

    def load_state_dict(self, d):
        saved = d.get("momentum") if isinstance(d, dict) else None
        if saved is not None and bool(float(saved)) != bool(self.momentum):
            raise ValueError("optimizer state was saved with momentum "
                             f"{float(d['momentum']):g}, this SGD has {self.momentum:g}; "
                             "one has a velocity slot and the other not")
        super().load_state_dict(d)

    def _flush(self, arrays, tiny):
        (v,) = arrays
        # moves a parameter by less than lr * tiny at the next step (9.12)
        np.copyto(v, 0, where=np.abs(v) < tiny)

    def _update(self, p, g, slots, tmp):
        if self.momentum:
            (v,) = slots
            v *= self.momentum
            v += g                                             # (9.4)
            g = v
        np.multiply(g, self.lr, out=tmp)
        p -= tmp                                               # (9.3)

    def _fused_update(self, k, p, g, slots):
        c = p.dtype.type
        if self.momentum:
            k.sgd_momentum(p, g, slots[0], *self._scalars(p), c(self.momentum),
                           c(self.lr))                                  # (9.13): (9.4)
        else:
            k.sgd(p, g, *self._scalars(p), c(self.lr))          # (9.13): (9.3)


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), the paper's optimizer.

    G <- G + g^2;  p <- p - lr g / (sqrt(G) + eps)        (9.5), (9.6)
    """

    name = "adagrad"
    hyper = ("eps",)
    slots = ("sum_sq",)

    def __init__(self, params, lr=0.01, eps=1e-8, *, weight_decay=0.0, fused=None):
        self.eps = _positive("eps", eps)
        super().__init__(params, lr, weight_decay=weight_decay, fused=fused)

    def _update(self, p, g, slots, tmp):
        (G,) = slots
        np.multiply(g, g, out=tmp)
        G += tmp                                               # (9.5)
        np.sqrt(G, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p -= tmp                                               # (9.6)

    def _fused_update(self, k, p, g, slots):
        c = p.dtype.type
        k.adagrad(p, g, slots[0], *self._scalars(p), c(self.lr),
                  c(self.eps))                                 # (9.13): (9.5), (9.6)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2                        (9.7)
    p <- p - lr m_hat / (sqrt(v_hat) + eps),
         m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)                        (9.8), (9.9)
    """

    name = "adam"
    hyper = ("beta1", "beta2", "eps")
    slots = decaying = ("m", "v")

    def _flush(self, arrays, tiny):
        m, v = arrays
        zero = np.abs(m) < tiny
        np.copyto(m, 0, where=zero)        # the step moves by < lr tiny / (c1 eps)  (9.12)
        # v only where m is now 0, so that the next step of that entry is 0 / (...)
        # whatever v is (zeroing v under a normal m could make the step jump when
        # eps is tiny); and not when eps sqrt(1 - beta2) rounds to 0 in this
        # dtype, where 0 / (0 + 0) would give NaN
        if v.dtype.type(self.eps * (1.0 - self.beta2) ** 0.5) > 0:
            zero &= v < tiny                                     # v >= 0
            np.copyto(v, 0, where=zero)                          # (9.12)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, *, weight_decay=0.0,
                 fused=None):
        self.beta1 = _in_unit("beta1", beta1)
        self.beta2 = _in_unit("beta2", beta2)
        self.eps = _positive("eps", eps)
        super().__init__(params, lr, weight_decay=weight_decay, fused=fused)

    def _update(self, p, g, slots, tmp):
        m, v = slots
        np.multiply(g, 1.0 - self.beta1, out=tmp)
        m *= self.beta1
        m += tmp                                               # (9.7)
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.beta2
        v *= self.beta2
        v += tmp                                               # (9.7)
        # (9.8) folded into two Python scalars, so neither bias-corrected array
        # is made and the division by sqrt(c2) needs no pass of its own:
        # lr m_hat / (sqrt(v_hat) + eps) = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2))
        # (the form noted under Kingma & Ba's Algorithm 1; one pass of thirteen saved)
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        np.sqrt(v, out=tmp)
        tmp += self.eps * c2 ** 0.5
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * c2 ** 0.5 / c1
        p -= tmp                                               # (9.9)

    def _fused_update(self, k, p, g, slots):
        c = p.dtype.type
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        k.adam(p, g, *slots, *self._scalars(p), c(self.beta1), c(1.0 - self.beta1),  # (9.13)
               c(self.beta2), c(1.0 - self.beta2), c(self.eps * c2 ** 0.5),
               c(self.lr * c2 ** 0.5 / c1))


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


def fused_kernels():
    """The compiled updates (``npvae._fused``); ImportError with a hint if numba is missing."""
    try:
        from npvae import _fused
    except ImportError as err:
        raise ImportError("fused=True (or NPVAE_FUSED=1) needs numba: "
                          "pip install 'npvae[fast]' (or pip install numba)") from err
    return _fused


def _fusable(p, g, slots):
    """Whether the compiled update gives what the NumPy passes give (9.13):
    1-D arrays, all float32 or all float64 (the kernels then compute in the
    dtype NumPy's passes compute in), p and the state writable, g overlapping
    neither (element by element and pass by pass would then read different
    values), and no ``np.errstate`` that raises or calls on a floating-point
    error (the kernels do not report them; under the default, "warn", NumPy's
    warnings are simply not given).  Otherwise the NumPy update runs.
    """
    arrays = (p, g, *slots)
    if p.ndim != 1 or p.dtype not in (np.float32, np.float64):
        return False
    if any(a.dtype != p.dtype for a in arrays) or not all(a.flags.writeable for a in (p, *slots)):
        return False
    if any(np.may_share_memory(g, a) for a in (p, *slots)):
        return False
    return not any(mode in ("raise", "call", "log") for mode in np.geterr().values())


def _same(a, b):
    """True if the tuples a and b hold the very same objects."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


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
