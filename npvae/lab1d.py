"""The one-dimensional laboratory: score-function vs pathwise gradients at "depth 0".

z ~ N(mu, sigma^2), written z = mu + sigma * eps with eps ~ N(0, 1), and a
cost f.  Four single-sample estimators of the gradient of F = E[f(z)]  (6.12):

    score function, mu:     f(z) * eps / sigma
    score function, sigma:  f(z) * (eps^2 - 1) / sigma
    pathwise, mu:           f'(z)
    pathwise, sigma:        f'(z) * eps

Each cost below knows F's exact gradient and the exact second moment of every
estimator, derived by hand in ``derivations/06_reinforce.md`` (6.16)-(6.18);
the exact variance is the second moment minus the squared gradient.
:func:`compare` sets them beside empirical means and variances with their
standard errors; :func:`mohamed_table` gives the quadratic-cost values of
Mohamed, Rosca, Figurnov & Mnih (2020, Section 3): at mu = sigma = 1 and
c = -3 the pathwise mu-gradient has variance 4 and the score-function one 495.

Everything here is float64 and vectorized over draws.
"""
import math

import numpy as np

from npvae._checks import check_rng
from npvae.variance import Table

ESTIMATORS = ("score", "pathwise")
PARAMS = ("mu", "sigma")


def _check_scale(mu, sigma):
    mu, sigma = float(mu), float(sigma)
    if not (math.isfinite(mu) and math.isfinite(sigma)) or sigma <= 0:
        raise ValueError(f"need finite mu and sigma > 0, got mu={mu}, sigma={sigma}")
    return mu, sigma


class Quadratic:
    """f(z) = (z - c)^2.  With d = mu - c:  F = d^2 + sigma^2, dF/dmu = 2 d, dF/dsigma = 2 sigma  (6.16)."""

    def __init__(self, c=-3.0):
        self.c = float(c)
        self.name = f"(z - {self.c:g})^2"

    def f(self, z):
        return (z - self.c) ** 2

    def df(self, z):
        return 2 * (z - self.c)

    def value(self, mu, sigma):
        d = mu - self.c
        return d * d + sigma * sigma                                # (6.16)

    def gradient(self, mu, sigma):
        return 2 * (mu - self.c), 2 * sigma                         # (6.16)

    def second_moments(self, mu, sigma):
        d, s2 = mu - self.c, sigma * sigma
        return {
            ("pathwise", "mu"): 4 * (d * d + s2),                              # (6.16)
            ("pathwise", "sigma"): 4 * (d * d + 3 * s2),                       # (6.16)
            ("score", "mu"): (d ** 4 + 18 * d * d * s2 + 15 * s2 * s2) / s2,   # (6.16)
            ("score", "sigma"): (2 * d ** 4 + 60 * d * d * s2 + 78 * s2 * s2) / s2,   # (6.16)
        }


class Exponential:
    """f(z) = exp(a z).  F = exp(a mu + a^2 sigma^2 / 2), dF/dmu = a F, dF/dsigma = a^2 sigma F  (6.17)."""

    def __init__(self, a=1.0):
        self.a = float(a)
        self.name = f"exp({self.a:g} z)"

    def f(self, z):
        return np.exp(self.a * z)

    def df(self, z):
        return self.a * np.exp(self.a * z)

    def value(self, mu, sigma):
        return math.exp(self.a * mu + 0.5 * (self.a * sigma) ** 2)     # (6.17)

    def gradient(self, mu, sigma):
        F = self.value(mu, sigma)
        return self.a * F, self.a * self.a * sigma * F                 # (6.17)

    def second_moments(self, mu, sigma):
        a, s2 = self.a, sigma * sigma
        E2 = math.exp(2 * a * mu + 2 * a * a * s2)                     # E[f(z)^2]  (6.14)
        b2 = 4 * a * a * s2                                            # (2 a sigma)^2
        return {
            ("pathwise", "mu"): a * a * E2,                            # (6.17)
            ("pathwise", "sigma"): a * a * E2 * (1 + b2),              # (6.17)
            ("score", "mu"): E2 * (1 + b2) / s2,                       # (6.17)
            ("score", "sigma"): E2 * (b2 * b2 + 4 * b2 + 2) / s2,      # (6.17)
        }


