"""The derivations in ``derivations/`` against the code and against numbers.

Part A keeps tags and derivations in step: every ``(K.n)`` cited in
``npvae/`` exists in ``derivations/KK_*.md``, every file numbers its results
(1, 2, ...) with a ``\\tag`` and a findable "(K.n)", and every numbered result
of 02-05 that the library implements is cited in ``npvae/`` (the rest are
listed in ``EXEMPT`` with the reason).

Part B checks each numbered result that states something checkable, one
``test_K_n_*`` function (or a group) per result, each written so that it
fails if the formula were altered.  Statistical checks fix their seed and
state their tolerance in standard errors (SE).
"""
import functools
import io
import itertools
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special, stats

from npvae import distributions as dist
from npvae import estimators, gradcheck, nn
from npvae.vae import VAE

ROOT = Path(__file__).resolve().parents[1]
DERIV = ROOT / "derivations"
PKG = ROOT / "npvae"
TAG = re.compile(r"\((\d+)\.(\d+)\)")
GRAD_TOL = 1e-7

# Numbered results of 02-05 that the library does not implement as a line of
# code: they are steps or properties used inside a derivation.  Checked
# numerically below all the same.
EXEMPT = {
    2: {3: "moments of q, a step", 4: "E_q[log q], a step", 5: "E_q[log p], a step",
        9: "KL >= 0, a property"},
    3: {1: "change of variables, the reason eps is an input", 9: "log q along the path, a check"},
    4: {1: "the Bernoulli pmf; (4.2) is its implemented log"},
    5: {},
}


# ============================================================ Part A: tags

def derivation_files():
    """{K: path} for every derivations/KK_*.md."""
    out = {}
    for p in sorted(DERIV.glob("[0-9][0-9]_*.md")):
        out[int(p.name[:2])] = p
    return out


def defined_results(K):
    """The n of every \\tag{K.n} in file K, in order of appearance."""
    text = derivation_files()[K].read_text()
    return [int(n) for n in re.findall(r"\\tag\{%d\.(\d+)\}" % K, text)]


@functools.lru_cache(maxsize=None)
def _tokens():
    """(path, token) for every comment and string token in npvae/**/*.py."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        for tok in tokenize.tokenize(io.BytesIO(path.read_bytes()).readline):
            if tok.type in (tokenize.COMMENT, tokenize.STRING):
                out.append((path, tok))
    return tuple(out)


def code_citations():
    """{(K, n): [where, ...]} for every "(K.n)" in a comment or string of npvae/**/*.py."""
    cites = {}
    for path, tok in _tokens():
        for k, n in TAG.findall(tok.string):
            cites.setdefault((int(k), int(n)), []).append(f"{path.relative_to(ROOT)}:{tok.start[0]}")
    return cites


def code_line_tags():
    """Tags in comments (the ``# (K.n)`` at the end of a code line): {(K, n): [where]}."""
    cites = {}
    for path, tok in _tokens():
        if tok.type == tokenize.COMMENT:
            for k, n in TAG.findall(tok.string):
                cites.setdefault((int(k), int(n)), []).append(
                    f"{path.relative_to(ROOT)}:{tok.start[0]}")
    return cites


def test_derivation_files_present():
    files = derivation_files()
    for K in (1, 2, 3, 4, 5):
        assert K in files, f"derivations/0{K}_*.md missing"
    readme = (DERIV / "README.md").read_text()
    for p in files.values():
        assert p.name in readme, f"{p.name} not in derivations/README.md's reading order"
    for word in ("logvar", "eps", "theta", "phi", "maximizes", "minimizes", "# (2.6)"):
        assert word in readme


def test_every_tag_in_the_code_resolves():
    files = derivation_files()
    missing = []
    for (K, n), where in sorted(code_citations().items()):
        if K not in files:
            missing.append(f"({K}.{n}) cited at {where[0]}: no derivations/{K:02d}_*.md")
        elif n not in defined_results(K):
            missing.append(f"({K}.{n}) cited at {where[0]}: no \\tag{{{K}.{n}}} in {files[K].name}")
    assert not missing, "\n".join(missing)


def test_docstrings_name_existing_derivation_files():
    names = set()
    for path in PKG.rglob("*.py"):
        names |= set(re.findall(r"derivations/(\w+\.md)", path.read_text()))
    assert names, "no module names its derivation file"
    for name in names:
        assert (DERIV / name).exists(), f"npvae/ names derivations/{name}, which does not exist"


@pytest.mark.parametrize("K", sorted(derivation_files()))
def test_results_numbered_in_order_and_findable(K):
    text = derivation_files()[K].read_text()
    ns = defined_results(K)
    assert ns, f"{K:02d}: no \\tag{{{K}.n}}"
    assert len(set(ns)) == len(ns), f"{K:02d}: a \\tag is used twice: {ns}"
    assert sorted(ns) == list(range(1, len(ns) + 1)), f"{K:02d}: tags {sorted(ns)} skip a number"
    for n in ns:
        assert f"({K}.{n})" in text, f"({K}.{n}) must be findable by grep as plain text"
    assert "it can be shown" not in text.lower()


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_implemented_results_are_cited_in_code(K):
    cited = {n for (k, n) in code_line_tags() if k == K}
    defined = set(defined_results(K))
    uncited = defined - cited
    assert uncited == set(EXEMPT[K]), (
        f"{K:02d}: results not cited by a code line: {sorted(uncited)}; "
        f"exempt: {sorted(EXEMPT[K])} (update EXEMPT, or tag the line that implements it)")


# ============================================================ shared helpers

def kl_mvn(m1, S1, m2, S2):
    """KL(N(m1, S1) || N(m2, S2)) for full covariances, by linear algebra (no (2.6))."""
    k = len(m1)
    S2inv = np.linalg.inv(S2)
    d = m2 - m1
    return 0.5 * (np.trace(S2inv @ S1) + d @ S2inv @ d - k
                  + np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1])


def expect_normal(f, mu, std, n=8):
    """E[f(z)] for z ~ N(mu, diag(std^2)) in len(mu) <= 3 dims, by Gauss-Hermite (exact
    for polynomials of degree < 2n)."""
    t, w = hermegauss(n)
    w = w / np.sqrt(2 * np.pi)
    J = len(mu)
    total = 0.0
    for idx in itertools.product(range(n), repeat=J):
        z = mu + std * t[list(idx)]
        total += np.prod(w[list(idx)]) * f(z)
    return total


