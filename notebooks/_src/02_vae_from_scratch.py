# %% [markdown]
# # 02 · A VAE from scratch: forward, backward, training
#
# In this notebook you write the backward pass of a variational auto-encoder by hand,
# one line per operation, and check every line against the library. Then you train the
# library's VAE on images, generate new images by sampling the prior, and look at
# reconstructions.
#
# * **Part 1** — three warm-up gradients: a linear layer, `tanh`, the Bernoulli log-likelihood.
# * **Part 2** — the forward pass of a one-hidden-layer VAE written out one operation a
#   line; you write its backward pass in reverse, line by line. Each result is compared by
#   `cmp(name, yours, reference)`, which prints whether it is exact, close, and the largest
#   difference (and stops the notebook if it is not close).
# * **Part 3** — training with `npvae.train.fit`, samples from the prior, reconstructions.
#
# Derivations: `derivations/03_reparameterization.md`, `04_likelihoods.md`, `05_backprop.md`.
# Conventions: the loss is $-\text{ELBO}$ averaged over the minibatch (nats per example);
# `d<name>` is $\partial\,\text{loss} / \partial\,\texttt{<name>}$ and has the shape of `<name>`.
#
# **Exercises** are the cells that say `raise NotImplementedError("Exercise ...")`: replace that
# line with your code. The checks right after each exercise tell you what is wrong, if anything.

# %%
import os

import numpy as np

import npvae
from npvae import distributions as dist
from npvae.exercises import cmp

# All sizes live here.  CI runs the notebook with NPVAE_FAST=1: the same code, tiny sizes.
FAST = os.environ.get("NPVAE_FAST") == "1"
SEED = 0
N_TRAIN = 1000 if FAST else 20000       # training images
N_TEST = 200 if FAST else 2000          # test images
EPOCHS = 1 if FAST else 10
HIDDEN = 64 if FAST else 400            # hidden units of the trained VAE
Z_DIM = 10                              # latent size of the trained VAE
IS_SAMPLES = 20 if FAST else 500        # K for the importance-sampled log p(x)
rng = np.random.default_rng(SEED)

# %% [markdown]
# The data: Fashion-MNIST when it is installed (`apt-get install dataset-fashion-mnist`),
# otherwise the generated `glyphs` digits, which need no download.

# %%
try:
    data = npvae.data.load("fashion-mnist", n_train=N_TRAIN, n_test=N_TEST)
except FileNotFoundError:
    data = npvae.data.load("glyphs", n_train=N_TRAIN, n_test=N_TEST)
print(data)
npvae.plots.image_grid(data.x_train[:40], data.image_shape, nrow=4, title=f"{data.name}: training images")

# %% [markdown]
# ## Part 1 · Warm-up gradients
#
# **A linear layer** maps $x \in \mathbb{R}^{N \times \text{in}}$ to $\text{out} = xW + b$.
# Given $\partial\,\text{loss}/\partial\,\text{out}$ (`dout`, shape of `out`), the chain rule gives
# **(5.1)–(5.3)**:
#
# $$ dx = \text{dout}\, W^\top, \qquad dW = x^\top \text{dout}, \qquad db = \textstyle\sum_n \text{dout}_n . $$
#
# Check the shapes: `dW` must have the shape of `W`, `(in, out)`.  Write `linear_backward`.

# %%
def linear_backward(dout, x, W):
    """dout (N, out), x (N, in), W (in, out) -> dx (N, in), dW (in, out), db (out,)."""
    ### BEGIN SOLUTION
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db
    ### END SOLUTION


npvae.exercises.check_linear_backward(linear_backward)

# %% [markdown]
# **tanh**: $\text{out} = \tanh(a)$ and $\tanh'(a) = 1 - \tanh^2(a)$, so from the *cached output*
# **(5.4)**: $da = \text{dout} \odot (1 - \text{out}^2)$.

# %%
def tanh_backward(dout, out):
    """dout, out = tanh(a), both (N, H) -> da (N, H)."""
    ### BEGIN SOLUTION
    return dout * (1 - out ** 2)
    ### END SOLUTION


npvae.exercises.check_tanh_backward(tanh_backward)

