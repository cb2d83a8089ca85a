"""Figures: every function writes a PNG (or returns a Figure) for a tiny VAE,
and rejects bad input with a ValueError."""
import numpy as np
import pytest

from npvae import plots
from npvae.vae import VAE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHAPE = (4, 4)


def is_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG_MAGIC and len(open(path, "rb").read()) > 1000


@pytest.fixture(params=[2, 3], ids=["J2", "J3"])
def model(request):
    return VAE(16, request.param, hidden=(8,), rng=np.random.default_rng(1), init_scale=0.5)


@pytest.fixture
def x():
    return np.random.default_rng(2).random((30, 16))


@pytest.fixture
def labels():
    return np.arange(30) % 4


HISTORY = {
    "epoch": [1, 2, 3, 4, 5, 6],
    "train_elbo": [-40.0, -12.0, -11.0, -10.5, -10.2, -10.0],
    "test_elbo": [-39.0, -12.5, -11.6, -11.0, -10.9, -10.8],
    "test_kl": [0.5, 1.0, 1.5, 1.8, 2.0, 2.1],
    "test_rec": [-38.5, -11.5, -10.1, -9.2, -8.9, -8.7],
    "examples_prop": ["a", "b", "c", "d", "e", "f"],
    "examples_seen": [30, 60, 90, 120, 150, 180],
}


class Stub:
    """A model with only some of the methods: the Helmholtz machine's situation."""

    x_dim = 16

    def sample(self, n, rng):
        x = (rng.random((n, 16)) < 0.3).astype(float)
        return x, [x]                       # (data, states), like a dream pass

    def reconstruct(self, x):
        return 1.0 - x


# ------------------------------------------------------------------ files

def test_every_function_writes_a_png(tmp_path, model, x, labels):
    rng = np.random.default_rng(0)
    paths = [
        plots.elbo_curves(HISTORY, tmp_path / "elbo.png"),
        plots.image_grid(x, SHAPE, tmp_path / "grid.png", nrow=6, title="data"),
        plots.samples(model, SHAPE, tmp_path / "samples.png", n=25, rng=rng),
        plots.reconstructions(model, x, SHAPE, tmp_path / "recon.png", n=10),
        plots.latent_space(model, x, labels, tmp_path / "latent.png"),
    ]
    if model.z_dim == 2:
        paths.append(plots.manifold(model, SHAPE, tmp_path / "manifold.png", n=5))
    for p in paths:
        assert isinstance(p, str)
        assert is_png(p), p


def test_path_without_extension_is_png(tmp_path, x):
    p = plots.image_grid(x, SHAPE, tmp_path / "grid")
    assert p == str(tmp_path / "grid") and is_png(p)


