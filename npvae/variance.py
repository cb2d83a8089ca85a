"""Gradient-variance experiments: many independent estimates at fixed parameters.

For a model with fixed parameters and one fixed minibatch, an estimator is
called ``n_draws`` times with fresh noise; per parameter array the running
mean and variance of its gradient estimates are kept (Welford's update, so a
784-500-20 model needs no stack of draws in memory).  Per estimator, per
number of samples L and per parameter group (``enc`` = phi, ``dec`` = theta)
the report gives

* ``mean_norm``: the 2-norm of the mean gradient (what is being estimated);
* ``total_variance``: the sum of per-entry variances, the trace of the
  estimator's covariance (a single-draw quantity, falls like 1/L);
* ``variance_per_entry``: ``total_variance`` / number of entries;
* ``snr_median``: the median over entries of |mean| / std.

Why a loop over draws: a parameter gradient is a sum over the minibatch (one
matrix product ``h^T dout`` per layer), so two draws cannot share one backward
pass without being added together.  Each draw is one whole-minibatch call of
the estimator, with the L samples folded into the batch axis as everywhere
else; nothing loops over examples or samples.

Derivations: ``derivations/06_reinforce.md``, ``derivations/07_importance_sampling.md``.
"""
import csv
import math
from pathlib import Path

import numpy as np

from npvae import estimators as est
from npvae._checks import check_rng

GROUPS = ("enc", "dec")
DEFAULT_ESTIMATORS = ("reparam", "reinforce", "reinforce:moving-average",
                      "reinforce:leave-one-out", "stl", "iwae")
_SHORTHANDS = {
    "analytic": ("kl", "analytic"), "mc": ("kl", "mc"),
    "moving-average": ("baseline", "moving-average"), "ma": ("baseline", "moving-average"),
    "leave-one-out": ("baseline", "leave-one-out"), "loo": ("baseline", "leave-one-out"),
}


# ---------------------------------------------------------------- a small table

