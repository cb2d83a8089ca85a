"""Draw samples from a trained model and save them as a grid of images.

Loads the model from a run directory (its checkpoint.npz) or a checkpoint
file, draws z ~ N(0, I) with the given seed and writes the decoded means
E[x | z] (the Helmholtz machine: its dreams) as one grey image grid.
"""
import os

import numpy as np

from npvae import checkpoint, plots

# Image shapes of the named datasets, for checkpoints that do not record one.
DATASET_SHAPES = {"glyphs": (28, 28), "mnist": (28, 28), "fashion-mnist": (28, 28),
                  "frey-faces": (28, 20)}


def parse_shape(text):
    """'28x20' -> (28, 20); ValueError naming --image-shape otherwise."""
    try:
        h, w = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-shape must look like HxW (e.g. 28x28), got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"--image-shape must be positive, got {text!r}")
    return h, w


def dataset_name(ckpt):
    """The dataset a checkpoint was trained on, if its training settings say."""
    config = ckpt.train_config or {}
    for key in ("data", "dataset"):
        if isinstance(config.get(key), str):
            return config[key]
    return None


def image_shape(ckpt, model, override=None):
    """The image shape for a checkpoint's model: --image-shape, the recorded
    one, the dataset's, or a square; ValueError when none fits."""
    x_dim = getattr(model, "x_dim", None)
    if x_dim is None:
        sizes = getattr(model, "layer_sizes", None)
        x_dim = sizes[0] if sizes else None
    if override is not None:
        try:
            return plots.image_shape_for(x_dim, parse_shape(override)
                                         if isinstance(override, str) else override)
        except ValueError as err:
            raise ValueError(f"--image-shape {override}: {err}") from None
    recorded = (ckpt.train_config or {}).get("image_shape")
    if recorded is None:
        recorded = DATASET_SHAPES.get(dataset_name(ckpt))
    if recorded is not None:
        try:
            return plots.image_shape_for(x_dim, recorded)
        except ValueError:
            pass
    try:
        return plots.image_shape_for(x_dim, None)
    except ValueError:
        raise ValueError(f"cannot tell the image shape of D = {x_dim} data from "
                         f"{ckpt.path}; give --image-shape HxW") from None


def add_arguments(parser):
    parser.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory holding checkpoint.npz, or a checkpoint file")
    parser.add_argument("--n", type=int, default=100, help="number of samples")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random generator that draws z ~ N(0, I)")
    parser.add_argument("--out", default="samples.png",
                        help="image file to write (PNG unless the extension says otherwise)")
    parser.add_argument("--nrow", type=int, default=None,
                        help="images per row of the grid (%(default)s: as square as possible)")
    parser.add_argument("--image-shape", default=None, metavar="HxW",
                        help="height x width of one image (%(default)s: as recorded in the "
                             "run, else that of its dataset, else square)")


def run(args):
    if args.n < 1:
        raise ValueError(f"--n must be positive, got {args.n}")
    model, ckpt = checkpoint.load_model(args.source)
    shape = image_shape(ckpt, model, args.image_shape)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"--out: directory {out_dir} does not exist")
    path = plots.samples(model, shape, args.out, n=args.n, rng=np.random.default_rng(args.seed),
                         nrow=args.nrow)
    print(f"wrote {path}  ({args.n} samples from {ckpt.path}, seed {args.seed})")
    return 0
