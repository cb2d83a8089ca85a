"""Training-speed benchmark of npvae, against PyTorch eager when it is installed.

    python benchmarks/bench.py [--quick] [--configs paper large-batch ...] [--threads 2]
                               [--reps 7] [--out benchmarks/results] [--memory]

Everything runs in one process and the configurations are interleaved
round-robin (repetition r of every configuration, then repetition r + 1, ...),
so the machine's drift hits all of them alike: compare ratios taken within one
run, never absolute numbers across runs.  For each configuration it prints the
training throughput in examples/s (median and interquartile range over the
repetitions), the matrix-multiply FLOPs of one step (counted from the layer
sizes as the step runs: forward, plus dW of every layer and dx of every layer
except the one reading the data), the GEMM rate this gives, and its fraction
of the machine's GEMM peak (a 2000 x 2000 matrix product timed in the same
round-robin).  With PyTorch installed the identical model (same sizes, initial
weights, data, estimator, optimizer and learning rate) also runs in PyTorch
eager mode and the ratio npvae / PyTorch is printed.

One training step = the estimator call (noise draw, forward, backward; with
``copy=False``, so the gradients are not copied, as in ``npvae.train.fit``) +
the optimizer step.  Not timed: the minibatch gather, binarization and the
per-step finiteness check that ``fit`` adds, and data loading (batches are
prepared before the clock starts).  Before each timed repetition the script
sleeps ``--settle`` seconds so that the previous task's spin-waiting BLAS
threads are idle (see the README).

``--memory`` instead measures the resident set size (RSS) after 1k and 10k
training steps of the ``paper`` configuration, and the peak RSS added by
``evaluate.log_likelihood`` with K = 1000.

Results go to ``<out>/bench-<time>.json`` and ``<out>/bench-<time>.md``.
"""
import os
import sys


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


# BLAS reads its thread count when it is loaded: set it before numpy is imported.
_THREADS = _threads_from_argv(sys.argv)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import argparse          # noqa: E402
import inspect           # noqa: E402
import json              # noqa: E402
import platform          # noqa: E402
import resource          # noqa: E402
import time              # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import numpy as np       # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import npvae             # noqa: E402

torch = torch_twin = None          # imported by import_torch() unless --no-torch / --memory


def import_torch():
    """Import PyTorch and the twin model if installed; True on success."""
    global torch, torch_twin
    try:
        import torch as _torch
    except ImportError:
        return False
    _torch.set_num_threads(int(_THREADS))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_twin as _twin
    torch, torch_twin = _torch, _twin
    return True


# ------------------------------------------------------------------ configurations

@dataclass
class Config:
    name: str
    about: str
    hidden: tuple = (500,)
    activation: str = "tanh"
    init: str = "normal"
    optimizer: str = "adagrad"
    lr: float = 0.02
    M: int = 100
    L: int = 1
    dtype: str = "float32"
    estimator: str = "reparam"
    options: dict = field(default_factory=dict)
    kind: str = "train"              # "train", "forward", "evaluate", "gemm"
    K: int = 1000                    # importance samples ("evaluate")
    twin: bool = True                # has a PyTorch twin
    fused: bool = False              # the optimizer's compiled one-pass update (needs numba)
    base: str = ""                   # a fused config's twin: its npvae/PyTorch ratio uses the
                                     # PyTorch times of this config, repetition by repetition


