"""Measure gradient variance and signal-to-noise ratio of the estimators at fixed parameters.

Takes a trained model (--checkpoint: a run directory or checkpoint.npz, the
regime that matters) or a fresh one (--z-dim, --hidden, ...), one fixed
minibatch of --batch-size test examples, and for every estimator in
--estimators and every L in --samples draws --draws independent gradient
estimates.  Prints per estimator, L and parameter group (enc = phi, dec =
theta) the total variance (trace of the covariance of one estimate) and the
median SNR |mean| / std over entries; writes variance.csv and variance.png
(variance and SNR against L, log axes) into --out.

Estimator specs: name[:option...], e.g. reparam, reparam:mc, reinforce,
reinforce:moving-average, reinforce:leave-one-out, reinforce:mc:loo, stl,
iwae (its L is K; for K > 1 it estimates the gradient of the IWAE bound).
"""
import math
import os

import numpy as np

from npvae import variance as V


def _int_list(text, name):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name} must list positive integers, got {text!r}")
    return values


def add_arguments(parser):
    parser.add_argument("--data", default=None,
                        help="dataset name (default: the checkpoint's dataset, else glyphs)")
    parser.add_argument("--root", "--data-dir", dest="root", default=None, help="directory of a file-based dataset")
    parser.add_argument("--checkpoint", default=None, metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a trained run's directory or checkpoint.npz (default: a fresh model)")
    parser.add_argument("--z-dim", type=int, default=20, help="fresh model: latent size J")
    parser.add_argument("--hidden", default="500", help="fresh model: hidden sizes, comma list")
    parser.add_argument("--activation", default="tanh", help="fresh model: activation")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                        help="fresh model: dtype")
    parser.add_argument("--estimators", default=",".join(V.DEFAULT_ESTIMATORS),
                        help="comma list of estimator specs (see above)")
    parser.add_argument("--samples", default="1,2,5,10", help="L values, comma list")
    parser.add_argument("--draws", type=int, default=200,
                        help="independent gradient estimates per estimator and L")
    parser.add_argument("--batch-size", type=int, default=32, help="M, the fixed minibatch size")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the minibatch choice, the fresh model and the noise")
    parser.add_argument("--out", default="variance", help="output directory")


def _load_model(args):
    import npvae
    if args.checkpoint is not None:
        model, ckpt = npvae.checkpoint.load_model(args.checkpoint)
        config = ckpt.train_config or {}
        name = args.data or config.get("data") or config.get("dataset") or "glyphs"
        return model, name, config.get("binarize"), f"checkpoint {ckpt.path}"
    hidden = tuple(_int_list(args.hidden, "--hidden")) if args.hidden.strip() else ()
    return None, args.data or "glyphs", None, f"fresh model (J={args.z_dim}, hidden={hidden})"


def run(args):
    import npvae
    if args.draws < 2:
        raise ValueError(f"--draws must be >= 2, got {args.draws}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    samples = _int_list(args.samples, "--samples")
    specs = V.parse_estimators(args.estimators)
    rng = np.random.default_rng(args.seed)
    model, data_name, binarize, source = _load_model(args)
    data = npvae.data.load(data_name, root=args.root)
    if model is None:
        hidden = tuple(_int_list(args.hidden, "--hidden")) if args.hidden.strip() else ()
        likelihood = "bernoulli" if data.image_shape is not None else "gaussian"
        model = npvae.VAE(data.x_dim, args.z_dim, hidden=hidden, activation=args.activation,
                          likelihood=likelihood, rng=rng, dtype=np.dtype(args.dtype))
    if model.x_dim != data.x_dim:
        raise ValueError(f"the model has x_dim={model.x_dim} but {data_name} has D={data.x_dim}")
    x_pool = data.x_test
    idx = rng.choice(x_pool.shape[0], size=min(args.batch_size, x_pool.shape[0]), replace=False)
    x = x_pool[np.sort(idx)].astype(model.dtype)
    if binarize in ("threshold", "dynamic"):
        x = npvae.data.binarize(x, binarize, rng)

    print(f"npvae variance: {source}, data {data_name}, M={x.shape[0]}, L in {samples}, "
          f"{args.draws} draws per cell", flush=True)
    table = V.experiment(model, x, estimators=[s[0] for s in specs], samples=samples,
                         n_draws=args.draws, rng=rng,
                         progress=lambda line: print(line, flush=True))
    print()
    print(table)
    _print_ratios(table)
    os.makedirs(args.out, exist_ok=True)
    csv_path = table.to_csv(os.path.join(args.out, "variance.csv"))
    png_path = os.path.join(args.out, "variance.png")
    V.plot(table, png_path)
    print(f"\nwrote {csv_path} and {png_path}")
    return 0


def _print_ratios(table):
    """Encoder total variance of each estimator relative to reparam at the same L."""
    ref = {r["L"]: r["total_variance"] for r in table.where(estimator="reparam", group="enc")}
    if not ref:
        return
    print("\nencoder total variance / reparam's at the same L:")
    for label in dict.fromkeys(table.column("estimator")):
        if label == "reparam":
            continue
        cells = [f"L={r['L']}: {r['total_variance'] / ref[r['L']]:.3g}"
                 for r in table.where(estimator=label, group="enc")
                 if r["L"] in ref and ref[r["L"]] > 0 and not math.isnan(r["total_variance"])]
        if cells:
            print(f"  {label:>26s}  " + "  ".join(cells))