# %% [markdown]
# **The Bernoulli decoder.** With $p = \sigma(a)$ for logits $a$,
# $\log p(x \mid a) = \sum_d x_d \log \sigma(a_d) + (1 - x_d)\log(1 - \sigma(a_d))$.
# Using $\log\sigma(a) = a - \text{softplus}(a)$ and $\log(1-\sigma(a)) = -\text{softplus}(a)$:
#
# $$ \log p(x \mid a) = \sum_d \big[x_d a_d - \text{softplus}(a_d)\big] \qquad \textbf{(4.2)} $$
#
# Computing $\log(\sigma(a))$ directly gives `-inf` for $a = -800$; write softplus in its stable
# form $\text{softplus}(a) = \max(a, 0) + \log(1 + e^{-|a|})$ (`np.logaddexp(0, a)` also works).
# The checker includes very large logits.

# %%
def bernoulli_log_prob(x, logits):
    """x, logits (..., D) -> log p(x | logits) summed over the last axis, (...)."""
    ### BEGIN SOLUTION
    softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
    return np.sum(x * logits - softplus, axis=-1)
    ### END SOLUTION


npvae.exercises.check_bernoulli_log_prob(bernoulli_log_prob)

# %% [markdown]
# ## Part 2 · The forward pass, one operation a line
#
# A small VAE: encoder $x \to a_1 = xW_1 + b_1 \to h_1 = \tanh(a_1) \to (\mu, \log\sigma^2)$ by two
# linear heads; $z = \mu + \sigma \odot \varepsilon$ with $L$ noise draws per example; decoder
# $z \to a_2 \to h_2 = \tanh(a_2) \to$ logits; loss $= -\frac1M \sum_i \text{ELBO}_i$ with the analytic
# KL (the paper's estimator B):
#
# $$ \text{ELBO}_i = \frac1L \sum_l \log p(x_i \mid z_{il}) - \mathrm{KL}\big(q(z \mid x_i) \,\|\, p(z)\big). $$
#
# The weights are the library model's own arrays (`model.params`), initialized with non-zero
# biases so that a wrong backward line cannot hide behind a zero. The $L$ samples are folded
# into the batch axis (`zf`, shape `(L*M, J)`), as the library does.

# %%
M, L, J, H = 16, 3, 2, 32                 # batch, samples per example, latent size, hidden units
D = data.x_dim
small = npvae.VAE(D, J, hidden=(H,), activation="tanh", rng=rng, init="glorot")
for name, p in small.params.items():
    if name.endswith("b"):
        p[...] = 0.1 * rng.standard_normal(p.shape)
P = small.params
W1, b1 = P["enc.W0"], P["enc.b0"]
Wmu, bmu = P["enc.mu.W"], P["enc.mu.b"]
Wlv, blv = P["enc.logvar.W"], P["enc.logvar.b"]
W2, b2 = P["dec.W0"], P["dec.b0"]
W3, b3 = P["dec.logits.W"], P["dec.logits.b"]
x = data.x_train[:M]
eps = rng.standard_normal((L, M, J))

# %%
a1 = x @ W1 + b1                                      # (M, H)
h1 = np.tanh(a1)                                      # (M, H)
mu = h1 @ Wmu + bmu                                   # (M, J)
logvar = h1 @ Wlv + blv                               # (M, J)
std = dist.std_from_logvar(logvar)                    # (M, J)      (3.2)
z = mu + std * eps                                    # (L, M, J)   (3.3)
zf = z.reshape(L * M, J)                              # (L*M, J)
a2 = zf @ W2 + b2                                     # (L*M, H)
h2 = np.tanh(a2)                                      # (L*M, H)
logits = h2 @ W3 + b3                                 # (L*M, D)
log_px = dist.bernoulli_log_prob(x, logits.reshape(L, M, D))   # (L, M)   (4.2)
rec = log_px.mean(axis=0)                             # (M,)
kl = dist.gaussian_kl(mu, logvar)                     # (M,)        (2.6)
elbo = rec - kl                                       # (M,)
loss = -elbo.mean()                                   # scalar

ref = npvae.exercises.vae_backward_reference(small, x, eps)
cmp("loss", loss, ref["loss"])

