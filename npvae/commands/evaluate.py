"""Evaluate a trained model: test ELBO and importance-sampled log p(x), in nats.

Loads a run directory (its checkpoint.npz) or a checkpoint file, the test
set the run was trained with (or --data), and prints the test ELBO (all test
examples, one sample each) and log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k|x)
with K importance samples on the first --examples test examples, each with
its standard error over examples.
"""
import argparse
import json
import sys
import time

import numpy as np

from npvae import checkpoint as ckpt_io


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" except where it says nothing: a None default (the help
    text says in words what happens) and on/off flags."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def setup_parser(parser):
    """Defaults shown in --help where they mean something, and a bad option
    reported as one line (no usage block) with exit code 2."""
    parser.formatter_class = _HelpFormatter

    def error(message):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
    parser.error = error


def load_data(name, *, root=None, download=False, seed=0, n_train=None, n_test=None,
              dtype="float64", binarize=None):
    """``npvae.data.load`` with the command line's names for its options."""
    import npvae
    return npvae.data.load(name, root=root, download=download, seed=seed, n_train=n_train,
                           n_test=n_test, dtype=dtype, binarize=binarize)


def report(model, x_test, *, n_samples=1000, n_examples=None, seed=0, log=print):
    """Print and return the test ELBO (all of ``x_test``) and the importance-sampled
    log p(x) (K = ``n_samples``, the first ``n_examples`` examples), in nats.

    Returns a dict: test_elbo, test_elbo_se, log_px, log_px_se, eval_samples,
    eval_examples, test_examples, seconds.
    """
    from npvae import evaluate
    rng = np.random.default_rng([seed, 1])
    t0 = time.perf_counter()
    elbo = evaluate.elbo(model, x_test, rng)
    x_is = x_test[:n_examples]
    log(f"estimating log p(x) with K = {n_samples} importance samples on {len(x_is)} test "
        "examples ...")
    # bound memory: at most ~20000 decoded (sample, example) rows at a time
    batch = min(100, len(x_is))
    ll = evaluate.log_likelihood(model, x_is, n_samples=n_samples, rng=rng, batch_size=batch,
                                 chunk=max(1, min(n_samples, 20000 // batch)))
    out = dict(test_elbo=float(np.mean(elbo)), test_elbo_se=_se(elbo),
               log_px=float(np.mean(ll)), log_px_se=_se(ll), eval_samples=int(n_samples),
               eval_examples=int(len(x_is)), test_examples=int(len(x_test)),
               seconds=time.perf_counter() - t0)
    log(f"test ELBO        {out['test_elbo']:10.3f} +- {out['test_elbo_se']:.3f} nats "
        f"({len(x_test)} test examples, 1 sample each)")
    log(f"test log p(x) ~= {out['log_px']:10.3f} +- {out['log_px_se']:.3f} nats "
        f"(importance sampling, K = {n_samples}, {len(x_is)} test examples)")
    return out


def _se(a):
    return float(np.std(a, ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")


def add_arguments(parser):
    setup_parser(parser)
    parser.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory holding checkpoint.npz, or a checkpoint file")
    parser.add_argument("--samples", type=int, default=1000, metavar="K",
                        help="importance samples per example for log p(x)")
    parser.add_argument("--examples", type=int, default=1000, metavar="N",
                        help="test examples for log p(x): the first N (0: all)")
    parser.add_argument("--data", default=None,
                        help="dataset to evaluate on (default: the one the run was trained on)")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="directory holding the dataset's files (default: the run's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")


def run(args):
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.examples < 0:
        raise ValueError(f"--examples must be >= 0, got {args.examples}")
    from npvae import train
    model, ck = ckpt_io.load_model(args.source)
    cli = (ck.train_config or {}).get("cli") or {}
    name = args.data or cli.get("data") or (ck.train_config or {}).get("data")
    if name is None:
        raise ValueError(f"{ck.path} does not say which data it was trained on; give --data")
    same = name == cli.get("data")
    binarize = (ck.train_config or {}).get("binarize")
    data = load_data(name, root=args.root or (cli.get("root") if same else None),
                     seed=cli.get("data_seed", 0) if same else 0,
                     n_test=cli.get("n_test") if same else None,
                     n_train=cli.get("n_train") if same else None,
                     dtype=model.dtype.name)
    x_test = train.prepare_test_set(model.check_x(data.x_test, "test data"), binarize,
                            ck.counters.get("eval_seed", 0))
    print(f"{ck.model_class} from {ck.path} (epoch {ck.counters.get('epoch')}), "
          f"data {data.name}")
    out = report(model, x_test, n_samples=args.samples, n_examples=args.examples or None,
                 seed=args.seed)
    if args.json:
        print(json.dumps(out))
    return 0
