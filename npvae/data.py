"""Datasets: ``load(name) -> Dataset`` with train/test arrays of shape (N, D).

Names (``NAMES``):

* ``glyphs`` (the default): 28x28 grey digits 0-9 drawn from the DejaVu Sans
  font that matplotlib ships, each randomly rotated, scaled, sheared, shifted,
  thickened or thinned and slightly blurred.  Generated offline, deterministic
  per seed, cached as ``.npz``.
* ``fashion-mnist`` and ``mnist``: the IDX files, gzip or plain, read from a
  directory, from Debian's ``/usr/share/datasets/fashion-mnist`` or from the
  cache; ``download=True`` fetches them into the cache, checks SHA-256 and
  writes atomically.  Nothing is ever fetched at import time.
* ``frey-faces``: ``frey_rawface.mat`` (1965 faces of 28x20) via
  ``scipy.io.loadmat``.
* ``bars``: the Helmholtz machine's bars world with its exact distribution
  (:func:`bars_distribution`).
* ``ppca``: samples of a linear-Gaussian model with exact log p(x) and exact
  posterior (:class:`PPCA`), returned as ``Dataset.model``.

Images are float in [0, 1] (``ppca`` is real-valued).  Binarization for a
Bernoulli decoder: ``binarize=None | "threshold" | "dynamic"``, all through
:func:`binarize`.
"""
import functools
import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npvae._checks import check_array, check_dtype, check_rng

NAMES = ("glyphs", "fashion-mnist", "mnist", "frey-faces", "bars", "ppca")
BINARIZATIONS = (None, "threshold", "dynamic")
GLYPHS_VERSION = 1


# ---------------------------------------------------------------- the container

@dataclass
class Dataset:
    """Train and test arrays of one dataset.

    Attributes
    ----------
    name : str
    x_train, x_test : ndarray (N, D)
        In [0, 1] for image data (binary after ``binarization="threshold"``).
    y_train, y_test : int ndarray (N,) or None
    image_shape : (height, width) or None
    binarization : None, "threshold" or "dynamic"
        ``"dynamic"`` keeps the grey values; call :meth:`binarize` on every
        minibatch (or epoch) to draw fresh binary data.
    source : str
        Where the data came from (a directory, a file, or "generated").
    model : object or None
        The generating model when there is one (``ppca``: a :class:`PPCA`).
    """

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray = None
    y_test: np.ndarray = None
    image_shape: tuple = None
    binarization: str = None
    source: str = "generated"
    model: object = None
    info: dict = field(default_factory=dict)

    @property
    def x_dim(self):
        return self.x_train.shape[1]

    def binarize(self, x, rng):
        """Data as the model should see it this time: a fresh Bernoulli draw
        x ~ Bernoulli(x) when ``binarization == "dynamic"``, else x unchanged."""
        if self.binarization == "dynamic":
            return binarize(x, "dynamic", rng)
        return x

    def __repr__(self):
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else "-"
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"image_shape={shape}, binarization={self.binarization!r}, "
                f"source={self.source!r})")


def binarize(x, mode, rng=None, threshold=0.5):
    """Binary data for a Bernoulli decoder from grey values x in [0, 1].

    mode : None (x unchanged), "threshold" (1 where x > threshold), or
        "dynamic" (a fresh draw x_b ~ Bernoulli(x), needs ``rng``).
    Returns an array of x's dtype.
    """
    if mode not in BINARIZATIONS:
        raise ValueError(f"binarize mode must be one of {BINARIZATIONS}, got {mode!r}")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"x must be a float array, got dtype {x.dtype}")
    if mode is None:
        return x
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1] to be binarized, got values in "
                         f"[{x.min():g}, {x.max():g}]")
    if mode == "threshold":
        return (x > threshold).astype(x.dtype)
    check_rng(rng)
    return (rng.random(x.shape) < x).astype(x.dtype)


# ---------------------------------------------------------------- cache and files

def cache_dir(path=None):
    """The cache directory: ``path``, else ``$NPVAE_CACHE``, else ``~/.cache/npvae``.

    Not created here; writers create it when they first need it.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("NPVAE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "npvae"


def _atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename
    it to ``path`` (so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)          # mkstemp makes it private; a cache is for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_npz(path, **arrays):
    _atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _load_npz(path, keys):
    """The arrays ``keys`` of an .npz file, or None if it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


# ---------------------------------------------------------------- glyphs

