"""Gradient-variance lab: every estimator's mean gradient is reparam's; the statistics are right.

Statistical tolerance: every entry of every parameter array is compared with a
z-score z = (mean_a - mean_ref) / sqrt(se_a^2 + se_ref^2).  With T entries
compared in a test, all |z| must stay below max(4, Bonferroni bound at
familywise level 0.01), i.e. 4 standard errors widened for multiple testing
(about 4.4 here).  Entries within one array are correlated, so a chi-square
sum of z^2 would need the correlation; the union bound needs nothing.  The
test also shows the check has power: a deliberately biased estimator fails
it by a wide margin.  Seeds are fixed.
"""
import numpy as np
import pytest
from scipy.stats import norm

import npvae
from npvae import estimators as E
from npvae import variance as V
from test_estimators_sf import ppca_vae, tiny

N_DRAWS = 6000

CASES = [
    ("reparam", 1, {"kl": "mc"}),
    ("reparam", 3, {}),
    ("reinforce", 1, {}),
    ("reinforce", 1, {"kl": "mc"}),
    ("reinforce", 1, {"baseline": "moving-average"}),
    ("reinforce", 2, {"baseline": "leave-one-out"}),
    ("reinforce", 3, {"baseline": "leave-one-out", "kl": "mc"}),
    ("stl", 1, {}),
    ("stl", 3, {}),
    ("iwae", 1, {}),   # for K > 1 IWAE estimates grad L_K, another quantity (7.8)
]


def bonferroni(n_tests, alpha=0.01):
    return max(4.0, float(norm.isf(alpha / (2 * n_tests))))


@pytest.fixture(scope="module")
def setup():
    model, x, rng = tiny("bernoulli", seed=11)
    ref = V.gradient_moments(model, x, "reparam", n_draws=4 * N_DRAWS, rng=rng)
    return model, x, rng, ref


def test_every_estimator_matches_reparam_mean(setup):
    model, x, rng, ref = setup
    results = {}
    for name, L, opts in CASES:
        m = V.gradient_moments(model, x, name, n_draws=N_DRAWS, rng=rng, n_samples=L, **opts)
        results[(name, L, tuple(opts.items()))] = V.compare_means(m, ref)
    n_tests = sum(n for res in results.values() for _, n, _ in res.values())
    bound = bonferroni(n_tests)
    assert bound < 5
    for case, res in results.items():
        for k, (_, _, zmax) in res.items():
            assert zmax < bound, (case, k, zmax)


def test_the_unbiasedness_check_rejects_a_biased_baseline(setup):
    # subtracting the mean over all L samples *including* sample l correlates b with
    # the score: the encoder gradient shrinks by (L - 1) / L (06_reinforce.md, 6.11)
    model, x, rng, ref = setup

    def biased(model, x, **kw):
        loss, g = E.reinforce(model, x, baseline="leave-one-out", **kw)
        s = (kw["n_samples"] - 1) / kw["n_samples"]
        return loss, {k: (v * s if k.startswith("enc.") else v) for k, v in g.items()}
    m = V.gradient_moments(model, x, biased, n_draws=N_DRAWS, rng=rng, n_samples=2)
    res = V.compare_means(m, ref)
    assert min(z for k, (_, _, z) in res.items() if k.startswith("enc.")) > 20
    assert max(z for k, (_, _, z) in res.items() if k.startswith("dec.")) < bonferroni(50)


def test_variance_is_per_draw_whatever_the_stacking_and_falls_as_one_over_L(setup):
    # tolerance: each total variance from >= 400 calls has a relative standard
    # error below 0.1; ratios are accepted within +-40% (about 4 standard errors)
    model, x, rng, _ = setup
    tv = {}
    for L, R in ((1, 1), (1, 25), (4, 25)):
        m = V.gradient_moments(model, x, "reparam", n_draws=400 * R, rng=rng, n_samples=L,
                               draws_per_call=R)
        assert m.draws == 400 * R and m.calls == 400
        tv[L, R] = V.summarize(m)["enc"]["total_variance"]
    assert tv[1, 25] / tv[1, 1] == pytest.approx(1, abs=0.4)
    assert 4 * tv[4, 25] / tv[1, 25] == pytest.approx(1, abs=0.4)


