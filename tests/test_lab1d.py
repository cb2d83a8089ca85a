"""The 1-D laboratory: closed forms (06_reinforce.md (6.12)-(6.18)) against quadrature,
finite differences, Monte Carlo (within 4 standard errors, fixed seed) and the
published quadratic-cost values of Mohamed et al. (2020, Section 3)."""
import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from npvae import lab1d

NODES, WEIGHTS = hermegauss(120)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)           # expectation under N(0, 1)

COSTS = [lab1d.Quadratic(-3.0), lab1d.Quadratic(0.7), lab1d.Exponential(0.5),
         lab1d.Exponential(-1.2), lab1d.Cosine(2.0), lab1d.Cosine(0.6)]
POINTS = [(1.0, 1.0), (-0.4, 0.5), (2.0, 1.7)]


def test_published_quadratic_values():
    t = lab1d.mohamed_table()
    path, score = t.where(estimator="pathwise")[0], t.where(estimator="score")[0]
    assert path["variance_mu"] == 4 and score["variance_mu"] == 495
    assert path["variance_sigma"] == 72 and score["variance_sigma"] == 1546
    assert path["mean_mu"] == score["mean_mu"] == 8          # 2 (mu - c)
    assert path["mean_sigma"] == score["mean_sigma"] == 2    # 2 sigma


@pytest.mark.parametrize("cost", COSTS, ids=lambda c: c.name)
@pytest.mark.parametrize("mu,sigma", POINTS)
def test_closed_forms_match_gauss_hermite_quadrature(cost, mu, sigma):
    g = lab1d.estimates(cost, mu, sigma, eps=NODES)
    truth = lab1d.exact(cost, mu, sigma)
    for key, vals in g.items():
        mean = float(WEIGHTS @ vals)
        second = float(WEIGHTS @ vals ** 2)
        assert mean == pytest.approx(truth[key][0], rel=1e-9, abs=1e-12), key
        assert second - mean ** 2 == pytest.approx(truth[key][1], rel=1e-8, abs=1e-10), key
    assert float(WEIGHTS @ cost.f(mu + sigma * NODES)) == pytest.approx(cost.value(mu, sigma), rel=1e-10)


@pytest.mark.parametrize("cost", COSTS, ids=lambda c: c.name)
def test_gradient_is_the_derivative_of_the_value(cost):
    mu, sigma, h = 0.3, 0.8, 1e-6
    dmu, dsigma = cost.gradient(mu, sigma)
    num_mu = (cost.value(mu + h, sigma) - cost.value(mu - h, sigma)) / (2 * h)
    num_sigma = (cost.value(mu, sigma + h) - cost.value(mu, sigma - h)) / (2 * h)
    assert dmu == pytest.approx(num_mu, rel=1e-7, abs=1e-9)
    assert dsigma == pytest.approx(num_sigma, rel=1e-7, abs=1e-9)


def test_monte_carlo_within_four_standard_errors():
    rng = np.random.default_rng(2020)
    table = lab1d.compare(n=200_000, rng=rng)
    assert len(table) == 3 * 4
    for r in table:
        assert abs(r["z_mean"]) < 4, r
        assert abs(r["z_variance"]) < 4, r
    assert "exact_variance" in str(table)


def test_score_function_variance_grows_where_pathwise_does_not():
    cost = lab1d.Quadratic(0.0)
    sf = [lab1d.exact(cost, mu, 1.0)["score", "mu"][1] for mu in (0.0, 1.0, 3.0, 10.0)]
    pw = [lab1d.exact(cost, mu, 1.0)["pathwise", "mu"][1] for mu in (0.0, 1.0, 3.0, 10.0)]
    assert all(a < b for a, b in zip(sf, sf[1:])) and sf[-1] > 1e4
    assert pw == [4.0] * 4                                # 4 sigma^2, whatever mu
    # as sigma -> 0 the score-function variance grows like (mu - c)^4 / sigma^2 (06, Section 6.7)
    # while the pathwise one, 4 sigma^2, vanishes
    sigmas = (1.0, 0.1, 0.01)
    small = [lab1d.exact(cost, 2.0, s)["score", "mu"][1] for s in sigmas]
    assert small[0] < small[1] < small[2]
    assert small[2] * 0.01 ** 2 == pytest.approx(2.0 ** 4, rel=1e-3)
    assert [lab1d.exact(cost, 2.0, s)["pathwise", "mu"][1] for s in sigmas] == pytest.approx(
        [4 * s * s for s in sigmas], rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        lab1d.exact(lab1d.Quadratic(), 0.0, 0.0)
    with pytest.raises(ValueError, match="n must"):
        lab1d.estimates(lab1d.Quadratic(), 0.0, 1.0)
