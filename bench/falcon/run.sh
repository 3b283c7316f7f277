#!/bin/bash
# Falcon (dense depthwise packing) against Cheetah on every depthwise layer: each model's `.dw`
# layers under --protocol falcon, falcon with --dense-bytes cheetah (per layer) and cheetah-total
# (all depthwise layers together within Cheetah's bytes), cheetah (today's default)
# and Cheetah's own protocol (--no-packing). Seeded weights; outputs checked against the
# reference in every row ("exact"). Usage: bench/falcon/run.sh [models...]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p privinfer
BIN=target/release/privinfer
MODELS=${*:-mobilenetv2-32 mobilenetv2-224 efficientnet-b0-32}
# Each layer REPEAT times (median `ms`): this shared host's timings drift run to run.
R="--repeat ${REPEAT:-3}"

for m in $MODELS; do
  # ImageNet-size models: each distinct depthwise shape once.
  case $m in *224) D=--distinct ;; *) D= ;; esac
  $BIN bench linear --model $m --only .dw $D --protocol falcon $R --json > bench/falcon/${m}_falcon.jsonl
  $BIN bench linear --model $m --only .dw $D --protocol falcon --dense-bytes cheetah $R --json > bench/falcon/${m}_falcon-capped.jsonl
  $BIN bench linear --model $m --only .dw $D --protocol falcon --dense-bytes cheetah-total $R --json > bench/falcon/${m}_falcon-total.jsonl
  $BIN bench linear --model $m --only .dw $D --protocol cheetah $R --json > bench/falcon/${m}_cheetah.jsonl
  $BIN bench linear --model $m --only .dw $D --protocol cheetah --no-packing $R --json > bench/falcon/${m}_nopacking.jsonl
done
