"""The Dataset container and binarization, shared by every loader."""
from dataclasses import dataclass, field

import numpy as np

from npvae._checks import check_rng

BINARIZATIONS = (None, "threshold", "dynamic")

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
