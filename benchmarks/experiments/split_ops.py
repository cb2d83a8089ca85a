"""EXPERIMENT (issue 8): the heavy operations of one step split over two threads.

Not part of the library or the test suite; nothing in npvae/ is changed (the
split versions are swapped in with monkeypatching while the script runs).

    python benchmarks/experiments/split_ops.py [--M 100] [--config paper|example] [--reps 9]

Needs threadpoolctl (``pip install threadpoolctl``; not a dependency of npvae).

Idea: OpenBLAS spreads each matrix product over its own threads, but the
element-wise work and the optimizer run on one core, and a second Python
thread cannot help while OpenBLAS's idle worker spin-waits on the other core
(measured in session 2: a two-thread optimizer right after a matrix product
took 1.89 ms against 1.91 ms on one thread; 0.96 ms against 1.84 ms with no
matrix product before it).  So: OpenBLAS at one thread (no spinning workers,
set at run time with threadpoolctl), and one persistent Python worker thread
that takes half of every large operation, the caller doing the other half:

- ``Linear.forward``: the rows of x @ W in two halves;
- ``Linear.backward``: dW = x^T dout and dx = dout W^T as two independent
  products side by side (dW alone in two row blocks when dx is not needed);
- ``Tanh`` forward and backward on arrays of 200k entries or more;
- ``bernoulli_log_prob_and_grad`` on the two halves of the minibatch;
- the optimizer's flat update in two whole halves (not cache blocks).

The GIL is released inside every BLAS call and every large ufunc loop, so the
two halves really run at once; a hand-over costs ~30 us (threading.Event).

Each repetition runs the serial step (OpenBLAS at 2 threads) and then the
split step (OpenBLAS at 1 thread, after 0.25 s for OpenBLAS's workers to stop
spinning) in the same process; the speed-up is serial time / split time of
the pair, median over the repetitions.

RESULT: NO.  2-vCPU Xeon (Sapphire Rapids) VM, OpenBLAS 0.3.31, NumPy 2.4.6,
float32, session 2 (2026-11-22), 7-9 paired repetitions, speed-up [IQR]:

                              optimizer halves in     optimizer halves
                              cache blocks            whole
    paper            M = 100  0.89 [0.76-1.01]        0.82 [0.69-0.95]; 0.98 [0.95-1.05]
    paper            M = 1000 1.05 [0.93-1.08]        1.12 [1.06-1.15]; 1.10 [1.09-1.10]
    pytorch-example  M = 128  0.97 [0.88-1.00]        0.99 [0.98-1.09]; 1.09 [1.06-1.10]

(whole halves: two runs, the second of this file as committed, 5 repetitions.)

Timing each hand-over inside the split step (M = 100, blocked optimizer,
medians): the two halves of x @ W1 took 775 us each against ~1000 us for the
whole product on one thread (1.3x); the optimizer halves 1.67 ms each against
1.93 ms for the whole update on one thread (1.15x: each half is ~90 short
calls, and the two threads queue on the GIL between them); the Bernoulli
halves 360 us against 430 us.  Whole optimizer halves: 1.10-1.23 ms against
1.66-1.75 ms serial in blocks.  At M = 100 the ~8 hand-overs per step
(30-70 us each) and the slower split products outweigh that; at M = 1000 the
step gains ~10%, not the ~30% PyTorch gets from its second thread there.
"""
import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import npvae                                   # noqa: E402
from npvae import distributions as dist        # noqa: E402
from npvae import estimators, nn, optim        # noqa: E402

MIN_SPLIT = 20000          # operations on fewer entries stay on the caller's thread


class Worker:
    """One persistent thread; ``both(f, g)`` runs f there and g here, returns both."""

    def __init__(self):
        self.go, self.done = threading.Event(), threading.Event()
        self.task = self.result = None
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            self.go.wait()
            self.go.clear()
            try:
                self.result = self.task()
            except BaseException as err:           # handed back to the caller
                self.result = err
            self.done.set()

    def both(self, there, here):
        self.task = there
        self.go.set()
        mine = here()
        self.done.wait()
        self.done.clear()
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result, mine


WORKER = Worker()
SERIAL = dict(lin_f=nn.Linear.forward, lin_b=nn.Linear.backward, tanh_f=nn.Tanh.forward,
              tanh_b=nn.Tanh.backward, bern=dist.bernoulli_log_prob_and_grad,
              blocks=optim.Optimizer._update_blocks)


def linear_forward(self, x):
    W, b = self.params["W"], self.params["b"]
    if x.shape[0] < 16 or x.shape[0] * W.shape[1] < MIN_SPLIT:
        return SERIAL["lin_f"](self, x)
    self.cache = x
    out = np.empty((x.shape[0], W.shape[1]), x.dtype)

    def rows(s):
        np.matmul(x[s], W, out=out[s])
        out[s] += b
    h = x.shape[0] // 2
    WORKER.both(lambda: rows(slice(0, h)), lambda: rows(slice(h, None)))
    return out


def linear_backward(self, dout, need_dx=True):
    if dout.size < MIN_SPLIT:
        return SERIAL["lin_b"](self, dout, need_dx)
    x, W, gW = self.cache, self.params["W"], self.grads["W"]
    np.sum(dout, axis=0, out=self.grads["b"])
    if need_dx:
        dx = np.empty((dout.shape[0], W.shape[0]), dout.dtype)
        WORKER.both(lambda: np.matmul(x.T, dout, out=gW), lambda: np.matmul(dout, W.T, out=dx))
        return dx
    r = gW.shape[0] // 2
    WORKER.both(lambda: np.matmul(x[:, :r].T, dout, out=gW[:r]),
                lambda: np.matmul(x[:, r:].T, dout, out=gW[r:]))
    return None


