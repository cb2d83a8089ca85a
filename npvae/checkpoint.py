"""Checkpoints: one ``.npz`` file, read with ``allow_pickle=False``, written atomically.

What a checkpoint holds (npz keys):

    format            "npvae-checkpoint-1"
    model_class       e.g. "VAE"
    model_config      JSON: the model's ``config()`` (constructor arguments)
    param/<name>      every entry of ``model.params``
    optimizer         JSON: the optimizer's scalars (type, step count, hyperparameters)
    optimizer/<key>   its arrays (``"<slot>/<param>"``)
    estimator_state   JSON: scalars of stateful estimator options (e.g. a
    estimator/<opt>/<key>   REINFORCE baseline's moving average) and their arrays
    rng               JSON: the training Generator's ``bit_generator.state``
    counters          JSON: epoch, step, examples seen, ...
    history           JSON: the training history (dict of lists)
    train_config      JSON: the training settings

Strings are stored as NumPy unicode arrays, so nothing needs pickle.  The
file is written to a temporary file in the same directory and moved into
place with ``os.replace``: a crash or Ctrl-C during the write leaves the
previous checkpoint intact.  Reading checks everything (corrupt or
truncated file, missing keys, another model's config / keys / shapes) and
raises ``ValueError`` before any model is touched.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "npvae-checkpoint-1"
_JSON_KEYS = ("model_config", "optimizer", "estimator_state", "rng", "counters", "history",
              "train_config")


class Checkpoint:
    """The decoded content of a checkpoint file (see the module docstring)."""

    def __init__(self, path, model_class, model_config, params, optimizer, estimator_state,
                 rng_state, counters, history, train_config):
        self.path = path
        self.model_class = model_class
        self.model_config = model_config
        self.params = params
        self.optimizer = optimizer
        self.estimator_state = estimator_state
        self.rng_state = rng_state
        self.counters = counters
        self.history = history
        self.train_config = train_config

    def __repr__(self):
        return (f"Checkpoint({self.path!r}, {self.model_class}, "
                f"epoch={self.counters.get('epoch')}, step={self.counters.get('step')})")


# ------------------------------------------------------------ writing

def snapshot(model, *, optimizer=None, rng=None, estimator_state=None, counters=None,
             history=None, train_config=None):
    """The arrays of a checkpoint, as copies: a consistent state to write now or later.

    ``estimator_state`` maps an option name to a ``state_dict()``-like dict
    (scalars and arrays).  Returns a dict ready for :func:`write`.
    """
    out = {
        "format": np.array(FORMAT),
        "model_class": np.array(type(model).__name__),
        "model_config": _json(model.config(), "model config"),
        "counters": _json(counters or {}, "counters"),
        "history": _json(dict(history or {}), "history"),
        "train_config": _json(train_config or {}, "train_config"),
        "rng": _json(rng.bit_generator.state if rng is not None else None, "rng state"),
    }
    for k, p in model.params.items():
        out[f"param/{k}"] = p.copy()
    opt_scalars = None
    if optimizer is not None:
        opt_scalars = _split(optimizer.state_dict(), "optimizer", out)
    out["optimizer"] = _json(opt_scalars, "optimizer state")
    est = {}
    for name, state in (estimator_state or {}).items():
        est[name] = _split(state, f"estimator/{name}", out)
    out["estimator_state"] = _json(est, "estimator state")
    return out


def write(path, arrays):
    """Write a :func:`snapshot` to ``path`` atomically (temp file + ``os.replace``)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save(path, model, **state):
    """``write(path, snapshot(model, **state))``; returns ``path``."""
    return write(path, snapshot(model, **state))


# ------------------------------------------------------------ reading

