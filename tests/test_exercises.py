"""npvae.exercises: each checker passes the right answer, fails a wrong one with a
message naming the case, and fails a stub with "not implemented yet"; cmp; the
student-version generator and the ``npvae exercises`` command."""
import json

import nbformat
import numpy as np
import pytest

import npvae
from npvae import distributions as dist
from npvae import exercises as ex
from npvae import student
from npvae import gradcheck
from npvae.cli import main


def stub(*args):
    raise NotImplementedError("Exercise 1: f (see the instructions above)")


def _wrong_by(fn, factor):
    def wrong(*args):
        out = fn(*args)
        if isinstance(out, tuple):
            return (out[0] * factor,) + tuple(out[1:])
        return out * factor
    return wrong


def _naive_bernoulli(x, logits):
    p = npvae.nn.sigmoid(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)


def _nb_linear_backward(dout, x, W):
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


# checker, a correct function, a wrong one, and text the wrong one's message must hold
CHECKERS = [
    (ex.check_gaussian_kl, dist.gaussian_kl,
     lambda mu, lv: -dist.gaussian_kl(mu, lv), "sign is flipped"),
    (ex.check_gaussian_kl_grad, dist.gaussian_kl_grad,
     lambda mu, lv: (mu, np.expm1(lv)), "factor 0.5"),
    (ex.check_reparameterize, lambda mu, lv, eps: mu + np.exp(0.5 * lv) * eps,
     lambda mu, lv, eps: mu + np.exp(lv) * eps, "standard deviation"),
    (ex.check_reparameterize_backward, dist.reparameterize_backward,
     lambda dz, eps, std: (dz.mean(axis=0), 0.5 * std * np.sum(dz * eps, axis=0)), "sum, not mean"),
    (ex.check_mc_kl,
     lambda mu, lv, eps: np.mean(dist.gaussian_log_prob(mu + np.exp(0.5 * lv) * eps, mu, lv)
                                 - dist.standard_normal_log_prob(mu + np.exp(0.5 * lv) * eps),
                                 axis=0),
     lambda mu, lv, eps: dist.gaussian_kl(mu, lv), "analytic KL"),
    (ex.check_bernoulli_log_prob, dist.bernoulli_log_prob,
     lambda x, a: _naive_bernoulli(x, a), "NaN or infinite"),
    (ex.check_bernoulli_log_prob_grad, dist.bernoulli_log_prob_grad,
     lambda x, a: npvae.nn.sigmoid(a) - x, "sign is flipped"),
    (ex.check_linear_forward, lambda x, W, b: x @ W + b, lambda x, W, b: x @ W, "out is wrong"),
    (ex.check_linear_backward, _nb_linear_backward,
     lambda dout, x, W: (dout @ W.T, x.T @ dout, dout.mean(axis=0)), "sum over the batch"),
    (ex.check_tanh_backward, lambda dout, out: dout * (1 - out ** 2),
     lambda dout, out: dout * (1 - np.tanh(out) ** 2), "tanh(x) already"),
    (ex.check_posterior_kl,
     lambda z, mq, lq, mp, lp: np.mean(dist.gaussian_log_prob(z, mq, lq)
                                       - dist.gaussian_log_prob(z, mp, lp), axis=0),
     lambda z, mq, lq, mp, lp: np.sum(dist.gaussian_log_prob(z, mq, lq)
                                      - dist.gaussian_log_prob(z, mp, lp), axis=0), "do not sum"),
    (ex.check_code_kl,
     lambda c: float(dist.gaussian_kl(c.mean(axis=0), np.log(c.var(axis=0)))),
     lambda c: float(dist.gaussian_kl(c.mean(axis=0), np.log(c.std(axis=0)))), "not of the standard"),
    (ex.check_score_function,
     lambda f, mu, s, e: (f(mu + s * e) * e / s, f(mu + s * e) * (e * e - 1) / s),
     lambda f, mu, s, e: (f(mu + s * e) * e / s, f(mu + s * e) * e * e / s), "the -1"),
    (ex.check_pathwise,
     lambda df, mu, s, e: (df(mu + s * e), df(mu + s * e) * e),
     lambda df, mu, s, e: (df(mu + s * e), df(mu + s * e)), "dz/dsigma = eps"),
    (ex.check_wake_delta_rule,
     lambda s, a, W, b: (a.T @ (s - npvae.nn.sigmoid(a @ W + b)) / len(s),
                         np.mean(s - npvae.nn.sigmoid(a @ W + b), axis=0)),
     lambda s, a, W, b: (a.T @ (s - npvae.nn.sigmoid(a @ W + b)),
                         np.mean(s - npvae.nn.sigmoid(a @ W + b), axis=0)), "divide by M"),
]