class LinearGaussian:
    """A VAE with no hidden layers, identity Gaussian mean and a constant decoder
    variance: p(z) = N(0, I), p(x|z) = N(z W + b, diag(s2)), so
    p(x) = N(b, W^T W + diag(s2)) and the posterior are Gaussian and exact."""

    def __init__(self, D=3, J=2, seed=0):
        rng = np.random.default_rng(seed)
        self.model = VAE(D, J, hidden=(), likelihood="gaussian", gaussian_mean="identity",
                         rng=rng)
        P = self.model.params
        for p in P.values():
            p[...] = 0.5 * rng.standard_normal(p.shape)
        P["dec.logvar.W"][...] = 0.0
        self.D, self.J = D, J

    @property
    def W(self):
        return self.model.params["dec.mean.W"]          # (J, D)

    @property
    def b(self):
        return self.model.params["dec.mean.b"]

    @property
    def s2(self):
        return np.exp(self.model.params["dec.logvar.b"])

    def log_px(self, x):
        cov = self.W.T @ self.W + np.diag(self.s2)
        return stats.multivariate_normal(self.b, cov).logpdf(x)

    def posterior(self, xi):
        """Mean (J,) and covariance (J, J) of p(z | x_i)."""
        S = np.linalg.inv(np.eye(self.J) + (self.W / self.s2) @ self.W.T)
        return S @ (self.W @ ((xi - self.b) / self.s2)), S

    def log_joint(self, xi, z):
        return (stats.multivariate_normal(np.zeros(self.J), np.eye(self.J)).logpdf(z)
                + stats.norm.logpdf(xi, z @ self.W + self.b, np.sqrt(self.s2)).sum(-1))

    def q(self, x):
        mu, logvar = self.model.encode(x)
        return mu, np.exp(logvar)

    def reconstruction(self, xi, mu, var):
        """E_q[log p(x_i | z)] in closed form (the decoder is linear)."""
        mean = mu @ self.W + self.b
        spread = (var[:, None] * self.W ** 2).sum(0)         # Var of (z W)_d under q
        return -0.5 * np.sum(np.log(2 * np.pi * self.s2) + ((xi - mean) ** 2 + spread) / self.s2)

    def elbo(self, x):
        """Exact per-example ELBO (1.6) with the KL by linear algebra."""
        mu, var = self.q(x)
        out = []
        for i in range(x.shape[0]):
            kl = kl_mvn(mu[i], np.diag(var[i]), np.zeros(self.J), np.eye(self.J))
            out.append(self.reconstruction(x[i], mu[i], var[i]) - kl)
        return np.array(out)

    def set_encoder_to_posterior(self):
        """Only possible when the posterior covariance is diagonal: make W's rows
        orthogonal and s2 constant, then the encoder's linear heads output it exactly."""
        P = self.model.params
        Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((self.D, self.J)))
        P["dec.mean.W"][...] = (Q * np.array([1.3, 0.6][:self.J])).T
        P["dec.logvar.b"][...] = np.log(0.4)
        S = np.linalg.inv(np.eye(self.J) + (self.W / self.s2) @ self.W.T)
        assert np.allclose(S, np.diag(np.diag(S)))
        A = (self.W / self.s2).T @ S                         # m^T = (x - b)^T A
        P["enc.mu.W"][...] = A
        P["enc.mu.b"][...] = -self.b @ A
        P["enc.logvar.W"][...] = 0.0
        P["enc.logvar.b"][...] = np.log(np.diag(S))


def data_for(lg, M, seed):
    return np.random.default_rng(seed).standard_normal((M, lg.D)) + lg.b


# ============================================================ 01: the ELBO

def test_1_1_bayes_rule_log_evidence_for_every_z():
    lg = LinearGaussian(seed=2)
    x = data_for(lg, 1, 3)[0]
    m, S = lg.posterior(x)
    for z in np.random.default_rng(4).standard_normal((5, lg.J)) * 2:
        rhs = lg.log_joint(x, z) - stats.multivariate_normal(m, S).logpdf(z)
        assert rhs == pytest.approx(lg.log_px(x), abs=1e-10)


def test_1_2_log_evidence_is_elbo_plus_kl_to_posterior():
    lg = LinearGaussian(seed=5)
    x = data_for(lg, 4, 6)
    mu, var = lg.q(x)
    elbo = lg.elbo(x)
    for i in range(4):
        m, S = lg.posterior(x[i])
        kl_post = kl_mvn(mu[i], np.diag(var[i]), m, S)
        assert elbo[i] + kl_post == pytest.approx(lg.log_px(x[i]), abs=1e-10)
        assert kl_post > 1e-3                             # a real gap: q is not the posterior


def test_1_3_elbo_definition_matches_closed_form_and_estimator_a():
    """(1.3) by quadrature equals the closed form; the library's estimator A
    (per-sample log w) averages to it within 4 SE."""
    lg = LinearGaussian(seed=7)
    x = data_for(lg, 2, 8)
    mu, var = lg.q(x)
    elbo = lg.elbo(x)
    for i in range(2):
        logq = lambda z: stats.norm.logpdf(z, mu[i], np.sqrt(var[i])).sum()
        by_quad = expect_normal(lambda z: lg.log_joint(x[i], z) - logq(z), mu[i], np.sqrt(var[i]))
        assert by_quad == pytest.approx(elbo[i], abs=1e-9)
    eps = np.random.default_rng(9).standard_normal((20000, 2, lg.J))
    logw = lg.model.log_importance_weights(x, 20000, eps=eps)
    se = logw.std(0, ddof=1) / np.sqrt(20000)
    assert np.all(np.abs(logw.mean(0) - elbo) < 4 * se)
    # estimator A's loss is minus the mean of these per-sample terms
    loss_a, _ = estimators.reparam(lg.model, x, eps=eps[:7], kl="mc")
    assert loss_a == pytest.approx(-logw[:7].mean(), rel=1e-12)


def test_1_4_jensen_lower_bound_and_1_5_gap_is_the_posterior_kl():
    lg = LinearGaussian(seed=10)
    x = data_for(lg, 5, 11)
    gap = np.array([lg.log_px(xi) for xi in x]) - lg.elbo(x)
    assert np.all(gap > 0)
    mu, var = lg.q(x)
    for i in range(5):
        m, S = lg.posterior(x[i])
        assert gap[i] == pytest.approx(kl_mvn(mu[i], np.diag(var[i]), m, S), abs=1e-10)
    # Jensen on samples: log of the mean weight >= mean of the log weights
    logw = lg.model.log_importance_weights(x, 500, rng=np.random.default_rng(12))
    assert np.all(special.logsumexp(logw, axis=0) - np.log(500) >= logw.mean(0))


def test_1_5_equality_when_q_is_the_posterior():
    """With q = p(z|x) the weight p(x,z)/q(z|x) is the constant p(x): estimator A's
    loss equals -mean log p(x) for *every* eps, not only on average."""
    lg = LinearGaussian(seed=13)
    lg.set_encoder_to_posterior()
    x = data_for(lg, 3, 14)
    log_px = np.array([lg.log_px(xi) for xi in x])
    np.testing.assert_allclose(lg.elbo(x), log_px, atol=1e-10)
    rng = np.random.default_rng(15)
    for _ in range(3):
        loss_a, _ = estimators.reparam(lg.model, x, eps=rng.standard_normal((2, 3, lg.J)) * 3,
                                       kl="mc")
        assert loss_a == pytest.approx(-log_px.mean(), abs=1e-10)


def test_1_6_and_1_7_two_forms_agree():
    lg = LinearGaussian(seed=16)
    x = data_for(lg, 3, 17)
    mu, var = lg.q(x)
    for i in range(3):
        std = np.sqrt(var[i])
        rec = expect_normal(lambda z: stats.norm.logpdf(x[i], z @ lg.W + lg.b,
                                                        np.sqrt(lg.s2)).sum(), mu[i], std)
        kl_prior = kl_mvn(mu[i], np.diag(var[i]), np.zeros(lg.J), np.eye(lg.J))
        form1 = rec - kl_prior
        entropy = stats.multivariate_normal(mu[i], np.diag(var[i])).entropy()
        form2 = expect_normal(lambda z: lg.log_joint(x[i], z), mu[i], std) + entropy
        assert form1 == pytest.approx(form2, abs=1e-9)
        assert form1 == pytest.approx(lg.elbo(x[i:i + 1])[0], abs=1e-9)
        # the library's estimator B has the reconstruction's closed form as its mean
        assert dist.gaussian_kl(mu[i], np.log(var[i])) == pytest.approx(kl_prior, abs=1e-12)


