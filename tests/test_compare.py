"""`npvae compare` on tiny settings: it trains every model, writes the CSV
and the figures, and reports log p(x) with the same K for every model."""
import csv

import pytest

from npvae import cli

TINY = ["compare", "--data", "bars", "--n-train", "200", "--n-test", "40", "--examples", "400",
        "--hidden", "8", "--z-dim", "2", "--batch-size", "10", "--hm-layers", "6,1",
        "--hm-lr", "0.5", "--rws-samples", "3",
        "--eval-samples", "50", "--eval-examples", "20", "--curve-samples", "10",
        "--dtype", "float64"]


def test_compare_writes_table_and_csv(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(TINY + ["--no-figures", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "K = 50 on 20 test examples" in text
    for label in ("VAE (AEVB, estimator B)", "wake-sleep", "reweighted wake-sleep"):
        assert label in text
    assert "VAE minus ws" in text and "VAE minus rws" in text and "paired SE" in text
    rows = list(csv.DictReader(open(out / "compare.csv")))
    finals = {r["model"]: r for r in rows if r["kind"] == "final"}
    assert set(finals) == {"vae", "ws", "rws"}
    assert {r["eval_samples"] for r in finals.values()} == {"50"}      # the same K for all
    assert {r["examples_seen"] for r in finals.values()} == {"400"}    # the same examples
    for name in ("vae", "ws", "rws"):
        curve = [r for r in rows if r["model"] == name and r["kind"] == "curve"]
        assert [int(r["examples_seen"]) for r in curve] == [200, 400]
        # bars images have 9 pixels: any model's log p(x) lies in [-9 log 2 - slack, 0]
        assert -20 < float(finals[name]["log_px"]) < 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv"]


def test_compare_figures_for_a_subset_of_models(tmp_path):
    out = tmp_path / "ws-only"
    assert cli.main(TINY + ["--models", "ws", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare.csv", "compare.png", "ws_reconstructions.png", "ws_samples.png"]
    assert all((out / n).stat().st_size > 1000 for n in names if n.endswith(".png"))


@pytest.mark.parametrize("extra, message", [
    (["--models", "vae,gan"], "--models"),
    (["--hm-layers", "6,x"], "--hm-layers"),
    (["--hm-lr", "0"], "--hm-lr"),
    (["--eval-samples", "0"], "--eval-samples"),
])
def test_compare_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    assert cli.main(TINY + extra + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
