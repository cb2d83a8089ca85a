"""`npvae train` and `npvae evaluate`: files written, exact resume, Ctrl-C,
one-line errors with exit code 2."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from npvae import checkpoint as ckpt_io
from npvae import cli, estimators

TINY = ["--data", "bars", "--n-train", "200", "--n-test", "50", "--hidden", "8", "--z-dim", "2",
        "--batch-size", "50", "--eval-samples", "10", "--eval-examples", "20", "--no-figures"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NPVAE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def rows(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_train_subprocess_writes_the_run(tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "npvae", "train", "--epochs", "1", "--data", "bars",
         "--n-train", "100", "--n-test", "40", "--hidden", "16", "--z-dim", "2",
         "--eval-samples", "5", "--eval-examples", "10", "--out", str(run_dir)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("history.csv", "checkpoint.npz", "config.json", "summary.json", "elbo.png",
                 "samples.png", "manifold.png"):
        assert (run_dir / name).exists(), name
    assert "epoch 1/1" in proc.stdout
    assert "test ELBO" in proc.stdout and "log p(x)" in proc.stdout
    assert len(rows(run_dir)) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["log_px"] < 0 and summary["eval_samples"] == 5
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["z_dim"] == 2 and config["dtype"] == "float32"
    model, _ = ckpt_io.load_model(run_dir)
    assert model.dtype == np.float32


def test_cli_resume_is_bit_identical_and_evaluate_reads_the_run(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli.main(["train", *TINY, "--epochs", "3", "--out", str(straight)]) == 0
    assert cli.main(["train", *TINY, "--epochs", "2", "--out", str(split)]) == 0
    assert cli.main(["train", "--resume", str(split), "--epochs", "3", "--no-figures"]) == 0
    a, b = ckpt_io.read(straight), ckpt_io.read(split)
    assert b.counters["epoch"] == 3
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert [r["train_elbo"] for r in rows(straight)] == [r["train_elbo"] for r in rows(split)]
    capsys.readouterr()
    assert cli.main(["evaluate", str(split), "--samples", "10", "--examples", "20",
                     "--json"]) == 0
    out = capsys.readouterr().out
    numbers = json.loads(out.strip().splitlines()[-1])
    assert numbers["eval_examples"] == 20 and numbers["test_examples"] == 50
    assert numbers["log_px"] >= numbers["test_elbo"] - 4 * (numbers["log_px_se"]
                                                          + numbers["test_elbo_se"])


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    reparam = estimators.reparam

    def stop_at_step_6(model, x, *, rng=None, eps=None, n_samples=1, kl="analytic", beta=1.0):
        calls["n"] += 1
        if calls["n"] == 6:                 # 4 steps per epoch: inside epoch 2
            raise KeyboardInterrupt
        return reparam(model, x, rng=rng, eps=eps, n_samples=n_samples, kl=kl, beta=beta)
    stop_at_step_6.__name__ = "reparam"
    monkeypatch.setitem(estimators.ESTIMATORS, "reparam", stop_at_step_6)
    run_dir = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "3", "--out", str(run_dir)]) == 130
    err = capsys.readouterr().err
    assert "after epoch 1" in err and f"--resume {run_dir}" in err
    assert ckpt_io.read(run_dir).counters["epoch"] == 1
    assert len(rows(run_dir)) == 1
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "3", "--no-figures"]) == 0
    assert ckpt_io.read(run_dir).counters["epoch"] == 3


def run_error(argv, capsys):
    """Exit code and standard error of ``npvae ARGV`` (argparse errors exit via SystemExit)."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--data", "nope"], "unknown dataset"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--hidden", "5x"], "--hidden"),
    (["train", "--epochs", "-2"], "--epochs"),
    (["train", "--batch-size", "many"], "--batch-size"),
    (["train", "--optimizer", "rmsprop"], "--optimizer"),
    (["train", "--weight-decay", "lots"], "--weight-decay"),
    (["train", "--baseline", "moving-average"], "reinforce"),
    (["train", "--resume", "/nonexistent/run"], "no checkpoint"),
    (["evaluate", "/nonexistent/run"], "no checkpoint"),
    (["evaluate", "somewhere", "--samples", "0"], "--samples"),
])
def test_errors_are_one_line_with_exit_code_2(argv, fragment, capsys):
    code, err = run_error(argv, capsys)
    assert code == 2
    assert fragment in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_refuses_to_overwrite_or_change_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run_dir)]) == 0
    before = (run_dir / "checkpoint.npz").read_bytes()
    code, err = run_error(["train", *TINY, "--epochs", "1", "--out", str(run_dir)], capsys)
    assert code == 2 and "already holds a run" in err
    code, err = run_error(["train", "--resume", str(run_dir), "--lr", "0.5"], capsys)
    assert code == 2 and "--lr 0.5" in err and len(err.splitlines()) == 1
    assert (run_dir / "checkpoint.npz").read_bytes() == before


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for opt in ("--data", "--epochs", "--out", "--z-dim", "--hidden", "--activation",
                "--likelihood", "--estimator", "--kl", "--baseline", "--samples",
                "--optimizer", "--lr", "--batch-size", "--beta", "--warmup", "--binarize",
                "--dtype", "--seed", "--eval-samples", "--eval-examples", "--resume"):
        assert opt in text, opt
    assert "(default: adam)" in text and "(default: glyphs)" in text


def test_resume_keeps_the_evaluation_settings_unless_given(tmp_path):
    run_dir = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run_dir)]) == 0
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_samples"] == 10                   # TINY's, not the default 1000
    assert not (run_dir / "elbo.png").exists()             # --no-figures kept
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "3",
                     "--eval-samples", "7"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["eval_samples"] == 7
