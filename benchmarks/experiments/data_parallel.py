"""EXPERIMENT (issue 8): data-parallel training steps on 2 cores vs PyTorch eager.

Not part of the library or the test suite; nothing in npvae/ was changed.

    python benchmarks/experiments/data_parallel.py             # all variants, one process each
    python benchmarks/experiments/data_parallel.py --variant a # one variant (what the driver runs)

Variants (the BLAS environment must be set before NumPy loads, so each runs
in its own process, together with its own PyTorch eager twin at 2 threads,
interleaved round-robin, >= 7 repetitions, medians):

- ``baseline``: OpenBLAS 2 threads, the serial step (``estimators.reparam``
  on the whole batch, then ``optim`` on all parameters), as ``bench.py``.
- ``a``: OpenBLAS 1 thread.  The minibatch is split into two halves run
  concurrently by two Python threads, each on its own ``npvae.VAE`` replica
  whose parameter arrays are the *same* arrays as replica 1's (rebound layer
  by layer; each replica keeps its own caches and grads).  The noise is drawn
  for the whole batch in the main thread and split.  The two gradients are
  combined (mean weighted by half sizes) and the optimizer runs on two threads,
  each owning about half of the parameters (enc.* / dec.*), the combination
  fused into each thread's share.
- ``b``: OpenBLAS 2 threads with ``OPENBLAS_THREAD_TIMEOUT=4``; serial
  estimator, the optimizer on two threads as in (a).

Each process also times its own serial step (``serial``) and a GEMM peak
(2000 x 2000 float32; in variant (a) two Python threads each multiply one
half of the rows, i.e. the 2-core peak with 1-thread OpenBLAS).

Correctness check (run before timing): one data-parallel step against the
serial ``reparam`` on the full batch with the same noise.

RESULT: NO.  Neither variant reaches the targets (>= 1.2x PyTorch eager at
M = 100, >= 1.0x at M = 1000).  2-core Xeon VM (1 thread per core), OpenBLAS
0.3.31, NumPy 2.4.6, PyTorch 2.13 CPU at 2 threads, float32, Adagrad; two
runs of this script (9 interleaved repetitions; load average 0.9-1.9, which
is this script's own two busy threads); npvae / PyTorch, medians of paired
repetitions, run 1 / run 2:

    variant                                 paper (M=100)   large-batch (M=1000)
    baseline, serial, 2 BLAS threads        0.84 / 0.93     0.81 / 0.81  (54 / 52 % of peak)
    (a) serial step, 1 BLAS thread          0.71 / 0.68     0.54 / 0.54
    (a) data-parallel, 2 Python threads     0.87 / 0.81     0.93 / 0.94  (70 / 67 % of peak*)
    (b) serial step, THREAD_TIMEOUT=4       0.79 / 0.77     0.69 / 0.70
    (b) threaded optimizer, TIMEOUT=4       0.88 / 0.87     0.73 / 0.76

    examples/s (run 2): baseline 15,869 / 27,072 (PyTorch 16,040 / 32,035);
    (a) 13,966 / 30,788 (PyTorch 16,534 / 32,371); (b) 17,504 / 29,970
    (PyTorch 20,238 / 37,310).  Absolute numbers drift by ~30 % between the
    processes: compare ratios only.  * peak of (a) = one 2000^2 float32 GEMM
    split over two Python threads at 1-thread OpenBLAS (188-207 GFLOP/s, vs
    168-255 GFLOP/s for the 2-thread OpenBLAS GEMM of the other processes).

- (a) helps the large batch (0.81 -> 0.93-0.94, 1.65x its own 1-thread
  step, above 60 % of the 2-core peak) but stays below 1.0x; at M = 100 it
  is no better than the baseline (0.81-0.87 vs 0.84-0.93).  Timed alone
  (1-thread OpenBLAS, M = 100): serial estimator 6.6 ms, one half-batch
  estimator 3.9 ms (per-call overhead does not halve), both halves
  concurrently 4.6-4.9 ms; optimizer serial 1.7 ms, on two threads 1.0 ms,
  with the gradient combination 1.25-1.35 ms.  At M = 1000 one half takes
  20-23 ms alone but 28-31 ms when both run in two threads, and 22-31 ms
  when run as two separate 1-thread processes at once (so mostly not the
  GIL: the two cores slow each other on this memory-heavy work).
- (b) gains 6-8 % over its own serial step (matching the earlier finding),
  but OPENBLAS_THREAD_TIMEOUT=4 costs the serial step itself relative to
  PyTorch (0.77-0.79 vs 0.84-0.93 paper, 0.69-0.70 vs 0.81 large-batch), so
  (b) is at best level with the baseline.
- Correctness: one data-parallel step vs ``estimators.reparam`` on the full
  batch with the same noise: loss rel. diff 0-1.1e-7 (float32) and 2e-16
  (float64); gradients max rel. diff 4.5e-7 (float32), 8.7e-16 (float64).
  Parameters after one Adagrad step differ by up to 1.1e-3 (float32) and
  3.8e-12 (float64) relative to max |param|: the largest differences sit
  where |g| ~ 2e-9 < Adagrad's eps = 1e-8, where the first step
  lr g / (|g| + eps) amplifies the gradients' rounding, so trajectories match
  the serial step only up to rounding amplified this way.

What npvae would need (not done): ``VAE.replicate()`` sharing the parameter
arrays (they are bound in three places: ``Linear.params``, ``MLP.params``,
``VAE.params``; see :func:`replicate`), a ``parallel`` wrapper around an
estimator that draws the noise for the whole batch, splits x and eps, runs
the halves on a thread pool and combines loss and grads, an optimizer step
over key groups on that pool, and ``OPENBLAS_NUM_THREADS=1`` set before NumPy
is imported (a process-level setting the library cannot make itself).  It
breaks for estimators with state across calls (``reinforce`` with the
moving-average ``BaselineState``: two halves would each read b and update
it with their half's mean, racing, instead of one update per step) and for
any estimator whose noise is not an (L, M, J) ``eps`` the wrapper can draw
and split (drawing from ``rng`` inside the threads makes the order of draws,
hence the results, depend on thread scheduling).
"""
import os
import sys


