# %% [markdown]
# # 03 · Latent spaces: a plain autoencoder beside a VAE
#
# Both models below squeeze an image through a **2-D code** and decode it again, with the same
# layers (`npvae.nn`), sizes and optimizer. The difference:
#
# * `npvae.Autoencoder` is deterministic: $x \mapsto$ one code point $\mapsto$ reconstruction. Its loss is
#   the reconstruction cross-entropy alone **(4.2)**. Nothing tells the codes where to live.
# * `npvae.VAE` encodes $x$ to a distribution $q(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, decodes a *sample*, and
#   pays $\beta \cdot \mathrm{KL}(q(z \mid x)\,\|\,\mathcal{N}(0, I))$ **(2.6)** on top ($\beta = 1$ is the ELBO).
#
# We look at the codes of test images coloured by their label (`npvae.plots.latent_space`), and at
# what each decoder makes of a regular grid of codes (`npvae.plots.manifold`, the paper's Figure 4:
# the grid runs over the quantiles of $\mathcal{N}(0, 1)$ in each coordinate, where the prior puts its mass).
# Then we turn $\beta$.
#
# **Exercises** are the cells that say `raise NotImplementedError("Exercise ...")`: replace that
# line with your code; the check in the same cell tells you what is wrong, if anything.

# %%
import os

import numpy as np

import npvae

# All sizes live here.  CI runs the notebook with NPVAE_FAST=1: the same code, tiny sizes.
FAST = os.environ.get("NPVAE_FAST") == "1"
SEED = 0
N_TRAIN = 1000 if FAST else 10000
N_TEST = 300 if FAST else 2000
EPOCHS = 1 if FAST else 10
HIDDEN = 64 if FAST else 256
BETAS = (0.2, 1.0, 4.0)                  # KL weights compared in the last part
GRID = 8 if FAST else 15                 # manifold grid side
rng = np.random.default_rng(SEED)

# %%
try:
    data = npvae.data.load("fashion-mnist", n_train=N_TRAIN, n_test=N_TEST, dtype=np.float32)
except FileNotFoundError:
    data = npvae.data.load("glyphs", n_train=N_TRAIN, n_test=N_TEST, dtype=np.float32)
print(data)
D, shape = data.x_dim, data.image_shape
x_test, y_test = data.x_test, data.y_test
panels = npvae.plots.panels        # a row of axes to draw the library's figures into

# %% [markdown]
# ## Training both models
#
# The same training loop fits both: `npvae.train.fit` takes any function with the estimator
# signature `(model, x, *, rng, n_samples, ...) -> (loss, grads)`. For the autoencoder that is
# `npvae.autoencoder.estimator`, which returns its reconstruction loss and its hand-written gradients.

# %%
common = dict(epochs=EPOCHS, optimizer="adam", lr=1e-3, log=None)
ae = npvae.Autoencoder(D, 2, hidden=(HIDDEN,), rng=np.random.default_rng(SEED), init="glorot",
                       dtype=np.float32)
ae_history = npvae.train.fit(ae, data.x_train, estimator=npvae.autoencoder.estimator,
                             rng=np.random.default_rng(SEED), **common)
vae = npvae.VAE(D, 2, hidden=(HIDDEN,), rng=np.random.default_rng(SEED), init="glorot",
                dtype=np.float32)
vae_history = npvae.train.fit(vae, data.x_train, x_test=x_test, rng=np.random.default_rng(SEED), **common)
ae_loss, _ = ae.loss_and_grads(x_test)
rec, kl = vae.elbo_terms(x_test, 1, rng)
print(f"autoencoder: test reconstruction loss {ae_loss:.1f} nats")
print(f"VAE:         test -E[log p(x|z)] {-rec.mean():.1f} nats + KL {kl.mean():.1f} nats = -ELBO {np.mean(kl - rec):.1f}")

# %% [markdown]
# ## The codes of the test images

# %%
fig, (left, right) = panels(2)
npvae.plots.latent_space(ae, x_test, y_test, ax=left, title="autoencoder: codes")
npvae.plots.latent_space(vae, x_test, y_test, ax=right, title="VAE: encoder means")
fig

