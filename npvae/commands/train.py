"""Train a VAE (the paper's Algorithm 1) and write its history, checkpoint and figures.

With no options: the paper's 784-500-20 tanh VAE with a Bernoulli decoder
on the generated `glyphs` digits, its estimator B (reparameterized, analytic
KL), M = 100, L = 1, trained with Adam (lr 0.001) for 25 epochs, which learns
recognizable digits within the two-minute budget (the paper's Adagrad gets
there more slowly: `--optimizer adagrad --lr 0.02`); a line of progress per
epoch; then the test ELBO and the importance-sampled log p(x) in nats.  The run directory gets
config.json, history.csv (rewritten after every epoch), checkpoint.npz (after
every epoch, atomically), summary.json and the figures.  Ctrl-C keeps the
state of the last finished epoch; `--resume RUN_DIR` continues it exactly.
"""
import json
import os
import sys
import time

import numpy as np

from npvae import checkpoint as ckpt_io
from npvae import estimators, optim
from npvae import train as train_mod
from npvae.commands.evaluate import load_data, report, setup_parser

DEFAULTS = dict(data="glyphs", root=None, download=False, n_train=None, n_test=None,
                data_seed=0, epochs=25, out=None, name=None, z_dim=20, hidden="500",
                activation="tanh", likelihood="auto", init="normal", estimator="reparam",
                kl="analytic", baseline="none", samples=1, optimizer="adam", lr=None,
                batch_size=100, beta=1.0, warmup=0, weight_decay="0", binarize="none",
                dtype="float32", seed=0, eval_samples=1000, eval_examples=500,
                checkpoint_every=1, figures=True, resume=None, fused=False)

# learning rates that work for the default model on glyphs (adagrad: the paper's 0.02)
DEFAULT_LR = {"adam": 0.001, "adagrad": 0.02, "sgd": 0.01}

# options that define a run: on --resume they come from the checkpoint, and
# giving a different value is an error (a resumed run is the same run)
_RUN_OPTIONS = ("data", "root", "n_train", "n_test", "data_seed", "z_dim", "hidden",
                "activation", "likelihood", "init", "estimator", "kl", "baseline", "samples",
                "optimizer", "lr", "batch_size", "beta", "warmup", "weight_decay", "binarize",
                "dtype", "seed")
# options a resume may change; left out, they keep the run's values
_OUTPUT_OPTIONS = ("eval_samples", "eval_examples", "checkpoint_every", "figures")


