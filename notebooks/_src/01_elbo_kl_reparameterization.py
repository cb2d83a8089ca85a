# %% [markdown]
# # 01 · The ELBO, the Gaussian KL and the reparameterization trick
#
# Three facts at the heart of the VAE, each checked numerically on a model where everything
# is known exactly:
#
# 1. **The ELBO identity**: $\log p(x) = \text{ELBO}(q) + \mathrm{KL}\big(q(z \mid x)\,\|\,p(z \mid x)\big)$
#    (`derivations/01_elbo.md`), so the ELBO is a lower bound, tight exactly when $q$ is the true posterior.
# 2. **The closed-form KL** between a diagonal Gaussian and $\mathcal{N}(0, I)$ **(2.6)**, against its
#    Monte Carlo estimate (`derivations/02_gaussian_kl.md`).
# 3. **The reparameterization** $z = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal{N}(0, I)$ **(3.3)**
#    (`derivations/03_reparameterization.md`).
#
# The model is **probabilistic PCA** (`npvae.data.load("ppca")`): $z \sim \mathcal{N}(0, I_J)$,
# $x \mid z \sim \mathcal{N}(Wz + b, \sigma^2 I_D)$. Its marginal $p(x)$ and its posterior $p(z \mid x)$
# are Gaussian and known in closed form, so every quantity below has an exact answer.
#
# **Exercises** are the cells that say `raise NotImplementedError("Exercise ...")`: replace that
# line with your code. The check in the same cell (or the next) tells you what is wrong, if anything.
# Use the library's densities (`npvae.distributions`) where they help.

# %%
import os

import numpy as np

import npvae
from npvae import distributions as dist

# All sizes live here.  CI runs the notebook with NPVAE_FAST=1: the same code, tiny sizes.
FAST = os.environ.get("NPVAE_FAST") == "1"
SEED = 0
N_EXAMPLES = 50 if FAST else 500         # data points x used below
L_VALUES = (1, 10, 100) if FAST else (1, 10, 100, 1000, 10000)   # Monte Carlo sample sizes
N_REPEATS = 20 if FAST else 200          # repeated estimates, to measure their spread
N_MC = 200 if FAST else 5000             # samples per example for the section 4 comparison
rng = np.random.default_rng(SEED)

# %%
data = npvae.data.load("ppca", seed=SEED, x_dim=10, z_dim=2)
ppca = data.model
x = data.x_train[:N_EXAMPLES]
print(ppca, x.shape)
log_px = ppca.log_px(x)                       # exact log p(x), (M,)
post_mu, post_logvar = ppca.posterior(x)      # exact p(z | x) = N(post_mu, diag(exp(post_logvar)))
print(f"mean exact log p(x) = {log_px.mean():.4f} nats")

# %% [markdown]
# ## 1 · The KL between $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ and $p = \mathcal{N}(0, I)$
#
# $\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q(z)] - \mathbb{E}_q[\log p(z)]$. Per coordinate,
# $\mathbb{E}_q[\log q] = -\tfrac12\log 2\pi - \tfrac12\log\sigma_j^2 - \tfrac12$ (the expected squared
# standardized deviation is 1) and $\mathbb{E}_q[\log p] = -\tfrac12\log 2\pi - \tfrac12(\mu_j^2 + \sigma_j^2)$
# (since $\mathbb{E}[z_j^2] = \mu_j^2 + \sigma_j^2$). Subtracting and summing over $j$:
#
# $$ \mathrm{KL}(q\,\|\,p) = -\frac12 \sum_{j=1}^{J}\big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big) \qquad \textbf{(2.6)} $$
#
# Write it with `logvar` $= \log\sigma^2$, one value per row.

# %%
def gaussian_kl(mu, logvar):
    """mu, logvar (M, J) -> KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, (M,)."""
    ### BEGIN SOLUTION
    return -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=-1)
    ### END SOLUTION


npvae.exercises.check_gaussian_kl(gaussian_kl)