def test_1_8_dataset_bound():
    lg = LinearGaussian(seed=18)
    x = data_for(lg, 6, 19)
    log_pX = sum(lg.log_px(xi) for xi in x)
    assert log_pX >= lg.elbo(x).sum()
    assert log_pX == pytest.approx(lg.log_px(x).sum(), abs=1e-9)   # independence: a sum


def test_1_9_minibatch_estimator_unbiased_exactly():
    """Average N/M sum_{i in B} L_i over *all* M-subsets B = sum_i L_i; and the library's
    per-example loss on the full batch is the average of its loss on every subset."""
    lg = LinearGaussian(seed=20)
    N, M = 6, 2
    x = data_for(lg, N, 21)
    eps = np.random.default_rng(22).standard_normal((1, N, lg.J))
    elbo = lg.elbo(x)
    subsets = list(itertools.combinations(range(N), M))
    est = [N / M * elbo[list(B)].sum() for B in subsets]
    assert np.mean(est) == pytest.approx(elbo.sum(), rel=1e-12)
    full, _ = estimators.reparam(lg.model, x, eps=eps)
    sub = [estimators.reparam(lg.model, x[list(B)], eps=eps[:, list(B)])[0] for B in subsets]
    assert np.mean(sub) == pytest.approx(full, rel=1e-12)


# ============================================================ 02: the Gaussian KL

def test_2_1_standard_normal_log_density():
    z = np.random.default_rng(30).standard_normal((4, 3)) * 2
    np.testing.assert_allclose(dist.standard_normal_log_prob(z),
                               stats.norm.logpdf(z).sum(-1), rtol=1e-13)


def test_2_2_diagonal_gaussian_log_density_with_logvar():
    rng = np.random.default_rng(31)
    z, mu, logvar = rng.standard_normal((3, 5, 4))
    want = stats.multivariate_normal(mu[0], np.diag(np.exp(logvar[0]))).logpdf(z[0])
    assert dist.gaussian_log_prob(z[0], mu[0], logvar[0]) == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(dist.gaussian_log_prob(z, mu, logvar),
                               stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(-1), rtol=1e-13)


@pytest.mark.parametrize("mu, logvar", [(0.7, -1.2), (-2.0, 0.9)])
def test_2_3_moments(mu, logvar):
    s = np.exp(0.5 * logvar)
    q = lambda t: stats.norm.pdf(t, mu, s)
    E = lambda g: integrate.quad(lambda t: q(t) * g(t), -np.inf, np.inf, epsabs=1e-13)[0]
    assert E(lambda t: t - mu) == pytest.approx(0.0, abs=1e-10)
    assert E(lambda t: (t - mu) ** 2) == pytest.approx(np.exp(logvar), rel=1e-9)
    assert E(lambda t: t * t) == pytest.approx(mu ** 2 + np.exp(logvar), rel=1e-9)


def lognorm(t, m, s):
    """log N(t; m, s^2) for a scalar t: the textbook density, cheap inside quad."""
    return -0.5 * np.log(2 * np.pi * s * s) - (t - m) ** 2 / (2 * s * s)


def _quad_expect(mu, logvar, g):
    s = np.exp(0.5 * logvar)
    return integrate.quad(lambda t: np.exp(lognorm(t, mu, s)) * g(t), mu - 14 * s, mu + 14 * s,
                          epsabs=1e-13, epsrel=1e-12)[0]


MU_LV = [(np.array([0.3, -1.4, 2.0]), np.array([-0.8, 1.1, 0.0]))]


@pytest.mark.parametrize("mu, logvar", MU_LV)
def test_2_4_expected_log_q(mu, logvar):
    by_quad = sum(_quad_expect(m, v, lambda t, m=m, v=v: lognorm(t, m, np.exp(0.5 * v)))
                  for m, v in zip(mu, logvar))
    formula = -0.5 * np.sum(np.log(2 * np.pi) + logvar + 1)
    assert by_quad == pytest.approx(formula, rel=1e-10)
    assert -formula == pytest.approx(
        stats.multivariate_normal(mu, np.diag(np.exp(logvar))).entropy(), rel=1e-12)


@pytest.mark.parametrize("mu, logvar", MU_LV)
def test_2_5_expected_log_prior(mu, logvar):
    by_quad = sum(_quad_expect(m, v, lambda t: lognorm(t, 0.0, 1.0)) for m, v in zip(mu, logvar))
    formula = -0.5 * np.sum(np.log(2 * np.pi) + mu ** 2 + np.exp(logvar))
    assert by_quad == pytest.approx(formula, rel=1e-10)


def test_2_6_closed_form_kl():
    rng = np.random.default_rng(32)
    mu = rng.standard_normal((4, 3)) * 1.5
    logvar = rng.standard_normal((4, 3))
    kl = dist.gaussian_kl(mu, logvar)
    for i in range(4):
        want = kl_mvn(mu[i], np.diag(np.exp(logvar[i])), np.zeros(3), np.eye(3))
        assert kl[i] == pytest.approx(want, rel=1e-12)
        by_quad = sum(_quad_expect(m, v, lambda t, m=m, v=v: lognorm(t, m, np.exp(0.5 * v))
                                   - lognorm(t, 0.0, 1.0)) for m, v in zip(mu[i], logvar[i]))
        assert kl[i] == pytest.approx(by_quad, rel=1e-9)
    # and by Monte Carlo, fixed seed, within 4 SE
    n = 100_000
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((n, 4, 3))
    terms = dist.gaussian_log_prob(z, mu, logvar) - stats.norm.logpdf(z).sum(-1)
    se = terms.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(terms.mean(0) - kl) < 4 * se)


def test_2_7_and_2_8_kl_gradients():
    rng = np.random.default_rng(33)
    mu, logvar = rng.standard_normal((2, 3, 4))
    dmu, dlogvar = dist.gaussian_kl_grad(mu, logvar)
    np.testing.assert_allclose(dmu, mu, rtol=1e-15)                               # (2.7)
    np.testing.assert_allclose(dlogvar, 0.5 * (np.exp(logvar) - 1), rtol=1e-12)    # (2.8)
    f = lambda: dist.gaussian_kl(mu, logvar).sum()
    assert gradcheck.rel_error(dmu, gradcheck.numerical_gradient(f, mu)) < GRAD_TOL
    assert gradcheck.rel_error(dlogvar, gradcheck.numerical_gradient(f, logvar)) < GRAD_TOL


def test_2_9_kl_nonnegative_zero_only_at_prior():
    mu, logvar = np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-5, 5, 101))
    kl = dist.gaussian_kl(mu[..., None], logvar[..., None])
    assert np.all(kl >= 0)
    assert kl.min() == 0.0
    i = np.unravel_index(np.argmin(kl), kl.shape)
    assert mu[i] == pytest.approx(0.0, abs=1e-12) and logvar[i] == pytest.approx(0.0, abs=1e-12)
    assert np.sum(kl == 0) == 1
    np.testing.assert_allclose(
        kl, 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar), rtol=1e-12, atol=1e-15)


# ============================================================ 03: reparameterization