def add_arguments(parser):
    setup_parser(parser)
    d = DEFAULTS
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=d["data"],
                   help="dataset: glyphs (generated offline), fashion-mnist, mnist, frey-faces, "
                        "bars, ppca")
    g.add_argument("--root", default=d["root"], metavar="DIR",
                   help="directory holding the dataset's files (fashion-mnist, mnist, "
                        "frey-faces) (default: the cache, then the usual system places)")
    g.add_argument("--download", action="store_true",
                   help="download missing dataset files into the cache, checked by SHA-256 "
                        "(default: never download)")
    g.add_argument("--n-train", type=int, default=d["n_train"], metavar="N",
                   help="training examples: the size of generated data, or the first N of a "
                        "file dataset (default: the dataset's own size)")
    g.add_argument("--n-test", type=int, default=d["n_test"], metavar="N",
                   help="test examples, likewise (default: the dataset's own size)")
    g.add_argument("--data-seed", type=int, default=d["data_seed"],
                   help="seed of generated data (glyphs, bars, ppca)")
    g.add_argument("--binarize", default=d["binarize"], choices=("none", "threshold", "dynamic"),
                   help="for a Bernoulli decoder: keep grey values as probabilities (none), "
                        "threshold at 0.5 once, or draw x ~ Bernoulli(grey) for every "
                        "minibatch (dynamic)")

    g = parser.add_argument_group("model")
    g.add_argument("--z-dim", type=int, default=d["z_dim"], metavar="J",
                   help="latent size J (2 adds the manifold figure)")
    g.add_argument("--hidden", default=d["hidden"], metavar="H1,H2,...",
                   help="hidden layer sizes of the encoder (the decoder mirrors them); "
                        "'' for none")
    g.add_argument("--activation", default=d["activation"],
                   choices=("tanh", "relu", "sigmoid", "softplus"), help="hidden activation")
    g.add_argument("--likelihood", default=d["likelihood"],
                   choices=("auto", "bernoulli", "gaussian"),
                   help="decoder p(x|z); auto: gaussian for frey-faces and ppca, else bernoulli")
    g.add_argument("--init", default=d["init"], choices=("normal", "glorot", "he"),
                   help="weight init; normal is the paper's N(0, 0.01^2)")
    g.add_argument("--dtype", default=d["dtype"], choices=("float32", "float64"),
                   help="floating-point type of the model and data")

    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d["epochs"],
                   help="total epochs (with --resume: train up to this many)")
    g.add_argument("--estimator", default=d["estimator"], choices=sorted(estimators.ESTIMATORS),
                   help="gradient estimator: reparam is the paper's SGVB")
    g.add_argument("--kl", default=d["kl"], choices=estimators.KL_MODES,
                   help="reparam/reinforce: analytic KL (the paper's estimator B) or Monte "
                        "Carlo (estimator A)")
    g.add_argument("--baseline", default=d["baseline"],
                   choices=("none", "moving-average", "leave-one-out"),
                   help="reinforce only: control variate for the score-function gradient")
    g.add_argument("--samples", type=int, default=d["samples"], metavar="L",
                   help="noise samples per example and step")
    g.add_argument("--optimizer", default=d["optimizer"], choices=sorted(optim.OPTIMIZERS),
                   help="the paper used adagrad (with --lr 0.02 here); adam learns faster "
                        "in a short run")
    g.add_argument("--lr", type=float, default=d["lr"],
                   help="learning rate (default: " + ", ".join(
                       f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], metavar="M",
                   help="minibatch size")
    g.add_argument("--beta", type=float, default=d["beta"],
                   help="weight of the KL term (1 is the ELBO); reparam only")
    g.add_argument("--warmup", type=int, default=d["warmup"], metavar="EPOCHS",
                   help="epochs over which the KL weight rises linearly from 0 to --beta")
    g.add_argument("--weight-decay", default=d["weight_decay"], metavar="W",
                   help="add W * param to each gradient; 'prior' means 1/N, the paper's "
                        "N(0, I) prior on the parameters per example")
    g.add_argument("--seed", type=int, default=d["seed"],
                   help="seed of the initial weights and of all training randomness")
    g.add_argument("--fused", action="store_true", default=d["fused"],
                   help="run the optimizer's update as one compiled pass (needs numba: "
                        "pip install 'npvae[fast]'); the same numbers, faster; as "
                        "NPVAE_FUSED=1")

    g = parser.add_argument_group("output and evaluation")
    g.add_argument("--out", default=d["out"], metavar="RUN_DIR",
                   help="run directory (default: runs/NAME)")
    g.add_argument("--name", default=d["name"],
                   help="run name (default: DATA-YYYYmmdd-HHMMSS)")
    g.add_argument("--eval-samples", type=int, default=d["eval_samples"], metavar="K",
                   help="importance samples for the final log p(x)")
    g.add_argument("--eval-examples", type=int, default=d["eval_examples"], metavar="N",
                   help="test examples for the final log p(x) (0: all); the test ELBO "
                        "always uses all")
    g.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"],
                   metavar="EPOCHS", help="write checkpoint.npz every this many epochs "
                                          "(and after the last)")
    g.add_argument("--no-figures", dest="figures", action="store_false",
                   help="do not write the figures (default: write them)")
    g.add_argument("--resume", default=d["resume"], metavar="RUN_DIR_OR_CHECKPOINT",
                   help="continue a run from its checkpoint, bit for bit as if it had not "
                        "stopped; its settings are kept (only --epochs and the output and "
                        "evaluation options may be given)")


