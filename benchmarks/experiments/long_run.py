"""EXPERIMENT (issue 8): training speed over a long run, where Adam's state
turns subnormal.

    python benchmarks/experiments/long_run.py [--steps 3000] [--window 250] [--threads 2] [--no-torch]

Trains the ``pytorch-example`` configuration (784-400-20 ReLU, Adam, M = 128,
float32) on the benchmark's data (glyphs thresholded at 0.5, as ``bench.py``)
with several trainers side by side, and prints each one's ms per step in
consecutive windows of steps.  The trainers take turns window by window, so
the machine's drift hits all alike:

- ``npvae``: the library as it is (subnormal optimizer state set to zero
  every ``npvae.optim.FLUSH_EVERY`` steps, eq. 9.12);
- ``npvae, no flush``: the same with the flush switched off;
- ``torch``: the PyTorch twin of ``bench.py`` (if PyTorch is installed);
- ``torch, flush denormals``: the same after ``torch.set_flush_denormal(True)``,
  which switches the CPU to flush-to-zero for that process's PyTorch work
  (it is set for the PyTorch windows only and reset after each).

Where a gradient entry is exactly zero at every step (pixels that are 0 in
every image, dead ReLU units), Adam's first moment decays into the subnormal
range after ~750 steps and stays there (derivations/09, section 9.7).

RESULT (2-vCPU Xeon VM, OpenBLAS 0.3.31, NumPy 2.4.6, PyTorch 2.13 CPU,
2 threads, session 4): see ``benchmarks/README.md``.
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--window", type=int, default=250)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--no-torch", action="store_true")
args = ap.parse_args()
if args.steps < 1 or args.window < 1 or args.threads < 1:
    sys.exit("--steps, --window and --threads must be >= 1")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)    # before NumPy or PyTorch load their BLAS

import time                                # noqa: E402

import numpy as np                         # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", ".."), os.path.join(HERE, "..")]
import npvae                               # noqa: E402
from npvae import estimators, optim       # noqa: E402

torch = torch_twin = None
if not args.no_torch:
    try:
        import torch
        import torch_twin
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

M, LR = 128, 1e-3
rng = np.random.default_rng(0)
try:
    X = (npvae.data.load("glyphs").x_train > 0.5).astype(np.float32)
    source = "glyphs thresholded at 0.5"
except Exception as err:                   # no font for the glyphs: random binary images
    X = (rng.random((10 * M, 784)) < 0.3).astype(np.float32)
    source = f"random binary images ({type(err).__name__})"
batches = [X[i:i + M] for i in range(0, X.shape[0] - M + 1, M)][:50]


def new_model():
    return npvae.VAE(784, 20, hidden=(400,), activation="relu", init="he",
                     rng=np.random.default_rng(0), dtype=np.float32)


class NpvaeTrainer:
    def __init__(self, flush):
        self.model = new_model()
        self.opt = optim.get("adam", self.model.params, lr=LR)
        self.flush, self.rng, self.i = flush, np.random.default_rng(1), 0

    def run(self, n):
        saved = optim.FLUSH_EVERY
        optim.FLUSH_EVERY = saved if self.flush else 2 ** 62
        try:
            for _ in range(n):
                x = batches[self.i % len(batches)]
                self.i += 1
                _, g = estimators.reparam(self.model, x, rng=self.rng, copy=False)
                self.opt.step(g)
        finally:
            optim.FLUSH_EVERY = saved

    def subnormal(self):
        m = self.opt.state["m"]
        return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))
                   for a in m.values())


class TorchTrainer:
    def __init__(self, flush):
        self.t = torch_twin.TorchTrainer(new_model(), "adam", LR, 1, seed=1)
        self.tb = [self.t.to_tensor(b) for b in batches]
        self.flush, self.i = flush, 0

    def run(self, n):
        torch.set_flush_denormal(self.flush)
        try:
            for _ in range(n):
                self.t.step(self.tb[self.i % len(self.tb)])
                self.i += 1
        finally:
            torch.set_flush_denormal(False)

    def subnormal(self):
        tiny = np.finfo(np.float32).tiny
        return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
                   for a in (s["exp_avg"].numpy() for s in self.t.opt.state.values()))


trainers = {"npvae": NpvaeTrainer(True), "npvae, no flush": NpvaeTrainer(False)}
if torch is not None:
    trainers["torch"] = TorchTrainer(False)
    trainers["torch, flush denormals"] = TorchTrainer(True)

print(f"pytorch-example (784-400-20 ReLU, Adam, M = {M}, float32), {args.threads} thread(s), "
      f"data: {source}; ms per step in windows of {args.window} steps")
print("steps".rjust(11) + "".join(f"{name:>24s}" for name in trainers))
rows = []
done = 0
while done < args.steps:
    n = min(args.window, args.steps - done)
    row = []
    for tr in trainers.values():
        time.sleep(0.2)                       # the previous trainer's spinning threads go idle
        t = time.perf_counter()
        tr.run(n)
        row.append((time.perf_counter() - t) / n * 1e3)
    done += n
    rows.append(row)
    print(f"{done - n + 1:5d}-{done:<5d}" + "".join(f"{v:24.2f}" for v in row), flush=True)
print("subnormal entries of the first moment at the end:"
      + "".join(f"  {name}: {tr.subnormal()}" for name, tr in trainers.items()))
first, last = np.array(rows[0]), np.array(rows[-1])
print("last window / first window:" + "".join(f"  {name}: {r:.2f}"
                                              for name, r in zip(trainers, last / first)))
if torch is not None:
    print(f"npvae / torch speed, first window {first[2] / first[0]:.2f}, "
          f"last window {last[2] / last[0]:.2f}")