def _variant_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--variant" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--variant="):
            return a.split("=", 1)[1]
    return None


VARIANT_ENV = {
    "baseline": {"OPENBLAS_NUM_THREADS": "2"},
    "a": {"OPENBLAS_NUM_THREADS": "1"},
    "b": {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "4"},
}
_VARIANT = _variant_from_argv(sys.argv)
if _VARIANT in VARIANT_ENV:                      # before numpy (OpenBLAS reads it at load)
    os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
    os.environ.update(VARIANT_ENV[_VARIANT])
    os.environ["OMP_NUM_THREADS"] = "2"          # PyTorch's OpenMP / MKL: 2 threads in all
    os.environ["MKL_NUM_THREADS"] = "2"

import argparse                                  # noqa: E402
import json                                      # noqa: E402
import subprocess                                # noqa: E402
import time                                      # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np                               # noqa: E402

BLAS_ENV = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT")}

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
import npvae                                     # noqa: E402
import bench                                     # noqa: E402  (its env writes come after numpy: no effect)


# ------------------------------------------------------------------ the data-parallel pieces

def linears(model):
    """Every Linear layer of a VAE, in a fixed order."""
    out = []
    for trunk in (model.enc_trunk, model.dec_trunk):
        if trunk.mlp is not None:
            out += trunk.mlp.linears
    out += [model.enc_mu, model.enc_logvar] + [model.dec_heads[k] for k in sorted(model.dec_heads)]
    return out


def replicate(model):
    """A second VAE whose parameters ARE ``model``'s arrays (own caches, own grads).

    What npvae would need as ``model.replicate()``: the parameters are bound in
    three places (Linear.params, MLP.params, VAE.params), all rebound here.
    """
    twin = npvae.VAE(**{k: v for k, v in model.config().items()}, rng=np.random.default_rng(0))
    for mine, theirs in zip(linears(model), linears(twin)):
        for k in ("W", "b"):
            theirs.params[k] = mine.params[k]
    for trunk_m, trunk_t in ((model.enc_trunk, twin.enc_trunk), (model.dec_trunk, twin.dec_trunk)):
        if trunk_t.mlp is not None:
            for k in trunk_t.mlp.params:
                trunk_t.mlp.params[k] = trunk_m.mlp.params[k]
    for k in twin.params:
        twin.params[k] = model.params[k]
    assert all(twin.params[k] is model.params[k] for k in model.params)
    assert all(a.params["W"] is b.params["W"] for a, b in zip(linears(model), linears(twin)))
    return twin


def split_keys(params):
    """Two groups of parameter names of about equal total size (greedy, largest first)."""
    groups, sizes = ([], []), [0, 0]
    for k in sorted(params, key=lambda k: -params[k].size):
        i = int(sizes[1] < sizes[0])
        groups[i].append(k)
        sizes[i] += params[k].size
    return groups


