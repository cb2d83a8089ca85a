"""EXPERIMENT (issue 8): the training step's matrix products, NumPy (OpenBLAS)
against PyTorch (MKL), shape by shape, interleaved in one process.

    python benchmarks/experiments/gemm_shapes.py [--M 100] [--threads 2] [--reps 7]

Times the five large products of one training step of the paper's model
(784-500-20, batch M) in the orientation each library's step uses them:
forward x W1 and h Wout, the decoder's dW = h^T dout and dx = dout Wout^T,
and the encoder's dW1 = x^T dh.  Each repetition times every product in both
libraries in turn (round robin, a pause before each so the previous one's
spin-waiting BLAS threads are idle), and the script prints medians in ms and
GFLOP/s.  PyTorch is required.
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--M", type=int, default=100)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--settle", type=float, default=0.2)
args = ap.parse_args()
if args.M < 1 or args.threads < 1 or args.reps < 1 or args.settle < 0:
    sys.exit("--M, --threads and --reps must be >= 1, --settle >= 0")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)    # before NumPy or PyTorch load their BLAS

import time               # noqa: E402

import numpy as np        # noqa: E402

try:
    import torch          # noqa: E402
except ImportError:
    sys.exit("this experiment compares against PyTorch: pip install torch==2.13.0")
torch.set_num_threads(args.threads)

M, D, H = args.M, 784, 500
rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


x, h, dout, dh = r(M, D), r(M, H), r(M, D), r(M, H)
W1, Wout = r(D, H), r(H, D)                 # npvae stores W as (in, out)
gWout, gW1 = np.empty_like(Wout), np.empty_like(W1)
t = {k: torch.from_numpy(v) for k, v in dict(x=x, h=h, dout=dout, dh=dh).items()}
tW1, tWout = torch.from_numpy(W1.T.copy()), torch.from_numpy(Wout.T.copy())   # torch: (out, in)

CASES = {   # name: (numpy, torch), each the product as that library's step makes it
    "forward x W1": (lambda: x @ W1, lambda: t["x"] @ tW1.T),
    "forward h Wout": (lambda: h @ Wout, lambda: t["h"] @ tWout.T),
    "dWout = h^T dout": (lambda: np.matmul(h.T, dout, out=gWout), lambda: t["dout"].T @ t["h"]),
    "dh = dout Wout^T": (lambda: dout @ Wout.T, lambda: t["dout"] @ tWout),
    "dW1 = x^T dh": (lambda: np.matmul(x.T, dh, out=gW1), lambda: t["dh"].T @ t["x"]),
}
FLOP = 2 * M * D * H


def timed(f):
    time.sleep(args.settle)
    for _ in range(5):
        f()
    n = max(20, int(2e9 / FLOP))
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


res = {(k, lib): [] for k in CASES for lib in (0, 1)}
for _ in range(args.reps):
    for k, fs in CASES.items():
        for lib, f in enumerate(fs):
            res[k, lib].append(timed(f))

print(f"M = {M}, {args.threads} thread(s), float32, medians of {args.reps} interleaved repetitions")
print(f"{'product':<20} {'NumPy ms':>9} {'GFLOP/s':>8} {'PyTorch ms':>11} {'GFLOP/s':>8} {'NumPy/PyTorch time':>19}")
tot = [0.0, 0.0]
for k in CASES:
    a, b = np.median(res[k, 0]), np.median(res[k, 1])
    ratio = np.median(np.array(res[k, 0]) / np.array(res[k, 1]))
    tot[0] += a
    tot[1] += b
    print(f"{k:<20} {a * 1e3:9.3f} {FLOP / a / 1e9:8.0f} {b * 1e3:11.3f} {FLOP / b / 1e9:8.0f} {ratio:19.2f}")
print(f"{'all five':<20} {tot[0] * 1e3:9.3f} {5 * FLOP / tot[0] / 1e9:8.0f} {tot[1] * 1e3:11.3f} "
      f"{5 * FLOP / tot[1] / 1e9:8.0f} {tot[0] / tot[1]:19.2f}")