class Cosine:
    """f(z) = cos(w z).  F = cos(w mu) exp(-w^2 sigma^2 / 2),
    dF/dmu = -w sin(w mu) exp(-w^2 sigma^2 / 2), dF/dsigma = -w^2 sigma F  (6.18).

    A bounded cost: the score-function variance no longer explodes with |mu|,
    but it still grows like 1/sigma^2 as sigma shrinks, where the pathwise
    one stays below w^2.
    """

    def __init__(self, w=2.0):
        self.w = float(w)
        self.name = f"cos({self.w:g} z)"

    def f(self, z):
        return np.cos(self.w * z)

    def df(self, z):
        return -self.w * np.sin(self.w * z)

    def value(self, mu, sigma):
        return math.cos(self.w * mu) * math.exp(-0.5 * (self.w * sigma) ** 2)   # (6.18)

    def gradient(self, mu, sigma):
        damp = math.exp(-0.5 * (self.w * sigma) ** 2)
        return (-self.w * math.sin(self.w * mu) * damp,                          # (6.18)
                -self.w * self.w * sigma * self.value(mu, sigma))                # (6.18)

    def second_moments(self, mu, sigma):
        w, s2 = self.w, sigma * sigma
        t = 2 * w * sigma                                    # cos^2(wz) = (1 + cos(2wz)) / 2
        base = math.cos(2 * w * mu) * math.exp(-0.5 * t * t)
        C0 = base                                            # E[cos(2wz)]            (6.15)
        C2 = base * (1 - t * t)                              # E[eps^2 cos(2wz)]      (6.15)
        C4 = base * (t ** 4 - 6 * t * t + 3)                 # E[eps^4 cos(2wz)]      (6.15)
        return {
            ("pathwise", "mu"): 0.5 * w * w * (1 - C0),                  # (6.18)
            ("pathwise", "sigma"): 0.5 * w * w * (1 - C2),               # (6.18)
            ("score", "mu"): 0.5 * (1 + C2) / s2,                        # (6.18)
            ("score", "sigma"): 0.5 * (2 + C4 - 2 * C2 + C0) / s2,       # (6.18)
        }


COSTS = {"quadratic": Quadratic, "exponential": Exponential, "cosine": Cosine}


def exact(cost, mu, sigma):
    """{(estimator, param): (mean, variance)} in closed form: variance = second moment - mean^2."""
    mu, sigma = _check_scale(mu, sigma)
    grad = dict(zip(PARAMS, cost.gradient(mu, sigma)))
    return {key: (grad[key[1]], m2 - grad[key[1]] ** 2)
            for key, m2 in cost.second_moments(mu, sigma).items()}


def estimates(cost, mu, sigma, n=None, rng=None, eps=None):
    """Single-sample gradient estimates for n draws: {(estimator, param): (n,) array}  (6.12).

    Pass ``eps`` (n,) to fix the noise, or ``n`` and ``rng``.
    """
    mu, sigma = _check_scale(mu, sigma)
    if eps is None:
        if n is None or int(n) < 1:
            raise ValueError(f"n must be a positive integer when eps is not given, got {n}")
        eps = check_rng(rng).standard_normal(int(n))
    eps = np.asarray(eps, dtype=np.float64)
    z = mu + sigma * eps                                    # (3.3)
    fz, dfz = cost.f(z), cost.df(z)
    return {
        ("score", "mu"): fz * eps / sigma,                  # (6.12), score in mu: (z - mu)/sigma^2
        ("score", "sigma"): fz * (eps * eps - 1) / sigma,   # (6.12), score in sigma
        ("pathwise", "mu"): dfz,                            # (6.12), dz/dmu = 1
        ("pathwise", "sigma"): dfz * eps,                   # (6.12), dz/dsigma = eps
    }


COLUMNS = ("cost", "estimator", "param", "exact_mean", "mean", "mean_se", "exact_variance",
           "variance", "variance_se", "z_mean", "z_variance")


def compare(costs=None, mu=1.0, sigma=1.0, n=100_000, rng=None):
    """Exact against empirical means and variances, one row per cost, estimator and
    parameter: a :class:`npvae.variance.Table`.

    ``mean_se`` = sample std / sqrt(n); ``variance_se`` = sqrt((m4 - s^4) / n)
    with m4 the sample fourth central moment (the large-n standard error of a
    sample variance); ``z_*`` = (empirical - exact) / se.
    """
    check_rng(rng)
    if costs is None:
        costs = [Quadratic(), Exponential(0.5), Cosine()]
    rows = []
    for cost in costs:
        truth = exact(cost, mu, sigma)
        draws = estimates(cost, mu, sigma, n, rng)
        for key in sorted(draws):
            g = draws[key]
            mean, var = float(g.mean()), float(g.var(ddof=1))
            m4 = float(np.mean((g - mean) ** 4))
            mean_se, var_se = math.sqrt(var / g.size), math.sqrt(max(m4 - var * var, 0) / g.size)
            exact_mean, exact_var = truth[key]
            rows.append(dict(cost=cost.name, estimator=key[0], param=key[1],
                             exact_mean=exact_mean, mean=mean, mean_se=mean_se,
                             exact_variance=exact_var, variance=var, variance_se=var_se,
                             z_mean=(mean - exact_mean) / mean_se if mean_se > 0 else 0.0,
                             z_variance=(var - exact_var) / var_se if var_se > 0 else 0.0))
    return Table(rows, COLUMNS)


def mohamed_table(mu=1.0, sigma=1.0, c=-3.0):
    """The quadratic-cost variances of Mohamed et al. (2020, Section 3), exact:
    a Table with one row per estimator and columns mean_mu, variance_mu,
    mean_sigma, variance_sigma.  At the defaults: pathwise mu 4, score mu 495,
    pathwise sigma 72, score sigma 1546."""
    truth = exact(Quadratic(c), mu, sigma)
    rows = []
    for e in ESTIMATORS:
        rows.append(dict(estimator=e, mean_mu=truth[e, "mu"][0], variance_mu=truth[e, "mu"][1],
                         mean_sigma=truth[e, "sigma"][0], variance_sigma=truth[e, "sigma"][1]))
    return Table(rows)
