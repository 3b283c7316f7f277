#!/usr/bin/env bash
# The SPU peer rows of `privinfer bench nonlinear` (BENCHMARKS.md § Transformer non-linear
# protocols): SPU 0.9.5 from PyPI in its own venv (build/spu-venv), Cheetah protocol, 64-bit ring.
# Usage: bench/spu/run.sh [elements] [ops...]
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x build/spu-venv/bin/python ]; then
    /usr/bin/python3 -m venv build/spu-venv
    build/spu-venv/bin/pip install -q --disable-pip-version-check spu==0.9.5
fi
exec build/spu-venv/bin/python spu_nonlinear.py "$@"