def test_summarize_matches_direct_numpy():
    rng = np.random.default_rng(0)
    draws = {"enc.a": rng.standard_normal((50, 3, 2)) + 1.0, "enc.b": rng.standard_normal((50, 4)),
             "dec.c": 3 * rng.standard_normal((50, 5)) - 2}
    m = V.GradientMoments()
    for i in range(50):
        m.add(float(i), {k: v[i] for k, v in draws.items()})
    assert m.loss_mean == pytest.approx(24.5)
    s = V.summarize(m)
    enc = np.concatenate([draws["enc.a"].reshape(50, -1), draws["enc.b"]], axis=1)
    for group, d in (("enc", enc), ("dec", draws["dec.c"])):
        var = d.var(axis=0, ddof=1)
        assert s[group]["entries"] == d.shape[1]
        assert s[group]["total_variance"] == pytest.approx(var.sum(), rel=1e-12)
        assert s[group]["variance_per_entry"] == pytest.approx(var.mean(), rel=1e-12)
        assert s[group]["mean_norm"] == pytest.approx(np.linalg.norm(d.mean(axis=0)), rel=1e-12)
        assert s[group]["snr_median"] == pytest.approx(
            np.median(np.abs(d.mean(axis=0)) / np.sqrt(var)), rel=1e-12)
    se = m.standard_error()["dec.c"]
    np.testing.assert_allclose(se, draws["dec.c"].std(axis=0, ddof=1) / np.sqrt(50), rtol=1e-12)


def test_score_function_variance_dwarfs_pathwise_and_baselines_help(setup):
    model, x, rng, ref = setup
    enc = {}
    for label, name, opts, L in (("rep", "reparam", {}, 2), ("sf", "reinforce", {}, 2),
                                 ("loo", "reinforce", {"baseline": "leave-one-out"}, 2)):
        m = V.gradient_moments(model, x, name, n_draws=2000, rng=rng, n_samples=L, **opts)
        enc[label] = V.summarize(m)["enc"]["total_variance"]
    assert enc["sf"] > 3 * enc["rep"]
    assert enc["loo"] < enc["sf"] / 3


def test_stl_encoder_variance_is_zero_at_the_exact_posterior():
    model, x, rng = ppca_vae()
    m = V.gradient_moments(model, x, "stl", n_draws=64, rng=rng, n_samples=2)
    s = V.summarize(m)
    assert s["enc"]["total_variance"] < 1e-24
    assert s["dec"]["total_variance"] > 1e-3
    m = V.gradient_moments(model, x, "reparam", n_draws=64, rng=rng, n_samples=2, kl="mc")
    assert V.summarize(m)["enc"]["total_variance"] > 1e-3


def test_experiment_table_csv_and_plot(tmp_path):
    model, x, rng = tiny("bernoulli", seed=12)
    lines = []
    table = V.experiment(model, x, estimators="reparam,reinforce:loo,iwae", samples=(1, 3),
                         n_draws=64, rng=rng, progress=lines.append)
    assert len(table) == (2 + 1 + 2) * 2                 # leave-one-out has no L = 1 rows
    assert not len(table.where(estimator="reinforce:loo", L=1))
    assert len(lines) == 5
    for r in table:
        assert r["draws"] >= 64 and r["total_variance"] > 0 and r["snr_median"] > 0
    text = str(table)
    assert "total_variance" in text.splitlines()[0] and "reinforce:loo" in text
    path = table.to_csv(tmp_path / "variance.csv")
    import csv
    with open(path) as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(table)
    assert float(back[0]["total_variance"]) == pytest.approx(table[0]["total_variance"], rel=1e-15)
    fig = V.plot(table, tmp_path / "variance.png")
    assert (tmp_path / "variance.png").stat().st_size > 1000
    assert len(fig.axes) == 4


def test_parse_estimators():
    specs = V.parse_estimators("reparam, reparam:mc,reinforce:ma:decay=0.5,reinforce:loo")
    assert specs[0] == ("reparam", "reparam", {})
    assert specs[1][2] == {"kl": "mc"}
    assert specs[2][2] == {"baseline": "moving-average", "decay": 0.5}
    assert specs[3][2] == {"baseline": "leave-one-out"}
    with pytest.raises(ValueError, match="estimator must be one of"):
        V.parse_estimators("nope")
    with pytest.raises(ValueError, match="option"):
        V.parse_estimators("reinforce:fast")
    with pytest.raises(ValueError, match="at least one"):
        V.parse_estimators("")
    model, x, rng = tiny()
    with pytest.raises(ValueError, match="n_draws"):
        V.gradient_moments(model, x, "reparam", n_draws=1, rng=rng)


def test_variance_command_writes_table_csv_and_plot(tmp_path, monkeypatch, capsys):
    import argparse
    from npvae.commands import variance as cmd
    from npvae.data import Dataset
    rng = np.random.default_rng(3)
    small = Dataset("glyphs", rng.random((40, 16)), rng.random((20, 16)), None, None,
                    image_shape=(4, 4))
    monkeypatch.setattr(npvae.data, "load", lambda name, root=None: small)
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--hidden", "8", "--z-dim", "2", "--samples", "1,2",
                              "--draws", "40", "--batch-size", "5",
                              "--estimators", "reparam,reinforce,reinforce:loo", "--out", str(out)])
    assert cmd.run(args) == 0
    text = capsys.readouterr().out
    assert "total_variance" in text and "reparam's at the same L" in text
    assert (out / "variance.csv").stat().st_size > 0 and (out / "variance.png").stat().st_size > 0
    with pytest.raises(ValueError, match="--samples"):
        cmd.run(parser.parse_args(["--samples", "0,1", "--out", str(out)]))
