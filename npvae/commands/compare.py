"""Compare the VAE with the Helmholtz machine (wake-sleep, reweighted) by test log p(x).

All models see the same binarized training data, the same number of
training examples in minibatches of the same size, and are scored by the
same yardstick: log p(x) estimated
by importance sampling with the same K on the same test examples (the
recognition model or encoder is the proposal).  Prints a table, and writes
to --out: compare.csv (the curves of test log p(x) against examples seen,
and the final estimates), compare.png (the curves, the shape of the AEVB
paper's Figures 2 and 3), and the dreams and reconstructions of each model.

Models: `vae` (estimator B: reparameterized, analytic KL, via
npvae.train.fit), `ws` (wake-sleep, Dayan et al. 1995) and `rws` (reweighted
wake-sleep with K = --rws-samples, Bornschein & Bengio 2015).  The defaults
run in a few minutes on one core.
"""
import csv
import os
import time

import numpy as np

MODELS = ("vae", "ws", "rws")
LABELS = {"vae": "VAE (AEVB, estimator B)", "ws": "Helmholtz machine, wake-sleep",
          "rws": "Helmholtz machine, reweighted wake-sleep"}
DEFAULTS = dict(data="glyphs", root=None, n_train=10000, n_test=1000, data_seed=0,
                examples=60000, models="vae,ws,rws", seed=0, dtype="float32",
                z_dim=20, hidden=200, init="glorot", optimizer="adam", lr=0.003, batch_size=20,
                hm_layers="200,20", hm_lr=0.2, rws_samples=5, q_update=None,
                eval_samples=1000, eval_examples=100, curve_samples=100, out="compare-out",
                figures=True)


def add_arguments(parser):
    d = DEFAULTS
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=d["data"],
                   choices=("glyphs", "fashion-mnist", "mnist", "bars"),
                   help="dataset, binarized at 0.5 once (the same bits for every model)")
    g.add_argument("--root", default=d["root"], metavar="DIR",
                   help="directory holding fashion-mnist / mnist files")
    g.add_argument("--n-train", type=int, default=d["n_train"], metavar="N",
                   help="training set size (one epoch; curves are evaluated once per epoch)")
    g.add_argument("--n-test", type=int, default=d["n_test"], metavar="N", help="test set size")
    g.add_argument("--data-seed", type=int, default=d["data_seed"], help="seed of glyphs")
    g = parser.add_argument_group("training")
    g.add_argument("--examples", type=int, default=d["examples"], metavar="N",
                   help="training examples seen by each model (rounded up to whole epochs)")
    g.add_argument("--models", default=d["models"],
                   help=f"comma-separated subset of {', '.join(MODELS)}")
    g.add_argument("--seed", type=int, default=d["seed"],
                   help="seed of initialization and training")
    g.add_argument("--dtype", default=d["dtype"], choices=("float32", "float64"))
    g.add_argument("--z-dim", type=int, default=d["z_dim"], help="VAE latent size J")
    g.add_argument("--hidden", type=int, default=d["hidden"], help="VAE hidden layer size")
    g.add_argument("--init", default=d["init"], choices=("normal", "glorot", "he"),
                   help="VAE weight initialization")
    g.add_argument("--optimizer", default=d["optimizer"], choices=("sgd", "adagrad", "adam"),
                   help="VAE optimizer")
    g.add_argument("--lr", type=float, default=d["lr"], help="VAE learning rate")
    g.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help="minibatch size M of every model (the same for all)")
    g.add_argument("--hm-layers", default=d["hm_layers"], metavar="N1,N2,...",
                   help="Helmholtz machine latent layer sizes, bottom to top")
    g.add_argument("--hm-lr", type=float, default=d["hm_lr"],
                   help="wake-sleep learning rate (delta rule, minibatch mean)")
    g.add_argument("--rws-samples", type=int, default=d["rws_samples"],
                   help="K, recognition samples per example of reweighted wake-sleep")
    g.add_argument("--q-update", default=d["q_update"], choices=("sleep", "wake", "both"),
                   help="recognition update of reweighted wake-sleep (default: both)")
    g = parser.add_argument_group("evaluation and output")
    g.add_argument("--eval-samples", type=int, default=d["eval_samples"], metavar="K",
                   help="importance samples for the final test log p(x), the same for every model")
    g.add_argument("--eval-examples", type=int, default=d["eval_examples"], metavar="N",
                   help="test examples (the first N) on which log p(x) is estimated")
    g.add_argument("--curve-samples", type=int, default=d["curve_samples"], metavar="K",
                   help="importance samples for the points of the curves")
    g.add_argument("--out", default=d["out"], metavar="DIR", help="output directory")
    g.add_argument("--no-figures", dest="figures", action="store_false",
                   help="write the CSV only")


