"""The npvae VAE rebuilt in PyTorch eager mode, for the speed comparison only.

Same layer sizes, activation, initial weights (copied from an ``npvae.VAE``),
Bernoulli likelihood from logits, estimator B (analytic KL), L samples folded
into the batch axis, same data, optimizer and learning rate.  The loss is the
same -ELBO in nats per example; :func:`check_same_loss` verifies it against
npvae's on shared noise before anything is timed.

PyTorch is optional: importing this module requires it, ``bench.py`` imports
it only when ``torch`` is installed.
"""
import numpy as np
import torch

_ACT = {"tanh": torch.tanh, "relu": torch.relu}
_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class TorchVAE(torch.nn.Module):
    """A Bernoulli VAE whose weights are copies of an ``npvae.VAE``'s."""

    def __init__(self, model):
        super().__init__()
        if model.likelihood != "bernoulli":
            raise ValueError("the PyTorch twin implements the Bernoulli decoder only")
        self.act = _ACT[model.activation]
        self.dtype = _DTYPE[model.dtype]
        p = model.params

        def linear(w_key):
            W = p[w_key]
            lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=self.dtype)
            with torch.no_grad():                     # npvae stores W as (in, out)
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(p[w_key.replace("W", "b")]))
            return lin

        n_hidden = len(model.hidden)
        self.enc = torch.nn.ModuleList([linear(f"enc.W{k}") for k in range(n_hidden)])
        self.enc_mu = linear("enc.mu.W")
        self.enc_logvar = linear("enc.logvar.W")
        self.dec = torch.nn.ModuleList([linear(f"dec.W{k}") for k in range(n_hidden)])
        self.dec_logits = linear("dec.logits.W")

    def loss(self, x, eps):
        """-ELBO per example (estimator B): x (M, D), eps (L, M, J) -> scalar."""
        h = x
        for lin in self.enc:
            h = self.act(lin(h))
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        L, M, J = eps.shape
        h = z.reshape(L * M, J)
        for lin in self.dec:
            h = self.act(lin(h))
        logits = self.dec_logits(h).reshape(L, M, -1)
        rec = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x.expand(L, M, x.shape[1]), reduction="sum") / L
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar))
        return (rec + kl) / M


def make_optimizer(name, params, lr):
    """PyTorch's optimizer matching ``npvae.optim.get(name, ..., lr=lr)`` (its defaults).

    npvae's Adagrad uses eps = 1e-8 (PyTorch's default is 1e-10): set to match.
    """
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-8)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"no PyTorch twin for optimizer {name!r}")


class TorchTrainer:
    """One training step = loss, backward, optimizer step, like npvae's."""

    def __init__(self, model, optimizer, lr, n_samples, seed=0):
        self.net = TorchVAE(model)
        self.opt = make_optimizer(optimizer, self.net.parameters(), lr)
        self.L, self.J = n_samples, model.z_dim
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, x):
        eps = torch.randn((self.L, x.shape[0], self.J), generator=self.gen, dtype=self.net.dtype)
        self.opt.zero_grad(set_to_none=True)
        loss = self.net.loss(x, eps)
        loss.backward()
        self.opt.step()
        return loss

    def to_tensor(self, x):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=x.dtype))


def check_same_loss(model, x, eps):
    """Assert that the twin and npvae agree on the loss and the gradients for fixed noise."""
    import npvae
    net = TorchVAE(model)
    loss = net.loss(torch.from_numpy(x), torch.from_numpy(eps))
    loss.backward()
    loss = loss.item()
    ref, grads = npvae.estimators.reparam(model, x, eps=eps, kl="analytic")
    tol = 1e-3 if model.dtype == np.float32 else 1e-9
    if abs(loss - ref) > tol * max(1.0, abs(ref)):
        raise AssertionError(f"PyTorch twin loss {loss} != npvae {ref}")
    g = net.dec_logits.weight.grad.numpy().T
    r = grads["dec.logits.W"]
    err = np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-12)
    if err > 10 * tol:
        raise AssertionError(f"PyTorch twin gradient differs from npvae's: rel err {err:.2e}")
    return loss, ref
