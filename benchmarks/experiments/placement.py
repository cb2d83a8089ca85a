"""EXPERIMENT (issue 8): the paper step's time against how far apart the vCPUs are.

Not part of the library or the test suite.  Build the ping-pong tool first:

    gcc -O2 -pthread benchmarks/experiments/pingpong.c -o /tmp/pingpong
    python benchmarks/experiments/placement.py [--pingpong /tmp/pingpong] [--reps 80]

Each repetition times 200 training steps of the ``paper`` configuration
(2 threads, float32), split into the layers' forward and backward calls and
the optimizer step, then runs the ping-pong tool once (ns per round trip of
one cache line between CPU 0 and CPU 1).  It prints one line per repetition
and, at the end, the median step time of the repetitions with a round trip
above and below ``--far`` ns.

RESULT (session 6, 2026-12-06, 2-vCPU AMD EPYC VM): over 80 repetitions the
step took 2.62-3.02 ms (optimizer 0.54-0.64 ms) whenever the round trip was
140-260 ns, and 3.32-3.86 ms (optimizer 0.82-0.98 ms) when it was 615-660 ns
(11 repetitions, all in one stretch: the hypervisor moved the vCPUs apart
while the process ran).  The memory-bound optimizer slows most, the large
2000 x 2000 product not at all.
"""
import argparse
import collections
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import numpy as np           # noqa: E402

import bench                 # noqa: E402
from npvae import nn, optim  # noqa: E402


def timed(acc, owner, name, label):
    """Wrap owner.name so that its run time is added to acc[label]."""
    f = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] += time.perf_counter() - t
    setattr(owner, name, wrapper)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pingpong", default="/tmp/pingpong")
    ap.add_argument("--reps", type=int, default=80)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--far", type=float, default=400.0)
    args = ap.parse_args()
    if not os.access(args.pingpong, os.X_OK):
        sys.exit(f"{args.pingpong} is not an executable: build it (see the docstring)")
    acc = collections.defaultdict(float)
    timed(acc, nn.Linear, "forward", "forward")
    timed(acc, nn.Linear, "backward", "backward")
    timed(acc, optim.Optimizer, "step", "optimizer")
    data, _ = bench.load_data(10000, np.random.default_rng(0))
    task = bench.Task(bench.BY_NAME["paper"], data)
    task.run(20)
    rows = []
    for _ in range(args.reps):
        time.sleep(0.3)
        acc.clear()
        t = time.perf_counter()
        task.run(args.steps)
        step = (time.perf_counter() - t) / args.steps * 1e3
        out = subprocess.run([args.pingpong], capture_output=True, text=True, check=True)
        ns = float(out.stdout.split()[0])
        rows.append((step, ns))
        print(f"step {step:.2f} ms  " + "  ".join(
            f"{k} {v / args.steps * 1e3:.2f}" for k, v in acc.items())
            + f"  round trip {ns:.0f} ns", flush=True)
    rows = np.array(rows)
    far = rows[:, 1] > args.far
    for name, sel in (("near", ~far), ("far", far)):
        if sel.any():
            print(f"{name}: {sel.sum()} repetitions, median step {np.median(rows[sel, 0]):.2f} ms")


if __name__ == "__main__":
    main()