def tanh_forward(self, x):
    if x.size < 10 * MIN_SPLIT:
        return SERIAL["tanh_f"](self, x)
    out, h = np.empty_like(x), x.shape[0] // 2
    WORKER.both(lambda: np.tanh(x[:h], out=out[:h]), lambda: np.tanh(x[h:], out=out[h:]))
    self.cache = out
    return out


def tanh_backward(self, dout):
    out = self.cache
    if out.size < 10 * MIN_SPLIT:
        return SERIAL["tanh_b"](self, dout)
    dx, h = np.empty_like(out), out.shape[0] // 2

    def rows(s):
        d = dx[s]
        np.multiply(out[s], out[s], out=d)
        np.subtract(1, d, out=d)
        d *= dout[s]
    WORKER.both(lambda: rows(slice(0, h)), lambda: rows(slice(h, None)))
    return dx


def bernoulli(x, logits):
    L, M, D = logits.shape
    if M < 16 or logits.size < MIN_SPLIT:
        return SERIAL["bern"](x, logits)
    h = M // 2
    (l1, g1), (l2, g2) = WORKER.both(lambda: SERIAL["bern"](x[:h], logits[:, :h]),
                                     lambda: SERIAL["bern"](x[h:], logits[:, h:]))
    return np.concatenate([l1, l2], axis=1), np.concatenate([g1, g2], axis=1)


def update_blocks(self, p, g, slots):
    if p.ndim != 1 or p.size < 4 * optim.BLOCK or self.weight_decay:
        return SERIAL["blocks"](self, p, g, slots)
    h = p.size // 2
    if getattr(self, "_halves_tmp", None) is None or self._halves_tmp.size != p.size:
        self._halves_tmp = np.empty_like(p)
    t = self._halves_tmp
    # whole halves, not cache blocks: the many short calls of blocked halves
    # queue on the GIL (measured 1.15x for blocked halves against 1.5x whole)
    WORKER.both(lambda: self._update(p[:h], g[:h], tuple(a[:h] for a in slots), t[:h]),
                lambda: self._update(p[h:], g[h:], tuple(a[h:] for a in slots), t[h:]))


def blas_threads(n):
    from threadpoolctl import ThreadpoolController
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        lib.set_num_threads(n)


def serial_mode():
    nn.Linear.forward, nn.Linear.backward = SERIAL["lin_f"], SERIAL["lin_b"]
    nn.Tanh.forward, nn.Tanh.backward = SERIAL["tanh_f"], SERIAL["tanh_b"]
    dist.bernoulli_log_prob_and_grad = SERIAL["bern"]
    optim.Optimizer._update_blocks = SERIAL["blocks"]
    blas_threads(2)


def split_mode():
    nn.Linear.forward, nn.Linear.backward = linear_forward, linear_backward
    nn.Tanh.forward, nn.Tanh.backward = tanh_forward, tanh_backward
    dist.bernoulli_log_prob_and_grad = bernoulli
    optim.Optimizer._update_blocks = update_blocks
    blas_threads(1)
    time.sleep(0.25)                                # OpenBLAS's workers stop spinning


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--M", type=int, default=100)
    ap.add_argument("--config", choices=["paper", "example"], default="paper")
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    M, dt = args.M, np.float32
    X = (rng.random((10 * M, 784)) < 0.3).astype(dt)
    if args.config == "paper":
        model = npvae.VAE(784, 20, hidden=(500,), rng=rng, dtype=dt)
        opt = optim.get("adagrad", model.params, 0.02)
    else:
        model = npvae.VAE(784, 20, hidden=(400,), activation="relu", init="he", rng=rng, dtype=dt)
        opt = optim.get("adam", model.params, 1e-3)

    # the split step must compute the serial step's numbers (to float rounding)
    eps = rng.standard_normal((1, M, 20)).astype(dt)
    serial_mode()
    loss_a, ga = estimators.reparam(model, X[:M], eps=eps)
    split_mode()
    loss_b, gb = estimators.reparam(model, X[:M], eps=eps)
    worst = max(float(np.abs(ga[k] - gb[k]).max() / (np.abs(ga[k]).max() + 1e-30)) for k in ga)
    print(f"check: loss {loss_a:.6f} vs {loss_b:.6f}, largest gradient difference {worst:.1e} "
          "(relative to each array's largest entry)")

    i = [0]

    def step():
        j = i[0] = (i[0] + 1) % 10
        _, g = estimators.reparam(model, X[j * M:(j + 1) * M], rng=rng, copy=False)
        opt.step(g)

    def repetition(n):
        for _ in range(3):
            step()
        t = time.perf_counter()
        for _ in range(n):
            step()
        return (time.perf_counter() - t) / n * 1e3

    n = max(5, int(4000 / M))
    pairs = []
    for _ in range(args.reps):
        serial_mode()
        a = repetition(n)
        split_mode()
        pairs.append((a, repetition(n)))
    pairs = np.array(pairs)
    ratio = pairs[:, 0] / pairs[:, 1]
    print(f"{args.config} M={M}: serial {np.median(pairs[:, 0]):.2f} ms, split "
          f"{np.median(pairs[:, 1]):.2f} ms, speed-up (paired) {np.median(ratio):.2f} "
          f"[{np.percentile(ratio, 25):.2f}-{np.percentile(ratio, 75):.2f}]")


if __name__ == "__main__":
    main()
