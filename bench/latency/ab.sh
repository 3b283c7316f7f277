#!/usr/bin/env bash
# Two builds alternating in one script, so that a shared host's drift hits both alike
# (BENCHMARKS.md § Private ViT end to end, § End to end › Latency and compute): the CIFAR ViT on
# the emulated WAN (WAN_REPS pairs), then the ViT and ResNet-20 over loopback (LOOP_REPS pairs),
# ResNet-20 on the WAN once per build, and, when VITLITE names the seeded ViT-Lite export
# (python -m privinfer_models.train_vit --seeded --depth 7 --dim 256 --mlp 512), it over
# loopback once per build.
# Usage: OLD=/path/to/old/privinfer NEW=/path/to/new/privinfer STAMP=2026-12-06h bench/latency/ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OLD:?set OLD to the earlier privinfer binary}"
NEW=${NEW:-target/release/privinfer}
OUT=bench/latency
stamp=${STAMP:-$(date -u +%Y-%m-%d)}
V=models/vit_cifar10.onnx
R=models/resnet20.onnx
bin() { if [ "$1" = old ]; then echo "$OLD"; else echo "$NEW"; fi; }
for r in $(seq 1 "${WAN_REPS:-3}"); do for v in old new; do
    "$(bin $v)" bench --model $V --net wan --json > $OUT/vit_wan_${v}_${r}_$stamp.jsonl
done; done
for r in $(seq 1 "${LOOP_REPS:-2}"); do for v in old new; do
    "$(bin $v)" bench --model $V --json > $OUT/vit_loopback_${v}_${r}_$stamp.jsonl
    "$(bin $v)" bench --model $R --json > $OUT/resnet20_loopback_${v}_${r}_$stamp.jsonl
done; done
for v in old new; do
    "$(bin $v)" bench --model $R --net wan --json > $OUT/resnet20_wan_${v}_1_$stamp.jsonl
done
if [ -n "${VITLITE:-}" ]; then
    for v in old new; do
        "$(bin $v)" bench --model "$VITLITE" --json > $OUT/vitlite_${v}_$stamp.jsonl
    done
fi
