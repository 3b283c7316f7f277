#!/usr/bin/env bash
# Runs `privinfer bench linear` three ways for each model — Cheetah's own protocol
# (--no-packing), the default plan (400 Mbit/s) and the bandwidth-bound plan (--plan-mbps 10) —
# and writes one JSONL per run plus a markdown report (report.py). With --wan, Cheetah's own
# protocol and the default plan also run over an emulated WAN link (`--net wan`: 400 Mbit/s each
# way, 40 ms RTT, transport::emulate), files TAG.cheetah-wan.jsonl and TAG.default-wan.jsonl; their
# `ms` is wall time on that link. --net SPEC (lan, wan or <mbit/s>:<rtt_ms>; repeatable) adds runs
# on other links; --net-only skips the loopback runs; --repeat K runs each layer K times and
# reports the median ms.
#
#   bench/linear/run.sh [--out DIR] [--wan] [--net SPEC]... [--net-only] [--repeat K] [MODEL ...]
#
# MODEL: models/resnet20.onnx (all layers) or a built-in name (resnet18-224, resnet50, ...: each
# distinct layer once). Timing runs take /work/bench.lock when it exists so they never overlap
# other benchmarks on a shared machine; `uptime` is recorded before and after each run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/linear/results-$(date -u +%F)
nets=(); loopback=1; repeat=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --wan) nets+=(wan); shift ;;
    --net) nets+=("$2"); shift 2 ;;
    --net-only) loopback=0; shift ;;
    --repeat) repeat=$2; shift 2 ;;
    *) break ;;
  esac
done
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
  runs=()
  [ $loopback = 1 ] && runs+=(cheetah default bound)
  for n in ${nets[@]+"${nets[@]}"}; do runs+=("cheetah@$n" "default@$n"); done
  for run in "${runs[@]}"; do
    name=${run%%@*}; args=()
    case $name in
      cheetah) args=(--no-packing) ;;
      default) ;;
      bound) args=(--plan-mbps 10) ;;
    esac
    case $run in
      *@*) net=${run#*@}; args+=(--net "$net"); name=$name-$(echo "$net" | tr ':.' '__') ;;
    esac
    args+=(--repeat "$repeat")
    f="$out/$tag.$name.jsonl"
    { echo "{\"uptime_before\": \"$(uptime)\"}"
      lock "$bin" bench linear --model "$m" --json "${extra[@]}" "${args[@]}"
      echo "{\"uptime_after\": \"$(uptime)\"}"; } > "$f"
    echo "wrote $f" >&2
  done
done
python3 bench/linear/report.py "$out" > "$out/report.md"
echo "report: $out/report.md" >&2
