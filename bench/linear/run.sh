#!/usr/bin/env bash
# Runs `privinfer bench linear` three ways for each model — Cheetah's own protocol
# (--no-packing), the default plan (400 Mbit/s) and the bandwidth-bound plan (--plan-mbps 10) —
# and writes one JSONL per run plus a markdown report (report.py).
#
#   bench/linear/run.sh [--out DIR] [MODEL ...]
#
# MODEL: models/resnet20.onnx (all layers) or a built-in name (resnet18-224, resnet50, ...: each
# distinct layer once). Timing runs take /work/bench.lock when it exists so they never overlap
# other benchmarks on a shared machine; `uptime` is recorded before and after each run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/linear/results-$(date -u +%F)
if [ "${1:-}" = "--out" ]; then out=$2; shift 2; fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(models/resnet20.onnx resnet18-224)
mkdir -p "$out"
cargo build --release -q -p privinfer
bin=target/release/privinfer
lock() { if [ -e /work/bench.lock ]; then flock /work/bench.lock "$@"; else "$@"; fi; }
for m in "${models[@]}"; do
  tag=$(basename "$m" .onnx)
  extra=()
  case "$m" in *.onnx) ;; *) extra=(--distinct) ;; esac
  for name in cheetah default bound; do
    case $name in
      cheetah) args=(--no-packing) ;;
      default) args=() ;;
      bound) args=(--plan-mbps 10) ;;
    esac
    f="$out/$tag.$name.jsonl"
    { echo "{\"uptime_before\": \"$(uptime)\"}"
      lock "$bin" bench linear --model "$m" --json "${extra[@]}" "${args[@]}"
      echo "{\"uptime_after\": \"$(uptime)\"}"; } > "$f"
    echo "wrote $f" >&2
  done
done
python3 bench/linear/report.py "$out" > "$out/report.md"
echo "report: $out/report.md" >&2