class Table:
    """Rows of dicts with a fixed column order: ``print(table)``, ``table.to_csv(path)``.

    ``table.where(estimator="stl")`` selects rows; ``table.column("snr_median")``
    returns one column as a list.
    """

    def __init__(self, rows, columns=None):
        self.rows = [dict(r) for r in rows]
        if columns is None:
            columns = []
            for r in self.rows:
                columns += [k for k in r if k not in columns]
        self.columns = list(columns)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def where(self, **match):
        return Table([r for r in self.rows if all(r.get(k) == v for k, v in match.items())],
                     self.columns)

    def column(self, name):
        return [r.get(name) for r in self.rows]

    def to_csv(self, path):
        """Write the rows as CSV (full float precision); returns the path."""
        path = Path(path)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            for r in self.rows:
                writer.writerow(r)
        return path

    @staticmethod
    def _fmt(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)

    def __str__(self):
        cells = [[self._fmt(r.get(c, "")) for c in self.columns] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.rjust(w) for c, w in zip(self.columns, widths))
        out = [line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(out)

    def __repr__(self):
        return f"Table({len(self.rows)} rows, columns={self.columns})"


# ---------------------------------------------------------------- estimator specs

def parse_estimator(spec):
    """``"name[:option...]"`` -> (label, name, options).

    Options are ``key=value`` or a shorthand: ``analytic`` / ``mc`` (kl),
    ``moving-average`` / ``ma``, ``leave-one-out`` / ``loo`` (baseline).
    E.g. ``"reinforce:leave-one-out"`` -> ("reinforce:leave-one-out",
    "reinforce", {"baseline": "leave-one-out"}).
    """
    spec = str(spec).strip()
    name, *parts = spec.split(":")
    est.get(name)                                           # ValueError for an unknown name
    options = {}
    for part in parts:
        if "=" in part:
            key, value = part.split("=", 1)
            options[key.strip()] = _number_or_string(value.strip())
        elif part in _SHORTHANDS:
            key, value = _SHORTHANDS[part]
            options[key] = value
        else:
            raise ValueError(f"estimator option {part!r} in {spec!r} is not key=value or one of "
                             f"{sorted(_SHORTHANDS)}")
    return spec, name, options


def _number_or_string(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_estimators(specs):
    """A comma-separated string or a list of specs -> list of (label, name, options)."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    if not specs:
        raise ValueError("estimators: give at least one estimator")
    return [parse_estimator(s) for s in specs]


# ---------------------------------------------------------------- moments of the draws

class GradientMoments:
    """Per-entry mean and variance of gradient estimates, updated one call at a time.

    Each call may average ``draws_per_call`` = R independent draws (the
    minibatch tiled R times along the batch axis: the loss is a mean over
    examples, so the expected gradient is unchanged and the variance of one
    call is the single-draw variance / R).  Attributes: ``calls``, ``draws``
    (= calls * R), ``mean`` and ``m2`` (dicts name -> float64 array, over
    calls), ``loss_mean``.  ``variance()`` is the single-draw per-entry
    variance (ddof = 1 over calls, times R), ``standard_error()`` the standard
    error of ``mean``.
    """

    def __init__(self, draws_per_call=1):
        self.draws_per_call = int(draws_per_call)
        self.calls = 0
        self.mean, self.m2 = {}, {}
        self.loss_mean = 0.0

    @property
    def draws(self):
        return self.calls * self.draws_per_call

    def add(self, loss, grads):
        """Welford's update: numerically safe even when the variance dwarfs the mean."""
        self.calls += 1
        n = self.calls
        self.loss_mean += (float(loss) - self.loss_mean) / n
        for k, g in grads.items():
            g = np.asarray(g, dtype=np.float64)
            if k not in self.mean:
                self.mean[k] = np.zeros_like(g)
                self.m2[k] = np.zeros_like(g)
            delta = g - self.mean[k]
            self.mean[k] += delta / n
            self.m2[k] += delta * (g - self.mean[k])

    def _call_variance(self):
        if self.calls < 2:
            raise ValueError(f"a variance needs at least 2 calls, got {self.calls}")
        return {k: m2 / (self.calls - 1) for k, m2 in self.m2.items()}

    def variance(self):
        return {k: v * self.draws_per_call for k, v in self._call_variance().items()}

    def standard_error(self):
        return {k: np.sqrt(v / self.calls) for k, v in self._call_variance().items()}


def _is_moving_average(options):
    return options.get("baseline") == "moving-average"


def gradient_moments(model, x, estimator, *, n_draws, rng, n_samples=1, draws_per_call=None,
                     max_rows=4096, warmup=20, **options):
    """Draw at least ``n_draws`` independent gradient estimates of ``estimator`` on the
    fixed minibatch ``x`` (M, D) and return their :class:`GradientMoments`.

    ``draws_per_call`` = R stacks R draws into one call by tiling ``x`` R
    times; by default R is as large as keeps R * M * L <= ``max_rows`` and at
    least 32 calls (so the variance over calls is well estimated).  The
    draws actually made are ``moments.draws`` (n_draws rounded up to a
    multiple of R).  ``estimator`` is a name or a function of the common
    signature.  For a moving-average baseline without a ``state`` option a
    fresh :class:`npvae.estimators.BaselineState` is made and warmed up with
    ``warmup`` discarded calls, so the measured draws see a settled baseline
    (as during training), not b = 0.
    """
    check_rng(rng)
    n_draws = int(n_draws)
    if n_draws < 2:
        raise ValueError(f"n_draws must be >= 2, got {n_draws}")
    x = model.check_x(x)
    M, L = x.shape[0], int(n_samples)
    if draws_per_call is None:
        draws_per_call = max(1, min(int(max_rows) // max(1, M * L), n_draws // 32))
    R = int(draws_per_call)
    if R < 1:
        raise ValueError(f"draws_per_call must be >= 1, got {draws_per_call}")
    calls = max(2, -(-n_draws // R))
    xs = np.tile(x, (R, 1)) if R > 1 else x
    fn = est.get(estimator) if isinstance(estimator, str) else estimator
    if _is_moving_average(options) and options.get("state") is None:
        options = dict(options, state=est.BaselineState())
        for _ in range(int(warmup)):
            fn(model, xs, rng=rng, n_samples=L, **options)
    moments = GradientMoments(R)
    for _ in range(calls):
        moments.add(*fn(model, xs, rng=rng, n_samples=L, **options))
    return moments


def group_of(name):
    return name.split(".", 1)[0]


def summarize(moments, groups=GROUPS):
    """Per parameter group: entries, mean_norm, total_variance, variance_per_entry,
    snr_median -> dict group -> dict."""
    var = moments.variance()
    out = {}
    for group in groups:
        names = [k for k in moments.mean if group_of(k) == group]
        if not names:
            continue
        mean = np.concatenate([moments.mean[k].ravel() for k in names])
        v = np.concatenate([var[k].ravel() for k in names])
        std = np.sqrt(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.abs(mean) / std
        snr = snr[~np.isnan(snr)]                          # 0/0: an entry that never moves
        out[group] = dict(
            entries=int(mean.size),
            mean_norm=float(np.linalg.norm(mean)),
            total_variance=float(v.sum()),
            variance_per_entry=float(v.mean()),
            snr_median=float(np.median(snr)) if snr.size else math.nan,
        )
    return out


COLUMNS = ("estimator", "L", "group", "draws", "entries", "loss", "mean_norm", "total_variance",
           "variance_per_entry", "snr_median")


def experiment(model, x, *, estimators=DEFAULT_ESTIMATORS, samples=(1, 2, 5, 10), n_draws=100,
               rng, progress=None):
    """Gradient variance and SNR per estimator, per L, per group: a :class:`Table`.

    ``estimators``: specs as in :func:`parse_estimators`.  Leave-one-out
    baselines need L >= 2: their L = 1 rows are left out.  ``progress``, if
    given, is called with a one-line message after each (estimator, L).
    """
    check_rng(rng)
    specs = parse_estimators(estimators)
    samples = [int(s) for s in samples]
    if not samples or min(samples) < 1:
        raise ValueError(f"samples must be positive integers, got {samples}")
    x = model.check_x(x)
    rows = []
    for label, name, options in specs:
        for L in samples:
            if options.get("baseline") == "leave-one-out" and L < 2:
                continue
            moments = gradient_moments(model, x, name, n_draws=n_draws, rng=rng, n_samples=L,
                                       **options)
            for group, stats in summarize(moments).items():
                rows.append(dict(estimator=label, L=L, group=group, draws=moments.draws,
                                 loss=moments.loss_mean, **stats))
            if progress is not None:
                enc = [r for r in rows if r["estimator"] == label and r["L"] == L
                       and r["group"] == "enc"]
                tv = enc[0]["total_variance"] if enc else math.nan
                progress(f"{label:>26s}  L={L:<4d} enc total variance {tv:.4g}")
    return Table(rows, COLUMNS)


# ---------------------------------------------------------------- comparing means

def compare_means(a, b):
    """Do two estimators estimate the same gradient?  For every parameter array:

    z_e = (mean_a - mean_b) / sqrt(se_a^2 + se_b^2) per entry e; returns dict
    name -> (chi2, n_entries, max_abs_z) with chi2 = sum_e z_e^2.  Under equal
    means chi2 is approximately chi-square with n_entries degrees of freedom
    (mean n, standard deviation sqrt(2 n)).  Entries where both standard
    errors are zero must agree exactly (they contribute 0 or inf).
    """
    se_a, se_b = a.standard_error(), b.standard_error()
    out = {}
    for k in a.mean:
        diff = a.mean[k] - b.mean[k]
        se = np.sqrt(se_a[k] ** 2 + se_b[k] ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, diff / np.where(se > 0, se, 1), np.where(diff == 0, 0.0, np.inf))
        out[k] = (float(np.sum(z * z)), int(z.size), float(np.max(np.abs(z))))
    return out


# ---------------------------------------------------------------- plot

def plot(table, path=None, groups=GROUPS):
    """Total variance and median SNR against L on log axes, one line per
    estimator, one row of panels per group.  Returns the Figure; saves it to
    ``path`` if given.  The figure comes from :func:`npvae.plots.panels`, so it
    needs no pyplot state and shows itself inline in a notebook."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from npvae.plots import panels

    groups = [g for g in groups if len(table.where(group=g))]
    fig, axes = panels(2, max(1, len(groups)), size=(5, 3.6))
    labels = list(dict.fromkeys(table.column("estimator")))
    titles = {"enc": "encoder (phi)", "dec": "decoder (theta)"}
    for i, group in enumerate(groups):
        ax_v, ax_s = axes[2 * i], axes[2 * i + 1]
        for label in labels:
            rows = table.where(estimator=label, group=group)
            if not len(rows):
                continue
            L = rows.column("L")
            ax_v.plot(L, rows.column("total_variance"), marker="o", label=label)
            ax_s.plot(L, rows.column("snr_median"), marker="o", label=label)
        for ax, what in ((ax_v, "total variance (trace)"), (ax_s, "median SNR |mean|/std")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sorted(set(table.column("L"))))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("L (samples per example)")
            ax.set_ylabel(what)
            ax.set_title(f"{titles.get(group, group)}: {what}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        ax_s.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
