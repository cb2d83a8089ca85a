"""Re-make a run's figures from its checkpoint and history.

Reads RUN_DIR/checkpoint.npz and RUN_DIR/history.csv (or the history stored
in the checkpoint), loads the test set of the run's dataset and writes
elbo.png, samples.png, reconstructions.png, latent.png and, for a 2-D latent
space, manifold.png (the paper's Figure 4) into the run directory.
"""
import os

import numpy as np

from npvae import checkpoint, plots
from npvae.commands.sample import dataset_name


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `npvae train` (holds checkpoint.npz)")
    parser.add_argument("--data", default=None,
                        help="dataset whose test set the data figures use (%(default)s: the run's "
                             "dataset as recorded in its checkpoint, else glyphs)")
    parser.add_argument("--root", "--data-dir", dest="root", default=None, metavar="DIR",
                        help="directory holding the files of a file-based dataset (%(default)s: "
                             "the dataset's usual places)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="directory for the figures (%(default)s: RUN_DIR)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the samples and the choice of latent-plot points")
    parser.add_argument("--n-latent", type=int, default=2000,
                        help="test points shown in the latent-space plot")


def _history(run_dir, ckpt):
    path = os.path.join(run_dir, "history.csv")
    if os.path.exists(path):
        return path
    if ckpt.history and any(len(v) for v in ckpt.history.values()):
        return ckpt.history
    return None


def run(args):
    if not os.path.isdir(args.run_dir):
        raise FileNotFoundError(f"no run directory {args.run_dir} (expected the --out "
                                "directory of `npvae train`)")
    if args.n_latent < 1:
        raise ValueError(f"--n-latent must be positive, got {args.n_latent}")
    model, ckpt = checkpoint.load_model(args.run_dir)
    name = args.data or dataset_name(ckpt)
    if name is None:
        name = "glyphs"
        print(f"{ckpt.path} does not record its dataset; using --data {name}")
    from npvae import data as data_mod
    # the run's own data options (root, seed, sizes) when it is the run's dataset
    cli = (ckpt.train_config or {}).get("cli") or {}
    same = isinstance(cli, dict) and cli.get("data") == name
    data = data_mod.load(name, root=args.root or (cli.get("root") if same else None),
                         seed=cli.get("data_seed", 0) if same else 0,
                         n_train=cli.get("n_train") if same else None,
                         n_test=cli.get("n_test") if same else None,
                         dtype=getattr(model, "dtype", np.float64))
    x_dim = getattr(model, "x_dim", None)
    if x_dim is not None and data.x_test.shape[1] != x_dim:
        raise ValueError(f"the model has D = {x_dim} but {name} has D = "
                         f"{data.x_test.shape[1]}; give the run's dataset with --data")
    out = args.out or args.run_dir
    paths = plots.write_run_figures(out, model, data, _history(args.run_dir, ckpt),
                                    np.random.default_rng(args.seed), n_latent=args.n_latent)
    for p in paths:
        print(f"wrote {p}")
    return 0