@pytest.mark.parametrize("checker, right, wrong, text", CHECKERS,
                         ids=[c[0].__name__ for c in CHECKERS])
def test_checker_passes_right_fails_wrong_and_stub(checker, right, wrong, text, capsys):
    assert checker(right) is None
    assert "cases passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="case .* failed|NaN") as err:
        checker(wrong)
    assert checker.__name__ in str(err.value) and text in str(err.value)
    with pytest.raises(AssertionError, match="not implemented yet"):
        checker(stub)
    with pytest.raises(AssertionError, match="case"):
        checker(_wrong_by(right, 1.001))


def test_checker_reports_shape_crash_and_non_function():
    with pytest.raises(AssertionError, match=r"kl has shape \(\), expected \(2,\)"):
        ex.check_gaussian_kl(lambda mu, lv: float(np.sum(dist.gaussian_kl(mu, lv))))
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        ex.check_gaussian_kl(lambda mu, lv: 1 / 0)
    with pytest.raises(AssertionError, match="expected a tuple"):
        ex.check_gaussian_kl_grad(lambda mu, lv: mu)
    with pytest.raises(AssertionError, match="expected a function"):
        ex.check_gaussian_kl(3)


def test_check_elbo_identity(capsys):
    rng = np.random.default_rng(0)
    log_px = rng.normal(size=5)
    kl = rng.random(5)
    ex.check_elbo_identity(log_px - kl, kl, log_px)
    assert "all 5 examples" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="example 2: ELBO"):
        ex.check_elbo_identity(log_px - kl + np.eye(5)[2] * 1e-3, kl, log_px)
    with pytest.raises(AssertionError, match="shapes differ"):
        ex.check_elbo_identity(log_px[:4], kl, log_px)


def test_panels_is_a_row_of_axes_that_shows_inline():
    fig, axes = npvae.plots.panels(3)
    assert len(axes) == 3 and all(ax.figure is fig for ax in axes)
    npvae.plots.image_grid(np.random.default_rng(0).random((4, 9)), (3, 3), ax=axes[0])
    assert fig._repr_png_()[:4] == b"\x89PNG"


def test_reparameterize_checker_accepts_the_library_tuple():
    ex.check_reparameterize(dist.reparameterize)


def test_cmp_prints_and_raises(capsys):
    a = np.arange(6.0).reshape(2, 3)
    ex.cmp("da", a, a.copy())
    assert "exact: True" in capsys.readouterr().out
    ex.cmp("da", a + 1e-12, a)
    with pytest.raises(AssertionError, match="cmp da: relative error"):
        ex.cmp("da", a * 1.01, a)
    assert "close: False" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="shape"):
        ex.cmp("da", a.T, a)


def test_vae_backward_reference_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = npvae.VAE(5, 2, hidden=(4,), rng=rng, init_scale=0.5)
    x = rng.random((3, 5))
    eps = rng.standard_normal((2, 3, 2))
    ref = ex.vae_backward_reference(model, x, eps)
    loss, grads = npvae.estimators.reparam(model, x, eps=eps)
    assert ref["loss"] == loss
    for k in grads:
        np.testing.assert_array_equal(ref[k], grads[k])
        np.testing.assert_array_equal(model.grads[k], grads[k])
    mu, logvar = model.encode(x)
    L, M, _ = eps.shape

    def loss_of(mu, logvar):
        z, _ = dist.reparameterize(mu, logvar, eps)
        return -np.mean(model.log_px(x, z)) + np.mean(dist.gaussian_kl(mu, logvar))
    for name, arr in (("dmu", mu), ("dlogvar", logvar)):
        num = gradcheck.numerical_gradient(lambda: loss_of(mu, logvar), arr)
        assert gradcheck.rel_error(ref[name], num) < 1e-7
    z, _ = dist.reparameterize(mu, logvar, eps)
    num = gradcheck.numerical_gradient(lambda: -np.mean(model.log_px(x, z)), z)
    assert gradcheck.rel_error(ref["dz"], num) < 1e-7
    # the bias gradients are the batch sums of the pre-activation gradients
    np.testing.assert_allclose(ref["dec.logits.b"], ref["dlogits"].sum(axis=0), atol=1e-15)
    np.testing.assert_allclose(ref["dec.b0"], ref["da2"].sum(axis=0), atol=1e-15)
    np.testing.assert_allclose(ref["enc.b0"], ref["da1"].sum(axis=0), atol=1e-15)
    with pytest.raises(ValueError, match="hidden"):
        ex.vae_backward_reference(npvae.VAE(5, 2, hidden=(4, 3), rng=rng), x, eps)


