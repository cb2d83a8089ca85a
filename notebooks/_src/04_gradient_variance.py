# %% [markdown]
# # 04 · Gradient variance: score function against pathwise
#
# The VAE needs $\nabla_\phi\, \mathbb{E}_{q_\phi(z)}[f(z)]$. Two unbiased estimators exist
# (`derivations/06_reinforce.md`):
#
# * the **score function** (REINFORCE): $\nabla_\phi \mathbb{E}_q[f] = \mathbb{E}_q\big[f(z)\,\nabla_\phi \log q_\phi(z)\big]$, which
#   needs only values of $f$;
# * the **pathwise** (reparameterization) estimator: with $z = g_\phi(\varepsilon)$,
#   $\nabla_\phi \mathbb{E}_q[f] = \mathbb{E}_\varepsilon\big[f'(z)\, \nabla_\phi g_\phi(\varepsilon)\big]$, which needs $f'$.
#
# Same mean, very different variance. Part 1 measures both in one dimension, where the exact
# variances are known in closed form (`npvae.lab1d`). Part 2 measures them on a VAE's encoder
# gradient, as a function of the number of samples $L$, with and without baselines (`npvae.variance`).
#
# **Exercises** are the cells that say `raise NotImplementedError("Exercise ...")`: replace that
# line with your code; the check in the same cell tells you what is wrong, if anything.

# %%
import os

import numpy as np

import npvae
from npvae import lab1d

# All sizes live here.  CI runs the notebook with NPVAE_FAST=1: the same code, tiny sizes.
FAST = os.environ.get("NPVAE_FAST") == "1"
SEED = 0
N_DRAWS_1D = 20_000 if FAST else 1_000_000      # draws per estimator in the 1-D lab
N_TRAIN = 500 if FAST else 10000                 # VAE training images (a short run: a realistic regime)
HIDDEN = 32 if FAST else 200
Z_DIM = 5 if FAST else 20
TRAIN_EPOCHS = 1 if FAST else 3
BATCH = 20 if FAST else 50                       # the fixed minibatch whose gradient we study
SAMPLES = (1, 2, 4) if FAST else (1, 2, 5, 10)
N_DRAWS = 64 if FAST else 100                    # gradient draws per (estimator, L)
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## Part 1 · Depth zero: $z \sim \mathcal{N}(\mu, \sigma^2)$ and a cost $f$
#
# Write $z = \mu + \sigma\varepsilon$ with $\varepsilon \sim \mathcal{N}(0, 1)$. The log-density is
# $\log q(z) = -\tfrac12\log 2\pi - \log\sigma - \frac{(z-\mu)^2}{2\sigma^2}$, so its scores are
#
# $$ \frac{\partial \log q}{\partial\mu} = \frac{z - \mu}{\sigma^2} = \frac{\varepsilon}{\sigma}, \qquad
#    \frac{\partial \log q}{\partial\sigma} = \frac{(z-\mu)^2}{\sigma^3} - \frac1\sigma = \frac{\varepsilon^2 - 1}{\sigma} . $$
#
# The single-sample score-function estimates are $f(z)$ times these; the pathwise ones are
# $f'(z)\,\partial z/\partial\mu = f'(z)$ and $f'(z)\,\partial z/\partial\sigma = f'(z)\,\varepsilon$ **(6.12)**.
# Write both, vectorized over the draws `eps` (shape `(n,)`); `f` and `df` are functions of `z`.

# %%
def score_function(f, mu, sigma, eps):
    """-> (g_mu, g_sigma), each (n,): f(z) times the score of N(z; mu, sigma^2)."""
    ### BEGIN SOLUTION
    z = mu + sigma * eps
    return f(z) * eps / sigma, f(z) * (eps ** 2 - 1) / sigma
    ### END SOLUTION


npvae.exercises.check_score_function(score_function)

# %%
def pathwise(df, mu, sigma, eps):
    """-> (g_mu, g_sigma), each (n,): f'(z) times dz/dmu and dz/dsigma."""
    ### BEGIN SOLUTION
    z = mu + sigma * eps
    return df(z), df(z) * eps
    ### END SOLUTION


npvae.exercises.check_pathwise(pathwise)

# %% [markdown]
# Both are unbiased: their means agree with the exact gradient. Their variances do not. For the
# quadratic cost $f(z) = (z - c)^2$ at $\mu = \sigma = 1$, $c = -3$ (the example of Mohamed, Rosca,
# Figurnov & Mnih 2020, Section 3), the closed forms **(6.16)** give:

