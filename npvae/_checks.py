"""Input validation shared by the library: clear ``ValueError`` before any work."""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_dtype(dtype):
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in [np.dtype(t) for t in FLOAT_DTYPES]:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_rng(rng, name="rng"):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}")
    return rng


def check_array(a, name, *, ndim=None, shape=None, dtype=None, finite=True,
                low=None, high=None):
    """Convert ``a`` to an ndarray of ``dtype`` after checking it.

    ``shape`` may contain None for a free axis.  ``low`` / ``high`` bound the
    values inclusively (e.g. Bernoulli data in [0, 1]).  Raises ``ValueError``
    naming ``name``, what was expected and what was given.
    """
    try:
        arr = np.asarray(a)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} must be an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if shape is not None:
        want = tuple(shape)
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape)):
            pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
            raise ValueError(f"{name} must have shape {pretty}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if finite or low is not None or high is not None:
        # min and max see every NaN (it propagates) and inf: two passes and no
        # temporary, against three passes and a boolean array for isfinite + bounds
        lo, hi = arr.min(), arr.max()
        if finite and not (np.isfinite(lo) and np.isfinite(hi)):
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
        if (low is not None and lo < low) or (high is not None and hi > high):
            raise ValueError(
                f"{name} must lie in [{low}, {high}], got values in [{lo:g}, {hi:g}]")
    return arr