# ---------------------------------------------------------------- the student version

SOLVED = '''import numpy as np

def kl(mu, logvar):
    """The KL."""
    ### BEGIN SOLUTION
    return -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=-1)
    ### END SOLUTION

check(kl)'''


def test_strip_solutions_inside_a_def_keeps_signature_and_docstring():
    counter = [0]
    out = student.strip_solutions(SOLVED, counter)
    assert counter == [1]
    assert "np.exp(logvar), axis=-1)" not in out and "SOLUTION" not in out
    assert 'def kl(mu, logvar):\n    """The KL."""\n    # YOUR CODE HERE\n' \
           '    raise NotImplementedError("Exercise 1: kl' in out
    assert out.endswith("check(kl)")
    ns = {"check": lambda f: f}
    exec(out, ns)
    with pytest.raises(NotImplementedError, match="Exercise 1: kl"):
        ns["kl"](0, 0)


def test_strip_solutions_region_starting_with_def_and_top_level_code():
    src = ('x = 1\n### BEGIN SOLUTION\ndef f(a,\n      b):\n    """Doc\n    more."""\n'
           '    return a + b\n### END SOLUTION\n### BEGIN SOLUTION\ny = f(x, 2)\n### END SOLUTION')
    counter = [3]
    out = student.strip_solutions(src, counter)
    assert counter == [5]
    assert "return a + b" not in out and "y = f(x, 2)" not in out
    assert 'def f(a,\n      b):\n    """Doc\n    more."""\n    # YOUR CODE HERE\n' in out
    assert 'raise NotImplementedError("Exercise 4: f' in out
    assert out.endswith('raise NotImplementedError("Exercise 5: this cell (see the instructions above)")')
    compile(out, "<cell>", "exec")


@pytest.mark.parametrize("src", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_unbalanced_markers_raise(src):
    with pytest.raises(student.SolutionMarkerError):
        student.strip_solutions(src)


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_make_student_notebooks_and_the_command(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    code = nbformat.v4.new_code_cell(SOLVED)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="secret output\n")]
    code.execution_count = 3
    md = nbformat.v4.new_markdown_cell("Why?\n<!-- BEGIN SOLUTION -->\nBecause KL >= 0.\n"
                                       "<!-- END SOLUTION -->")
    _notebook(src / "01_a.ipynb", [md, code])
    _notebook(src / "_draft.ipynb", [code])
    out = tmp_path / "student"
    assert main(["exercises", "--src", str(src), "--out", str(out)]) == 0
    assert "01_a.ipynb  (2 exercises)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb"]
    nb = nbformat.read(out / "01_a.ipynb", as_version=4)
    nbformat.validate(nb)
    text = json.dumps(nb)
    assert "Because KL" not in text and "secret output" not in text and "axis=-1)" not in text
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert "*Write your answer here.*" in nb.cells[0].source
    # a second run refuses to overwrite the student's work, unless forced
    assert main(["exercises", "--src", str(src), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["exercises", "--src", str(src), "--out", str(out), "--force"]) == 0


def test_command_errors(tmp_path, capsys):
    assert main(["exercises", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["exercises", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no .ipynb notebooks" in capsys.readouterr().err
    _notebook(tmp_path / "01_bad.ipynb",
              [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1")])
    assert main(["exercises", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "01_bad.ipynb" in capsys.readouterr().err
    assert main(["exercises", "--src", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "solutions' own directory" in capsys.readouterr().err


def test_find_notebooks_default_is_the_repository_directory():
    paths = student.find_notebooks()
    assert paths and all(p.parent.name == "notebooks" and p.suffix == ".ipynb" for p in paths)