# %% [markdown]
# ## 2 · The reparameterization trick
#
# To draw $z \sim \mathcal{N}(\mu, \sigma^2)$, draw $\varepsilon \sim \mathcal{N}(0, 1)$ and set $z = \mu + \sigma\varepsilon$ **(3.3)**:
# then $\mathbb{E}[z] = \mu$ and $\operatorname{Var}[z] = \sigma^2 \operatorname{Var}[\varepsilon] = \sigma^2$, and a linear map of a Gaussian is
# Gaussian. The randomness now sits in $\varepsilon$, which does not depend on $(\mu, \sigma)$, so
# $z$ is a differentiable function of them. Careful: the encoder gives $\log\sigma^2$, so
# $\sigma = \exp(\tfrac12\log\sigma^2)$ **(3.2)**. `eps` has shape `(L, M, J)`: $L$ draws for each of $M$ rows.

# %%
def reparameterize(mu, logvar, eps):
    """mu, logvar (M, J), eps (L, M, J) -> z (L, M, J)."""
    ### BEGIN SOLUTION
    return mu + np.exp(0.5 * logvar) * eps
    ### END SOLUTION


npvae.exercises.check_reparameterize(reparameterize)

# %% [markdown]
# A quick look at what the trick buys: the samples have the right mean and variance.

# %%
mu0, logvar0 = np.array([[1.5, -0.5]]), np.array([[np.log(0.25), np.log(4.0)]])
z0 = npvae.distributions.reparameterize(mu0, logvar0, rng.standard_normal((20000, 1, 2)))[0][:, 0]
print("sample mean", z0.mean(axis=0).round(3), " wanted", mu0[0])
print("sample var ", z0.var(axis=0).round(3), " wanted", np.exp(logvar0[0]))

# %% [markdown]
# ## 3 · The analytic KL against its Monte Carlo estimate
#
# The KL is an expectation under $q$, so it can also be estimated from samples:
# $\widehat{\mathrm{KL}} = \frac1L \sum_l \big[\log q(z_l) - \log p(z_l)\big]$, $z_l = \mu + \sigma\varepsilon_l$.
# This is what the paper's estimator A does; estimator B uses **(2.6)** instead. Write the estimate
# (the library's `dist.gaussian_log_prob` and `dist.standard_normal_log_prob` give the two
# log-densities, summed over the last axis).

# %%
def mc_kl(mu, logvar, eps):
    """mu, logvar (M, J), eps (L, M, J) -> the L-sample estimate of KL(q || N(0, I)), (M,)."""
    ### BEGIN SOLUTION
    z = mu + np.exp(0.5 * logvar) * eps
    return np.mean(dist.gaussian_log_prob(z, mu, logvar) - dist.standard_normal_log_prob(z), axis=0)
    ### END SOLUTION


npvae.exercises.check_mc_kl(mc_kl)

# %% [markdown]
# For the true posterior of the first data point, the estimate is unbiased and its standard
# deviation falls like $1/\sqrt{L}$:

# %%
mu1, logvar1 = post_mu[:1], post_logvar[:1]
exact_kl = npvae.distributions.gaussian_kl(mu1, logvar1)[0]
print(f"analytic KL = {exact_kl:.5f} nats")
print(f"{'L':>6s} {'mean of estimates':>18s} {'std of estimates':>17s} {'std * sqrt(L)':>14s}")
for L in L_VALUES:
    est = np.array([mc_kl(mu1, logvar1, rng.standard_normal((L, 1, 2)))[0] for _ in range(N_REPEATS)])
    print(f"{L:6d} {est.mean():18.5f} {est.std(ddof=1):17.5f} {est.std(ddof=1) * np.sqrt(L):14.4f}")
    se = est.std(ddof=1) / np.sqrt(N_REPEATS)
    assert abs(est.mean() - exact_kl) < 5 * se + 1e-12, "the MC estimate should be unbiased"

# %% [markdown]
# ## 4 · The ELBO identity, numerically
#
# For *any* $z$, Bayes' rule gives $\log p(x) = \log p(x, z) - \log p(z \mid x)$. Add and subtract $\log q(z \mid x)$:
#
# $$ \log p(x) = \underbrace{\big[\log p(x, z) - \log q(z \mid x)\big]}_{\text{ELBO term}} + \underbrace{\big[\log q(z \mid x) - \log p(z \mid x)\big]}_{\text{KL term}} . $$
#
# Averaging over $z \sim q$ gives $\log p(x) = \text{ELBO} + \mathrm{KL}(q\,\|\,p(z\mid x))$. Because the
# identity holds for every single $z$, the two Monte Carlo estimates made **from the same samples**
# add up to $\log p(x)$ exactly, however few samples there are.
#
# We take a VAE that holds the PPCA model exactly (`ppca.to_vae()`: linear decoder, and an encoder
# that outputs the exact posterior), then spoil its encoder, so that $q \neq p(z \mid x)$.

