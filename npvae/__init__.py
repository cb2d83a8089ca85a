"""npvae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in pure NumPy.

Every gradient is derived by hand in ``derivations/`` and checked against
finite differences.  Submodules are imported on first use, so ``import npvae``
is cheap and ``npvae.data``, ``npvae.estimators`` ... work as attributes.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "nn", "distributions", "vae", "estimators", "gradcheck", "optim", "train",
    "evaluate", "variance", "data", "plots", "helmholtz", "lab1d", "exercises",
    "autoencoder", "cli", "checkpoint", "student",
}
_CLASSES = {
    "VAE": "vae",
    "HelmholtzMachine": "helmholtz",
    "Autoencoder": "autoencoder",
}

__all__ = sorted(_SUBMODULES | set(_CLASSES))


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"npvae.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(f"npvae.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'npvae' has no attribute {name!r}")


def __dir__():
    return __all__