PAPER = dict(hidden=(500,), activation="tanh", optimizer="adagrad", lr=0.02, M=100)
EXAMPLE = dict(hidden=(400,), activation="relu", init="he", optimizer="adam", lr=1e-3, M=128)
CONFIGS = [
    Config("paper", "784-500-20 tanh, Adagrad, M=100, L=1, Bernoulli, estimator B", **PAPER),
    Config("paper-f64", "paper in float64", **PAPER, dtype="float64"),
    Config("pytorch-example", "784-400-20 ReLU, Adam, M=128 (PyTorch's VAE example)", **EXAMPLE),
    Config("pytorch-example-f64", "pytorch-example in float64", **EXAMPLE, dtype="float64"),
    Config("large-batch", "paper at M=1000", **{**PAPER, "M": 1000}),
    Config("large-batch-f64", "paper at M=1000 in float64", **{**PAPER, "M": 1000},
           dtype="float64"),
    Config("paper-fused", "paper, optimizer fused=True (numba)", **PAPER, fused=True,
           twin=False, base="paper"),
    Config("pytorch-example-fused", "pytorch-example, optimizer fused=True (numba)", **EXAMPLE,
           fused=True, twin=False, base="pytorch-example"),
    Config("large-batch-fused", "large-batch, optimizer fused=True (numba)",
           **{**PAPER, "M": 1000}, fused=True, twin=False, base="large-batch"),
    Config("L10", "paper with L=10 samples per example", **PAPER, L=10),
    Config("reinforce", "paper model, REINFORCE estimator (no baseline), L=1", **PAPER,
           estimator="reinforce", twin=False),
    Config("iwae", "paper model, IWAE bound, K=50", **PAPER, estimator="iwae", L=50,
           twin=False),
    Config("forward", "paper model forward pass only (encode + log p(x|z)), M=1000",
           **{**PAPER, "M": 1000}, kind="forward", twin=False),
    Config("evaluate", "evaluate.log_likelihood, K=1000 importance samples, examples/s",
           **{**PAPER, "M": 10}, kind="evaluate", twin=False),
    Config("gemm-f32", "2000x2000 float32 matrix product (the peak)", kind="gemm", M=2000),
    Config("gemm-f64", "2000x2000 float64 matrix product (the peak)", kind="gemm", M=2000,
           dtype="float64"),
]
BY_NAME = {c.name: c for c in CONFIGS}


# ------------------------------------------------------------------ FLOP counting

def count_gemm_flops(fn):
    """Run ``fn()`` once and return the matrix-multiply FLOPs its Linear layers did.

    A (N, in) @ (in, out) product costs 2 N in out.  Forward: one per layer;
    backward: dW = x^T dout per layer, and dx = dout W^T unless the layer
    reads the data (``need_dx=False``), exactly what :class:`npvae.nn.Linear`
    computes.
    """
    Linear = npvae.nn.Linear
    fwd, bwd = Linear.forward, Linear.backward
    total = [0]

    def forward(self, x):
        total[0] += 2 * x.shape[0] * self.params["W"].size
        return fwd(self, x)

    def backward(self, dout, need_dx=True):
        n = 2 * dout.shape[0] * self.params["W"].size
        total[0] += n * (2 if need_dx else 1)
        return bwd(self, dout, need_dx)

    Linear.forward, Linear.backward = forward, backward
    try:
        fn()
    finally:
        Linear.forward, Linear.backward = fwd, bwd
    return total[0]


def paper_flops(D, hidden, J, M, L):
    """The same count in closed form for a one-hidden-layer Bernoulli VAE (estimator B)."""
    (H,) = hidden
    enc = 2 * M * (D * H + 2 * H * J)
    dec = 2 * L * M * (J * H + H * D)
    return 3 * (enc + dec) - 2 * M * D * H          # no dx for the layer reading x


# ------------------------------------------------------------------ tasks