# %%
vae = ppca.to_vae()
vae.params["enc.mu.b"] += 0.5                 # q's mean is off by 0.5 in each coordinate
vae.params["enc.logvar.b"] += 1.0             # and its variance is e times too large
q_mu, q_logvar = vae.encode(x)
L = 5
eps = rng.standard_normal((L,) + q_mu.shape)
z = npvae.distributions.reparameterize(q_mu, q_logvar, eps)[0]          # (L, M, J)
log_w = vae.log_importance_weights(x, L, eps=eps)                      # log p(x, z) - log q(z | x), (L, M)
elbo_hat = log_w.mean(axis=0)                                          # (M,)

# %% [markdown]
# Write the KL estimate from these samples, for two diagonal Gaussians $q = \mathcal{N}(\mu_q, \cdot)$ and
# $p = \mathcal{N}(\mu_p, \cdot)$: $\frac1L\sum_l[\log q(z_l) - \log p(z_l)]$.

# %%
def posterior_kl(z, mu_q, logvar_q, mu_p, logvar_p):
    """z (L, M, J) drawn from q; the four parameters (M, J) -> the KL(q || p) estimate, (M,)."""
    ### BEGIN SOLUTION
    log_q = dist.gaussian_log_prob(z, mu_q, logvar_q)
    log_p = dist.gaussian_log_prob(z, mu_p, logvar_p)
    return np.mean(log_q - log_p, axis=0)
    ### END SOLUTION


npvae.exercises.check_posterior_kl(posterior_kl)

# %%
kl_hat = posterior_kl(z, q_mu, q_logvar, post_mu, post_logvar)
npvae.exercises.check_elbo_identity(elbo_hat, kl_hat, log_px)
print(f"mean ELBO estimate {elbo_hat.mean():.4f}, mean KL estimate {kl_hat.mean():.4f}, "
      f"sum {np.mean(elbo_hat + kl_hat):.4f}, exact mean log p(x) {log_px.mean():.4f}")

# %% [markdown]
# The same bound from the paper's estimator B (reconstruction term by Monte Carlo, **analytic**
# KL to the prior) is noisier, but agrees in expectation; its gap to $\log p(x)$ is the KL to the
# posterior, which is $\geq 0$. With the exact posterior as encoder the gap closes: every importance
# weight equals $p(x)$ and the ELBO *is* $\log p(x)$.

# %%
rec, kl_prior = vae.elbo_terms(x, N_MC, rng)                         # (M,) each
z_many = npvae.distributions.reparameterize(q_mu, q_logvar, rng.standard_normal((N_MC,) + q_mu.shape))[0]
kl_post = posterior_kl(z_many, q_mu, q_logvar, post_mu, post_logvar)
print(f"mean over examples, {N_MC} samples each:")
print(f"  estimator-B ELBO                {np.mean(rec - kl_prior):9.4f}")
print(f"  log p(x) - KL(q || posterior)   {np.mean(log_px - kl_post):9.4f}")
print(f"  log p(x)                        {np.mean(log_px):9.4f}")
exact_vae = ppca.to_vae()
log_w_exact = exact_vae.log_importance_weights(x, 3, rng)             # (3, M)
gap = log_px - log_w_exact
print(f"exact encoder: largest |log p(x) - log w| over samples and examples = {np.abs(gap).max():.2e} nats")
assert np.abs(gap).max() < 1e-8

# %% [markdown]
# **Questions.** (1) Which term of the identity does training the encoder reduce, and why does
# that never lower $\log p(x)$? (2) The KL estimate above can come out negative for one example.
# Can the KL itself? (3) Make the spoiled encoder worse (larger shifts): what happens to the ELBO,
# and to the variance of `log_w` across samples?
