"""An independent PyTorch reference for the paper's Fashion-MNIST setup, to check npvae's test ELBO.

The model and schedule are those of ``npvae train --data fashion-mnist
--optimizer adagrad`` (see benchmarks/ELBO_PARITY.md for the exact npvae
command):

* encoder 784-500 tanh, then two linear heads mu and logvar (J = 20);
  decoder 20-500 tanh, then 784 logits; Bernoulli likelihood with the grey
  values in [0, 1] used as soft targets (npvae's default ``--binarize none``):
  log p(x | z) = sum_d x_d l_d - softplus(l_d);
* weights N(0, 0.01^2), biases 0 (npvae's ``init="normal"``, scale 0.01);
* estimator B: z = mu + exp(logvar / 2) eps with one eps per example (L = 1),
  KL(q(z|x) || N(0, I)) in closed form; loss = -(mean ELBO over the minibatch);
* Adagrad written out by hand to match ``npvae.optim.Adagrad`` exactly:
  G <- G + g^2 (G starts at 0), p <- p - lr g / (sqrt(G) + eps), eps = 1e-8
  outside the square root, no learning-rate decay;
* minibatches of M = 100 from a fresh permutation every epoch, float32.

Every epoch prints the training objective (mean -loss over the epoch's
minibatches) and the test ELBO over all 10000 test images with one noise draw
per image (what npvae's history.csv records).  After the last epoch the test
ELBO is estimated again with ``--eval-samples`` draws per image, which has less
Monte Carlo noise.  ``--evaluate-npvae RUN_DIR`` applies that same evaluation
to the parameters in an npvae checkpoint, so both models can be scored by one
evaluator.

PyTorch is needed to run this file; npvae itself does not depend on it.

    python benchmarks/torch_reference.py --epochs 50 --seed 0 --csv torch_s0.csv
    python benchmarks/torch_reference.py --evaluate-npvae runs/fm-s0 --eval-samples 10
    python benchmarks/torch_reference.py --check-against-npvae   # needs npvae importable
"""
import argparse
import csv
import gzip
import json
import os
import time

import numpy as np
import torch

D, H, J = 784, 500, 20
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"


def read_images(path):
    """An IDX image file (gzip or plain) -> (N, 784) float32 in [0, 1] (pixel / 255)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise ValueError(f"{path}: magic number {magic}, expected 2051 (IDX unsigned-byte images)")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if pixels.size != n * rows * cols:
        raise ValueError(f"{path}: {pixels.size} pixels, the header says {n}x{rows}x{cols}")
    x = pixels.reshape(n, rows * cols).astype(np.float32)
    x /= np.float32(255)
    return x


def find_file(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}(.gz) not found in {data_dir}")


def load_fashion_mnist(data_dir):
    x_train = read_images(find_file(data_dir, "train-images-idx3-ubyte"))
    x_test = read_images(find_file(data_dir, "t10k-images-idx3-ubyte"))
    return torch.from_numpy(x_train), torch.from_numpy(x_test)


def init_params(gen, scale=0.01):
    """Weights stored (in, out) like npvae's; N(0, scale^2) weights, zero biases."""
    def w(n_in, n_out):
        return (scale * torch.randn(n_in, n_out, generator=gen)).requires_grad_()

    def b(n):
        return torch.zeros(n, requires_grad=True)

    return {"enc.W0": w(D, H), "enc.b0": b(H),
            "enc.mu.W": w(H, J), "enc.mu.b": b(J),
            "enc.logvar.W": w(H, J), "enc.logvar.b": b(J),
            "dec.W0": w(J, H), "dec.b0": b(H),
            "dec.logits.W": w(H, D), "dec.logits.b": b(D)}


def encode(p, x):
    h = torch.tanh(x @ p["enc.W0"] + p["enc.b0"])
    return h @ p["enc.mu.W"] + p["enc.mu.b"], h @ p["enc.logvar.W"] + p["enc.logvar.b"]