def test_manifold_needs_two_latent_dimensions(tmp_path):
    m3 = VAE(16, 3, hidden=(8,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="J = 3"):
        plots.manifold(m3, SHAPE, tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_manifold_grid_is_gaussian_quantiles_z2_upwards():
    seen = []

    class Recorder:
        z_dim = 2
        dtype = np.float64

        def decoded_mean(self, z):
            seen.append(z.copy())
            return np.full((len(z), 16), 0.5)

    fig = plots.manifold(Recorder(), SHAPE, None, n=3, lo=0.1, hi=0.9)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["-1.28", "0.00", "1.28"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["1.28", "0.00", "-1.28"]
    z = seen[0]
    q = 1.2815515655446004                  # Phi^{-1}(0.9)
    assert z.shape == (9, 2)
    np.testing.assert_allclose(z[:3, 0], [-q, 0, q], atol=1e-12)   # z_1 left to right
    np.testing.assert_allclose(z[::3, 1], [q, 0, -q], atol=1e-12)  # z_2 top to bottom


def test_bad_image_shape_is_rejected(tmp_path, model, x):
    for bad in [(3, 5), (16,), (2, 2, 4), "4x4", "44", (4, 0)]:
        with pytest.raises(ValueError, match="image_shape"):
            plots.image_grid(x, bad, tmp_path / "g.png")
    with pytest.raises(ValueError, match="image_shape"):
        plots.samples(model, (3, 5), tmp_path / "s.png", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="image_shape"):
        plots.reconstructions(model, x, (2, 4), tmp_path / "r.png")
    with pytest.raises(ValueError, match="perfect square"):
        plots.image_grid(np.zeros((2, 15)), None, tmp_path / "g.png")
    assert not list(tmp_path.iterdir())


def test_bad_arguments_are_rejected(model, x, labels):
    with pytest.raises(ValueError, match="labels"):
        plots.latent_space(model, x, labels[:5])
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(np.zeros(16), SHAPE)
    with pytest.raises(ValueError, match="rng"):
        plots.samples(model, SHAPE, n=4, rng=0)


# ------------------------------------------------------------------ layout and maths

def test_tile_images_places_each_image_and_the_gaps():
    images = np.repeat(np.arange(5.0)[:, None], 4, axis=1)   # image k is constant k, 2x2
    mosaic = plots.tile_images(images, (2, 2), ncol=3, pad=1, pad_value=-1)
    assert mosaic.shape == (2 * 2 + 1, 3 * 2 + 2)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(mosaic[3 * r:3 * r + 2, 3 * c:3 * c + 2], k)
    assert np.all(mosaic[2, :] == -1) and np.all(mosaic[:, 2] == -1)
    np.testing.assert_array_equal(mosaic[3:, 6:], -1)        # the empty last cell


def test_principal_components_recovers_the_main_axis():
    rng = np.random.default_rng(3)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    t = rng.standard_normal(500)
    a = 10.0 * t[:, None] * direction + 0.1 * rng.standard_normal((500, 3)) + 7.0
    scores, frac = plots.principal_components(a, 2)
    assert scores.shape == (500, 2)
    assert frac[0] > 0.999 and frac[1] < 1e-3
    np.testing.assert_allclose(np.abs(np.corrcoef(scores[:, 0], t)[0, 1]), 1.0, atol=1e-3)
    np.testing.assert_allclose(scores.mean(axis=0), 0.0, atol=1e-10)


def test_latent_axes_name_the_projection(model, x, labels):
    fig = plots.latent_space(model, x, labels)
    label = fig.axes[0].get_xlabel()
    if model.z_dim == 2:
        assert "z\u2081" in label
    else:
        assert "PC 1" in label and "J = 3" in label and "% of variance" in label
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "3"]


def test_latent_continuous_labels_get_a_colorbar(x):
    m = VAE(16, 2, hidden=(8,), rng=np.random.default_rng(0))
    fig = plots.latent_space(m, x, np.linspace(0, 1, 30))
    assert len(fig.axes) == 2                                 # scatter + colorbar


# ------------------------------------------------------------------ notebook use

def test_no_path_returns_a_figure_that_renders_inline(x):
    from matplotlib.figure import Figure
    fig = plots.image_grid(x, SHAPE)
    assert isinstance(fig, Figure)
    assert fig._repr_png_().startswith(PNG_MAGIC)


def test_draws_into_given_axes(tmp_path, x, labels):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure()
    FigureCanvasAgg(fig)
    a, b, c = fig.subplots(1, 3)
    m = VAE(16, 2, hidden=(8,), rng=np.random.default_rng(0))
    assert plots.image_grid(x, SHAPE, ax=a) is fig
    assert plots.latent_space(m, x, labels, ax=b) is fig
    p = plots.elbo_curves(HISTORY, tmp_path / "e.png", ax=c)
    assert is_png(p)
    assert len(a.images) == 1 and len(b.collections) == 4 and len(c.lines) == 2
    assert len(fig.axes) == 3


# ------------------------------------------------------------------ histories

class AsDict:
    def as_dict(self):
        return HISTORY


class WithData:
    data = HISTORY


def test_history_forms_agree(tmp_path):
    rows = [dict(zip(HISTORY, vals)) for vals in zip(*HISTORY.values())]
    csv_path = tmp_path / "history.csv"
    with open(csv_path, "w") as f:
        f.write(",".join(HISTORY) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")
    ref = plots.history_columns(HISTORY)
    assert "examples_prop" not in ref                        # non-numeric column dropped
    for form in (rows, AsDict(), WithData(), csv_path, str(csv_path)):
        cols = plots.history_columns(form)
        assert sorted(cols) == sorted(ref)
        for k in ref:
            np.testing.assert_array_equal(cols[k], ref[k])


def test_history_gaps_and_missing_columns(tmp_path):
    h = {"epoch": [1, 2, 3], "train_elbo": [-5.0, -4.0, -3.5], "test_elbo": [None, -4.2, ""]}
    assert np.isnan(plots.history_columns(h)["test_elbo"][[0, 2]]).all()
    fig = plots.elbo_curves(h)
    assert len(fig.axes) == 1                                 # no KL / rec: one panel
    with pytest.raises(ValueError, match="train_elbo"):
        plots.elbo_curves({"epoch": [1, 2], "loss": [3.0, 2.0]})
    with pytest.raises(ValueError, match="history"):
        plots.elbo_curves(42)


# ------------------------------------------------------------------ a run's figures

class Data:
    def __init__(self, x, y):
        self.x_test, self.y_test, self.image_shape = x, y, SHAPE


def test_write_run_figures(tmp_path, model, x, labels):
    msgs = []
    out = plots.write_run_figures(tmp_path / "run", model, Data(x, labels), HISTORY,
                                  np.random.default_rng(0), n_latent=20, log=msgs.append)
    names = sorted(p.rsplit("/", 1)[1] for p in out)
    expected = ["elbo.png", "latent.png", "reconstructions.png", "samples.png"]
    if model.z_dim == 2:
        expected.append("manifold.png")
    assert names == sorted(expected)
    assert all(is_png(p) for p in out)
    assert msgs == []


def test_write_run_figures_skips_what_the_model_cannot_do(tmp_path, x, labels):
    msgs = []
    out = plots.write_run_figures(tmp_path, Stub(), Data(x, labels), None,
                                  np.random.default_rng(0), log=msgs.append)
    assert sorted(p.rsplit("/", 1)[1] for p in out) == ["reconstructions.png", "samples.png"]
    assert any("elbo.png" in m and "history" in m for m in msgs)
    msgs.clear()
    plots.write_run_figures(tmp_path, Stub(), Data(x, labels), {"step": [1], "kl": [0.0]},
                            np.random.default_rng(0), log=msgs.append)
    assert any("elbo.png" in m and "train_elbo" in m for m in msgs)
    assert any("latent.png" in m and "encode()" in m and "Stub" in m for m in msgs)
    with pytest.raises(plots.Unsupported, match="z_dim"):
        plots.manifold(Stub(), SHAPE)


# ------------------------------------------------------------------ the commands

@pytest.fixture
def run_dir(tmp_path):
    """A run directory as `npvae train` writes it: a bars model (D = 9, J = 2)."""
    from npvae import checkpoint
    m = VAE(9, 2, hidden=(6,), rng=np.random.default_rng(0), init_scale=0.5)
    d = tmp_path / "run"
    checkpoint.save(d / "checkpoint.npz", m, history=HISTORY, train_config={"data": "bars"})
    return d


def test_sample_command_writes_a_grid(tmp_path, run_dir, capsys):
    from npvae import cli
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(run_dir), "--n", "9", "--seed", "1", "--out", str(out)]) == 0
    assert is_png(out) and "wrote" in capsys.readouterr().out
    ckpt = str(run_dir / "checkpoint.npz")
    assert cli.main(["sample", ckpt, "--n", "4", "--out", str(out), "--image-shape", "3x3"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--image-shape", "3by3"], "--image-shape must look like HxW"),
    (["--image-shape", "1x8"], "holds 8 pixels"),
    (["--n", "0"], "--n must be positive"),
])
def test_sample_command_errors_are_one_line(tmp_path, run_dir, capsys, argv, message):
    from npvae import cli
    assert cli.main(["sample", str(run_dir), "--out", str(tmp_path / "s.png")] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


def test_plot_command_remakes_the_run_figures(run_dir, capsys):
    from npvae import cli
    assert cli.main(["plot", str(run_dir), "--n-latent", "200"]) == 0
    for name in ("elbo", "samples", "reconstructions", "latent", "manifold"):
        assert is_png(run_dir / f"{name}.png"), name
    assert capsys.readouterr().out.count("wrote") == 5


def test_plot_command_errors(tmp_path, run_dir, capsys):
    from npvae import cli
    assert cli.main(["plot", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert cli.main(["plot", str(run_dir), "--data", "ppca"]) == 2
    assert "give the run's dataset with --data" in capsys.readouterr().err


def test_plot_command_reloads_the_runs_data(run_dir, monkeypatch):
    from npvae import checkpoint, cli, data
    m, _ = checkpoint.load_model(run_dir)
    cli_settings = {"data": "bars", "data_seed": 3, "n_test": 40, "n_train": 50, "root": None}
    checkpoint.save(run_dir / "checkpoint.npz", m, history=HISTORY,
                    train_config={"data": "bars", "cli": cli_settings})
    calls = []
    real_load = data.load

    def load(name, **kw):
        calls.append((name, kw))
        return real_load(name, **kw)

    monkeypatch.setattr(data, "load", load)
    assert cli.main(["plot", str(run_dir), "--n-latent", "30"]) == 0
    name, kw = calls[0]
    assert name == "bars" and kw["seed"] == 3 and kw["n_test"] == 40 and kw["n_train"] == 50


def test_examples_seen_axis_uses_short_labels():
    assert [plots._count_label(v) for v in (0, 950, 50000, 1.25e6)] == ["0", "950", "50k",
                                                                        "1.25M"]


def test_write_run_figures_without_images(tmp_path):
    """Non-image data (ppca, D = 5): the ELBO and latent figures only."""
    msgs = []
    m = VAE(5, 2, hidden=(4,), likelihood="gaussian", rng=np.random.default_rng(0))
    data = Data(np.random.default_rng(1).random((20, 5)), None)
    data.image_shape = None
    out = plots.write_run_figures(tmp_path, m, data, HISTORY, np.random.default_rng(0),
                                  log=msgs.append)
    assert sorted(p.rsplit("/", 1)[1] for p in out) == ["elbo.png", "latent.png"]
    assert len(msgs) == 1 and "samples.png" in msgs[0] and "not a perfect square" in msgs[0]


def test_discriminant_directions_separate_what_pca_mixes():
    # two classes that differ only along a low-variance axis: PCA's first
    # component is the noisy axis, Fisher's first direction is the class axis
    rng = np.random.default_rng(3)
    m = 400
    labels = np.repeat([0, 1], m // 2)
    a = np.column_stack([10 * rng.standard_normal(m),            # large shared variance
                         np.where(labels == 0, -1.0, 1.0) + 0.2 * rng.standard_normal(m),
                         rng.standard_normal(m)])
    lda, vals = plots.discriminant_directions(a, labels, 2)
    pca, _ = plots.principal_components(a, 2)

    def separation(s):  # gap between class means over the pooled within-class std
        s0, s1 = s[labels == 0], s[labels == 1]
        return abs(s0.mean() - s1.mean()) / np.sqrt(0.5 * (s0.var() + s1.var()))

    assert separation(lda[:, 0]) > 8
    assert separation(pca[:, 0]) < 1
    assert vals[0] >= vals[1]


def test_latent_both_projections_and_their_errors(tmp_path, x, labels):
    model = VAE(16, 3, hidden=(8,), rng=np.random.default_rng(0))
    fig = plots.latent_space(model, x, labels, projection="both")
    assert len(fig.axes) == 2
    assert "discriminant" in fig.axes[1].get_xlabel()
    assert is_png(plots.latent_space(model, x, labels, tmp_path / "l.png", projection="lda"))
    with pytest.raises(ValueError, match="needs labels"):
        plots.latent_space(model, x, None, projection="lda")
    with pytest.raises(ValueError, match="projection"):
        plots.latent_space(model, x, labels, projection="tsne")