def parse_hidden(text):
    """'500' -> (500,), '400,200' -> (400, 200), '' -> ()."""
    text = str(text).strip()
    if not text:
        return ()
    try:
        sizes = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers like 500 or 400,200, "
                         f"got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def _check_args(args):
    """Cheap checks of option values, before any data is made."""
    for name in ("epochs", "z_dim", "samples", "batch_size", "warmup", "eval_samples",
                 "checkpoint_every", "eval_examples"):
        low = 0 if name in ("epochs", "warmup", "eval_examples") else 1
        if getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, "
                             f"got {getattr(args, name)}")
    for name in ("n_train", "n_test"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    if not (np.isfinite(args.beta) and args.beta >= 0):
        raise ValueError(f"--beta must be a number >= 0, got {args.beta}")
    if args.weight_decay != "prior":
        try:
            wd = float(args.weight_decay)
        except ValueError:
            raise ValueError("--weight-decay must be a number >= 0 or 'prior', got "
                             f"{args.weight_decay!r}") from None
        if not (np.isfinite(wd) and wd >= 0):
            raise ValueError(f"--weight-decay must be a number >= 0 or 'prior', got {wd}")
    if args.baseline != "none" and args.estimator != "reinforce":
        raise ValueError(f"--baseline is for --estimator reinforce, not {args.estimator}")
    if args.estimator in ("iwae", "stl") and args.kl != "analytic":
        raise ValueError(f"--kl does not apply to --estimator {args.estimator}")
    if args.estimator != "reparam" and (args.beta != 1.0 or args.warmup):
        raise ValueError(f"--beta and --warmup need --estimator reparam, not {args.estimator}")
    parse_hidden(args.hidden)


def _resumed_args(args):
    """Take the run options from the checkpoint; refuse explicit different ones."""
    ck = ckpt_io.read(args.resume)
    saved = (ck.train_config or {}).get("cli")
    if not isinstance(saved, dict):
        raise ValueError(f"{ck.path} was not written by `npvae train` (no command-line "
                         "settings in it); resume it from Python with npvae.train.fit(resume=...)")
    conflicts = []
    for name in _RUN_OPTIONS:
        given = getattr(args, name)
        if given != DEFAULTS[name] and given != saved.get(name):
            conflicts.append(f"--{name.replace('_', '-')} {given} (the run has "
                             f"{saved.get(name)})")
        setattr(args, name, saved.get(name, DEFAULTS[name]))
    if conflicts:
        raise ValueError("a resumed run keeps its settings; remove " + ", ".join(conflicts))
    # how the run is evaluated and drawn may change on resume, but by default
    # it stays as the run was started
    for name in _OUTPUT_OPTIONS:
        if getattr(args, name) == DEFAULTS[name] and name in saved:
            setattr(args, name, saved[name])
    if args.out is None:
        args.out = os.path.dirname(os.path.abspath(ck.path))
    return ck


def run(args):
    ck = _resumed_args(args) if args.resume else None
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    _check_args(args)
    if args.fused:
        try:
            optim.fused_kernels()
        except ImportError as err:
            raise ValueError(f"--fused: {err}") from None
    import npvae

    name = args.name or f"{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = args.out or os.path.join("runs", name)
    ckpt_path = os.path.join(run_dir, "checkpoint.npz")
    if ck is None and os.path.exists(ckpt_path):
        raise ValueError(f"{run_dir} already holds a run (checkpoint.npz); continue it with "
                         f"--resume {run_dir} or choose another --out")
    hidden = parse_hidden(args.hidden)
    likelihood = args.likelihood
    if likelihood == "auto":
        likelihood = "gaussian" if args.data in ("frey-faces", "ppca") else "bernoulli"
    binarize = None if args.binarize == "none" else args.binarize

    t_start = time.perf_counter()
    data = load_data(args.data, root=args.root, download=args.download, seed=args.data_seed,
                     n_train=args.n_train, n_test=args.n_test, dtype=args.dtype)
    print(f"data: {data.name}, {data.x_train.shape[0]} train / {data.x_test.shape[0]} test "
          f"examples of D = {data.x_train.shape[1]} ({time.perf_counter() - t_start:.1f} s)",
          flush=True)

    rng = np.random.default_rng(args.seed)
    if ck is None:
        model = npvae.VAE(data.x_train.shape[1], args.z_dim, hidden, args.activation,
                          likelihood, rng=rng, dtype=args.dtype, init=args.init)
    else:
        model = ckpt_io.build_model(ck)
    weight_decay = (1.0 / data.x_train.shape[0] if args.weight_decay == "prior"
                    else float(args.weight_decay))
    options = {}
    if args.estimator in ("reparam", "reinforce"):
        options["kl"] = args.kl
    if args.baseline != "none":
        options["baseline"] = args.baseline
        if args.baseline == "moving-average":
            options["state"] = estimators.BaselineState()

    cli_settings = {k: getattr(args, k) for k in _RUN_OPTIONS + _OUTPUT_OPTIONS}
    run_info = dict(cli=cli_settings, data=args.data, image_shape=data.image_shape,
                    name=name)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(dict(cli_settings, epochs=args.epochs, model=model.config(),
                       command=" ".join(["npvae"] + sys.argv[1:])), f, indent=2)
    csv_path = os.path.join(run_dir, "history.csv")

    try:
        history = train_mod.fit(
            model, data, estimator=args.estimator, estimator_options=options,
            n_samples=args.samples, optimizer=args.optimizer, lr=args.lr,
            weight_decay=weight_decay, batch_size=args.batch_size, epochs=args.epochs,
            beta=args.beta, warmup_epochs=args.warmup, binarize=binarize,
            rng=None if ck else rng, checkpoint_path=ckpt_path,
            checkpoint_every=args.checkpoint_every, resume=ck.path if ck else None,
            log=lambda line: print(line, flush=True),
            callback=lambda epoch, h: h.to_csv(csv_path), run_info=run_info,
            fused=True if args.fused else None)
    except train_mod.TrainingInterrupted as stop:
        print(f"npvae train: {stop}\nresume with: npvae train --resume {run_dir} "
              f"--epochs {args.epochs}", file=sys.stderr)
        return 130
    except train_mod.NonFiniteError as err:
        print(f"npvae train: error: {err}", file=sys.stderr)
        return 1
    history.to_csv(csv_path)

    eval_seed = ckpt_io.read(ckpt_path).counters["eval_seed"]
    x_test = train_mod.prepare_test_set(model.check_x(data.x_test, "x_test"), binarize, eval_seed)
    summary = report(model, x_test, n_samples=args.eval_samples,
                     n_examples=args.eval_examples or None, seed=args.seed)
    summary.update(run_dir=run_dir, epochs=len(history),
                   train_elbo=history["train_elbo"][-1] if len(history) else None)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    written = []
    if args.figures:
        try:
            from npvae import plots
            written = plots.write_run_figures(run_dir, model, data, history,
                                              np.random.default_rng([args.seed, 2]),
                                              log=lambda m: print(m, flush=True))
        except Exception as err:   # a figure must never cost the trained run
            print(f"warning: figures not written: {type(err).__name__}: {err}", flush=True)
    print(f"wrote {run_dir}/: config.json, history.csv, checkpoint.npz, summary.json"
          + "".join(f", {os.path.basename(p)}" for p in written))
    print(f"total time {time.perf_counter() - t_start:.1f} s")
    return 0