def _settings(args):
    models = [m.strip() for m in str(args.models).split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"--models must be a comma-separated subset of {', '.join(MODELS)}, "
                         f"got {args.models!r}")
    try:
        layers = tuple(int(n) for n in str(args.hm_layers).split(","))
    except ValueError:
        raise ValueError(f"--hm-layers must be comma-separated integers, got {args.hm_layers!r}"
                         ) from None
    for name in ("examples", "n_train", "n_test", "z_dim", "hidden", "batch_size", "rws_samples",
                 "eval_samples", "eval_examples", "curve_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"got {getattr(args, name)}")
    for name in ("lr", "hm_lr"):
        value = getattr(args, name)
        if not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if any(n < 1 for n in layers):
        raise ValueError(f"--hm-layers must be positive sizes, got {args.hm_layers!r}")
    if args.batch_size > args.n_train:
        raise ValueError(f"--batch-size {args.batch_size} must not exceed --n-train {args.n_train}")
    return models, layers


def _se(a):
    return float(np.std(a, ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")


def _log_px(model, x, n_samples, seed):
    """The IS estimate of log p(x) per example (M,), its mean and standard error."""
    from npvae import evaluate
    batch = min(100, len(x))
    ll = evaluate.log_likelihood(model, x, n_samples=n_samples, rng=np.random.default_rng(seed),
                                 batch_size=batch, chunk=max(1, min(n_samples, 20000 // batch)))
    return ll, float(np.mean(ll)), _se(ll)


def train_vae(args, x_train, x_eval, epochs, log):
    """The VAE by npvae.train.fit; returns (model, [(examples, log p(x)), ...])."""
    import npvae
    rng = np.random.default_rng([args.seed, 0])
    model = npvae.VAE(x_train.shape[1], args.z_dim, hidden=(args.hidden,), activation="tanh",
                      likelihood="bernoulli", rng=rng, dtype=args.dtype, init=args.init)
    curve = []

    def point(epoch, history):
        _, ll, _ = _log_px(model, x_eval, args.curve_samples, [args.seed, 10, epoch])
        curve.append((int(history["examples_seen"][-1]), ll))
        log(f"  vae  {curve[-1][0]:>9d} examples: test log p(x) ~= {ll:9.3f} "
            f"(K = {args.curve_samples})")

    npvae.train.fit(model, x_train, estimator="reparam", estimator_options={"kl": "analytic"},
                    optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size,
                    epochs=epochs, rng=rng, log=None, callback=point)
    return model, curve


def train_helmholtz(args, name, layers, x_train, x_eval, examples, log):
    """A Helmholtz machine by (reweighted) wake-sleep; returns (model, curve)."""
    from npvae.helmholtz import HelmholtzMachine, fit
    rng = np.random.default_rng([args.seed, 1 if name == "ws" else 2])
    hm = HelmholtzMachine((x_train.shape[1],) + layers, rng=rng, dtype=args.dtype,
                          init_scale=0.01)
    bs = args.batch_size
    steps_per_epoch = max(1, len(x_train) // bs)
    steps = -(-examples // bs)
    curve = []

    def point(step, seen):
        _, ll, _ = _log_px(hm, x_eval, args.curve_samples, [args.seed, 11, step])
        curve.append((int(seen), ll))
        log(f"  {name:<4s} {seen:>9d} examples: test log p(x) ~= {ll:9.3f} "
            f"(K = {args.curve_samples})")

    options = dict(reweighted=True, n_samples=args.rws_samples, q_update=args.q_update) \
        if name == "rws" else {}
    fit(hm, x_train, steps=steps, lr=args.hm_lr, rng=rng, batch_size=bs, callback=point,
        every=steps_per_epoch, **options)
    return hm, curve


def write_csv(path, curves, finals, args):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "kind", "examples_seen", "log_px", "log_px_se", "eval_samples",
                    "eval_examples"])
        for name, curve in curves.items():
            for seen, ll in curve:
                w.writerow([name, "curve", seen, f"{ll:.6f}", "", args.curve_samples,
                            args.eval_examples])
        for name, (seen, ll, se) in finals.items():
            w.writerow([name, "final", seen, f"{ll:.6f}", f"{se:.6f}", args.eval_samples,
                        args.eval_examples])


def plot_curves(path, curves, finals, args, title):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {"vae": "tab:red", "ws": "tab:blue", "rws": "tab:green"}
    for name, curve in curves.items():
        seen, ll = zip(*curve)
        ax.plot(seen, ll, "o-", color=colors[name], ms=3, label=LABELS[name])
        s, f, se = finals[name]
        ax.errorbar([s], [f], yerr=[2 * se], fmt="*", color=colors[name], ms=9)
    ax.set_xscale("log")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("test log p(x) (nats)")
    ax.set_title(f"{title}\ncurves: K = {args.curve_samples}; stars: K = {args.eval_samples} "
                 f"(+- 2 SE over {args.eval_examples} test examples)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def run(args):
    from npvae.commands.evaluate import load_data
    models, layers = _settings(args)
    t_start = time.perf_counter()
    ds = load_data(args.data, root=args.root, seed=args.data_seed, n_train=args.n_train,
                   n_test=args.n_test, dtype=args.dtype, binarize="threshold")
    x_train, x_eval = ds.x_train, ds.x_test[:args.eval_examples]
    N = len(x_train)
    epochs = -(-args.examples // N)
    examples = epochs * N
    os.makedirs(args.out, exist_ok=True)
    print(f"compare on {args.data} (binarized at 0.5): {N} training examples x {epochs} "
          f"epoch(s) = {examples} examples per model; test log p(x) on {len(x_eval)} test "
          f"examples, K = {args.eval_samples} (curves K = {args.curve_samples})")
    if examples != args.examples:
        print(f"(--examples {args.examples} rounded up to whole epochs: {examples})")

    trained, curves, finals, seconds, per_example = {}, {}, {}, {}, {}
    for name in models:
        t0 = time.perf_counter()
        print(f"training {name}: {LABELS[name]}")
        if name == "vae":
            model, curve = train_vae(args, x_train, x_eval, epochs, print)
        else:
            model, curve = train_helmholtz(args, name, layers, x_train, x_eval, examples, print)
        seconds[name] = time.perf_counter() - t0
        per_example[name], ll, se = _log_px(model, x_eval, args.eval_samples, [args.seed, 20])
        trained[name], curves[name], finals[name] = model, curve, (curve[-1][0], ll, se)

    print()
    print(f"test log p(x) in nats, importance sampling with K = {args.eval_samples} on "
          f"{len(x_eval)} test examples, after {examples} training examples:")
    print(f"  {'model':<44s} {'log p(x)':>10s} {'SE':>7s} {'train s':>8s}")
    for name in models:
        _, ll, se = finals[name]
        print(f"  {LABELS[name]:<44s} {ll:10.3f} {se:7.3f} {seconds[name]:8.1f}")
    # the same test examples for every model: the paired difference has a far
    # smaller standard error than either mean
    for name in models:
        if name != "vae" and "vae" in models:
            d = per_example["vae"] - per_example[name]
            print(f"  VAE minus {name:<4s}: {np.mean(d):+8.3f} +- {_se(d):.3f} nats (paired SE) "
                  f"-> {'VAE higher' if np.mean(d) > 0 else 'VAE NOT higher'}")

    csv_path = os.path.join(args.out, "compare.csv")
    write_csv(csv_path, curves, finals, args)
    written = [csv_path]
    if args.figures:
        from npvae import plots
        title = (f"{args.data}: VAE {x_train.shape[1]}-{args.hidden}-{args.z_dim} vs Helmholtz "
                 f"machine {'-'.join(map(str, (x_train.shape[1],) + layers))}")
        written.append(plot_curves(os.path.join(args.out, "compare.png"), curves, finals, args,
                                   title))
        shape = ds.image_shape
        for name, model in trained.items():
            rng = np.random.default_rng([args.seed, 30])
            written.append(plots.samples(
                model, shape, os.path.join(args.out, f"{name}_samples.png"), n=64, rng=rng,
                title=f"{name}: " + ("decoded means of prior samples" if name == "vae"
                                     else "dreams: p(x = 1 | h_1) at dreamed h_1")))
            written.append(plots.reconstructions(
                model, x_eval, shape, os.path.join(args.out, f"{name}_reconstructions.png"),
                n=20, title=f"{name}: data and reconstructions"))
    print("wrote " + ", ".join(written))
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0