def test_3_1_expectation_and_its_gradient_move_to_the_noise():
    """E_q[sin z] = sin(mu) exp(-s^2/2): the pathwise estimate through the library's
    reparameterize / reparameterize_backward has mean d/dmu = cos(mu) e^{-s^2/2} and
    d/dlogvar = -s^2/2 sin(mu) e^{-s^2/2} (within 4 SE, fixed seed)."""
    mu = np.array([[0.4, -1.1]])
    logvar = np.array([[-0.5, 0.8]])
    s2 = np.exp(logvar)
    eps = np.random.default_rng(40).standard_normal((200_000, 1, 2))
    z, std = dist.reparameterize(mu, logvar, eps)
    f = np.sin(z)
    exact = np.sin(mu) * np.exp(-s2 / 2)
    assert np.all(np.abs(f.mean(0) - exact) < 4 * f.std(0) / np.sqrt(len(eps)))
    by_quad = [integrate.quad(lambda t: stats.norm.pdf(t, m, np.sqrt(v)) * np.sin(t),
                              -np.inf, np.inf)[0] for m, v in zip(mu[0], s2[0])]
    np.testing.assert_allclose(by_quad, exact[0], rtol=1e-9)
    # per-sample pathwise gradients: reparameterize_backward of dz = cos(z) on one sample
    dz = np.cos(z)
    g_mu = dz                                            # (3.4) per sample
    g_lv = 0.5 * std * dz * eps                          # (3.5) per sample
    dmu, dlogvar = dist.reparameterize_backward(dz / len(eps), eps, std)
    np.testing.assert_allclose(dmu, g_mu.mean(0), rtol=1e-10)
    np.testing.assert_allclose(dlogvar, g_lv.mean(0), rtol=1e-10)
    want_mu = np.cos(mu) * np.exp(-s2 / 2)
    want_lv = -0.5 * s2 * np.sin(mu) * np.exp(-s2 / 2)
    n = len(eps)
    assert np.all(np.abs(dmu - want_mu) < 4 * g_mu.std(0) / np.sqrt(n))
    assert np.all(np.abs(dlogvar - want_lv) < 4 * g_lv.std(0) / np.sqrt(n))


def test_3_2_std_from_logvar():
    logvar = np.linspace(-6, 6, 13)
    std = dist.std_from_logvar(logvar)
    np.testing.assert_allclose(std ** 2, np.exp(logvar), rtol=1e-14)
    assert np.all(std > 0)


def test_3_3_samples_have_mean_mu_and_variance_exp_logvar():
    mu = np.array([[1.0, -2.0]])
    logvar = np.array([[0.6, -1.5]])
    n = 100_000
    z, _ = dist.reparameterize(mu, logvar, np.random.default_rng(41).standard_normal((n, 1, 2)))
    var = np.exp(logvar)
    # SE of the sample mean: sqrt(var/n); of the sample variance: var sqrt(2/(n-1))
    assert np.all(np.abs(z.mean(0) - mu) < 4 * np.sqrt(var / n))
    assert np.all(np.abs(z.var(0, ddof=1) - var) < 4 * var * np.sqrt(2 / (n - 1)))
    for j in range(2):
        assert stats.kstest(z[:, 0, j], "norm", args=(mu[0, j], np.sqrt(var[0, j]))).pvalue > 1e-3


def test_3_4_and_3_5_pathwise_gradients():
    rng = np.random.default_rng(42)
    mu, logvar = rng.standard_normal((2, 3, 2))
    eps = rng.standard_normal((4, 3, 2))
    dz = rng.standard_normal((4, 3, 2))
    z, std = dist.reparameterize(mu, logvar, eps)
    dmu, dlogvar = dist.reparameterize_backward(dz, eps, std)
    np.testing.assert_allclose(dmu, dz.sum(0), rtol=1e-14)
    np.testing.assert_allclose(dlogvar, 0.5 * np.exp(0.5 * logvar) * (dz * eps).sum(0), rtol=1e-13)
    f = lambda: dist.reparameterize(mu, logvar, eps)[0]
    assert gradcheck.rel_error(dmu, gradcheck.numerical_gradient_array(f, mu, dz)) < GRAD_TOL
    assert gradcheck.rel_error(dlogvar, gradcheck.numerical_gradient_array(f, logvar, dz)) < GRAD_TOL


def _per_sample_terms(model, x, eps):
    """(L, M) arrays log p(x|z), log p(z), log q(z|x) from SciPy densities."""
    mu, logvar = model.encode(x)
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    mean = z @ model.params["dec.mean.W"] + model.params["dec.mean.b"]
    v = z @ model.params["dec.logvar.W"] + model.params["dec.logvar.b"]
    log_px = stats.norm.logpdf(x, mean, np.exp(0.5 * v)).sum(-1)
    return log_px, stats.norm.logpdf(z).sum(-1), stats.norm.logpdf(z, mu, std).sum(-1), (mu, logvar)


def test_3_6_estimator_a_value_and_unbiased():
    lg = LinearGaussian(seed=43)
    x = data_for(lg, 3, 44)
    eps = np.random.default_rng(45).standard_normal((4, 3, lg.J))
    log_px, log_pz, log_q, _ = _per_sample_terms(lg.model, x, eps)
    loss, _ = estimators.reparam(lg.model, x, eps=eps, kl="mc")
    assert loss == pytest.approx(-np.mean((log_px + log_pz - log_q).mean(0)), rel=1e-12)
    eps = np.random.default_rng(46).standard_normal((20000, 3, lg.J))
    log_px, log_pz, log_q, _ = _per_sample_terms(lg.model, x, eps)
    a = log_px + log_pz - log_q
    assert np.all(np.abs(a.mean(0) - lg.elbo(x)) < 4 * a.std(0, ddof=1) / np.sqrt(len(eps)))


def test_3_7_estimator_b_value_and_unbiased():
    lg = LinearGaussian(seed=47)
    x = data_for(lg, 3, 48)
    eps = np.random.default_rng(49).standard_normal((4, 3, lg.J))
    log_px, _, _, (mu, logvar) = _per_sample_terms(lg.model, x, eps)
    kl = np.array([kl_mvn(m, np.diag(np.exp(v)), np.zeros(lg.J), np.eye(lg.J))
                   for m, v in zip(mu, logvar)])
    loss, _ = estimators.reparam(lg.model, x, eps=eps, kl="analytic")
    assert loss == pytest.approx(-np.mean(log_px.mean(0) - kl), rel=1e-12)
    eps = np.random.default_rng(50).standard_normal((20000, 3, lg.J))
    log_px, _, _, _ = _per_sample_terms(lg.model, x, eps)
    b = log_px - kl
    assert np.all(np.abs(b.mean(0) - lg.elbo(x)) < 4 * b.std(0, ddof=1) / np.sqrt(len(eps)))


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_3_6_3_7_3_8_gradients_unbiased_for_minus_elbo(kl):
    """Mean over R draws of reparam's grads = gradient of -mean exact ELBO (finite
    differences of the closed form), every entry within k SE, k = max(4, Bonferroni
    z for family-wise rate 1e-4 over all n entries) ~ 4.9 for n = 34."""
    lg = LinearGaussian(D=3, J=2, seed=51)
    x = data_for(lg, 2, 52)
    P = lg.model.params
    exact = {k: gradcheck.numerical_gradient(lambda: -lg.elbo(x).mean(), P[k]) for k in P}
    rng = np.random.default_rng(53)
    R = 1500
    draws = {k: np.empty((R,) + P[k].shape) for k in P}
    for r in range(R):
        _, g = estimators.reparam(lg.model, x, eps=rng.standard_normal((1, 2, 2)), kl=kl)
        for k in P:
            draws[k][r] = g[k]
    n = sum(p.size for p in P.values())
    k_se = max(4.0, stats.norm.isf(1e-4 / (2 * n)))
    for k in P:
        mean, se = draws[k].mean(0), draws[k].std(0, ddof=1) / np.sqrt(R)
        if k == "dec.logvar.W":
            continue                                     # the closed form assumes it is 0
        ok = np.abs(mean - exact[k]) <= k_se * se + 1e-9
        assert np.all(ok), (k, (mean - exact[k]) / se)


