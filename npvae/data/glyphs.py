"""The ``glyphs`` dataset: digits drawn from the font that matplotlib ships,
randomly warped, thickened or thinned and blurred; cached as ``.npz``."""
import functools
import warnings

import numpy as np

from npvae._checks import check_rng
from npvae.data.dataset import Dataset
from npvae.data.files import _load_npz, _save_npz, cache_dir

GLYPHS_VERSION = 1      # part of the cache key: bump it whenever make_glyphs changes

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
