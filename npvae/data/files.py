"""Files: the cache directory, atomic writes, IDX reading and writing, finding
and downloading dataset files (SHA-256 checked), and the IDX and Frey Face loaders."""
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
from pathlib import Path

import numpy as np

from npvae.data.dataset import Dataset


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


def _atomic_write(path, write, check=None):
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then
    ``check(temporary path)`` if given (it raises to refuse the file), then
    rename it to ``path`` (so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if check is not None:
            check(Path(tmp))
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


def download(url, dest, sha256_hex=None, timeout=60, validate=None):
    """Fetch ``url`` to ``dest``: streamed into a temporary file next to it,
    checked (length against the server's Content-Length, SHA-256 against
    ``sha256_hex`` if given, then ``validate(path)`` if given, e.g. parsing
    it), then renamed into place.

    A failed, short, mismatching or invalid download leaves nothing behind.
    Raises FileNotFoundError when the server cannot deliver the file (HTTP
    error, no connection, cut short) and ValueError on a checksum mismatch
    (``validate`` raises what it raises).
    """
    dest = Path(dest)
    h = hashlib.sha256()

    def write(f):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                received = 0
                for block in iter(lambda: response.read(1 << 16), b""):
                    h.update(block)
                    f.write(block)
                    received += len(block)
            # http.client returns b"" instead of raising when the connection drops
            if expected is not None and expected.isdigit() and received != int(expected):
                raise FileNotFoundError(f"download of {url} was cut short: {received} of "
                                        f"{expected} bytes; try again")
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

    _atomic_write(dest, write, check=validate)
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


def _locate(name, files, root, cache, do_download, base_url, checksums, find=_find_file,
            validate=None):
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
        out.append(download(base + remote, dest / remote, table.get(remote), validate=validate))
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

    def read(path):
        try:
            return loadmat(path)
        except Exception as err:        # scipy raises several types for a bad file
            raise ValueError(f"{path}: not a readable MATLAB file ({err}); delete it and "
                             f"get frey_rawface.mat again") from None

    # no published checksum: a download is parsed before it enters the cache
    (path,) = _locate("frey-faces", (FREY_FILE,), root, cache, do_download, base_url,
                      checksums, find=find, validate=read)
    mat = read(path)
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