# %% [markdown]
# The staged loss equals the library's `npvae.estimators.reparam(model, x, eps=eps)`. The
# reference gradients `ref[...]` come from the library: its estimator for the parameters, its
# layers' `backward` methods for the intermediate arrays.
#
# ## Part 2 · The backward pass, line by line in reverse
#
# **Step 1: from the loss to the logits.** `loss = -elbo.mean()` gives $\partial\,\text{loss}/\partial\,\text{elbo}_i = -1/M$.
# `elbo = rec - kl` passes that to `rec` and its negative to `kl`. `rec` is a mean over
# the $L$ samples, so each `log_px[l, i]` receives $1/L$ of `drec[i]`. Finally by **(4.3)**,
# $\partial \log p(x \mid a)/\partial a = x - \sigma(a)$, multiplied by the upstream `dlog_px`
# (broadcast over the $D$ pixels). Reshape `dlogits` to `(L*M, D)` like `logits`.
# (`npvae.nn.sigmoid` is a stable sigmoid.)

# %%
# compute delbo, drec, dkl (each (M,)), dlog_px (L, M) and dlogits (L*M, D)
### BEGIN SOLUTION
delbo = np.full(M, -1.0 / M)                          # (M,)
drec = delbo                                          # (M,)
dkl = -delbo                                          # (M,)
dlog_px = np.broadcast_to(drec / L, (L, M))           # (L, M)
p = npvae.nn.sigmoid(logits.reshape(L, M, D))         # (L, M, D)
dlogits = (dlog_px[:, :, None] * (x - p)).reshape(L * M, D)    # (4.3)
### END SOLUTION

# %%
cmp("dlogits", dlogits, ref["dlogits"])

# %% [markdown]
# **Step 2: through the decoder.** `logits = h2 @ W3 + b3` is a linear layer **(5.1)–(5.3)**,
# `h2 = tanh(a2)` a tanh **(5.4)**, `a2 = zf @ W2 + b2` another linear layer. You may call
# your `linear_backward` and `tanh_backward` from Part 1. End with `dz`, reshaped like `z`.

# %%
# compute dh2, dW3, db3, da2, dzf, dW2, db2, and dz (L, M, J)
### BEGIN SOLUTION
dh2, dW3, db3 = linear_backward(dlogits, h2, W3)      # (L*M, H), (H, D), (D,)
da2 = tanh_backward(dh2, h2)                          # (L*M, H)
dzf, dW2, db2 = linear_backward(da2, zf, W2)          # (L*M, J), (J, H), (H,)
dz = dzf.reshape(L, M, J)                             # (L, M, J)
### END SOLUTION

# %%
cmp("dW3", dW3, ref["dec.logits.W"])
cmp("db3", db3, ref["dec.logits.b"])
cmp("dh2", dh2, ref["dh2"])
cmp("da2", da2, ref["da2"])
cmp("dW2", dW2, ref["dec.W0"])
cmp("db2", db2, ref["dec.b0"])
cmp("dz", dz, ref["dz"])

# %% [markdown]
# **Step 3: through the sampling step and the KL.** $z_l = \mu + \sigma \odot \varepsilon_l$ for every $l$,
# so $\mu$ collects the sum over $l$ of `dz` **(3.4)**, and $\sigma$ the sum of `dz * eps`. Then
# $\sigma = \exp(\tfrac12 \log\sigma^2)$ gives $\partial\sigma/\partial\log\sigma^2 = \tfrac12\sigma$ **(3.5)**.
# The KL adds its own gradients, scaled by `dkl[:, None]`: $\partial\mathrm{KL}/\partial\mu = \mu$ **(2.7)** and
# $\partial\mathrm{KL}/\partial\log\sigma^2 = \tfrac12(\sigma^2 - 1)$ **(2.8)**. Both `mu` and `logvar` feed two
# places: add the contributions.

# %%
# compute dstd, dmu and dlogvar, each (M, J)
### BEGIN SOLUTION
dstd = np.sum(dz * eps, axis=0)                       # (M, J)
dmu = dz.sum(axis=0) + dkl[:, None] * mu              # (M, J)   (3.4), (2.7)
dlogvar = 0.5 * std * dstd + dkl[:, None] * 0.5 * (np.exp(logvar) - 1)   # (3.5), (2.8)
### END SOLUTION

