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
import numpy as np

from npvae._checks import check_dtype
from npvae.data.dataset import BINARIZATIONS, Dataset, binarize
from npvae.data.files import (BASE_URLS, CHECKSUMS, FREY_FILE, IDX_FILES, SYSTEM_DIRS, cache_dir,
                              download, read_idx, sha256, write_idx, _load_frey, _load_idx_dataset)
from npvae.data.glyphs import GLYPHS_VERSION, make_glyphs, _load_glyphs
from npvae.data.synthetic import PPCA, bars_distribution, _load_bars, _load_ppca

NAMES = ("glyphs", "fashion-mnist", "mnist", "frey-faces", "bars", "ppca")

__all__ = ["NAMES", "BINARIZATIONS", "Dataset", "binarize", "load", "cache_dir", "download",
           "read_idx", "write_idx", "sha256", "make_glyphs", "bars_distribution", "PPCA",
           "CHECKSUMS", "SYSTEM_DIRS", "BASE_URLS", "IDX_FILES", "FREY_FILE", "GLYPHS_VERSION"]


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
