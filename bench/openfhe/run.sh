#!/usr/bin/env bash
# Bootstrapping at N = 2^16, full slots: privinfer and OpenFHE measured by one script, one after
# the other (never at the same time: each needs several GB), with 1 thread and with all cores.
# OpenFHE's PyPI wheel (openfhe 1.6.1.0.22.4) needs CPython 3.10: the script uses pyenv's 3.10 when
# present, or `python3.10` on the PATH, and creates bench/.venv-openfhe.
# Output: JSON lines on stdout (ours first, then OpenFHE's, with "peer": "openfhe").
set -euo pipefail
cd "$(dirname "$0")/../.."
PY310=""
for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 "$(command -v python3.10 || true)"; do
  if [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then PY310="$c"; break; fi
done
VENV=bench/.venv-openfhe
if [ -n "$PY310" ] && [ ! -x "$VENV/bin/python" ]; then
  "$PY310" -m venv "$VENV"
  "$VENV/bin/pip" install -q "openfhe==1.6.1.0.22.4"
fi
cargo build --release -q -p privinfer
./target/release/privinfer bench ckks --json --threads "${THREADS:-1,0}"
if [ -x "$VENV/bin/python" ]; then
  for t in ${OPENFHE_THREADS:-1 $(nproc)}; do
    OMP_NUM_THREADS=$t "$VENV/bin/python" bench/openfhe/bench_openfhe.py
  done
else
  echo '{"peer": "openfhe", "error": "CPython 3.10 not found; the openfhe wheel needs it"}'
fi