_GLYPH_RES = 3          # templates are drawn at 3x the output resolution
_GLYPH_HEIGHT = 20      # glyph height in output pixels at scale 1 (MNIST's 20x20 box)
_STROKE_LEVELS = (-2, -1, 0, 1, 2, 3)   # erosion (<0) / dilation (>0) radius, template px


def _disk(r):
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx ** 2 + yy ** 2 <= r * r + r


@functools.lru_cache(maxsize=2)
def _glyph_templates(size=28):
    """Each digit drawn once at ``_GLYPH_RES`` times ``size``, at every stroke level.

    Returns (10, len(_STROKE_LEVELS), S, S) float64 in [0, 1], S = _GLYPH_RES * size:
    the glyph outline of DejaVu Sans (matplotlib's TextPath), filled by the
    even-odd rule (so the holes of 0, 4, 6, 8, 9 stay open), 4x4 supersampled,
    centred on its bounding box, then eroded / dilated with disks.  Computed
    once per process (about a second) and kept read-only.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath
    from scipy import ndimage

    S, ss = _GLYPH_RES * size, 4
    prop = FontProperties(family="DejaVu Sans")
    height_px = _GLYPH_RES * _GLYPH_HEIGHT
    paths = [TextPath((0, 0), str(d), size=100, prop=prop) for d in range(10)]
    ref = paths[0].get_extents()
    k = height_px / ref.height                     # font units -> template pixels, same for all
    u = (np.arange(S * ss) + 0.5) / ss - S / 2     # sub-pixel centres, origin at canvas centre
    gx, gy = np.meshgrid(u, u)
    out = np.empty((10, len(_STROKE_LEVELS), S, S))
    for d, tp in enumerate(paths):
        ext = tp.get_extents()
        cx, cy = (ext.x0 + ext.x1) / 2, (ext.y0 + ext.y1) / 2
        pts = np.column_stack([cx + gx.ravel() / k, cy - gy.ravel() / k])   # image rows go down
        inside = np.zeros(len(pts), dtype=bool)
        for poly in tp.to_polygons(closed_only=True):
            inside ^= MplPath(poly).contains_points(pts)
        img = inside.reshape(S, ss, S, ss).mean(axis=(1, 3))
        for i, r in enumerate(_STROKE_LEVELS):
            if r > 0:
                v = ndimage.grey_dilation(img, footprint=_disk(r))
            elif r < 0:
                v = ndimage.grey_erosion(img, footprint=_disk(-r))
            else:
                v = img
            # anti-aliasing before the warp samples the template at 1/3 density
            out[d, i] = ndimage.gaussian_filter(v, 0.45 * _GLYPH_RES)
    out.flags.writeable = False      # shared by every caller through the lru_cache
    return out


def make_glyphs(n, rng, size=28, templates=None):
    """Generate n random digit images: (x (n, size*size) float64 in [0, 1], y (n,) int64).

    Labels are balanced (``n // 10`` or one more of each digit) in random order.
    Each image: a digit template with a random stroke width (a blend of two
    neighbouring erosion/dilation levels), warped by a random affine map
    (rotation +-15 deg, scale 0.8-1.1, aspect 0.85-1.15, shear +-0.3, shift
    +-1.5 px), blurred by a random amount, scaled to peak 1 and quantized to
    256 grey levels (so cached and freshly made data are the same numbers).
    """
    from scipy import ndimage

    check_rng(rng)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    T = _glyph_templates(size) if templates is None else templates
    S = T.shape[-1]
    y = rng.permutation(np.arange(n) % 10)
    level = rng.uniform(0, len(_STROKE_LEVELS) - 1, n)
    angle = np.deg2rad(rng.uniform(-15, 15, n))
    scale = rng.uniform(0.8, 1.1, n)
    aspect = rng.uniform(0.85, 1.15, n)
    shear = rng.uniform(-0.3, 0.3, n)
    shift = rng.uniform(-1.5, 1.5, (n, 2))
    blur = rng.uniform(0.0, 1.0, n)

    c_out, c_in = (size - 1) / 2, (S - 1) / 2
    x = np.empty((n, size, size))
    for i in range(n):
        lo = int(level[i])
        hi = min(lo + 1, len(_STROKE_LEVELS) - 1)
        t = level[i] - lo
        tmpl = (1 - t) * T[y[i], lo] + t * T[y[i], hi]
        # forward map on (row, col) offsets from the centre: rotate . shear . scale
        c, s = np.cos(angle[i]), np.sin(angle[i])
        rot = np.array([[c, -s], [s, c]])
        shr = np.array([[1.0, 0.0], [-shear[i], 1.0]])     # col shifts with row: a slant
        scl = np.diag([scale[i] * aspect[i], scale[i] / aspect[i]])
        fwd = rot @ shr @ scl / _GLYPH_RES
        inv = np.linalg.inv(fwd)
        offset = c_in - inv @ (np.array([c_out, c_out]) + shift[i])
        x[i] = ndimage.affine_transform(tmpl, inv, offset=offset, output_shape=(size, size),
                                        order=1, mode="constant", cval=0.0)
    blurred = ndimage.gaussian_filter(x, sigma=(0, 0.7, 0.7))
    x = (1 - blur)[:, None, None] * x + blur[:, None, None] * blurred
    x /= np.maximum(x.max(axis=(1, 2), keepdims=True), 1e-12)
    x = np.round(np.clip(x, 0, 1) * 255) / 255
    return x.reshape(n, size * size), y.astype(np.int64)


def _load_glyphs(seed, n_train, n_test, cache):
    n_train = 10000 if n_train is None else int(n_train)
    n_test = 2000 if n_test is None else int(n_test)
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    path = cache_dir(cache) / f"glyphs-v{GLYPHS_VERSION}-seed{seed}-{n_train}-{n_test}.npz"
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = _load_npz(path, keys) if path.exists() else None
    if arrays is not None and not (arrays["x_train"].shape == (n_train, 784)
                                   and arrays["x_test"].shape == (n_test, 784)):
        arrays = None
    source = str(path)
    if arrays is None:
        templates = _glyph_templates()
        # independent streams: the test set does not depend on n_train
        train_rng, test_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
        x_train, y_train = make_glyphs(n_train, train_rng, templates=templates)
        x_test, y_test = make_glyphs(n_test, test_rng, templates=templates)
        arrays = dict(x_train=(x_train * 255).round().astype(np.uint8), y_train=y_train,
                      x_test=(x_test * 255).round().astype(np.uint8), y_test=y_test)
        try:
            _save_npz(path, **arrays)
        except OSError as err:
            warnings.warn(f"could not cache glyphs at {path}: {err}")
            source = "generated"
    return Dataset("glyphs", arrays["x_train"] / 255.0, arrays["x_test"] / 255.0,
                   arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64),
                   image_shape=(28, 28), source=source)


# ---------------------------------------------------------------- load

def load(name="glyphs", *, root=None, download=False, cache_dir=None, seed=0, binarize=None,
         n_train=None, n_test=None, dtype=np.float64, **kw):
    """Load dataset ``name`` (one of ``NAMES``) -> :class:`Dataset`.

    Parameters
    ----------
    name : str
    root : path, optional
        Directory holding the files of a file-based dataset.
    download : bool
        Fetch missing files of a file-based dataset into the cache directory.
    cache_dir : path, optional
        Default ``$NPVAE_CACHE`` or ``~/.cache/npvae``.
    seed : int
        For generated data (glyphs, bars, ppca).
    binarize : None, "threshold" or "dynamic"
        "threshold" binarizes x_train and x_test once at 0.5; "dynamic" keeps
        the grey values and records the mode: call ``Dataset.binarize(x, rng)``
        each time a minibatch is used.
    n_train, n_test : int, optional
        Sizes (generated data) or the first n examples (file data).
    dtype : float64 (default) or float32
    **kw : dataset options: ``n`` (bars side), ``x_dim``, ``z_dim``, ``sigma2``
        (ppca), ``base_url``, ``checksums`` (downloads).
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"binarize must be one of {BINARIZATIONS}, got {binarize!r}")
    dtype = check_dtype(dtype)
    seed = int(seed)
    allowed = {"glyphs": set()}
    extra = set(kw) - allowed.get(name, set())
    if extra:
        raise ValueError(f"unexpected option(s) for {name!r}: {', '.join(sorted(extra))}")
    if name == "glyphs":
        ds = _load_glyphs(seed, n_train, n_test, cache_dir)
    if binarize is not None and ds.image_shape is None and name == "ppca":
        raise ValueError("ppca data is real-valued and cannot be binarized (use binarize=None)")
    ds.x_train = ds.x_train.astype(dtype, copy=False)
    ds.x_test = ds.x_test.astype(dtype, copy=False)
    if binarize == "threshold":
        ds.x_train = _binarize(ds.x_train, "threshold")
        ds.x_test = _binarize(ds.x_test, "threshold")
    ds.binarization = binarize
    return ds


_binarize = binarize
