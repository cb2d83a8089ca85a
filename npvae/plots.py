"""Figures: ELBO curves, image grids (samples, dreams), reconstructions, the
latent space and the manifold of the paper's Figure 4.

One rule for every figure function:

* It draws on a fresh :class:`matplotlib.figure.Figure` with an Agg canvas (no
  screen, no pyplot, no global matplotlib state touched), or into ``ax=``
  when you pass axes of your own (for instance from ``plt.subplots()`` in a
  notebook, to put several panels side by side).
* With ``path`` given it saves the figure there (format from the extension,
  PNG by default) and returns ``path`` as a ``str``.  With ``path=None`` it
  returns the Figure; a notebook shows it inline (the figures made here carry
  a ``_repr_png_``, so this works without importing pyplot).

The model functions use only ``model.sample(n, rng)``, ``model.reconstruct(x)``,
``model.encode(x)`` (the first output is the mean) and, for the manifold,
``model.z_dim`` and ``model.decoded_mean(z)``.  A model that lacks what a figure
needs raises :class:`Unsupported` (a ``ValueError``); :func:`write_run_figures`
skips that figure and says why.  So the VAE and the Helmholtz machine share
them.

Images are rows of length D = prod(image_shape), reshaped in C order to
``image_shape = (height, width)`` and drawn in grey, 0 black and 1 white.
"""
import csv
import io
import math
import os
import sys

import numpy as np

from npvae._checks import check_array, check_rng

DPI = 120
GREY = "gray"


class Unsupported(ValueError):
    """The model lacks a method or property that a figure needs."""


# ------------------------------------------------------------------ figure plumbing

_FIGURE_CLASS = []


def _figure_class():
    """Figure with a ``_repr_png_``, so IPython shows it inline, pyplot or not.

    Made once, on first use: importing matplotlib waits until a figure is drawn.
    """
    if not _FIGURE_CLASS:
        from matplotlib.figure import Figure

        class InlineFigure(Figure):
            def _repr_png_(self):
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
                return buf.getvalue()

        _FIGURE_CLASS.append(InlineFigure)
    return _FIGURE_CLASS[0]


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure_class()(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def panels(ncols, nrows=1, size=(5.2, 4.6)):
    """A new figure with a grid of empty axes: (figure, flat array of axes), for
    drawing several of this module's figures side by side (pass ``ax=``).  The
    figure shows itself inline when it is a notebook cell's value, with or
    without pyplot."""
    fig = _new_figure((size[0] * ncols, size[1] * nrows))
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _axes(ax, figsize):
    """(figure, axes): the caller's axes, or one axes on a new figure."""
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, path):
    """Save to ``path`` and return it as str, or return the figure."""
    if path is None:
        return fig
    path = os.fspath(path)
    kwargs = {} if os.path.splitext(path)[1] else {"format": "png"}
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.05, **kwargs)
    return path


def _first(out):
    """Models may return a tuple (mean, ...) or (x, states); the first part is the data."""
    return out[0] if isinstance(out, tuple) else out


def _need(model, name, figure):
    if not callable(getattr(model, name, None)):
        raise Unsupported(f"{figure} needs model.{name}(), which {type(model).__name__} lacks")
    return getattr(model, name)


# ------------------------------------------------------------------ image grids

def image_shape_for(d, image_shape=None):
    """Check ``image_shape`` against the data size D, or infer a square one.

    Returns (height, width).  Raises ``ValueError`` if prod(image_shape) != D,
    or if ``image_shape`` is None and D is not a perfect square.
    """
    d = int(d)
    if image_shape is None:
        side = math.isqrt(d)
        if side * side != d:
            raise ValueError(f"image_shape is needed: D = {d} is not a perfect square")
        return side, side
    try:
        if isinstance(image_shape, str):
            raise TypeError
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be (height, width) of positive ints, "
                         f"got {image_shape!r}")
    if shape[0] * shape[1] != d:
        raise ValueError(f"image_shape {shape} holds {shape[0] * shape[1]} pixels but the "
                         f"images have D = {d}")
    return shape