def read(path):
    """Read and decode a checkpoint; ``ValueError`` if it is corrupt, truncated
    or not an npvae checkpoint, ``FileNotFoundError`` if it does not exist."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError,
            MemoryError) as err:   # MemoryError: a corrupt header claiming a huge array
        raise ValueError(f"checkpoint {path} is corrupt or truncated (not a readable .npz): "
                         f"{err}") from None
    if not isinstance(arrays, dict) or "format" not in arrays:
        raise ValueError(f"{path} is not an npvae checkpoint (no 'format' entry)")
    fmt = _string(arrays, "format", path)
    if fmt != FORMAT:
        raise ValueError(f"{path} has checkpoint format {fmt!r}; this npvae reads {FORMAT!r}")
    missing = [k for k in ("model_class",) + _JSON_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: missing {missing}")
    meta = {k: _load_json(arrays, k, path) for k in _JSON_KEYS}
    params = {k[len("param/"):]: a for k, a in arrays.items() if k.startswith("param/")}
    if not params:
        raise ValueError(f"checkpoint {path} holds no parameters")
    optimizer = None
    if meta["optimizer"] is not None:
        optimizer = _join(meta["optimizer"], "optimizer", arrays)
    est = {name: _join(scalars, f"estimator/{name}", arrays)
           for name, scalars in (meta["estimator_state"] or {}).items()}
    return Checkpoint(path, _string(arrays, "model_class", path), meta["model_config"], params,
                      optimizer, est, meta["rng"], meta["counters"], meta["history"],
                      meta["train_config"])


def check_model(ckpt, model):
    """Raise ``ValueError`` unless ``ckpt`` was saved from a model like ``model``
    (class, config, parameter names, shapes and dtypes)."""
    where = f"checkpoint {ckpt.path}"
    if ckpt.model_class != type(model).__name__:
        raise ValueError(f"{where} holds a {ckpt.model_class}, not a {type(model).__name__}")
    config = json.loads(json.dumps(model.config()))
    if ckpt.model_config != config:
        diff = sorted(k for k in set(config) | set(ckpt.model_config)
                      if config.get(k) != ckpt.model_config.get(k))
        detail = ", ".join(f"{k}: checkpoint {ckpt.model_config.get(k)!r} vs model "
                           f"{config.get(k)!r}" for k in diff)
        raise ValueError(f"{where} is from another model ({detail})")
    if ckpt.params.keys() != model.params.keys():
        raise ValueError(f"{where} has parameters {sorted(ckpt.params)}, the model has "
                         f"{sorted(model.params)}")
    for k, p in model.params.items():
        a = ckpt.params[k]
        if a.shape != p.shape or a.dtype != p.dtype:
            raise ValueError(f"{where}: parameter {k} is {a.dtype}{a.shape}, the model's is "
                             f"{p.dtype}{p.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: parameter {k} holds non-finite values")


def restore_params(ckpt, model):
    """Check (:func:`check_model`), then copy the parameters into the live arrays."""
    check_model(ckpt, model)
    for k, p in model.params.items():
        p[...] = ckpt.params[k]


def build_model(ckpt):
    """A new model of the checkpoint's class and config, holding its parameters."""
    import npvae
    try:
        cls = getattr(npvae, ckpt.model_class)
    except AttributeError:
        raise ValueError(f"checkpoint {ckpt.path} holds an unknown model class "
                         f"{ckpt.model_class!r}") from None
    try:
        model = cls(**ckpt.model_config, rng=np.random.default_rng(0))
    except TypeError as err:
        raise ValueError(f"checkpoint {ckpt.path}: cannot rebuild {ckpt.model_class} from "
                         f"its config: {err}") from None
    restore_params(ckpt, model)
    return model


def load_model(path):
    """Read a checkpoint (file, or run directory holding ``checkpoint.npz``) and
    return ``(model, checkpoint)``."""
    ckpt = read(path)
    return build_model(ckpt), ckpt


def generator_from_state(state, path="checkpoint"):
    """A new ``np.random.Generator`` in the saved ``bit_generator.state``."""
    try:
        bitgen = getattr(np.random, state["bit_generator"])()
        bitgen.state = state
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad random-generator state: {err}") from None
    return np.random.Generator(bitgen)


# ------------------------------------------------------------ helpers

def _json(obj, what):
    try:
        return np.array(json.dumps(obj, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} is not JSON-serializable: {err}") from None


def _split(state, prefix, out):
    """Arrays of a state dict go to ``out[prefix/key]``; the rest is returned (JSON)."""
    scalars = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                raise ValueError(f"{prefix}/{k} has dtype {v.dtype}; only numbers can be saved")
            out[f"{prefix}/{k}"] = v.copy()
        elif isinstance(v, np.generic):
            scalars[k] = v.item()
        else:
            scalars[k] = v
    return scalars


def _join(scalars, prefix, arrays):
    d = dict(scalars)
    start = prefix + "/"
    for k, a in arrays.items():
        if k.startswith(start):
            d[k[len(start):]] = a
    return d


def _string(arrays, key, path):
    a = arrays[key]
    if a.dtype.kind != "U" or a.ndim != 0:
        raise ValueError(f"checkpoint {path}: entry {key!r} is not a string")
    return str(a.item())


def _load_json(arrays, key, path):
    try:
        return json.loads(_string(arrays, key, path))
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint {path}: entry {key!r} is not valid JSON: {err}") from None