def load_data(n, rng):
    """Binary 28x28 images: glyphs when npvae.data has them, else random with 30% ones."""
    try:
        x = npvae.data.load("glyphs").x_train
        x = (x > 0.5).astype(np.float64)
        source = "glyphs (thresholded at 0.5)"
    except Exception as err:                        # no data module or no font: random
        x = (rng.random((n, 784)) < 0.3).astype(np.float64)
        source = f"random binary (glyphs unavailable: {type(err).__name__})"
    reps = -(-n // x.shape[0])
    return np.concatenate([x] * reps)[:n], source


def make_optimizer(name, params, lr, fused=False):
    """npvae.optim when it exists; else a small local in-place Adagrad/Adam."""
    try:
        optim = npvae.optim
    except (ImportError, AttributeError):
        return _LocalOptimizer(name, params, lr), "local in-place fallback (npvae.optim missing)"
    opt = optim.get(name, params, lr=lr, fused=fused)
    return opt, "npvae.optim" + (" (fused)" if opt.fused else "")


def can_fuse():
    """True if npvae.optim offers fused=True and numba is importable."""
    try:
        npvae.optim.fused_kernels()
        return True
    except (ImportError, AttributeError):
        return False


class _LocalOptimizer:
    def __init__(self, name, params, lr, eps=1e-8, b1=0.9, b2=0.999):
        self.name, self.params, self.lr, self.eps, self.b1, self.b2 = name, params, lr, eps, b1, b2
        self.s = {k: np.zeros_like(p) for k, p in params.items()}
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.tmp = {k: np.empty_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            g, s, t = grads[k], self.s[k], self.tmp[k]
            if self.name == "adagrad":
                np.multiply(g, g, out=t)
                s += t
                np.sqrt(s, out=t)
                t += self.eps
                np.divide(g, t, out=t)
            else:
                m = self.m[k]
                m *= self.b1
                m += (1 - self.b1) * g
                s *= self.b2
                s += (1 - self.b2) * g * g
                np.sqrt(s, out=t)
                t *= 1 / np.sqrt(1 - self.b2 ** self.t)
                t += self.eps
                np.divide(m, t, out=t)
                t *= 1 / (1 - self.b1 ** self.t)
            t *= self.lr
            p -= t


class Task:
    """One thing to time: ``run(n)`` does n units of work; ``examples`` per unit."""

    impl = "npvae"

    def __init__(self, cfg, data, seed=0):
        self.cfg = cfg
        self.dtype = np.dtype(cfg.dtype)
        self.rng = np.random.default_rng(seed)
        self.note = ""
        self.flops = 0
        if cfg.kind == "gemm":
            n = cfg.M
            self.a = self.rng.standard_normal((n, n)).astype(self.dtype)
            self.b = self.rng.standard_normal((n, n)).astype(self.dtype)
            self.c = np.empty((n, n), self.dtype)
            self.flops, self.examples = 2 * n ** 3, 0
            return
        self.model = npvae.VAE(784, 20, hidden=cfg.hidden, activation=cfg.activation,
                               init=cfg.init, rng=np.random.default_rng(seed), dtype=self.dtype)
        n_batches = max(1, min(10, data.shape[0] // cfg.M))
        self.batches = [np.ascontiguousarray(data[i * cfg.M:(i + 1) * cfg.M], dtype=self.dtype)
                        for i in range(n_batches)]
        self.i = 0
        self.examples = cfg.M
        if cfg.kind == "train":
            self.estimator = npvae.estimators.ESTIMATORS[cfg.estimator]
            # the step npvae.train.fit takes: the gradients go straight to the
            # optimizer, uncopied, when the estimator offers that
            if "copy" in inspect.signature(self.estimator).parameters:
                cfg = self.cfg = Config(**{**asdict(cfg), "options": {**cfg.options, "copy": False}})
            self.opt, self.note = make_optimizer(cfg.optimizer, self.model.params, cfg.lr,
                                                 fused=cfg.fused)
        self.flops = count_gemm_flops(lambda: self._unit(self.batches[0], step=False))

    def _unit(self, x, step=True):
        cfg = self.cfg
        if cfg.kind == "train":
            _, grads = self.estimator(self.model, x, rng=self.rng, n_samples=cfg.L, **cfg.options)
            if step:
                self.opt.step(grads)
        elif cfg.kind == "forward":
            self.model.log_importance_weights(x, 1, self.rng)
        elif cfg.kind == "evaluate":
            npvae.evaluate.log_likelihood(self.model, x, n_samples=cfg.K, rng=self.rng)

    def run(self, n):
        if self.cfg.kind == "gemm":
            for _ in range(n):
                np.matmul(self.a, self.b, out=self.c)
            return
        for _ in range(n):
            self._unit(self.batches[self.i])
            self.i = (self.i + 1) % len(self.batches)


class TorchTask(Task):
    """The PyTorch twin of a Task (same model weights, data, optimizer and lr)."""

    impl = "torch"

    def __init__(self, cfg, data, seed=0):
        super().__init__(cfg, data, seed)
        if cfg.kind == "gemm":
            self.ta, self.tb = torch.from_numpy(self.a), torch.from_numpy(self.b)
            self.tc = torch.from_numpy(self.c)
            return
        torch_twin.check_same_loss(
            self.model, self.batches[0][:8],
            self.rng.standard_normal((cfg.L, 8, self.model.z_dim)).astype(self.dtype))
        self.trainer = torch_twin.TorchTrainer(self.model, cfg.optimizer, cfg.lr, cfg.L, seed)
        self.tbatches = [self.trainer.to_tensor(b) for b in self.batches]

    def run(self, n):
        if self.cfg.kind == "gemm":
            for _ in range(n):
                torch.matmul(self.ta, self.tb, out=self.tc)
            return
        for _ in range(n):
            self.trainer.step(self.tbatches[self.i])
            self.i = (self.i + 1) % len(self.tbatches)


# ------------------------------------------------------------------ timing

def calibrate(task, target):
    """Units per repetition so that one repetition takes about ``target`` seconds."""
    task.run(2)                                     # warm-up: caches, allocator, BLAS threads
    n, elapsed = 1, 0.0
    while True:
        t = time.perf_counter()
        task.run(n)
        elapsed = time.perf_counter() - t
        if elapsed >= target / 4 or n >= 4096:
            break
        n *= 2
    return max(1, int(round(n * target / max(elapsed, 1e-9))))


def summarize(values):
    v = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3), min=float(v.min()),
                max=float(v.max()), values=[float(a) for a in v])


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


def benchmark(cfgs, reps, target, with_torch, log=print, settle=0.3):
    data, source = load_data(10000, np.random.default_rng(0))
    tasks = []
    for cfg in cfgs:
        if cfg.kind == "train" and cfg.estimator not in npvae.estimators.ESTIMATORS:
            log(f"skip {cfg.name}: estimator {cfg.estimator!r} is not in "
                f"npvae.estimators.ESTIMATORS")
            continue
        if cfg.fused and not can_fuse():
            log(f"skip {cfg.name}: fused=True needs numba (pip install 'npvae[fast]')")
            continue
        tasks.append(Task(cfg, data))
        if with_torch and cfg.twin:
            tasks.append(TorchTask(cfg, data))
    for t in tasks:
        t.n = calibrate(t, target)
    log(f"{len(tasks)} timed tasks, {reps} interleaved repetitions of ~{target:g} s each; "
        f"load average {load_average()}")
    times = {(t.cfg.name, t.impl): [] for t in tasks}
    cpu = {(t.cfg.name, t.impl): [] for t in tasks}
    for r in range(reps):
        for t in tasks:
            # After a task, its library's idle threads keep spin-waiting for a
            # while (OpenBLAS ~2^28 cycles, OpenMP in PyTorch likewise) and take
            # the other core from the next task, whichever library it is: let
            # them go to sleep first.  Measured here: npvae's paper step ran at
            # ~14k ex/s right after a PyTorch task, ~19k with no PyTorch task.
            time.sleep(settle)
            start, start_cpu = time.perf_counter(), time.process_time()
            t.run(t.n)
            times[t.cfg.name, t.impl].append((time.perf_counter() - start) / t.n)
            cpu[t.cfg.name, t.impl].append((time.process_time() - start_cpu) / t.n)
        log(f"  repetition {r + 1}/{reps} done")
    return tasks, times, cpu, source


def report(tasks, times, cpu):
    """Per-configuration rows: throughput, GEMM rate, fraction of peak, ratio to PyTorch."""
    peak = {}
    for t in tasks:
        if t.cfg.kind == "gemm" and t.impl == "npvae":
            peak[t.cfg.dtype] = t.flops / np.median(times[t.cfg.name, "npvae"])
    rows = []
    for t in tasks:
        if t.impl != "npvae":
            continue
        cfg, sec = t.cfg, np.asarray(times[t.cfg.name, "npvae"])
        # CPU seconds of the whole process: with --threads 1 a load-independent
        # cost measure; with more threads it also counts BLAS/OpenMP spin-waiting
        row = dict(config=cfg.name, about=cfg.about, dtype=cfg.dtype,
                   sec_per_unit=summarize(sec), cpu_sec_per_unit=summarize(cpu[cfg.name, "npvae"]),
                   gflop_per_unit=t.flops / 1e9, note=t.note)
        if cfg.kind == "train" and cfg.estimator == "reparam" and len(cfg.hidden) == 1:
            row["gflop_closed_form"] = paper_flops(784, cfg.hidden, 20, cfg.M, cfg.L) / 1e9
        rate = t.flops / sec
        row["gflops"] = summarize(rate / 1e9)
        if cfg.kind != "gemm":
            eps = t.examples / sec
            row["examples_per_s"] = summarize(eps)
            if cfg.dtype in peak:
                row["fraction_of_peak"] = float(np.median(rate) / peak[cfg.dtype])
        twin = cfg.name if (cfg.name, "torch") in times else cfg.base
        if (twin, "torch") in times:
            tsec = np.asarray(times[twin, "torch"])
            if cfg.kind == "gemm":
                row["torch_gflops"] = summarize(t.flops / tsec / 1e9)
            else:
                row["torch_examples_per_s"] = summarize(t.examples / tsec)
            paired = tsec / sec                     # same repetition: same machine state
            row["ratio_vs_torch"] = float(np.median(paired))
            row["ratio_of_medians"] = float(np.median(tsec) / np.median(sec))
            row["ratio_paired"] = summarize(paired)
            row["torch_cpu_sec_per_unit"] = summarize(cpu[twin, "torch"])
            row["ratio_cpu_time"] = float(np.median(np.asarray(cpu[twin, "torch"])
                                                    / np.asarray(cpu[cfg.name, "npvae"])))
        rows.append(row)
    by = {r["config"]: r for r in rows}
    derived = {}
    if "forward" in by and "evaluate" in by:
        derived["evaluate_gemm_rate_vs_forward"] = (by["evaluate"]["gflops"]["median"]
                                                    / by["forward"]["gflops"]["median"])
    for name in ("paper", "pytorch-example", "large-batch"):
        if name in by and f"{name}-fused" in by:
            derived[f"{name}: fused optimizer speed-up (paired)"] = float(np.median(
                np.asarray(times[name, "npvae"]) / np.asarray(times[f"{name}-fused", "npvae"])))
        if name in by and f"{name}-f64" in by:
            derived[f"{name}: float64 time / float32 time"] = (
                by[f"{name}-f64"]["sec_per_unit"]["median"] / by[name]["sec_per_unit"]["median"])
    return rows, derived


def markdown(rows, derived, meta):
    def fmt(s, digits=0):
        return f"{s['median']:,.{digits}f} [{s['q1']:,.{digits}f}-{s['q3']:,.{digits}f}]"

    lines = [f"npvae benchmark, {meta['time']}, {meta['threads']} thread(s), "
             f"numpy {meta['numpy']}, torch {meta['torch'] or 'not installed'}, "
             f"load average {meta['load_before']} -> {meta['load_after']}",
             "",
             "| config | dtype | npvae ex/s, median [IQR] | PyTorch ex/s | npvae / PyTorch "
             "| same, CPU time | GFLOP/step | GEMM GFLOP/s | % of GEMM peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "examples_per_s" not in r:
            torch_rate = fmt(r["torch_gflops"], 1) + " GFLOP/s" if "torch_gflops" in r else "-"
            ratio = f"{r['ratio_vs_torch']:.2f}" if "ratio_vs_torch" in r else "-"
            cpu_ratio = f"{r['ratio_cpu_time']:.2f}" if "ratio_cpu_time" in r else "-"
            lines.append(f"| {r['config']} | {r['dtype']} | peak: {fmt(r['gflops'], 1)} GFLOP/s "
                         f"| {torch_rate} | {ratio} | {cpu_ratio} | {r['gflop_per_unit']:.1f} "
                         f"| {r['gflops']['median']:.1f} | 100 |")
            continue
        torch_rate = fmt(r["torch_examples_per_s"]) if "torch_examples_per_s" in r else "-"
        ratio = (f"{r['ratio_vs_torch']:.2f} [{r['ratio_paired']['q1']:.2f}-"
                 f"{r['ratio_paired']['q3']:.2f}]" if "ratio_vs_torch" in r else "-")
        frac = f"{100 * r['fraction_of_peak']:.0f}" if "fraction_of_peak" in r else "-"
        cpu_ratio = f"{r['ratio_cpu_time']:.2f}" if "ratio_cpu_time" in r else "-"
        lines.append(f"| {r['config']} | {r['dtype']} | {fmt(r['examples_per_s'])} | {torch_rate} "
                     f"| {ratio} | {cpu_ratio} | {r['gflop_per_unit']:.3f} | {r['gflops']['median']:.1f} "
                     f"| {frac} |")
    lines.append("")
    for k, v in derived.items():
        lines.append(f"- {k}: {v:.2f}")
    notes = sorted({r["note"] for r in rows if r["note"]})
    for n in notes:
        lines.append(f"- optimizer: {n}")
    lines.append(f"- data: {meta['data']}")
    lines.append("- npvae / PyTorch: throughput ratio, the median over repetitions of PyTorch "
                 "time / npvae time measured back to back [IQR]; > 1 means npvae is faster. "
                 "'same, CPU time': the ratio of process CPU time, load-independent with "
                 "--threads 1 (with more threads it counts spin-waiting too). A -fused "
                 "row is compared with its base configuration's PyTorch repetitions.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ memory

def rss_mb():
    """Current resident set size in MB (VmRSS of /proc/self/status), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KB on Linux


def memory(steps=(1000, 10000), eval_examples=100, K=1000, log=print):
    out = {}
    data, _ = load_data(10000, np.random.default_rng(0))
    t = Task(BY_NAME["evaluate"], data)
    x = np.ascontiguousarray(data[:eval_examples], dtype=t.dtype)
    before_peak, before = peak_rss_mb(), rss_mb()
    start = time.perf_counter()
    npvae.evaluate.log_likelihood(t.model, x, n_samples=K, rng=t.rng)
    out["evaluate"] = dict(examples=eval_examples, K=K, rss_before_mb=before,
                           peak_before_mb=before_peak, peak_after_mb=peak_rss_mb(),
                           seconds=time.perf_counter() - start)
    log(f"evaluate.log_likelihood K={K} on {eval_examples} examples: peak RSS "
        f"{before_peak:.0f} -> {peak_rss_mb():.0f} MB (RSS before {before:.0f} MB)")
    for name in ["paper"] + (["paper-fused"] if can_fuse() else []):
        task = Task(BY_NAME[name], data)
        done, marks = 0, {}
        start = time.perf_counter()
        for n in steps:
            task.run(n - done)
            done = n
            marks[n] = rss_mb()
            log(f"{name}: RSS after {n} steps = {marks[n]:.1f} MB "
                f"({time.perf_counter() - start:.0f} s)")
        out["train_rss_mb" if name == "paper" else "fused_train_rss_mb"] = marks
    out["train_peak_rss_mb"] = peak_rss_mb()
    return out


# ------------------------------------------------------------------ main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                   help=f"which configurations (default all): {', '.join(BY_NAME)}")
    p.add_argument("--threads", default="2", help="BLAS / PyTorch threads (default 2)")
    p.add_argument("--reps", type=int, default=7, help="interleaved repetitions (default 7)")
    p.add_argument("--seconds", type=float, default=None,
                   help="target seconds per repetition of each task (default 0.5, quick 0.15)")
    p.add_argument("--quick", action="store_true",
                   help="short repetitions and K=100 for the evaluation")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--memory", action="store_true",
                   help="measure RSS after 1k and 10k steps and evaluation peak RSS instead")
    p.add_argument("--settle", type=float, default=0.3,
                   help="seconds of sleep before each timed repetition, so that the "
                        "previous task's spin-waiting threads go idle (default 0.3)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be >= 1")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    have_torch = not (args.no_torch or args.memory) and import_torch()
    meta = dict(time=stamp, threads=int(args.threads), numpy=np.__version__,
                torch=torch.__version__ if torch is not None else None,
                python=platform.python_version(), machine=platform.machine(),
                cpus=os.cpu_count(), load_before=load_average())
    os.makedirs(args.out, exist_ok=True)
    if args.memory:
        steps = (100, 1000) if args.quick else (1000, 10000)
        result = dict(meta=meta, memory=memory(steps=steps))
        path = os.path.join(args.out, f"memory-{stamp}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {path}")
        return 0
    names = args.configs or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {list(BY_NAME)}")
    cfgs = [BY_NAME[n] for n in names]
    if args.quick:
        cfgs = [Config(**{**asdict(c), "K": 100}) if c.kind == "evaluate" else c for c in cfgs]
    with_torch = have_torch
    if not have_torch and not args.no_torch:
        print("PyTorch is not installed: npvae only (pip install torch for the comparison)")
    target = args.seconds or (0.15 if args.quick else 0.5)
    if not 0 <= args.settle < 60:
        p.error("--settle must be a number of seconds in [0, 60)")
    meta["settle"] = args.settle
    tasks, times, cpu, source = benchmark(cfgs, args.reps, target, with_torch,
                                          settle=args.settle)
    meta["load_after"] = load_average()
    meta["data"] = source
    rows, derived = report(tasks, times, cpu)
    table = markdown(rows, derived, meta)
    print()
    print(table)
    base = os.path.join(args.out, f"bench-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(dict(meta=meta, rows=rows, derived=derived,
                       configs=[asdict(c) for c in cfgs]), f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(table)
    print(f"wrote {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
