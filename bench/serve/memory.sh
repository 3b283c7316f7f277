#!/usr/bin/env bash
# Measured peak memory of one server session against Plan::predicted_session_memory, per model:
# starts `privinfer serve --max-sessions 1`, reads its resident size once it has printed its
# prediction (idle), runs one `privinfer infer`, reads its peak (VmHWM). Linux only.
#   bench/serve/memory.sh target/release/privinfer models/resnet20.onnx [more.onnx ...]
set -euo pipefail
B=$1; shift
port=7600
for m in "$@"; do
  port=$((port + 1))
  log=$(mktemp)
  "$B" serve --model "$m" --listen 127.0.0.1:$port --max-sessions 1 2>"$log" & sp=$!
  for _ in $(seq 1 600); do grep -q "predicted peak" "$log" && break; sleep 0.2; done
  idle=$(awk '/VmRSS/ {print $2}' /proc/$sp/status)
  out=$("$B" infer --connect 127.0.0.1:$port --image models/samples/cifar10_00_3.png --json 2>/dev/null | head -c 60)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$sp/status)
  echo "$m idle_mib=$((idle / 1024)) hwm_mib=$((hwm / 1024)) session_mib=$(((hwm - idle) / 1024)) $(grep -o 'predicted peak [0-9]* MiB' "$log") $out"
  kill $sp; wait $sp 2>/dev/null || true
  rm -f "$log"
done