class ThreadedOptimizer:
    """One npvae.optim optimizer per key group, the groups stepped on two threads.

    ``step(g1, g2=None, w=(1, 0))``: grads g = w1 g1 + w2 g2 (combined in place
    into g1, inside each thread's share), then the update.
    """

    def __init__(self, name, params, lr, pool):
        self.groups = split_keys(params)
        self.opts = [bench.make_optimizer(name, {k: params[k] for k in g}, lr)[0]
                     for g in self.groups]
        self.pool = pool

    def _part(self, i, g1, g2, w):
        keys = self.groups[i]
        if g2 is not None:
            for k in keys:
                a, b = g1[k], g2[k]
                if w[0] == w[1]:                      # equal halves: (g1 + g2) / 2
                    a += b
                    a *= w[0]
                else:
                    a *= w[0]
                    b *= w[1]
                    a += b
        self.opts[i].step({k: g1[k] for k in keys})

    def step(self, g1, g2=None, w=(1.0, 0.0)):
        fut = self.pool.submit(self._part, 1, g1, g2, w)
        self._part(0, g1, g2, w)
        fut.result()


def data_parallel_grads(models, x, eps, pool, estimator=npvae.estimators.reparam):
    """Run the estimator on two halves concurrently; return (loss, g1, g2, weights)."""
    M = x.shape[0]
    h = M // 2
    fut = pool.submit(estimator, models[1], x[h:], eps=eps[:, h:])
    loss1, g1 = estimator(models[0], x[:h], eps=eps[:, :h])
    loss2, g2 = fut.result()
    w = (h / M, (M - h) / M)
    return w[0] * loss1 + w[1] * loss2, g1, g2, w


# ------------------------------------------------------------------ timed tasks

class SerialTask(bench.Task):
    impl = "serial"


class DataParallelTask(bench.Task):
    """Variant (a): two half-batches on two replicas, threaded optimizer."""

    impl = "variant"

    def __init__(self, cfg, data, seed=0):
        super().__init__(cfg, data, seed)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.models = (self.model, replicate(self.model))
        self.topt = ThreadedOptimizer(cfg.optimizer, self.model.params, cfg.lr, self.pool)

    def _unit(self, x, step=True):
        if not hasattr(self, "topt"):     # FLOP count in Task.__init__: same GEMMs as serial
            return super()._unit(x, step)
        eps = self.rng.standard_normal((self.cfg.L, x.shape[0], self.model.z_dim)).astype(self.dtype)
        _, g1, g2, w = data_parallel_grads(self.models, x, eps, self.pool)
        if step:
            self.topt.step(g1, g2, w)


class ThreadedOptTask(bench.Task):
    """Variant (b): serial estimator, threaded optimizer."""

    impl = "variant"

    def __init__(self, cfg, data, seed=0):
        super().__init__(cfg, data, seed)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.topt = ThreadedOptimizer(cfg.optimizer, self.model.params, cfg.lr, self.pool)

    def _unit(self, x, step=True):
        _, grads = self.estimator(self.model, x, rng=self.rng, n_samples=self.cfg.L)
        if step and hasattr(self, "topt"):
            self.topt.step(grads)


class PeakTask:
    """2000 x 2000 float32 GEMM; split over two Python threads when ``split``."""

    impl = "peak"

    def __init__(self, split, n=2000):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((n, n)).astype(np.float32)
        self.b = rng.standard_normal((n, n)).astype(np.float32)
        self.c = np.empty((n, n), np.float32)
        self.flops, self.examples, self.split, self.h = 2 * n ** 3, 0, split, n // 2
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.cfg = bench.Config("gemm-f32", "peak", kind="gemm", M=n)

    def _half(self, s):
        np.matmul(self.a[s], self.b, out=self.c[s])

    def run(self, n):
        for _ in range(n):
            if self.split:
                fut = self.pool.submit(self._half, slice(self.h, None))
                self._half(slice(0, self.h))
                fut.result()
            else:
                np.matmul(self.a, self.b, out=self.c)


# ------------------------------------------------------------------ correctness

