"""EXPERIMENT (issue 8): what a compiled, one-pass optimizer update would buy.

Not part of the library or the test suite; nothing in npvae/ is changed (the
fused update is swapped in with monkeypatching while the script runs), and
npvae does not depend on numba.  The question it answers for the team: issue
8's proposal was "restate the targets, or allow an accelerator for the
optimizer and the element-wise passes"; this measures the optimizer half of
that, the largest non-matrix cost of a step at M = 100.

    pip install numba          # not a dependency of npvae
    python benchmarks/experiments/fused_optimizer.py [--configs paper pytorch-example]
                                                     [--reps 9] [--threads 2]

npvae's Adagrad update is seven NumPy passes over the parameters (Adam's is
twelve), each on one core.  The fused versions below do the same arithmetic
in the same order, one element at a time, in one pass, compiled by numba
(single-threaded: OpenBLAS's spin-waiting worker holds the other core right
after a matrix product, see split_ops.py).  The script first checks that the
fused update gives bit-identical parameters and state to npvae.optim (float32
and float64, several steps), then times three tasks per configuration,
round-robin with a pause before each: npvae as it is, npvae with the fused
update, and the PyTorch twin (from bench.py) if PyTorch is installed.

``error_model="numpy"`` matters: numba's default ("python") tests every
division for a zero divisor, which keeps the loop from being vectorized
(1.42 ms against 0.09 ms for the paper model's Adagrad update, measured).

RESULT (session 6, 2026-12-06, 2-vCPU AMD EPYC (Zen 5) VM, OpenBLAS 0.3.31,
NumPy 2.4.6, numba 0.68.1, PyTorch 2.13 CPU, float32, 2 threads): see the
numbers under "Session 6" in benchmarks/README.md.
"""
import os
import sys


def _arg(name, default):
    for i, a in enumerate(sys.argv):
        if a == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return default


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _arg("--threads", "2")   # before NumPy loads its BLAS

import argparse          # noqa: E402
import time              # noqa: E402

import numpy as np       # noqa: E402

try:
    import numba         # noqa: E402
except ImportError:
    sys.exit("this experiment needs numba: pip install numba")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import bench                                  # noqa: E402  (sets BLAS threads too)
from npvae import optim                       # noqa: E402


@numba.njit(cache=True, error_model="numpy")
def adagrad_fused(p, g, G, lr, eps):
    """npvae.optim.Adagrad._update in one pass: (9.5), (9.6), same order."""
    for i in range(p.size):
        gi = g[i]
        Gi = G[i] + gi * gi                                    # (9.5)
        G[i] = Gi
        p[i] -= (gi / (np.sqrt(Gi) + eps)) * lr                # (9.6)


@numba.njit(cache=True, error_model="numpy")
def adam_fused(p, g, m, v, b1, one_minus_b1, b2, one_minus_b2, eps_c2, step):
    """npvae.optim.Adam._update in one pass: (9.7)-(9.9), same order."""
    for i in range(p.size):
        gi = g[i]
        mi = m[i] * b1 + gi * one_minus_b1                     # (9.7)
        vi = v[i] * b2 + (gi * gi) * one_minus_b2
        m[i] = mi
        v[i] = vi
        p[i] -= (mi / (np.sqrt(vi) + eps_c2)) * step           # (9.8), (9.9) folded


MODE = {"fused": False}
_plain = optim.Optimizer._update_blocks


def update_blocks(self, p, g, slots):
    """The fused update when MODE says so (1-D flat arrays, no weight decay)."""
    if not MODE["fused"] or p.ndim != 1 or self.weight_decay:
        return _plain(self, p, g, slots)
    c = p.dtype.type                  # scalars in the array's dtype, as NumPy casts them
    if isinstance(self, optim.Adagrad):
        (G,) = slots
        adagrad_fused(p, g, G, c(self.lr), c(self.eps))
    elif isinstance(self, optim.Adam):
        m, v = slots
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        adam_fused(p, g, m, v, c(self.beta1), c(1.0 - self.beta1), c(self.beta2),
                   c(1.0 - self.beta2), c(self.eps * c2 ** 0.5),
                   c(self.lr * c2 ** 0.5 / c1))
    else:
        return _plain(self, p, g, slots)


optim.Optimizer._update_blocks = update_blocks


def check_identical():
    """The fused update must give the very same bits as npvae.optim's."""
    rng = np.random.default_rng(0)
    for name in ("adagrad", "adam"):
        for dt in (np.float32, np.float64):
            n = 3 * optim.BLOCK + 17
            p0 = rng.standard_normal(n).astype(dt)
            a, b = {"w": p0.copy()}, {"w": p0.copy()}
            oa, ob = optim.get(name, a, 0.01), optim.get(name, b, 0.01)
            for _ in range(5):
                g = {"w": rng.standard_normal(n).astype(dt)}
                MODE["fused"] = False
                oa.step(g)
                MODE["fused"] = True
                ob.step(g)
            same = np.array_equal(a["w"], b["w"]) and all(
                np.array_equal(oa.state[s]["w"], ob.state[s]["w"]) for s in oa.slots)
            if not same:
                sys.exit(f"fused {name} {dt.__name__} differs from npvae.optim")
    MODE["fused"] = False
    print("check: fused Adagrad and Adam give bit-identical parameters and state "
          "(float32, float64, 5 steps)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["paper", "pytorch-example", "large-batch"],
                    choices=[c.name for c in bench.CONFIGS if c.kind == "train"
                             and c.optimizer in ("adagrad", "adam")])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--settle", type=float, default=0.3)
    args = ap.parse_args()
    check_identical()
    with_torch = bench.import_torch()
    data, source = bench.load_data(10000, np.random.default_rng(0))
    tasks = []                                     # (config, label, task, fused?)
    for name in args.configs:
        cfg = bench.BY_NAME[name]
        tasks += [(name, "npvae", bench.Task(cfg, data), False),
                  (name, "npvae+fused", bench.Task(cfg, data), True)]
        if with_torch:
            tasks.append((name, "torch", bench.TorchTask(cfg, data), False))
    for _, _, task, fused in tasks:
        MODE["fused"] = fused
        task.n = bench.calibrate(task, args.seconds)
    sec = {(c, lab): [] for c, lab, _, _ in tasks}
    for _ in range(args.reps):
        for c, lab, task, fused in tasks:
            MODE["fused"] = fused
            time.sleep(args.settle)
            t = time.perf_counter()
            task.run(task.n)
            sec[c, lab].append((time.perf_counter() - t) / task.n)
    print(f"{args.threads} thread(s), {args.reps} round-robin repetitions, data: {source}")
    print(f"{'config':16s} {'npvae ex/s':>11s} {'+fused ex/s':>12s} {'fused gain':>11s}"
          + (f" {'torch ex/s':>11s} {'npvae/torch':>12s} {'fused/torch':>12s}" if with_torch else ""))
    for name in args.configs:
        M = bench.BY_NAME[name].M
        a, f = np.array(sec[name, "npvae"]), np.array(sec[name, "npvae+fused"])
        line = f"{name:16s} {M / np.median(a):11,.0f} {M / np.median(f):12,.0f} " \
               f"{np.median(a / f):11.2f}"
        if with_torch:
            t = np.array(sec[name, "torch"])
            line += f" {M / np.median(t):11,.0f} {np.median(t / a):12.2f} {np.median(t / f):12.2f}"
        print(line)
    print("ratios are medians of per-repetition ratios (> 1: the first is faster)")


if __name__ == "__main__":
    main()