# %%
print(lab1d.mohamed_table())
cost = lab1d.Quadratic(-3.0)
eps = rng.standard_normal(N_DRAWS_1D)
sf_mu, sf_sigma = score_function(cost.f, 1.0, 1.0, eps)
pw_mu, pw_sigma = pathwise(cost.df, 1.0, 1.0, eps)
truth = lab1d.exact(cost, 1.0, 1.0)
for name, g, key in [("score mu", sf_mu, ("score", "mu")), ("pathwise mu", pw_mu, ("pathwise", "mu")),
                     ("score sigma", sf_sigma, ("score", "sigma")),
                     ("pathwise sigma", pw_sigma, ("pathwise", "sigma"))]:
    print(f"{name:>15s}: mean {g.mean():8.3f} (exact {truth[key][0]:6.2f})   "
          f"variance {g.var(ddof=1):9.1f} (exact {truth[key][1]:7.1f})")

# %% [markdown]
# The library's `lab1d.compare` does this for three costs and gives standard errors: the columns
# `z_mean` and `z_variance` say how many standard errors the empirical value lies from the exact one.

# %%
table = lab1d.compare(mu=1.0, sigma=1.0, n=N_DRAWS_1D, rng=rng)
print(table)
assert all(abs(r["z_mean"]) < 5 and abs(r["z_variance"]) < 5 for r in table)

# %% [markdown]
# How the exact single-sample variances move with $\mu$: the score function's grows like $(\mu - c)^4$
# for the quadratic, the pathwise one like $(\mu - c)^2$.

# %%
fig, axes = npvae.plots.panels(2)
mus = np.linspace(-6, 4, 101)
for ax, param in zip(axes, lab1d.PARAMS):
    for est in lab1d.ESTIMATORS:
        ax.semilogy(mus, [lab1d.exact(cost, m, 1.0)[est, param][1] for m in mus], label=est)
    ax.set_xlabel(r"$\mu$ ($\sigma = 1$, $c = -3$)")
    ax.set_ylabel(f"variance of the {param}-gradient")
    ax.legend()
fig

# %% [markdown]
# ## Part 2 · The VAE's encoder gradient
#
# In a VAE, $f(z) = \log p_\theta(x \mid z)$ and the encoder parameters $\phi$ move $q_\phi(z \mid x)$. `reparam` is
# the pathwise estimator; `reinforce` the score function, optionally with a **baseline** $b$ subtracted
# from the learning signal ($\mathbb{E}_q[b\,\nabla\log q] = 0$, so the mean is unchanged): a moving average
# of past signals, or for each sample the mean of the other $L - 1$ samples (leave-one-out).
# The decoder gradient is pathwise in all of them, so only the `enc` rows differ much.
#
# Gradient variance matters most after some training, so we train briefly first.

# %%
try:
    data = npvae.data.load("fashion-mnist", n_train=N_TRAIN, n_test=100)
except FileNotFoundError:
    data = npvae.data.load("glyphs", n_train=N_TRAIN, n_test=100)
model = npvae.VAE(data.x_dim, Z_DIM, hidden=(HIDDEN,), rng=np.random.default_rng(SEED))
npvae.train.fit(model, data.x_train, epochs=TRAIN_EPOCHS, optimizer="adagrad", lr=0.02,
                rng=np.random.default_rng(SEED))
x = data.x_test[:BATCH]

# %%
results = npvae.variance.experiment(
    model, x, estimators=("reparam", "reinforce", "reinforce:moving-average", "reinforce:leave-one-out"),
    samples=SAMPLES, n_draws=N_DRAWS, rng=rng)
print(results.where(group="enc"))

# %%
npvae.variance.plot(results)

# %% [markdown]
# Reading the table: the total variance (the trace of the covariance of one gradient estimate) falls
# like $1/L$ for every estimator; the score function starts orders of magnitude higher; baselines
# close part of the gap. The SNR, $|\text{mean}|/\text{std}$ per entry (median), is what decides whether a
# step points the right way.

# %%
enc = {(r["estimator"], r["L"]): r for r in results.where(group="enc")}
L0 = SAMPLES[-1]
ratio = enc["reinforce", L0]["total_variance"] / enc["reparam", L0]["total_variance"]
print(f"L = {L0}: the score-function encoder gradient has {ratio:.0f} times the pathwise variance")
assert ratio > 1

# %% [markdown]
# **Questions.** (1) Why does the decoder's gradient variance barely depend on the estimator?
# (2) The leave-one-out baseline needs $L \geq 2$. Why can a baseline that depends on sample $l$ itself
# not be used? (3) For the quadratic cost, at which $\mu$ is the score function's $\mu$-gradient variance
# smallest, and is it ever below the pathwise one?