def _grey_range(images):
    """(vmin, vmax): (0, 1) for data in [0, 1], else the data's range."""
    lo, hi = float(np.min(images)), float(np.max(images))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def tile_images(images, image_shape=None, ncol=None, *, pad=1, pad_value=0.5):
    """Lay out N images as one (rows * H + gaps, ncol * W + gaps) array.

    images : (N, D) with D = prod(image_shape).
    ncol : images per row; default ceil(sqrt(N)).
    pad : pixels between neighbouring images, filled with ``pad_value``;
        empty cells of the last row are filled with ``pad_value`` too.
    """
    images = check_array(images, "images", ndim=2)
    n, d = images.shape
    h, w = image_shape_for(d, image_shape)
    ncol = int(math.ceil(math.sqrt(n))) if ncol is None else int(ncol)
    if ncol < 1:
        raise ValueError(f"ncol must be positive, got {ncol}")
    ncol = min(ncol, n)
    nrows = -(-n // ncol)
    pad = int(pad)
    out = np.full((nrows * (h + pad) - pad, ncol * (w + pad) - pad), pad_value,
                  dtype=np.float64)
    for k, img in enumerate(images.reshape(n, h, w)):
        r, c = divmod(k, ncol)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
    return out


def _mosaic_figsize(mosaic, extra_h=0.0):
    """Inches: about three screen pixels per image pixel, the longer side 3 to 8 inches."""
    h, w = mosaic.shape
    longest = min(8.0, max(3.0, 3.0 * max(h, w) / DPI))
    scale = longest / max(h, w)
    return w * scale, h * scale + extra_h


def _draw_mosaic(ax, mosaic, vmin, vmax):
    ax.imshow(mosaic, cmap=GREY, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def image_grid(images, image_shape=None, path=None, nrow=None, title=None, *, pad=1, ax=None):
    """A grid of grey images (samples, dreams, data).

    images : (N, D).  image_shape : (H, W) with H * W = D (None: square).
    nrow : images per row (as torchvision's ``make_grid``); default ceil(sqrt(N)).
    Returns ``path`` (file written) or the Figure (``path=None``).
    """
    images = check_array(images, "images", ndim=2)
    vmin, vmax = _grey_range(images)
    mosaic = tile_images(images, image_shape, nrow, pad=pad, pad_value=0.5 * (vmin + vmax))
    fig, ax = _axes(ax, _mosaic_figsize(mosaic, 0.3 if title else 0.0))
    _draw_mosaic(ax, mosaic, vmin, vmax)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def samples(model, image_shape, path=None, n=100, rng=None, *, nrow=None, title=None, ax=None):
    """Decoded means of n prior samples, ``model.sample(n, rng)``, as a grid."""
    check_rng(rng)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    sample = _need(model, "sample", "samples")
    x = np.asarray(_first(sample(n, rng)))
    if title is None:
        title = f"{n} samples from the model"
    return image_grid(x, image_shape, path, nrow=nrow, title=title, ax=ax)


def reconstructions(model, x, image_shape, path=None, n=10, *, ncol=10, title=None, ax=None):
    """The first n examples of x above their reconstructions ``model.reconstruct(x)``.

    Rows alternate: ``ncol`` originals, then their reconstructions, and so on.
    """
    x = check_array(x, "x", ndim=2)
    n = min(int(n), x.shape[0])
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    reconstruct = _need(model, "reconstruct", "reconstructions")
    image_shape_for(x.shape[1], image_shape)
    x = x[:n]
    r = np.asarray(_first(reconstruct(x)))
    ncol = max(1, min(int(ncol), n))
    rows = []
    for start in range(0, n, ncol):
        for block in (x[start:start + ncol], r[start:start + ncol]):
            filler = np.full((ncol - block.shape[0], x.shape[1]), np.nan)
            rows.append(np.vstack([block, filler]))
    stacked = np.vstack(rows)
    vmin, vmax = _grey_range(np.concatenate([x, r]))
    mosaic = tile_images(np.nan_to_num(stacked, nan=0.5 * (vmin + vmax)), image_shape, ncol,
                         pad=1, pad_value=0.5 * (vmin + vmax))
    fig, ax = _axes(ax, _mosaic_figsize(mosaic, 0.3))
    _draw_mosaic(ax, mosaic, vmin, vmax)
    h = image_shape_for(x.shape[1], image_shape)[0]
    centres = [(h + 1) * k + (h - 1) / 2 for k in range(len(rows))]
    ax.set_yticks(centres)
    ax.set_yticklabels(["data", "recon."] * (len(rows) // 2))
    ax.tick_params(axis="y", length=0)
    ax.set_title(title if title is not None else "data and reconstructions")
    return _finish(fig, path)


# ------------------------------------------------------------------ latent space

def encoder_means(model, x, batch_size=1000):
    """The first output of ``model.encode`` (the mean) for x (M, D), in batches: (M, J)."""
    encode = _need(model, "encode", "the latent space")
    parts = [np.asarray(_first(encode(x[s:s + batch_size])))
             for s in range(0, x.shape[0], batch_size)]
    mu = np.concatenate(parts).astype(np.float64)
    return mu.reshape(mu.shape[0], -1)


def principal_components(a, k=2):
    """Project a (M, J) on its first k principal components via the SVD of the
    centred data.  Returns (scores (M, k), fraction of variance per component (k,))."""
    a = np.asarray(a, dtype=np.float64)
    centred = a - a.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s ** 2
    frac = var[:k] / var.sum() if var.sum() > 0 else np.zeros(k)
    return centred @ vt[:k].T, frac


def discriminant_directions(a, labels, k=2, ridge=1e-6):
    """Project a (M, J) on its first k Fisher discriminant directions.

    The directions w maximize the between-class scatter w^T S_b w relative to
    the within-class scatter w^T S_w w: the generalized eigenvectors of
    (S_b, S_w) with the largest eigenvalues.  Unlike the principal components
    they use the labels, so they show whether the classes are *linearly*
    separable in the latent space even when the directions of largest variance
    mix them.  Returns (scores (M, k), eigenvalues (k,)).
    """
    from scipy.linalg import eigh

    a = np.asarray(a, dtype=np.float64)
    labels = np.asarray(labels)
    mean = a.mean(axis=0)
    J = a.shape[1]
    s_w = np.zeros((J, J))
    s_b = np.zeros((J, J))
    for c in np.unique(labels):
        part = a[labels == c]
        centred = part - part.mean(axis=0)
        s_w += centred.T @ centred
        diff = part.mean(axis=0) - mean
        s_b += len(part) * np.outer(diff, diff)
    s_w += ridge * np.trace(s_w) / J * np.eye(J)
    vals, vecs = eigh(s_b, s_w)
    order = np.argsort(vals)[::-1][:k]
    return (a - mean) @ vecs[:, order], vals[order]


def _draw_projected(fig, ax, mu, labels, projection, legend=True):
    """Scatter the J > 2 means projected to 2-D by PCA or Fisher's discriminant."""
    J = mu.shape[1]
    if projection == "pca":
        pts, frac = principal_components(mu, 2)
        ax.set_xlabel(f"PC 1 of the J = {J} encoder means ({100 * frac[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * frac[1]:.0f}% of variance)")
        ax.set_title("principal components (no labels used)", fontsize="medium")
    else:
        pts, _ = discriminant_directions(mu, labels, 2)
        ax.set_xlabel(f"discriminant 1 of the J = {J} encoder means")
        ax.set_ylabel("discriminant 2")
        ax.set_title("Fisher discriminant directions (labels used)", fontsize="medium")
    _scatter_by_label(fig, ax, pts, labels, legend=legend)
    ax.set_aspect("equal", adjustable="datalim")


def _scatter_by_label(fig, ax, pts, labels, legend=True):
    style = dict(s=5, alpha=0.75, linewidths=0, rasterized=True)
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], color="tab:blue", **style)
        return
    classes = np.unique(labels)
    discrete = len(classes) <= 20 and np.all(np.mod(classes, 1) == 0)
    if discrete:
        from matplotlib import colormaps
        cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for i, c in enumerate(classes):
            sel = labels == c
            ax.scatter(pts[sel, 0], pts[sel, 1], color=cmap(i), label=f"{c:g}", **style)
        if legend:
            ax.legend(title="label", loc="center left", bbox_to_anchor=(1.01, 0.5),
                      markerscale=3, frameon=False, handletextpad=0.2)
    else:
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="viridis", **style)
        fig.colorbar(sc, ax=ax, label="label")


def latent_space(model, x, labels=None, path=None, *, ax=None, title=None, projection="pca"):
    """Encoder means of x, coloured by label.

    J = 2: the means themselves.  J > 2: with ``projection="pca"`` their first
    two principal components (SVD of the centred means; the axis labels say
    so, with the share of variance), with ``projection="lda"`` their first two
    Fisher discriminant directions (needs labels; see
    :func:`discriminant_directions`), with ``projection="both"`` the two side
    by side (a new figure; ``ax`` is not accepted).  J = 1: the mean against the label (or a row of points).
    Discrete labels (at most 20 integer values) get a legend, others a colorbar.
    """
    x = check_array(x, "x", ndim=2)
    if labels is not None:
        labels = check_array(labels, "labels", ndim=1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"labels must have one entry per row of x ({x.shape[0]}), "
                             f"got {labels.shape[0]}")
    if projection not in ("pca", "lda", "both"):
        raise ValueError(f"projection must be 'pca', 'lda' or 'both', got {projection!r}")
    if projection != "pca" and labels is None:
        raise ValueError(f"projection={projection!r} needs labels")
    if projection == "both" and ax is not None:
        raise ValueError("projection='both' draws two panels on a new figure; do not pass ax")
    mu = encoder_means(model, x)
    J = mu.shape[1]
    if projection == "both" and J > 2:
        fig = _new_figure((11.2, 4.6))
        axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
        _draw_projected(fig, axes[0], mu, labels, "pca", legend=False)
        _draw_projected(fig, axes[1], mu, labels, "lda")
        fig.suptitle(title if title is not None else f"latent space, {len(mu)} points")
        return _finish(fig, path)
    fig, ax = _axes(ax, (5.6, 4.6))
    if J == 1:
        y = labels if labels is not None else np.zeros(len(mu))
        pts = np.column_stack([mu[:, 0], y])
        _scatter_by_label(fig, ax, pts, labels)
        ax.set_xlabel("z₁ (encoder mean)")
        ax.set_ylabel("label")
    elif J == 2:
        _scatter_by_label(fig, ax, mu, labels)
        ax.set_xlabel("z₁ (encoder mean)")
        ax.set_ylabel("z₂ (encoder mean)")
        ax.set_aspect("equal", adjustable="datalim")
    else:
        _draw_projected(fig, ax, mu, labels, "lda" if projection == "lda" else "pca")
    ax.set_title(title if title is not None else f"latent space, {len(mu)} points")
    return _finish(fig, path)


def manifold(model, image_shape, path=None, n=20, *, lo=0.05, hi=0.95, ax=None, title=None):
    """The learned 2-D manifold, the paper's Figure 4.

    The unit square's coordinates ``linspace(lo, hi, n)`` go through the inverse
    Gaussian CDF, so the n x n grid of z covers the prior by equal probability
    mass; each cell is the decoded mean E[x | z].  z_1 grows to the right, z_2
    upwards.  Raises ``ValueError`` unless J = 2.
    """
    from scipy.special import ndtri

    z_dim = getattr(model, "z_dim", None)
    if z_dim is None:
        raise Unsupported(f"manifold needs model.z_dim, which {type(model).__name__} lacks")
    if int(z_dim) != 2:
        raise ValueError(f"manifold needs a 2-D latent space, the model has J = {z_dim}")
    decoded_mean = _need(model, "decoded_mean", "manifold")
    n = int(n)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if not 0 < lo < hi < 1:
        raise ValueError(f"need 0 < lo < hi < 1, got lo={lo}, hi={hi}")
    values = ndtri(np.linspace(lo, hi, n))   # inverse Gaussian CDF
    z1, z2 = np.meshgrid(values, values[::-1])
    z = np.column_stack([z1.ravel(), z2.ravel()]).astype(getattr(model, "dtype", np.float64))
    means = np.asarray(decoded_mean(z))
    h, w = image_shape_for(means.shape[1], image_shape)
    vmin, vmax = _grey_range(means)
    mosaic = tile_images(means, (h, w), n, pad=0)
    fig, ax = _axes(ax, _mosaic_figsize(mosaic, 0.5))
    ax.imshow(mosaic, cmap=GREY, vmin=vmin, vmax=vmax, interpolation="nearest")
    # ticks placed symmetrically about the centre, so their labels read +-z
    left = np.floor(np.linspace(0, (n - 1) / 2, 3)[:2]).astype(int)
    middle = [(n - 1) // 2] if n % 2 else []
    ticks = np.unique(np.concatenate([left, middle, n - 1 - left])).astype(int)
    ax.set_xticks(ticks * w + (w - 1) / 2)
    ax.set_xticklabels([f"{round(values[i], 2) + 0.0:.2f}" for i in ticks])
    ax.set_yticks(ticks * h + (h - 1) / 2)
    ax.set_yticklabels([f"{round(values[::-1][i], 2) + 0.0:.2f}" for i in ticks])
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title(title if title is not None else
                 f"decoded means on a {n}×{n} grid of Gaussian quantiles")
    return _finish(fig, path)


# ------------------------------------------------------------------ training curves

def history_columns(history):
    """A training history as a dict of float arrays, one per column.

    Accepts a dict of lists, a list of row dicts, an object with ``as_dict()``
    / ``to_dict()`` or a ``.data`` dict, or the path of a CSV file with a
    header row (empty cells become NaN).  Non-numeric columns are dropped.
    """
    if isinstance(history, (str, os.PathLike)):
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"history file {os.fspath(history)!r} has no rows")
        history = rows
    for method in ("as_dict", "to_dict"):
        if callable(getattr(history, method, None)):
            history = getattr(history, method)()
            break
    else:
        if not isinstance(history, (dict, list, tuple)) and isinstance(
                getattr(history, "data", None), dict):
            history = history.data
    if isinstance(history, (list, tuple)):
        if not all(isinstance(r, dict) for r in history):
            raise ValueError("history as a list must hold one dict per row")
        keys = list(dict.fromkeys(k for r in history for k in r))
        history = {k: [r.get(k) for r in history] for k in keys}
    if not isinstance(history, dict):
        raise ValueError("history must be a dict of lists, a list of rows, an object with "
                         f"as_dict()/to_dict()/.data, or a CSV path; got {type(history).__name__}")
    cols = {}
    for k, v in history.items():
        try:
            cols[k] = np.array([np.nan if e in (None, "") else float(e) for e in v])
        except (TypeError, ValueError):
            continue
    return cols


def _plot_series(ax, x, y, **kw):
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.plot(x[ok], y[ok], marker="o" if ok.sum() <= 30 else None, markersize=3, **kw)
        return True
    return False


def _robust_ylim(ax, series):
    """Leave the first epochs off the scale when they would squash the rest."""
    vals = [y[np.isfinite(y)] for y in series if np.isfinite(y).sum() >= 5]
    if not vals:
        return False
    full = np.concatenate(vals)
    tail = np.concatenate([v[len(v) // 10 + 1:] for v in vals])
    span_full, span_tail = np.ptp(full), np.ptp(tail)
    if span_tail > 0 and span_full > 4 * span_tail:
        margin = 0.15 * span_tail
        ax.set_ylim(tail.min() - margin, max(full.max(), tail.max()) + margin)
        return True
    return False


def _count_label(v, _pos=None):
    """50000 -> '50k', 1200000 -> '1.2M': short labels for the examples-seen axis."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.4g}{suffix}"
    return f"{v:.4g}"


def elbo_curves(history, path=None, *, ax=None, title=None):
    """Train and test ELBO against epochs (examples seen on the top axis), and
    the test KL and reconstruction terms in a second panel.

    history : see :func:`history_columns`; uses the columns "epoch",
        "train_elbo", "test_elbo", "test_kl", "test_rec", "examples_seen" when
        present (any may be missing; at least one ELBO column is needed).
    ax : None, one axes (ELBO panel only) or a pair of axes.
    """
    cols = history_columns(history)
    elbo_keys = [k for k in ("train_elbo", "test_elbo") if k in cols]
    if not elbo_keys:
        raise ValueError(f"history has no 'train_elbo' or 'test_elbo' column (columns: "
                         f"{sorted(cols)})")
    n = len(cols[elbo_keys[0]])
    epoch = cols.get("epoch", np.arange(1, n + 1, dtype=float))
    term_keys = [k for k in ("test_kl", "test_rec") if k in cols]
    if not term_keys:
        term_keys = [k for k in ("train_kl", "train_rec") if k in cols]
    if ax is None:
        fig = _new_figure((10.5 if term_keys else 5.5, 4.0))
        axes = fig.subplots(1, 2 if term_keys else 1, squeeze=False)[0]
    else:
        axes = list(ax) if np.iterable(ax) else [ax]
        fig = axes[0].figure
    a = axes[0]
    for k, style in zip(elbo_keys, ("-", "-")):
        _plot_series(a, epoch[:len(cols[k])], cols[k], linestyle=style,
                     label=k.replace("_elbo", " ELBO"))
    clipped = _robust_ylim(a, [cols[k] for k in elbo_keys])
    a.set_xlabel("epoch")
    a.set_ylabel("ELBO (nats per example)")
    a.legend(title="first epochs off scale" if clipped else None, frameon=False)
    a.grid(alpha=0.3)
    seen = cols.get("examples_seen")
    if seen is not None and "epoch" in cols and len(seen) == len(epoch):
        ok = np.isfinite(seen) & np.isfinite(epoch)
        if ok.sum() >= 2 and np.ptp(epoch[ok]) > 0:
            slope, icpt = np.polyfit(epoch[ok], seen[ok], 1)
            if slope > 0:
                top = a.secondary_xaxis("top", functions=(lambda e: slope * e + icpt,
                                                          lambda s: (s - icpt) / slope))
                from matplotlib.ticker import FuncFormatter, MaxNLocator
                top.xaxis.set_major_locator(MaxNLocator(6))
                top.xaxis.set_major_formatter(FuncFormatter(_count_label))
                top.set_xlabel("examples seen")
    if title:
        a.set_title(title)
    if term_keys and len(axes) > 1:
        b = axes[1]
        kl_key = next((k for k in term_keys if k.endswith("_kl")), None)
        rec_key = next((k for k in term_keys if k.endswith("_rec")), None)
        which = "test" if term_keys[0].startswith("test") else "train"
        if kl_key:
            _plot_series(b, epoch[:len(cols[kl_key])], cols[kl_key], color="tab:red")
            b.set_ylabel("KL(q(z|x) ‖ p(z)) (nats)", color="tab:red")
            b.tick_params(axis="y", colors="tab:red")
        if rec_key:
            c = b.twinx() if kl_key else b
            _plot_series(c, epoch[:len(cols[rec_key])], cols[rec_key], color="tab:green")
            c.set_ylabel("E_q[log p(x|z)] (nats)", color="tab:green")
            c.tick_params(axis="y", colors="tab:green")
        b.set_xlabel("epoch")
        b.set_title(f"{which} ELBO = reconstruction - KL")
        b.grid(alpha=0.3)
    if ax is None:
        fig.tight_layout()
    return _finish(fig, path)


# ------------------------------------------------------------------ a run's figures

def write_run_figures(run_dir, model, data, history, rng, *, n_samples=100, n_recon=10,
                      n_latent=2000, log=None):
    """Write a run's figures into ``run_dir``; return the paths written.

    elbo.png (from ``history``), samples.png, reconstructions.png (the first
    ``n_recon`` test examples), latent.png (``n_latent`` test examples drawn
    with ``rng``, coloured by label; for J > 2 the PCA and Fisher-discriminant
    views side by side) and, for J = 2, manifold.png.  ``data``
    needs ``x_test`` and may have ``y_test`` and ``image_shape``; None skips
    the data figures.  A figure the model cannot make is skipped with a
    one-line message to ``log`` (default: standard error).
    """
    check_rng(rng)
    if log is None:
        def log(msg):
            print(msg, file=sys.stderr)
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    out = []

    def attempt(name, make, skip=Unsupported):
        try:
            out.append(make(os.path.join(run_dir, name)))
        except skip as err:
            log(f"skipped {name}: {err}")

    if history is not None:
        # a history without ELBO columns (another model's) is skipped, not fatal
        attempt("elbo.png", lambda p: elbo_curves(history, p), skip=ValueError)
    else:
        log("skipped elbo.png: no training history")

    x_dim = getattr(model, "x_dim", None)
    x_test = None if data is None else getattr(data, "x_test", None)
    if x_dim is None and x_test is not None:
        x_dim = np.shape(x_test)[1]
    shape = getattr(data, "image_shape", None) if data is not None else None
    try:
        shape = image_shape_for(x_dim, shape) if x_dim is not None else None
    except ValueError as err:
        log(f"skipped samples.png, reconstructions.png and manifold.png (no image shape): {err}")
        shape = None

    if shape is not None:
        attempt("samples.png", lambda p: samples(model, shape, p, n=n_samples, rng=rng))
    if x_test is None:
        log("skipped reconstructions.png and latent.png: no test data")
    else:
        if shape is not None:
            attempt("reconstructions.png",
                    lambda p: reconstructions(model, x_test, shape, p, n=n_recon))
        m = len(x_test)
        idx = np.sort(rng.choice(m, size=min(int(n_latent), m), replace=False))
        y_test = getattr(data, "y_test", None)
        labels = None if y_test is None else np.asarray(y_test)[idx]
        # J > 2 with labels: the unsupervised PCA view beside the discriminant one,
        # which shows the class structure that the top-variance directions mix
        both = labels is not None and int(getattr(model, "z_dim", 2) or 2) > 2
        attempt("latent.png", lambda p: latent_space(model, np.asarray(x_test)[idx], labels, p,
                                                     projection="both" if both else "pca"))
    z_dim = getattr(model, "z_dim", None)
    if z_dim is not None and int(z_dim) == 2 and shape is not None:
        attempt("manifold.png", lambda p: manifold(model, shape, p))
    return out
