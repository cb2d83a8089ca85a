"""EXPERIMENT (issue 8): let OpenBLAS's idle worker sleep at once, so that a
second Python thread can take half of the optimizer update.

    python benchmarks/experiments/thread_timeout.py [--config paper|example] [--M 100] [--rounds 3]

Not part of the library or the test suite; nothing in npvae/ is changed.

Background (``split_ops.py``): after a matrix product OpenBLAS's worker
thread spin-waits on the second core, so a second Python thread started then
lands on the main thread's core and the two halves of the update run one after
the other.  OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` (2^N cycles of spinning
before the worker sleeps, N from 4 to 30, default 28) when it is loaded.  With
N = 4 the worker sleeps almost at once and the second core is free; the price
is waking the worker at every matrix product.

Each round starts one child process per timeout setting (the variable must be
set before NumPy loads OpenBLAS), alternating, so that the machine's drift
hits them alike.  In each child: the serial step (OpenBLAS at 2 threads, the
optimizer on the caller's thread) and the step whose flat optimizer update
runs in two halves on two Python threads, paired repetitions in one process.

RESULT: NO.  2-vCPU Xeon (Sapphire Rapids) VM, OpenBLAS 0.3.31, NumPy 2.4.6,
float32, 2 threads, session 4 (2026-11-22), medians over the rounds:

    paper, M = 100 (5 rounds)     serial step   optimizer halves   halves / serial (paired)
    default timeout (28)          6.86 ms       7.07 ms            0.97
    OPENBLAS_THREAD_TIMEOUT=4     7.31 ms       6.77 ms            1.09

With the worker asleep the two halves do run at once, but waking it for each
of the step's matrix products costs about what they gain: the best variant
(6.77 ms) against the plain serial step (6.86 ms) is within the noise.  The
variable must also be set before NumPy is imported, which a library cannot
do for its users.
"""
import argparse
import os
import subprocess
import sys

CHILD = "NPVAE_THREAD_TIMEOUT_CHILD"


def child(config, M, reps):
    import statistics
    import threading
    import time

    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    import npvae
    from npvae import estimators, optim

    serial_blocks = optim.Optimizer._update_blocks

    class Worker:
        """One persistent thread; ``both(f, g)`` runs f there and g here."""

        def __init__(self):
            self.go, self.done = threading.Event(), threading.Event()
            self.task = None
            threading.Thread(target=self._loop, daemon=True).start()

        def _loop(self):
            while True:
                self.go.wait()
                self.go.clear()
                self.task()
                self.done.set()

        def both(self, there, here):
            self.task = there
            self.go.set()
            here()
            self.done.wait()
            self.done.clear()

    worker = Worker()

    def halves(self, p, g, slots):
        """The flat update in two halves of whole blocks, each with its own scratch."""
        if p.ndim != 1 or p.size < 4 * optim.BLOCK or self.weight_decay:
            return serial_blocks(self, p, g, slots)
        if getattr(self, "_tmp_all", None) is None or self._tmp_all.size != p.size:
            self._tmp_all = np.empty_like(p)
        t, h = self._tmp_all, (p.size // 2 // optim.BLOCK) * optim.BLOCK

        def run(lo, hi):
            for i in range(lo, hi, optim.BLOCK):
                b = slice(i, min(i + optim.BLOCK, hi))
                self._update(p[b], g[b], tuple(a[b] for a in slots), t[b])
        worker.both(lambda: run(0, h), lambda: run(h, p.size))

    rng = np.random.default_rng(0)
    dt = np.float32
    if config == "paper":
        model = npvae.VAE(784, 20, hidden=(500,), rng=rng, dtype=dt)
        opt = optim.get("adagrad", model.params, 0.01)
    else:
        model = npvae.VAE(784, 20, hidden=(400,), activation="relu", init="he", rng=rng, dtype=dt)
        opt = optim.get("adam", model.params, 1e-3)
    x = (rng.random((M, 784)) < 0.3).astype(dt)

    def step():
        _, g = estimators.reparam(model, x, rng=rng, copy=False)
        opt.step(g)

    n = max(5, 20000 // M)
    times = {"serial": [], "halves": []}
    for _ in range(reps):
        for mode, blocks in (("serial", serial_blocks), ("halves", halves)):
            optim.Optimizer._update_blocks = blocks
            time.sleep(0.3)
            step()
            t = time.perf_counter()
            for _ in range(n):
                step()
            times[mode].append((time.perf_counter() - t) / n * 1e3)
    ratio = statistics.median(a / b for a, b in zip(times["serial"], times["halves"]))
    print(f"{statistics.median(times['serial']):.2f} {statistics.median(times['halves']):.2f} "
          f"{ratio:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["paper", "example"], default="paper")
    ap.add_argument("--M", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7, help="paired repetitions per child")
    args = ap.parse_args()
    if os.environ.get(CHILD):
        return child(args.config, args.M, args.reps)
    if args.M < 1 or args.rounds < 1 or args.reps < 1:
        sys.exit("--M, --rounds and --reps must be >= 1")
    settings = ["default", "4"]
    rows = {s: [] for s in settings}
    for r in range(args.rounds):
        for s in settings:
            env = dict(os.environ, OPENBLAS_NUM_THREADS="2", **{CHILD: "1"})
            env.pop("OPENBLAS_THREAD_TIMEOUT", None)
            if s != "default":
                env["OPENBLAS_THREAD_TIMEOUT"] = s
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--config", args.config,
                                  "--M", str(args.M), "--reps", str(args.reps)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            rows[s].append([float(v) for v in out.split()])
            print(f"round {r + 1}, OPENBLAS_THREAD_TIMEOUT={s}: serial {rows[s][-1][0]:.2f} ms, "
                  f"halves {rows[s][-1][1]:.2f} ms, halves speed-up {rows[s][-1][2]:.2f}", flush=True)
    print(f"\n{args.config}, M = {args.M}, float32, OpenBLAS at 2 threads; medians over "
          f"{args.rounds} rounds (each a child process of {args.reps} paired repetitions)")
    for s in settings:
        serial, halves, ratio = (sorted(c)[len(c) // 2] for c in zip(*rows[s]))
        print(f"  OPENBLAS_THREAD_TIMEOUT={s:8s} serial {serial:.2f} ms  halves {halves:.2f} ms  "
              f"halves speed-up {ratio:.2f}")


if __name__ == "__main__":
    main()