def test_3_8_loss_is_minus_the_mean_and_descends():
    model = VAE(3, 2, hidden=(4,), rng=np.random.default_rng(54))
    rng = np.random.default_rng(55)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    x = (rng.random((4, 3)) < 0.5).astype(float)
    eps = rng.standard_normal((2, 4, 2))
    loss, grads = estimators.reparam(model, x, eps=eps)
    singles = [estimators.reparam(model, x[i:i + 1], eps=eps[:, i:i + 1])[0] for i in range(4)]
    assert loss == pytest.approx(np.mean(singles), rel=1e-12)          # a mean, not a sum
    mu, logvar = model.encode(x)
    z, _ = dist.reparameterize(mu, logvar, eps)
    elbo = model.log_px(x, z).mean(0) - dist.gaussian_kl(mu, logvar)
    assert loss == pytest.approx(-elbo.mean(), rel=1e-12)              # minus the ELBO
    for k in model.params:                                             # grads of the loss
        model.params[k] -= 1e-3 * grads[k]
    assert estimators.reparam(model, x, eps=eps)[0] < loss


def test_3_9_log_q_along_the_path():
    rng = np.random.default_rng(56)
    mu, logvar = rng.standard_normal((2, 3, 2))
    eps = rng.standard_normal((4, 3, 2))
    z, std = dist.reparameterize(mu, logvar, eps)
    logq = dist.gaussian_log_prob(z, mu, logvar)
    np.testing.assert_allclose(logq, -0.5 * np.sum(np.log(2 * np.pi) + logvar + eps ** 2, -1),
                               rtol=1e-12)
    # the two parts of estimator A's gradient add up to the total derivative: 0 and -1/2
    dz_q, dmu_q, dlv_q = dist.gaussian_log_prob_grad(z, mu, logvar)
    dmu_path, dlv_path = dist.reparameterize_backward(dz_q, eps, std)
    np.testing.assert_allclose(dmu_path + dmu_q.sum(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(dlv_path + dlv_q.sum(0), -0.5 * len(eps), rtol=1e-12)
    f = lambda: dist.gaussian_log_prob(dist.reparameterize(mu, logvar, eps)[0], mu, logvar).sum()
    np.testing.assert_allclose(gradcheck.numerical_gradient(f, mu), 0.0, atol=1e-8)
    np.testing.assert_allclose(gradcheck.numerical_gradient(f, logvar), -0.5 * len(eps), rtol=1e-8)


# ============================================================ 04: likelihoods

def test_4_1_bernoulli_pmf_normalized_and_4_2_matches_it():
    rng = np.random.default_rng(60)
    a = rng.standard_normal(3) * 2
    xs = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    lp = dist.bernoulli_log_prob(xs, np.broadcast_to(a, xs.shape).copy())
    assert np.exp(lp).sum() == pytest.approx(1.0, rel=1e-13)               # (4.1) sums to 1
    y = special.expit(a)
    pmf = np.prod(y ** xs * (1 - y) ** (1 - xs), axis=-1)                  # (4.1) as written
    np.testing.assert_allclose(lp, np.log(pmf), rtol=1e-12)
    np.testing.assert_allclose(lp, stats.bernoulli.logpmf(xs, y).sum(-1), rtol=1e-12)
    # the shared-exp version the VAE's log_px uses
    a8 = np.broadcast_to(a, xs.shape).copy()
    np.testing.assert_allclose(dist.bernoulli_log_prob_and_grad(xs, a8)[0], lp, rtol=1e-12)
    # soft targets: x log y + (1 - x) log(1 - y)
    x = rng.random((4, 3))
    np.testing.assert_allclose(dist.bernoulli_log_prob(x, np.broadcast_to(a, x.shape).copy()),
                               np.sum(x * np.log(y) + (1 - x) * np.log1p(-y), -1), rtol=1e-12)


def test_4_2_stable_and_limits():
    a = np.array([1e4, 1e4, -1e4, -1e4, 50.0, -50.0])
    x = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        lp = dist.bernoulli_log_prob(x[:, None], a[:, None])
    np.testing.assert_allclose(lp, [0.0, -1e4, -1e4, 0.0, -50.0, -50.0], rtol=1e-12)
    # softplus(a) - softplus(-a) = a, the identity the derivation uses
    b = np.linspace(-40, 40, 81)
    np.testing.assert_allclose(nn.softplus(b) - nn.softplus(-b), b, atol=1e-12)


def test_4_3_bernoulli_gradient():
    rng = np.random.default_rng(61)
    a = rng.standard_normal((3, 4)) * 3
    x = rng.random((3, 4))
    g = dist.bernoulli_log_prob_grad(x, a)
    np.testing.assert_allclose(g, x - special.expit(a), rtol=1e-13)
    num = gradcheck.numerical_gradient(lambda: dist.bernoulli_log_prob(x, a).sum(), a)
    assert gradcheck.rel_error(g, num) < GRAD_TOL
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        g = dist.bernoulli_log_prob_grad(np.array([0.0, 1.0]), np.array([1e4, -1e4]))
    np.testing.assert_array_equal(g, [-1.0, 1.0])


def test_4_4_gaussian_log_likelihood_normalized():
    rng = np.random.default_rng(62)
    x, m, v = rng.standard_normal((3, 2, 5))
    np.testing.assert_allclose(dist.gaussian_log_prob(x, m, v),
                               stats.norm.logpdf(x, m, np.exp(0.5 * v)).sum(-1), rtol=1e-13)
    total = integrate.quad(lambda t: np.exp(dist.gaussian_log_prob(np.array([t]), np.array([0.3]),
                                                                   np.array([-0.7]))),
                           -np.inf, np.inf)[0]
    assert total == pytest.approx(1.0, rel=1e-9)


def test_4_5_and_4_6_gaussian_gradients():
    rng = np.random.default_rng(63)
    x, m, v = rng.standard_normal((3, 3, 4))
    dx, dm, dv = dist.gaussian_log_prob_grad(x, m, v)
    np.testing.assert_allclose(dm, (x - m) * np.exp(-v), rtol=1e-13)                   # (4.5)
    np.testing.assert_allclose(dx, -(x - m) * np.exp(-v), rtol=1e-13)
    np.testing.assert_allclose(dv, -0.5 + 0.5 * (x - m) ** 2 * np.exp(-v), rtol=1e-12)  # (4.6)
    f = lambda: dist.gaussian_log_prob(x, m, v).sum()
    for ana, arr in ((dx, x), (dm, m), (dv, v)):
        assert gradcheck.rel_error(ana, gradcheck.numerical_gradient(f, arr)) < GRAD_TOL
    # (4.6) vanishes where the squared residual equals the variance
    v0 = np.log(np.array([0.49]))
    assert dist.gaussian_log_prob_grad(np.array([1.0]), np.array([0.3]), v0)[2][0] == \
        pytest.approx(0.0, abs=1e-14)


# ============================================================ 05: backprop

def test_5_1_5_2_5_3_linear():
    rng = np.random.default_rng(70)
    lin = nn.Linear(3, 4, rng=rng)
    lin.params["b"][...] = rng.standard_normal(4)
    x = rng.standard_normal((5, 3))
    dout = rng.standard_normal((5, 4))
    lin.forward(x)
    dx = lin.backward(dout)
    np.testing.assert_allclose(dx, dout @ lin.params["W"].T, rtol=1e-14)     # (5.1)
    np.testing.assert_allclose(lin.grads["W"], x.T @ dout, rtol=1e-14)      # (5.2)
    np.testing.assert_allclose(lin.grads["b"], dout.sum(0), rtol=1e-14)     # (5.3)
    f = lambda: lin.forward(x)
    for ana, arr in ((dx, x), (lin.grads["W"].copy(), lin.params["W"]),
                     (lin.grads["b"].copy(), lin.params["b"])):
        assert gradcheck.rel_error(ana, gradcheck.numerical_gradient_array(f, arr, dout)) < GRAD_TOL


@pytest.mark.parametrize("name, tag, deriv", [
    ("tanh", "5.4", lambda x, out: 1 - out ** 2),
    ("relu", "5.5", lambda x, out: (x > 0).astype(float)),
    ("sigmoid", "5.6", lambda x, out: out * (1 - out)),
    ("softplus", "5.7", lambda x, out: special.expit(x)),
])
def test_5_4_to_5_7_activations(name, tag, deriv):
    rng = np.random.default_rng(71)
    x = rng.standard_normal((4, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.3
    act = nn.make_activation(name)
    out = act.forward(x)
    dout = rng.standard_normal(x.shape)
    dx = act.backward(dout)
    np.testing.assert_allclose(dx, dout * deriv(x, out), rtol=1e-13, err_msg=tag)
    num = gradcheck.numerical_gradient_array(lambda: act.forward(x), x, dout)
    assert gradcheck.rel_error(dx, num) < GRAD_TOL, tag


def test_5_8_folding_samples_into_the_batch():
    """One backward pass on the (L*M)-row folded batch gives the sum over l of L
    separate passes (weights) and the per-row gradients unchanged (input)."""
    rng = np.random.default_rng(72)
    mlp = nn.MLP((2, 4, 3), "tanh", rng=rng)
    for p in mlp.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    L, M = 3, 2
    z = rng.standard_normal((L, M, 2))
    dout = rng.standard_normal((L, M, 3))
    mlp.forward(z.reshape(L * M, 2))
    dz = mlp.backward(dout.reshape(L * M, 3)).reshape(L, M, 2)
    folded = {k: g.copy() for k, g in mlp.grads.items()}
    summed = {k: 0.0 for k in folded}
    for l in range(L):
        mlp.forward(z[l])
        np.testing.assert_allclose(mlp.backward(dout[l]), dz[l], rtol=1e-13)
        for k in summed:
            summed[k] = summed[k] + mlp.grads[k]
    for k in folded:
        np.testing.assert_allclose(folded[k], summed[k], rtol=1e-12)


def test_5_9_fan_out_sums_gradients():
    model = VAE(3, 2, hidden=(4,), rng=np.random.default_rng(73))
    rng = np.random.default_rng(74)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    x = rng.random((3, 3))
    dmu, dlogvar = rng.standard_normal((2, 3, 2))
    model.encode(x)
    model.encoder_backward(dmu, dlogvar)
    h = np.tanh(x @ model.params["enc.W0"] + model.params["enc.b0"])
    dh = dmu @ model.params["enc.mu.W"].T + dlogvar @ model.params["enc.logvar.W"].T   # (5.9)
    np.testing.assert_allclose(model.grads["enc.W0"], x.T @ (dh * (1 - h ** 2)), rtol=1e-12)

    def f():
        mu, logvar = model.encode(x)
        return np.sum(dmu * mu) + np.sum(dlogvar * logvar)
    num = gradcheck.numerical_gradient(f, model.params["enc.W0"])
    assert gradcheck.rel_error(model.grads["enc.W0"], num) < GRAD_TOL


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_5_10_and_5_11_decoder_and_encoder_output_gradients(likelihood):
    """With no hidden layers every weight gradient is (input)^T (output gradient) by
    (5.2), so the library's grads reveal d a (5.10) and d mu, d logvar (5.11)."""
    rng = np.random.default_rng(75)
    model = VAE(3, 2, hidden=(), likelihood=likelihood, gaussian_mean="identity", rng=rng)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    L, M, beta = 3, 2, 0.7
    x = rng.random((M, 3))
    eps = rng.standard_normal((L, M, 2))
    _, grads = estimators.reparam(model, x, eps=eps, beta=beta)
    P = model.params
    mu = x @ P["enc.mu.W"] + P["enc.mu.b"]
    logvar = x @ P["enc.logvar.W"] + P["enc.logvar.b"]
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    Z = z.reshape(L * M, 2)
    if likelihood == "bernoulli":
        a = z @ P["dec.logits.W"] + P["dec.logits.b"]
        da = -(x - special.expit(a)) / (L * M)                                   # (5.10)
        np.testing.assert_allclose(grads["dec.logits.W"], Z.T @ da.reshape(L * M, 3), rtol=1e-12)
        dz = da @ P["dec.logits.W"].T
    else:
        m = z @ P["dec.mean.W"] + P["dec.mean.b"]
        v = z @ P["dec.logvar.W"] + P["dec.logvar.b"]
        dm = -((x - m) * np.exp(-v)) / (L * M)                                    # (5.10)
        dv = -(-0.5 + 0.5 * (x - m) ** 2 * np.exp(-v)) / (L * M)                  # (5.10)
        np.testing.assert_allclose(grads["dec.mean.W"], Z.T @ dm.reshape(L * M, 3), rtol=1e-12)
        np.testing.assert_allclose(grads["dec.logvar.W"], Z.T @ dv.reshape(L * M, 3), rtol=1e-12)
        dz = dm @ P["dec.mean.W"].T + dv @ P["dec.logvar.W"].T
    dmu = dz.sum(0) + beta / M * mu                                              # (5.11)
    dlogvar = 0.5 * std * (dz * eps).sum(0) + beta / (2 * M) * (np.exp(logvar) - 1)  # (5.11)
    np.testing.assert_allclose(grads["enc.mu.W"], x.T @ dmu, rtol=1e-11)
    np.testing.assert_allclose(grads["enc.logvar.W"], x.T @ dlogvar, rtol=1e-11)
    np.testing.assert_allclose(grads["enc.mu.b"], dmu.sum(0), rtol=1e-11)


# ============================================================ 06-09: the other files' numbers
#
# Written by other helpers; checked here against quadrature / linear algebra /
# hand-computed updates, independently of their own tests.

def _E_eps(g):
    """E[g(eps)], eps ~ N(0, 1), by adaptive quadrature."""
    return integrate.quad(lambda e: np.exp(-e * e / 2) / np.sqrt(2 * np.pi) * g(e), -40, 40,
                          limit=400, epsabs=1e-12, epsrel=1e-12)[0]


def _four_variances(f, fp, mu, s):
    """Var of the single-sample estimators of (6.12): SF mu, SF sigma, PW mu, PW sigma."""
    gs = [lambda e: f(mu + s * e) * e / s, lambda e: f(mu + s * e) * (e * e - 1) / s,
          lambda e: fp(mu + s * e), lambda e: fp(mu + s * e) * e]
    out = []
    for g in gs:
        m = _E_eps(g)
        out.append(_E_eps(lambda e: g(e) ** 2) - m * m)
    return np.array(out)


def test_6_2_score_function_identity_and_6_7_zero_mean_score():
    mu, logvar = 0.4, -0.6
    s = np.exp(0.5 * logvar)
    F = lambda m, lv: _E_eps(lambda e: np.sin(m + np.exp(0.5 * lv) * e))
    h = 1e-5
    dF_mu = (F(mu + h, logvar) - F(mu - h, logvar)) / (2 * h)
    dF_lv = (F(mu, logvar + h) - F(mu, logvar - h)) / (2 * h)
    sf_mu = _E_eps(lambda e: np.sin(mu + s * e) * e / s)                     # (6.2), (6.4)
    sf_lv = _E_eps(lambda e: np.sin(mu + s * e) * 0.5 * (e * e - 1))         # (6.2), (6.5)
    assert sf_mu == pytest.approx(dF_mu, abs=1e-8)
    assert sf_lv == pytest.approx(dF_lv, abs=1e-8)
    assert _E_eps(lambda e: e / s) == pytest.approx(0.0, abs=1e-12)          # (6.7)
    assert _E_eps(lambda e: 0.5 * (e * e - 1)) == pytest.approx(0.0, abs=1e-12)


def test_6_4_and_6_5_gaussian_score():
    rng = np.random.default_rng(80)
    mu, logvar = rng.standard_normal((2, 2, 3))
    eps = rng.standard_normal((4, 2, 3))
    z, std = dist.reparameterize(mu, logvar, eps)
    d_mu, d_lv = estimators.gaussian_score(eps, std)
    f = lambda: dist.gaussian_log_prob(z, mu, logvar).sum()     # z held fixed: the score
    _, dmu, dlv = dist.gaussian_log_prob_grad(z, mu, logvar)
    np.testing.assert_allclose(d_mu, dmu, rtol=1e-12)
    np.testing.assert_allclose(d_lv, dlv, rtol=1e-10, atol=1e-14)
    assert gradcheck.rel_error(d_mu.sum(0), gradcheck.numerical_gradient(f, mu)) < GRAD_TOL
    assert gradcheck.rel_error(d_lv.sum(0), gradcheck.numerical_gradient(f, logvar)) < GRAD_TOL


def test_6_11_leave_one_out_baseline():
    f = np.random.default_rng(81).standard_normal((5, 3))
    L = len(f)
    b = (f.sum(0) - f) / (L - 1)
    np.testing.assert_allclose(f - b, L / (L - 1) * (f - f.mean(0)), rtol=1e-12, atol=1e-14)


def test_6_13_to_6_15_gaussian_moment_tools():
    np.testing.assert_allclose([_E_eps(lambda e, n=n: e ** n) for n in (2, 4, 6, 8)],
                               [1, 3, 15, 105], rtol=1e-10)
    assert _E_eps(lambda e: (e * e - 1) ** 2) == pytest.approx(2.0, rel=1e-10)
    b = 0.7
    assert _E_eps(lambda e: np.exp(b * e)) == pytest.approx(np.exp(b * b / 2), rel=1e-10)
    assert _E_eps(lambda e: e * e * np.exp(b * e)) == pytest.approx((1 + b * b) * np.exp(b * b / 2),
                                                                    rel=1e-10)
    mu, s, v = 0.3, 0.8, 1.7
    t = v * s
    for k, poly in ((0, 1.0), (2, 1 - t * t), (4, t ** 4 - 6 * t * t + 3)):
        want = np.cos(v * mu) * poly * np.exp(-t * t / 2)
        assert _E_eps(lambda e: e ** k * np.cos(v * (mu + s * e))) == pytest.approx(want, abs=1e-10)


def test_6_16_quadratic_cost_variances_and_quoted_values():
    mu, s, c = 1.0, 1.0, -3.0
    d = mu - c
    formula = np.array([(d ** 4 + 18 * d * d * s * s + 15 * s ** 4) / s ** 2 - 4 * d * d,
                        (2 * d ** 4 + 60 * d * d * s * s + 78 * s ** 4) / s ** 2 - 4 * s * s,
                        4 * s * s, 4 * d * d + 8 * s * s])
    quad = _four_variances(lambda z: (z - c) ** 2, lambda z: 2 * (z - c), mu, s)
    np.testing.assert_allclose(quad, formula, rtol=1e-9)
    np.testing.assert_allclose(formula, [495, 1546, 4, 72])                  # the quoted numbers
    mu, s, c = -0.4, 0.7, 0.5                                                # and elsewhere
    d = mu - c
    formula = np.array([(d ** 4 + 18 * d * d * s * s + 15 * s ** 4) / s ** 2 - 4 * d * d,
                        (2 * d ** 4 + 60 * d * d * s * s + 78 * s ** 4) / s ** 2 - 4 * s * s,
                        4 * s * s, 4 * d * d + 8 * s * s])
    np.testing.assert_allclose(_four_variances(lambda z: (z - c) ** 2, lambda z: 2 * (z - c), mu, s),
                               formula, rtol=1e-9)


def test_6_17_exponential_cost_second_moments():
    a, mu, s = 0.6, 0.4, 0.9
    F = np.exp(a * mu + a * a * s * s / 2)
    E2 = np.exp(2 * a * mu + 2 * a * a * s * s)
    b2 = 4 * a * a * s * s
    formula = np.array([E2 * (1 + b2) / s ** 2 - (a * F) ** 2,
                        E2 * (b2 ** 2 + 4 * b2 + 2) / s ** 2 - (a * a * s * F) ** 2,
                        a * a * E2 - (a * F) ** 2,
                        a * a * E2 * (1 + b2) - (a * a * s * F) ** 2])
    quad = _four_variances(lambda z: np.exp(a * z), lambda z: a * np.exp(a * z), mu, s)
    np.testing.assert_allclose(quad, formula, rtol=1e-9)


def test_6_18_cosine_cost_second_moments_and_quoted_values():
    w, mu, s = 2.0, 1.0, 1.0
    t = 2 * w * s
    C = {0: 1.0, 2: 1 - t * t, 4: t ** 4 - 6 * t * t + 3}
    C = {k: np.cos(2 * w * mu) * v * np.exp(-t * t / 2) for k, v in C.items()}
    F = np.cos(w * mu) * np.exp(-w * w * s * s / 2)
    dmu, ds = -w * np.sin(w * mu) * np.exp(-w * w * s * s / 2), -w * w * s * F
    formula = np.array([(1 + C[2]) / (2 * s * s) - dmu ** 2,
                        (2 + C[4] - 2 * C[2] + C[0]) / (2 * s * s) - ds ** 2,
                        w * w / 2 * (1 - C[0]) - dmu ** 2,
                        w * w / 2 * (1 - C[2]) - ds ** 2])
    quad = _four_variances(lambda z: np.cos(w * z), lambda z: -w * np.sin(w * z), mu, s)
    np.testing.assert_allclose(quad, formula, rtol=1e-9)
    assert round(formula[0], 2) == 0.44 and round(formula[2], 2) == 1.94     # the quoted numbers


def test_7_2_stable_log_mean_exp():
    from npvae.evaluate import logmeanexp
    a = np.array([[-1e4, 5.0], [-1e4 + np.log(3), 5.0], [-1e4, 5.0]])
    np.testing.assert_allclose(logmeanexp(a, axis=0),
                               special.logsumexp(a, axis=0) - np.log(3), rtol=1e-14)
    assert np.all(np.isfinite(logmeanexp(a, axis=0)))


def test_7_3_7_4_7_7_bound_tightens_with_k_and_stays_below_log_px():
    """E[log p_hat_K] (mean over R repeats, SE stated) rises with K and stays below log p(x)."""
    lg = LinearGaussian(seed=82)
    x = data_for(lg, 1, 83)
    log_px = lg.log_px(x[0])
    rng = np.random.default_rng(84)
    R = 4000
    means, ses = [], []
    for K in (1, 4, 32):
        logw = lg.model.log_importance_weights(np.repeat(x, R, axis=0), K, rng=rng)   # (K, R)
        est = special.logsumexp(logw, axis=0) - np.log(K)
        means.append(est.mean())
        ses.append(est.std(ddof=1) / np.sqrt(R))
    assert means[0] == pytest.approx(lg.elbo(x)[0], abs=4 * ses[0])                 # K = 1: ELBO
    for i in range(2):
        assert means[i + 1] - means[i] > 4 * np.hypot(ses[i], ses[i + 1])           # (7.3)
    assert means[-1] < log_px + 4 * ses[-1]                                         # (7.4)


def test_7_5_subset_average_is_unbiased():
    w = np.random.default_rng(85).random(6)
    m = 2
    avg = np.mean([w[list(I)].mean() for I in itertools.combinations(range(6), m)])
    assert avg == pytest.approx(w.mean(), rel=1e-13)


def test_7_8_iwae_gradient_and_k1_is_estimator_a():
    model = VAE(3, 2, hidden=(3,), rng=np.random.default_rng(86))
    rng = np.random.default_rng(87)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    x = rng.random((2, 3))
    eps = rng.standard_normal((3, 2, 2))
    report = gradcheck.check(lambda: estimators.iwae(model, x, eps=eps), model.params)
    assert report.max_error < GRAD_TOL, str(report)
    la, ga = estimators.reparam(model, x, eps=eps[:1], kl="mc")
    li, gi = estimators.iwae(model, x, eps=eps[:1])
    assert li == pytest.approx(la, rel=1e-12)
    for k in ga:
        np.testing.assert_allclose(gi[k], ga[k], rtol=1e-10, atol=1e-14)


def test_7_11_log_weight_constant_at_the_exact_posterior():
    lg = LinearGaussian(seed=88)
    lg.set_encoder_to_posterior()
    x = data_for(lg, 3, 89)
    logw = lg.model.log_importance_weights(x, 50, rng=np.random.default_rng(90))
    np.testing.assert_allclose(logw, np.broadcast_to([lg.log_px(xi) for xi in x], logw.shape),
                               atol=1e-10)


def test_7_12_linear_gaussian_posterior():
    """(7.12) in the file's notation (x = W z + b, W of shape (D, J)) against Gaussian
    conditioning of the joint of (z, x)."""
    rng = np.random.default_rng(91)
    D, J, s2 = 4, 2, 0.3
    W = rng.standard_normal((D, J))
    b = rng.standard_normal(D)
    x = rng.standard_normal(D)
    Sxx = W @ W.T + s2 * np.eye(D)
    cond_mean = W.T @ np.linalg.solve(Sxx, x - b)
    cond_cov = np.eye(J) - W.T @ np.linalg.solve(Sxx, W)
    A = W.T @ W + s2 * np.eye(J)
    np.testing.assert_allclose(np.linalg.solve(A, W.T @ (x - b)), cond_mean, rtol=1e-10)
    np.testing.assert_allclose(s2 * np.linalg.inv(A), cond_cov, rtol=1e-10, atol=1e-14)


def test_9_1_9_2_prior_gradient_and_weight_decay():
    from npvae import optim
    rng = np.random.default_rng(92)
    theta = rng.standard_normal(5)
    neg_log_prior = lambda: -stats.multivariate_normal(np.zeros(5), np.eye(5)).logpdf(theta)
    np.testing.assert_allclose(gradcheck.numerical_gradient(neg_log_prior, theta), theta, rtol=1e-7)
    params = {"a": theta.copy()}
    g = rng.standard_normal(5)
    optim.SGD(params, lr=0.1, weight_decay=0.25).step({"a": g})
    np.testing.assert_allclose(params["a"], theta - 0.1 * (g + 0.25 * theta), rtol=1e-14)


def test_9_3_to_9_9_optimizer_updates_by_hand():
    from npvae import optim
    rng = np.random.default_rng(93)
    p0 = rng.standard_normal(4)
    gs = rng.standard_normal((3, 4))
    lr = 0.05
    # SGD (9.3) and momentum (9.4)
    params = {"a": p0.copy()}
    opt = optim.SGD(params, lr=lr, momentum=0.9)
    p, v = p0.copy(), np.zeros(4)
    for g in gs:
        opt.step({"a": g})
        v = 0.9 * v + g
        p = p - lr * v
        np.testing.assert_allclose(params["a"], p, rtol=1e-13)
    # Adagrad (9.5), (9.6)
    params = {"a": p0.copy()}
    opt = optim.Adagrad(params, lr=lr, eps=1e-8)
    p, G = p0.copy(), np.zeros(4)
    for g in gs:
        opt.step({"a": g})
        G = G + g * g
        p = p - lr * g / (np.sqrt(G) + 1e-8)
        np.testing.assert_allclose(params["a"], p, rtol=1e-13)
    # Adam (9.7)-(9.9)
    params = {"a": p0.copy()}
    opt = optim.Adam(params, lr=lr, beta1=0.9, beta2=0.999, eps=1e-8)
    p, m, v = p0.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(gs, start=1):
        opt.step({"a": g})
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        np.testing.assert_allclose(params["a"], p, rtol=1e-12)


def test_9_8_bias_correction_unbiased_for_a_constant_gradient():
    g = 0.37
    for beta, t in ((0.9, 1), (0.9, 5), (0.999, 3)):
        m = sum((1 - beta) * beta ** (t - i) * g for i in range(1, t + 1))
        assert m / (1 - beta ** t) == pytest.approx(g, rel=1e-13)


def test_9_11_kl_warmup():
    from npvae.train import kl_weight
    assert [kl_weight(t, 0.8, 4) for t in (0, 1, 2, 4, 10)] == pytest.approx([0, 0.2, 0.4, 0.8, 0.8])
    assert kl_weight(3, 0.8, 0) == 0.8


def test_3_9_estimator_a_needs_both_parts_of_the_log_q_gradient():
    """Dropping the direct part of d log q (an unbiased change, STL) breaks the exact
    gradient of estimator A's loss for fixed eps: checked by finite differences."""
    lg = LinearGaussian(seed=94)
    x = data_for(lg, 2, 95)
    eps = np.random.default_rng(96).standard_normal((2, 2, lg.J))
    report = gradcheck.check(lambda: estimators.reparam(lg.model, x, eps=eps, kl="mc"),
                             lg.model.params)
    assert report.max_error < GRAD_TOL, str(report)