def decode_logits(p, z):
    return torch.tanh(z @ p["dec.W0"] + p["dec.b0"]) @ p["dec.logits.W"] + p["dec.logits.b"]


def elbo_terms(p, x, eps):
    """x (M, D), eps (L, M, J) -> per-example (rec, kl), rec averaged over the L draws."""
    mu, logvar = encode(p, x)
    z = mu + torch.exp(0.5 * logvar) * eps                       # (L, M, J)
    logits = decode_logits(p, z)                                 # (L, M, D)
    # log Bernoulli(x; sigmoid(l)) = x l - softplus(l), x a soft target in [0, 1]
    rec = (x * logits - torch.nn.functional.softplus(logits)).sum(-1).mean(0)
    kl = -0.5 * (1.0 + logvar - mu * mu - torch.exp(logvar)).sum(-1)
    return rec, kl


class Adagrad:
    """npvae.optim.Adagrad's update: G += g^2; p -= lr g / (sqrt(G) + eps); G starts at 0."""

    def __init__(self, params, lr, eps=1e-8):
        self.params, self.lr, self.eps = params, lr, eps
        self.sum_sq = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self):
        for k, v in self.params.items():
            g = v.grad
            self.sum_sq[k].addcmul_(g, g)
            v.sub_(self.lr * g / (self.sum_sq[k].sqrt() + self.eps))
            v.grad = None


@torch.no_grad()
def evaluate(p, x, gen, n_samples=1, batch_size=1000):
    """Mean test ELBO, rec and KL (nats per example), sums accumulated in float64."""
    rec_sum = kl_sum = 0.0
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        eps = torch.randn(n_samples, xb.shape[0], J, generator=gen)
        rec, kl = elbo_terms(p, xb, eps)
        rec_sum += rec.double().sum().item()
        kl_sum += kl.double().sum().item()
    rec, kl = rec_sum / x.shape[0], kl_sum / x.shape[0]
    return rec - kl, rec, kl