def check_equal_to_serial(dtype, M=100, seed=1):
    """Max relative difference (over keys) of data-parallel vs serial grads, loss,
    and params after one Adagrad step; same noise."""
    cfg = dict(x_dim=784, z_dim=20, hidden=(500,), activation="tanh", dtype=dtype)
    data_rng = np.random.default_rng(seed)
    x = (data_rng.random((M, 784)) < 0.3).astype(dtype)
    eps = data_rng.standard_normal((1, M, 20)).astype(dtype)
    ser = npvae.VAE(**cfg, rng=np.random.default_rng(seed))
    par = npvae.VAE(**cfg, rng=np.random.default_rng(seed))
    with ThreadPoolExecutor(max_workers=1) as pool:
        models = (par, replicate(par))
        loss_p, g1, g2, w = data_parallel_grads(models, x, eps, pool)
        loss_s, gs = npvae.estimators.reparam(ser, x, eps=eps)
        rel = lambda a, b: float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))  # noqa: E731
        gp = {k: w[0] * g1[k] + w[1] * g2[k] for k in g1}
        grad_err = max(rel(gp[k], gs[k]) for k in gs)
        topt = ThreadedOptimizer("adagrad", par.params, 0.02, pool)
        topt.step(g1, g2, w)
        sopt = npvae.optim.get("adagrad", ser.params, lr=0.02)
        sopt.step(gs)
        param_err = max(rel(par.params[k], ser.params[k]) for k in ser.params)
        shared = all(models[1].params[k] is par.params[k] for k in par.params)
    return dict(dtype=np.dtype(dtype).name, loss_rel=abs(loss_p - loss_s) / abs(loss_s),
                grad_rel=grad_err, param_rel_after_step=param_err, replica_shares_params=shared)


# ------------------------------------------------------------------ one variant, one process

def run_variant(variant, names, reps, target):
    import torch
    import torch_twin
    torch.set_num_threads(2)
    bench.torch, bench.torch_twin = torch, torch_twin
    checks = [check_equal_to_serial(np.float32), check_equal_to_serial(np.float64)]
    data, _ = bench.load_data(10000, np.random.default_rng(0))
    tasks = [PeakTask(split=(variant == "a"))]
    for name in names:
        cfg = bench.BY_NAME[name]
        tasks.append(SerialTask(cfg, data))
        if variant == "a":
            tasks.append(DataParallelTask(cfg, data))
        elif variant == "b":
            tasks.append(ThreadedOptTask(cfg, data))
        tasks.append(bench.TorchTask(cfg, data))
    for t in tasks:
        t.n = bench.calibrate(t, target)
    load_before = bench.load_average()
    times = {(t.cfg.name, t.impl): [] for t in tasks}
    for _ in range(reps):
        for t in tasks:
            start = time.perf_counter()
            t.run(t.n)
            times[t.cfg.name, t.impl].append((time.perf_counter() - start) / t.n)
    peak = tasks[0].flops / np.median(times["gemm-f32", "peak"])
    rows = {}
    for t in tasks[1:]:
        if t.impl == "torch":
            continue
        sec = np.asarray(times[t.cfg.name, t.impl])
        tsec = np.asarray(times[t.cfg.name, "torch"])
        rows[f"{t.cfg.name}/{t.impl}"] = dict(
            examples_per_s=float(np.median(t.examples / sec)),
            torch_examples_per_s=float(np.median(t.examples / tsec)),
            ratio_vs_torch=float(np.median(tsec / sec)),
            ratio_iqr=[float(q) for q in np.percentile(tsec / sec, [25, 75])],
            fraction_of_peak=float(t.flops / np.median(sec) / peak),
            ms_per_step=float(1e3 * np.median(sec)))
    return dict(variant=variant, env=BLAS_ENV,
                reps=reps, load_before=load_before, load_after=bench.load_average(),
                peak_gflops=peak / 1e9, checks=checks, rows=rows)


def table(results):
    lines = ["| variant | config | step | npvae ex/s | PyTorch ex/s | npvae / PyTorch [IQR] "
             "| % of peak | load |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        load = f"{r['load_before'][0]:.1f}->{r['load_after'][0]:.1f}"
        for key, row in r["rows"].items():
            cfg, impl = key.split("/")
            lines.append(
                f"| {r['variant']} (peak {r['peak_gflops']:.0f} GF/s) | {cfg} | {impl} "
                f"| {row['examples_per_s']:,.0f} | {row['torch_examples_per_s']:,.0f} "
                f"| {row['ratio_vs_torch']:.2f} [{row['ratio_iqr'][0]:.2f}-{row['ratio_iqr'][1]:.2f}] "
                f"| {100 * row['fraction_of_peak']:.0f} | {load} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANT_ENV), default=None,
                   help="run one variant in this process (default: all, one subprocess each)")
    p.add_argument("--configs", nargs="+", default=["paper", "large-batch"])
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--out", default=None, help="write all results as JSON here")
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.configs, args.reps, args.seconds)))
        return 0
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    results = []
    for v in ("baseline", "a", "b"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--variant", v,
                              "--configs", *args.configs, "--reps", str(args.reps),
                              "--seconds", str(args.seconds)],
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        for c in results[-1]["checks"]:
            print(v, "check vs serial:", c)
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
