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
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npvae._checks import check_array, check_dtype, check_rng

NAMES = ("glyphs", "fashion-mnist", "mnist", "frey-faces", "bars", "ppca")
BINARIZATIONS = (None, "threshold", "dynamic")
GLYPHS_VERSION = 1      # part of the cache key: bump it whenever make_glyphs changes


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


# ---------------------------------------------------------------- IDX files

GZIP_MAGIC = b"\x1f\x8b"
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path):
    """The file's bytes, gunzipped when it starts with the gzip magic bytes."""
    raw = Path(path).read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({err}); delete it and "
                         f"get the file again") from None


def read_idx(path, magic=None):
    """Read an IDX file (gzip or plain) -> ndarray with the header's shape.

    The IDX header: two zero bytes, a type byte (0x08 = unsigned byte, ...),
    the number of dimensions, then one big-endian uint32 per dimension; the
    data follows, big-endian.  ``magic`` (e.g. 2051 for images, 2049 for
    labels) is the first four bytes read as a big-endian integer.
    Raises ValueError naming the file when anything disagrees.
    """
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(buf)} bytes, no complete header)")
    found = int.from_bytes(buf[:4], "big")
    if buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number {found:#010x})")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: wrong magic number {found}, expected {magic} "
                         f"({'images' if magic == IDX_IMAGES_MAGIC else 'labels'})")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(buf) < header:
        raise ValueError(f"{path}: truncated IDX header (needs {header} bytes, has {len(buf)})")
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[buf[2]])
    want = int(np.prod(dims)) * dtype.itemsize
    have = len(buf) - header
    if have != want:
        what = "truncated" if have < want else "has trailing bytes"
        raise ValueError(f"{path}: {what}: header {dims} needs {want} data bytes, "
                         f"file has {have}")
    return np.frombuffer(buf, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None):
    """Write ``array`` (uint8, the MNIST files' type) as an IDX file.

    ``compress``: gzip it (default: when ``path`` ends with ``.gz``).  Used by
    the tests and handy for making small IDX files of one's own.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"array must be uint8, got {array.dtype}")
    if array.ndim < 1:
        raise ValueError("array must have at least one dimension")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.tobytes()
    if compress if compress is not None else str(path).endswith(".gz"):
        payload = gzip.compress(payload)
    _atomic_write(path, lambda f: f.write(payload))


# ---------------------------------------------------------------- finding and fetching files

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FREY_FILE = "frey_rawface.mat"

# Where each dataset's files are looked for after ``root`` (Debian packages).
SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}

BASE_URLS = {
    "fashion-mnist": ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                      "master/data/fashion/"),
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "frey-faces": "https://cs.nyu.edu/~roweis/data/",
}

# SHA-256 of the published files, as listed by the Fashion-MNIST, TensorFlow
# Datasets and torchvision sources.  (Debian's package re-compresses the
# Fashion-MNIST files, so its .gz bytes differ; local files are checked by
# parsing, not by hash.)  No SHA-256 of frey_rawface.mat is published: a
# download of it is checked by loading it and its hash is reported.
CHECKSUMS = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "frey-faces": {FREY_FILE: None},
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest, sha256_hex=None, timeout=60):
    """Fetch ``url`` to ``dest``: streamed into a temporary file next to it,
    checked against ``sha256_hex`` (if given), then renamed into place.

    A failed or mismatching download leaves nothing behind.  Raises
    FileNotFoundError when the server cannot deliver the file (HTTP error,
    no connection) and ValueError on a checksum mismatch.
    """
    dest = Path(dest)
    h = hashlib.sha256()

    def write(f):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for block in iter(lambda: response.read(1 << 16), b""):
                    h.update(block)
                    f.write(block)
        except urllib.error.HTTPError as err:
            raise FileNotFoundError(f"download of {url} failed: HTTP {err.code} {err.reason}; "
                                    f"check the URL (base_url=) or put the file in a "
                                    f"directory and pass root=") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise FileNotFoundError(f"download of {url} failed: {reason}; put the file in a "
                                    f"directory and pass root=") from None
        if sha256_hex is not None and h.hexdigest() != sha256_hex.lower():
            raise ValueError(f"SHA-256 mismatch for {url}: expected {sha256_hex}, got "
                             f"{h.hexdigest()}; the download was discarded")

    _atomic_write(dest, write)
    if sha256_hex is None:
        warnings.warn(f"no known SHA-256 for {dest.name}; downloaded file has SHA-256 "
                      f"{h.hexdigest()} (checked by parsing only)")
    return dest


def _find_file(directory, name):
    """``directory/name.gz`` or ``directory/name`` (first that exists), or None."""
    for candidate in (name + ".gz", name):
        path = Path(directory) / candidate
        if path.is_file():
            return path
    return None


def _how_to_get(name):
    ways = []
    if name == "fashion-mnist":
        ways.append("install Debian's package (apt-get install -y dataset-fashion-mnist)")
    ways.append("pass root=DIR (--root DIR) naming a directory that holds the files")
    ways.append("or pass download=True (--download) to fetch them into the cache directory")
    return "; ".join(ways)


def _locate(name, files, root, cache, do_download, base_url, checksums, find=_find_file):
    """Paths of ``files`` of dataset ``name``, all from one directory.

    Looks in ``root`` if given, else in the system directories and then in
    ``<cache>/<name>``.  With ``do_download`` the missing files are fetched
    into ``root`` (if given) or ``<cache>/<name>``.
    """
    dirs = [Path(root).expanduser()] if root is not None else (
        [Path(d) for d in SYSTEM_DIRS.get(name, ())] + [cache_dir(cache) / name])
    for d in dirs:
        found = [find(d, f) for f in files]
        if all(found):
            return found
    if not do_download:
        looked = ", ".join(str(d) for d in dirs)
        raise FileNotFoundError(f"{name}: files {', '.join(files)} (.gz or plain) not found in "
                                f"{looked}. To get them: {_how_to_get(name)}")
    dest = dirs[-1] if root is not None else cache_dir(cache) / name
    table = dict(CHECKSUMS.get(name, {}))
    table.update(checksums or {})
    base = (base_url or BASE_URLS[name]).rstrip("/") + "/"
    out = []
    for f in files:
        have = find(dest, f)
        if have is not None:
            out.append(have)
            continue
        remote = f if f.endswith(".mat") else f + ".gz"
        print(f"downloading {base + remote} -> {dest / remote}", file=sys.stderr)
        out.append(download(base + remote, dest / remote, table.get(remote)))
    return out


def _load_idx_dataset(name, root, cache, do_download, base_url, checksums, dtype=np.float64):
    paths = _locate(name, IDX_FILES, root, cache, do_download, base_url, checksums)
    arrays = []
    for split in (0, 2):
        img_path, lab_path = paths[split], paths[split + 1]
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(lab_path, IDX_LABELS_MAGIC)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{img_path}: expected unsigned-byte images of 3 dimensions "
                             f"(N, rows, cols), got {images.dtype} {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"{lab_path}: expected labels of 1 dimension, got {labels.shape}")
        if len(labels) != len(images):
            raise ValueError(f"{lab_path} holds {len(labels)} labels but {img_path} holds "
                             f"{len(images)} images")
        # converted straight to dtype: 60000 x 784 float64 is already 376 MB
        x = images.reshape(len(images), -1).astype(dtype)
        x /= dtype.type(255)
        arrays += [x, labels.astype(np.int64)]
    return Dataset(name, arrays[0], arrays[2], arrays[1], arrays[3],
                   image_shape=images.shape[1:], source=str(Path(paths[0]).parent))


# ---------------------------------------------------------------- Frey faces

def _load_frey(root, cache, do_download, base_url, checksums):
    from scipy.io import loadmat

    def find(d, f):
        p = Path(d) / f
        return p if p.is_file() else None

    (path,) = _locate("frey-faces", (FREY_FILE,), root, cache, do_download, base_url,
                      checksums, find=find)
    try:
        mat = loadmat(path)
    except Exception as err:        # scipy raises several types for a bad file
        raise ValueError(f"{path}: not a readable MATLAB file ({err}); delete it and get "
                         f"frey_rawface.mat again") from None
    if "ff" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no variable 'ff' (found {found})")
    ff = np.asarray(mat["ff"])
    if ff.ndim != 2 or ff.shape[0] != 28 * 20:
        raise ValueError(f"{path}: 'ff' must have shape (560, N) (28x20 faces as columns), "
                         f"got {ff.shape}")
    if ff.dtype != np.uint8:
        raise ValueError(f"{path}: 'ff' must hold unsigned bytes, got {ff.dtype}")
    x = ff.T / 255.0                    # row n is face n, 28 rows of 20 pixels
    n_test = max(1, len(x) // 10)       # the last 10% (in recording order) is the test set
    return Dataset("frey-faces", x[:-n_test], x[-n_test:], image_shape=(28, 20),
                   source=str(path))


# ---------------------------------------------------------------- bars

def bars_distribution(n=3, p_vertical=2 / 3):
    """The bars world on an n x n grid, exactly: (patterns (P, n*n), probs (P,)).

    Generative story (Dayan's Helmholtz machine tutorial, after Kirby):
    choose vertical with probability ``p_vertical`` (2/3), else horizontal;
    switch each of the n bars of that orientation on independently with
    probability 1/2; reject the draw if no bar or every bar is on (those two
    images would not show the orientation) and start again.  Each
    orientation then has 2^n - 2 equally likely patterns, and the two sets
    do not overlap, so P = 2 (2^n - 2) and a vertical pattern has
    probability p_vertical / (2^n - 2).  For n = 3: 6 vertical patterns at
    1/9, 6 horizontal at 1/18, entropy (2/3) ln 9 + (1/3) ln 18 = 2.4284 nats.

    Rows of ``patterns`` are images flattened row-major, vertical patterns
    first, each set ordered by the binary number of its bars.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if not 0 < p_vertical < 1:
        raise ValueError(f"p_vertical must lie in (0, 1), got {p_vertical}")
    masks = np.arange(1, 2 ** n - 1)
    on = (masks[:, None] >> np.arange(n)) & 1                          # (2^n - 2, n)
    vertical = np.repeat(on[:, None, :], n, axis=1)                    # column j lit
    horizontal = np.repeat(on[:, :, None], n, axis=2)                  # row i lit
    patterns = np.concatenate([vertical, horizontal]).reshape(-1, n * n).astype(np.float64)
    k = len(masks)
    probs = np.concatenate([np.full(k, p_vertical / k), np.full(k, (1 - p_vertical) / k)])
    return patterns, probs


def _load_bars(seed, n_train, n_test, n=3):
    patterns, probs = bars_distribution(n)
    n_train = 10000 if n_train is None else int(n_train)
    n_test = 2000 if n_test is None else int(n_test)
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(probs), size=n_train + n_test, p=probs)
    orientation = (idx >= len(probs) // 2).astype(np.int64)           # 0 vertical, 1 horizontal
    x = patterns[idx]
    entropy = float(-np.sum(probs * np.log(probs)))
    return Dataset("bars", x[:n_train], x[n_train:], orientation[:n_train],
                   orientation[n_train:], image_shape=(n, n),
                   info=dict(patterns=patterns, probs=probs, entropy=entropy))


# ---------------------------------------------------------------- ppca

class PPCA:
    """A linear-Gaussian model with orthogonal loadings: everything exact.

    z ~ N(0, I_J),  x | z ~ N(W z + b, sigma2 I_D), where the columns of W
    (D, J) are orthogonal with lengths ``scales``.

    Marginal: x ~ N(b, C) with C = W W^T + sigma2 I.
    Posterior, by Bayes for a joint Gaussian:
        Sigma = (I + W^T W / sigma2)^{-1},  mu = Sigma W^T (x - b) / sigma2.
    W^T W = diag(s_j) with s_j = |w_j|^2, so Sigma is diagonal:
        var_j = sigma2 / (sigma2 + s_j),  mu_j = w_j^T (x - b) / (sigma2 + s_j),
    exactly the VAE's diagonal-Gaussian family, so a VAE can hold the true
    posterior (:meth:`to_vae`).
    """

    def __init__(self, x_dim, z_dim, sigma2=0.1, *, rng, scales=None):
        x_dim, z_dim, sigma2 = int(x_dim), int(z_dim), float(sigma2)
        if not 1 <= z_dim <= x_dim:
            raise ValueError(f"need 1 <= z_dim <= x_dim, got z_dim={z_dim}, x_dim={x_dim}")
        if not sigma2 > 0:
            raise ValueError(f"sigma2 must be positive, got {sigma2}")
        check_rng(rng)
        if scales is None:
            scales = rng.uniform(1.0, 3.0, z_dim)
        scales = check_array(scales, "scales", shape=(z_dim,), dtype=np.float64, low=0)
        q, r = np.linalg.qr(rng.standard_normal((x_dim, z_dim)))
        q *= np.sign(np.diag(r))                      # a unique, uniformly random orthonormal Q
        self.W = q * scales
        self.b = rng.standard_normal(x_dim)
        self.sigma2 = sigma2
        self.x_dim, self.z_dim = x_dim, z_dim

    def sample(self, n, rng):
        """(x (n, D), z (n, J)) from the model."""
        check_rng(rng)
        z = rng.standard_normal((int(n), self.z_dim))
        noise = np.sqrt(self.sigma2) * rng.standard_normal((int(n), self.x_dim))
        return z @ self.W.T + self.b + noise, z

    def covariance(self):
        """C = W W^T + sigma2 I, (D, D)."""
        return self.W @ self.W.T + self.sigma2 * np.eye(self.x_dim)

    def log_px(self, x):
        """Exact log p(x) for x (M, D) -> (M,), through the Cholesky factor of C."""
        x = check_array(x, "x", shape=(None, self.x_dim), dtype=np.float64)
        chol = np.linalg.cholesky(self.covariance())
        from scipy.linalg import solve_triangular
        u = solve_triangular(chol, (x - self.b).T, lower=True)          # L^{-1} (x - b)
        logdet = 2 * np.sum(np.log(np.diag(chol)))
        return -0.5 * (self.x_dim * np.log(2 * np.pi) + logdet + np.sum(u * u, axis=0))

    def posterior(self, x):
        """Exact p(z | x) = N(mu, diag(exp(logvar))): mu, logvar each (M, J)."""
        x = check_array(x, "x", shape=(None, self.x_dim), dtype=np.float64)
        s = np.sum(self.W ** 2, axis=0)                                  # diag of W^T W
        mu = (x - self.b) @ self.W / (self.sigma2 + s)
        logvar = np.broadcast_to(np.log(self.sigma2 / (self.sigma2 + s)), mu.shape).copy()
        return mu, logvar

    def to_vae(self, dtype=np.float64):
        """A linear-Gaussian :class:`npvae.VAE` holding this model and its exact posterior.

        Decoder mean W z + b and log-variance log sigma2; encoder
        mu(x) = (x - b) W / (sigma2 + s), logvar = log(sigma2 / (sigma2 + s)).
        Its importance weights log p(x, z) - log q(z | x) all equal log p(x).
        """
        from npvae.vae import VAE
        vae = VAE(self.x_dim, self.z_dim, hidden=(), likelihood="gaussian",
                  gaussian_mean="identity", rng=np.random.default_rng(0), dtype=dtype)
        s = np.sum(self.W ** 2, axis=0)
        enc_w = self.W / (self.sigma2 + s)
        values = {
            "dec.mean.W": self.W.T, "dec.mean.b": self.b,
            "dec.logvar.W": np.zeros((self.z_dim, self.x_dim)),
            "dec.logvar.b": np.full(self.x_dim, np.log(self.sigma2)),
            "enc.mu.W": enc_w, "enc.mu.b": -self.b @ enc_w,
            "enc.logvar.W": np.zeros((self.x_dim, self.z_dim)),
            "enc.logvar.b": np.log(self.sigma2 / (self.sigma2 + s)),
        }
        for k, v in values.items():
            vae.params[k][...] = v          # in place: the layers hold these arrays
        return vae

    def __repr__(self):
        return f"PPCA(x_dim={self.x_dim}, z_dim={self.z_dim}, sigma2={self.sigma2:g})"


def _load_ppca(seed, n_train, n_test, x_dim=10, z_dim=2, sigma2=0.1):
    n_train = 1000 if n_train is None else int(n_train)
    n_test = 200 if n_test is None else int(n_test)
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    model_rng, train_rng, test_rng = (np.random.default_rng(s)
                                      for s in np.random.SeedSequence(seed).spawn(3))
    model = PPCA(x_dim, z_dim, sigma2, rng=model_rng)
    x_train, _ = model.sample(n_train, train_rng)
    x_test, _ = model.sample(n_test, test_rng)
    return Dataset("ppca", x_train, x_test, model=model)


# ---------------------------------------------------------------- load

def load(name="glyphs", *, root=None, download=False, cache_dir=None, seed=0, binarize=None,
         n_train=None, n_test=None, dtype=np.float64, **kw):
    """Load dataset ``name`` (one of ``NAMES``) -> :class:`Dataset`.

    Parameters
    ----------
    name : str
    root : path, optional
        Directory holding the files of a file-based dataset; without it they
        are looked for in the system directory (Debian's
        ``/usr/share/datasets/fashion-mnist``) and then in ``<cache_dir>/<name>``.
    download : bool
        Fetch missing files of a file-based dataset (checked by SHA-256) into
        ``root`` if given, else into ``<cache_dir>/<name>``.
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
    extra = set(kw) - set(_OPTIONS[name])
    if extra:
        raise ValueError(f"unexpected option(s) for {name!r}: {', '.join(sorted(extra))}; "
                         f"it takes {', '.join(_OPTIONS[name]) or 'none'}")
    if name == "ppca" and binarize is not None:
        raise ValueError("ppca data is real-valued and cannot be binarized (use binarize=None)")
    if name == "glyphs":
        ds = _load_glyphs(seed, n_train, n_test, cache_dir)
    elif name == "bars":
        ds = _load_bars(seed, n_train, n_test, **kw)
    elif name == "ppca":
        ds = _load_ppca(seed, n_train, n_test, **kw)
    else:
        fetch = dict(root=root, cache=cache_dir, do_download=download,
                     base_url=kw.get("base_url"), checksums=kw.get("checksums"))
        ds = (_load_frey(**fetch) if name == "frey-faces"
              else _load_idx_dataset(name, **fetch, dtype=dtype))
        ds = _subset(ds, n_train, n_test)
    ds.x_train = ds.x_train.astype(dtype, copy=False)
    ds.x_test = ds.x_test.astype(dtype, copy=False)
    if binarize == "threshold":
        ds.x_train = _binarize(ds.x_train, "threshold")
        ds.x_test = _binarize(ds.x_test, "threshold")
    ds.binarization = binarize
    return ds


_OPTIONS = {"glyphs": (), "bars": ("n",), "ppca": ("x_dim", "z_dim", "sigma2"),
            "fashion-mnist": ("base_url", "checksums"), "mnist": ("base_url", "checksums"),
            "frey-faces": ("base_url", "checksums")}


def _subset(ds, n_train, n_test):
    """The first n_train / n_test examples of a file dataset."""
    for split, n in (("train", n_train), ("test", n_test)):
        if n is None:
            continue
        n, have = int(n), len(getattr(ds, "x_" + split))
        if not 1 <= n <= have:
            raise ValueError(f"n_{split} must lie in [1, {have}] for {ds.name}, got {n}")
        setattr(ds, "x_" + split, getattr(ds, "x_" + split)[:n])
        if getattr(ds, "y_" + split) is not None:
            setattr(ds, "y_" + split, getattr(ds, "y_" + split)[:n])
    return ds


_binarize = binarize