def load_npvae_params(path):
    """The parameters of an npvae checkpoint (a run directory or checkpoint.npz) as tensors."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    with np.load(path, allow_pickle=False) as ck:
        config = json.loads(str(ck["model_config"]))
        params = {k[len("param/"):]: torch.from_numpy(ck[k].astype(np.float32))
                  for k in ck.files if k.startswith("param/")}
    want = {"x_dim": D, "z_dim": J, "hidden": [H], "activation": "tanh",
            "likelihood": "bernoulli"}
    got = {k: config.get(k) for k in want}
    if got != want or set(params) != set(init_params(torch.Generator()).keys()):
        raise ValueError(f"{path} is not the 784-500-20 tanh Bernoulli VAE: {got}")
    return params


def train(args, x_train, x_test):
    gen = torch.Generator().manual_seed(args.seed)
    eval_gen = torch.Generator().manual_seed(args.seed + 10_000)
    p = init_params(gen)
    opt = Adagrad(p, args.lr, args.eps)
    N, M = x_train.shape[0], args.batch_size
    steps = -(-N // M)
    rows = []
    print(f"torch reference: {N} train / {x_test.shape[0]} test, 784-500-20 tanh, Adagrad "
          f"lr={args.lr:g} eps={args.eps:g}, M={M}, L=1, {steps} steps/epoch, seed {args.seed}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    t_all = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(N, generator=gen)
        total = 0.0
        for i in range(steps):
            xb = x_train[perm[i * M:(i + 1) * M]]
            eps = torch.randn(1, xb.shape[0], J, generator=gen)
            rec, kl = elbo_terms(p, xb, eps)
            loss = (kl - rec).mean()
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        seconds = time.perf_counter() - t0
        elbo, rec, kl = evaluate(p, x_test, eval_gen, n_samples=1)
        rows.append(dict(epoch=epoch, train_elbo=-total / N, test_elbo=elbo, test_rec=rec,
                         test_kl=kl, seconds=seconds))
        print(f"epoch {epoch:>3}/{args.epochs}  train ELBO {-total / N:9.3f}  test ELBO "
              f"{elbo:9.3f} (rec {rec:.2f}, KL {kl:.2f})  {N / seconds:,.0f} ex/s  "
              f"{seconds:.1f} s", flush=True)
        if args.csv:
            write_csv(args.csv, rows)
    print(f"training time {time.perf_counter() - t_all:.1f} s", flush=True)
    return p


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def check_against_npvae(x_train, args, steps=3):
    """Same start, same minibatches, same noise, float64: npvae's estimator B and
    Adagrad against this file's, step by step.  Returns 0 if they agree."""
    import npvae
    rng = np.random.default_rng(args.seed)
    model = npvae.VAE(D, J, (H,), "tanh", "bernoulli", rng=rng, dtype=np.float64)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    opt_np = npvae.optim.Adagrad(model.params, lr=args.lr, eps=args.eps)
    opt_t = Adagrad(p, args.lr, args.eps)
    worst = 0.0
    for step in range(steps):
        x = x_train[step * args.batch_size:(step + 1) * args.batch_size].astype(np.float64)
        eps = rng.standard_normal((1, x.shape[0], J))
        loss_np, grads = npvae.estimators.reparam(model, x, eps=eps)
        rec, kl = elbo_terms(p, torch.from_numpy(x), torch.from_numpy(eps))
        loss_t = (kl - rec).mean()
        loss_t.backward()
        g_err = max(float(np.max(np.abs(grads[k] - p[k].grad.numpy()))
                          / np.max(np.abs(grads[k]))) for k in p)
        opt_np.step(grads)
        opt_t.step()
        p_err = max(float(np.max(np.abs(model.params[k] - p[k].detach().numpy()))) for k in p)
        worst = max(worst, abs(loss_np - loss_t.item()) / abs(loss_np), g_err)
        print(f"step {step + 1}: loss npvae {loss_np:.10f} torch {loss_t.item():.10f}  "
              f"max rel grad diff {g_err:.1e}  max abs param diff after the step {p_err:.1e}")
    ok = worst < 1e-9
    print("agree" if ok else "DIFFER", f"(worst relative difference {worst:.1e})")
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.02, help="Adagrad learning rate")
    ap.add_argument("--eps", type=float, default=1e-8, help="Adagrad eps (outside the sqrt)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                    help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--csv", default=None, help="per-epoch history (written every epoch)")
    ap.add_argument("--eval-samples", type=int, default=10,
                    help="noise draws per test image for the final test ELBO")
    ap.add_argument("--evaluate-npvae", metavar="RUN_DIR_OR_CHECKPOINT", default=None,
                    help="do not train: evaluate an npvae checkpoint with this evaluator")
    ap.add_argument("--check-against-npvae", action="store_true",
                    help="do not train: take a few float64 steps from npvae's initial weights "
                         "with shared noise in both implementations and print the differences")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x_train, x_test = load_fashion_mnist(args.data_dir)
    if args.check_against_npvae:
        return check_against_npvae(x_train.numpy(), args)

    if args.evaluate_npvae:
        p = load_npvae_params(args.evaluate_npvae)
        source = f"npvae checkpoint {args.evaluate_npvae}"
    else:
        p = train(args, x_train, x_test)
        source = "torch reference"
    t0 = time.perf_counter()
    elbo, rec, kl = evaluate(p, x_test, torch.Generator().manual_seed(12345),
                             n_samples=args.eval_samples)
    result = dict(source=source, eval_samples=args.eval_samples, test_elbo=elbo,
                  test_rec=rec, test_kl=kl)
    if not args.evaluate_npvae:
        result.update(seed=args.seed, epochs=args.epochs)
    print(f"final test ELBO ({args.eval_samples} draws per image, {x_test.shape[0]} images): "
          f"{elbo:.3f} (rec {rec:.2f}, KL {kl:.2f}) [{time.perf_counter() - t0:.1f} s]")
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
