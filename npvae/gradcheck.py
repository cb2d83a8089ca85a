"""Finite-difference gradient checks, for tests and for students.

Centred differences: df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h), with
truncation error O(h^2) and rounding error O(eps_machine |f| / h); in
float64, h = 1e-5 balances the two for O(1) values.

``rel_error(a, b) = max|a - b| / max(1e-8, max(|a| + |b|))``: the largest
deviation measured against the largest entry, so one tiny entry cannot blow
up the ratio and a zero gradient compared with zero is error 0.
"""
import numpy as np


def rel_error(a, b):
    """Normwise relative error between two arrays of the same shape (a float)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs equal shapes, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_gradient(f, x, h=1e-5):
    """d f / d x for a scalar function ``f()`` of the array ``x``, entry by entry.

    ``x`` is perturbed in place (and restored), so ``f`` may read it through a
    closure, e.g. a model's live parameter array.  Returns an array shaped
    like ``x``.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = float(f())
        x[i] = old - h
        fm = float(f())
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=1e-5):
    """sum(dout * d f / d x) for an array-valued ``f()`` of ``x``: the vector-Jacobian
    product that a layer's ``backward(dout)`` must return."""
    dout = np.asarray(dout, dtype=np.float64)
    return numerical_gradient(lambda: np.sum(np.asarray(f(), dtype=np.float64) * dout), x, h)


class GradcheckReport(dict):
    """name -> relative error, with the worst parameter and entry recorded.

    Attributes: ``worst`` (name), ``worst_index`` (entry index),
    ``worst_values`` (analytic, numerical) at that entry, ``max_error``.
    """

    def __str__(self):
        lines = [f"{name:>20s}  rel error {err:.2e}" for name, err in self.items()]
        if self.worst is not None:
            a, n = self.worst_values
            lines.append(f"worst: {self.worst}{list(self.worst_index)}: analytic {a:.10g}, "
                         f"numerical {n:.10g}")
        return "\n".join(lines)

    worst = None
    worst_index = ()
    worst_values = (np.nan, np.nan)

    @property
    def max_error(self):
        return max(self.values()) if self else 0.0


def check(f, params, h=1e-5, names=None):
    """Compare the analytic gradients of ``f`` with centred differences.

    ``f()`` returns ``(loss, grads)`` computed from the live arrays in
    ``params`` (e.g. ``lambda: npvae.estimators.reparam(model, x, eps=eps)``
    with ``params = model.params``).  Every entry of every array (or of those
    in ``names``) is perturbed.  Returns a :class:`GradcheckReport`.
    """
    _, grads = f()
    grads = {k: np.array(v, dtype=np.float64) for k, v in grads.items()}
    report = GradcheckReport()
    worst = -1.0
    for name in (names if names is not None else params):
        if name not in grads:
            raise ValueError(f"f() returned no gradient for parameter {name!r}")
        num = numerical_gradient(lambda: f()[0], params[name], h)
        ana = grads[name]
        err = rel_error(ana, num)
        report[name] = err
        if err > worst:
            worst = err
            idx = np.unravel_index(np.argmax(np.abs(ana - num)), ana.shape) if ana.size else ()
            report.worst, report.worst_index = name, tuple(int(i) for i in idx)
            report.worst_values = (float(ana[idx]), float(num[idx]))
    return report


def check_direction(f, params, rng, n_directions=3, h=1e-5):
    """Whole-model check along random directions v: <v, grad> vs
    (f(theta + h v) - f(theta - h v)) / 2h.  Returns the largest relative
    error over ``n_directions`` directions (a float).

    The error is measured against sum_i |v_i grad_i|, the size of the inner
    product's terms before they cancel: a direction nearly orthogonal to the
    gradient makes <v, grad> itself tiny, and dividing by it would report the
    finite difference's rounding error as a large relative error.
    """
    _, grads = f()
    errs = []
    for _ in range(int(n_directions)):
        vs = {k: rng.standard_normal(p.shape) for k, p in params.items()}
        ana = sum(float(np.sum(vs[k] * grads[k])) for k in params)
        scale = sum(float(np.sum(np.abs(vs[k] * grads[k]))) for k in params)
        saved = {k: p.copy() for k, p in params.items()}
        for k, p in params.items():
            p += h * vs[k]
        fp = float(f()[0])
        for k, p in params.items():
            p[...] = saved[k] - h * vs[k]
        fm = float(f()[0])
        for k, p in params.items():
            p[...] = saved[k]
        num = (fp - fm) / (2 * h)
        errs.append(abs(ana - num) / max(1e-8, scale + abs(num)))
    return max(errs)
