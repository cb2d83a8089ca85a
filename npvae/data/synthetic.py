"""Generated data with exactly known distributions: the bars world and PPCA."""

import numpy as np

from npvae._checks import check_array, check_rng
from npvae.data.dataset import Dataset


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
