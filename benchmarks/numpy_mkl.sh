#!/usr/bin/env bash
# Optional, run by hand: a virtual environment whose NumPy is built from
# source against Intel's MKL (from PyPI's mkl-devel) instead of the OpenBLAS
# that PyPI's NumPy wheels carry.  npvae's code is the same NumPy code; only
# the library behind `@` changes.  See benchmarks/README.md, "Session 5", for
# what it changed here (npvae's step 1.00-1.07x faster: within the noise).
#
#     bash benchmarks/numpy_mkl.sh [VENV]        # default VENV: .venv-mkl
#     NUMPY_VERSION=2.3.5 bash benchmarks/numpy_mkl.sh   # another NumPy (only 2.4.6 was tried)
#     VENV/bin/python benchmarks/bench.py --no-torch --configs paper pytorch-example large-batch
#
# Compare npvae's examples/s with those of the ordinary install, process by
# process: PyTorch ran slower in a process whose NumPy had loaded MKL, so
# the npvae / PyTorch ratios printed in this environment flatter npvae.
#
# Needs a C compiler and about 1.3 GB of disk (MKL is 1 GB); the NumPy build
# takes 10-25 minutes on 2 cores.  MKL is for x86-64; on other CPUs use the
# ordinary install.
set -euo pipefail

venv=${1:-.venv-mkl}
here=$(cd "$(dirname "$0")/.." && pwd)
numpy_version=${NUMPY_VERSION:-2.4.6}       # the version built and measured here

python -m venv "$venv"
export PATH="$(cd "$venv" && pwd)/bin:$PATH"       # the build looks for cython on PATH
export PKG_CONFIG_PATH="$(cd "$venv" && pwd)/lib/pkgconfig"   # mkl-devel's .pc files
pip install mkl-devel meson-python meson ninja cython
# mkl-threading=gomp: MKL's threads on GNU OpenMP, the runtime PyTorch's CPU
# build uses too.  With both loaded (bench.py), PyTorch then runs on the
# system's libgomp instead of its own copy; it ran slower there (see above)
# --no-cache-dir: pip's wheel cache ignores the -C settings, so a NumPy built
# earlier without MKL could be reused; the check below would catch that.
pip install --no-cache-dir --no-build-isolation --no-binary numpy "numpy==$numpy_version" \
    -Csetup-args=-Dblas=mkl -Csetup-args=-Dlapack=mkl -Csetup-args=-Dmkl-threading=gomp
pip install -e "$here[test]"
python - <<'EOF'
import numpy as np
cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
print(f"NumPy {np.__version__}, BLAS: {cfg['name']}")
if "mkl" not in cfg["name"]:
    raise SystemExit("NumPy did not link MKL")
EOF
echo "done: $venv/bin/python; 'pip install torch==2.13.0' there to compare with PyTorch"