# %%
cmp("dmu", dmu, ref["dmu"])
cmp("dlogvar", dlogvar, ref["dlogvar"])

# %% [markdown]
# **Step 4: through the encoder.** Two linear heads read `h1`, so `dh1` is the sum of what each
# sends back. Then `tanh` and the first linear layer; `dx` is not needed.

# %%
# compute dWmu, dbmu, dWlv, dblv, dh1, da1, dW1, db1
### BEGIN SOLUTION
dh1_mu, dWmu, dbmu = linear_backward(dmu, h1, Wmu)
dh1_lv, dWlv, dblv = linear_backward(dlogvar, h1, Wlv)
dh1 = dh1_mu + dh1_lv                                 # (M, H)
da1 = tanh_backward(dh1, h1)                          # (M, H)
_, dW1, db1 = linear_backward(da1, x, W1)             # (D, H), (H,)
### END SOLUTION

# %%
cmp("dWmu", dWmu, ref["enc.mu.W"])
cmp("dbmu", dbmu, ref["enc.mu.b"])
cmp("dWlv", dWlv, ref["enc.logvar.W"])
cmp("dblv", dblv, ref["enc.logvar.b"])
cmp("dh1", dh1, ref["dh1"])
cmp("da1", da1, ref["da1"])
cmp("dW1", dW1, ref["enc.W0"])
cmp("db1", db1, ref["enc.b0"])

# %% [markdown]
# Every gradient of the model now matches. The library's references themselves are checked
# against finite differences in its tests; you can do the same on any function with
# `npvae.gradcheck.check(f, params)`, for instance on this small model (a few hundred entries):

# %%
tiny = npvae.VAE(6, 2, hidden=(4,), rng=rng, init="glorot")
x_tiny = rng.random((3, 6))
eps_tiny = rng.standard_normal((2, 3, 2))
report = npvae.gradcheck.check(lambda: npvae.estimators.reparam(tiny, x_tiny, eps=eps_tiny), tiny.params)
print(report)
assert report.max_error < 1e-7

# %% [markdown]
# ## Part 3 · Training, generating, reconstructing
#
# The library's training loop is the paper's Algorithm 1: shuffled minibatches of $M = 100$,
# $L = 1$, the same gradient you just wrote, and Adagrad. We train in float32 (faster; the
# gradient checks above were float64) and watch the test ELBO.

# %%
x_train = data.x_train.astype(np.float32)
x_test = data.x_test.astype(np.float32)
vae = npvae.VAE(D, Z_DIM, hidden=(HIDDEN,), rng=np.random.default_rng(SEED), dtype=np.float32)
history = npvae.train.fit(vae, x_train, x_test=x_test, epochs=EPOCHS, optimizer="adagrad",
                          lr=0.02, rng=np.random.default_rng(SEED))
npvae.plots.elbo_curves(history)

# %% [markdown]
# The ELBO is a lower bound on $\log p(x)$. Importance sampling with the encoder as the proposal
# tightens it (`derivations/07_importance_sampling.md`):

# %%
x_eval = x_test[: min(len(x_test), 200)]
test_elbo = npvae.evaluate.elbo(vae, x_eval, rng).mean()
test_ll = npvae.evaluate.log_likelihood(vae, x_eval, n_samples=IS_SAMPLES, rng=rng).mean()
print(f"test ELBO {test_elbo:.1f} nats, importance-sampled log p(x) (K = {IS_SAMPLES}) {test_ll:.1f} nats")
assert test_ll >= test_elbo - 1.0

# %% [markdown]
# **Generating**: draw $z \sim \mathcal{N}(0, I)$ and decode it. This is what makes the VAE a generative
# model: the KL term keeps the encoder's codes where the prior puts its mass.

# %%
npvae.plots.samples(vae, data.image_shape, n=64, rng=rng)

# %% [markdown]
# **Reconstructions**: decode the encoder's mean for test images.

# %%
npvae.plots.reconstructions(vae, x_test, data.image_shape, n=20)

# %% [markdown]
# **Questions.** (1) Why is the reconstruction sharper than a sample? (2) Rerun Part 3 with
# `Z_DIM = 2`: what happens to the test ELBO and to the samples? (3) Which line of your backward
# pass would change for a Gaussian decoder (see **(4.5)**, **(4.6)**)?