# %% [markdown]
# The autoencoder's codes sit wherever the optimizer left them: their scale is arbitrary, the
# classes may spread in long streaks, and there are wide empty regions. The VAE's means gather
# around the origin at the prior's scale, because the KL term charges for every code far from
# $0$ and for every variance below $1$.
#
# **Exercise.** Put a number on "where the codes live": fit a diagonal Gaussian to a set of codes (the
# mean and the variance of each column, `np.var` with its default `ddof=0`) and return its KL to $\mathcal{N}(0, I)$.
# Use the library's `npvae.distributions.gaussian_kl` **(2.6)**, which takes a log-variance.

# %%
def code_kl(codes):
    """codes (N, J) -> KL(N(mean, diag(var)) || N(0, I)) of the moment-matched Gaussian, a float."""
    ### BEGIN SOLUTION
    mean, var = codes.mean(axis=0), codes.var(axis=0)
    return float(npvae.distributions.gaussian_kl(mean, np.log(var)))
    ### END SOLUTION


npvae.exercises.check_code_kl(code_kl)

# %%
ae_codes = ae.encode(x_test)
vae_means = vae.encode(x_test)[0]
print(f"moment-matched KL to N(0, I): autoencoder {code_kl(ae_codes):8.2f} nats, "
      f"VAE means {code_kl(vae_means):6.2f} nats")

# %% [markdown]
# ## Decoding a grid of codes
#
# Now the other direction: decode the grid of prior quantiles. For the VAE this is sampling done
# systematically, and it shows a smooth map of the data. For the autoencoder the same grid lands
# partly in regions no training code came near, so parts of the map are blurred mixtures or nonsense,
# and nothing guarantees that $z \sim \mathcal{N}(0, I)$ decodes to a plausible image: a plain autoencoder is not
# a generative model.

# %%
fig, (left, right) = panels(2)
npvae.plots.manifold(ae, shape, n=GRID, ax=left, title="autoencoder: decoded grid")
npvae.plots.manifold(vae, shape, n=GRID, ax=right, title="VAE: decoded grid")
fig

# %% [markdown]
# ## The effect of $\beta$
#
# Training with $-\big(\mathbb{E}_q[\log p(x \mid z)] - \beta\,\mathrm{KL}\big)$: a small $\beta$ lets the codes spread out and
# reconstruct better (closer to the autoencoder); a large $\beta$ pulls every $q(z \mid x)$ toward the prior,
# so the codes overlap and the reconstructions blur. Only $\beta = 1$ optimizes a bound on $\log p(x)$.

# %%
models = {}
for beta in BETAS:
    m = npvae.VAE(D, 2, hidden=(HIDDEN,), rng=np.random.default_rng(SEED), init="glorot", dtype=np.float32)
    npvae.train.fit(m, data.x_train, beta=beta, rng=np.random.default_rng(SEED), **common)
    models[beta] = m
    rec, kl = m.elbo_terms(x_test, 1, rng)
    print(f"beta = {beta:3g}: E[log p(x|z)] {rec.mean():7.1f}  KL {kl.mean():5.2f}  ELBO {np.mean(rec - kl):7.1f}  "
          f"moment-matched KL of the means {code_kl(m.encode(x_test)[0]):5.2f} nats")

# %%
fig, axes = panels(len(BETAS))
for ax, (beta, m) in zip(axes, models.items()):
    npvae.plots.latent_space(m, x_test, y_test, ax=ax, title=f"beta = {beta:g}")
fig

# %%
fig, axes = panels(len(BETAS))
for ax, (beta, m) in zip(axes, models.items()):
    npvae.plots.manifold(m, shape, n=GRID, ax=ax, title=f"beta = {beta:g}")
fig

# %% [markdown]
# **Questions.** (1) Which $\beta$ gives the best test ELBO, and why must it be $\beta = 1$ when training
# and testing measure the same thing? (2) The autoencoder's codes have a large moment-matched KL, yet
# the autoencoder reconstructs well. Why does that not make it a good generator? (3) With $J = 2$ the
# VAE's KL term is small in nats; what would you expect with $J = 20$?
