#!/usr/bin/env bash
# Builds python/.venv for the model zoo, ONNX export, training and the python tests.
#
# PyTorch comes from Debian (python3-torch 1.13.1, CPU only): PyPI's torch wheel pulls
# ~3 GB of CUDA libraries. The venv sees the system site-packages (torch, numpy, PIL)
# and gets the pinned ONNX tooling from PyPI (versions in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! /usr/bin/python3 -c "import torch, numpy, PIL" 2>/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-venv python3-pil python3-numpy
fi
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
# numpy stays at Debian's 1.24 (torch 1.13 is built against numpy 1.x).
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
.venv/bin/python -c "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)"
