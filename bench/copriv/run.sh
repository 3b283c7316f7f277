#!/bin/bash
# CoPriv's convolution protocol against the OT linear layer (CrypTFlow2's) and Cheetah: every
# layer of each model under --protocol ot, winograd2 and winograd4 (Winograd on 3×3 stride-1
# convs, ot elsewhere) and cheetah. Seeded weights; every measured row is checked against the
# reference ("exact") and its bytes against the prediction. ResNet-18 (32×32) is predicted only
# by default (its OT rows move 3.3 GB per layer): MEASURE18=1 runs it too.
# Usage: bench/copriv/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p privinfer
BIN=target/release/privinfer
OUT=bench/copriv
for p in ot winograd2 winograd4 cheetah; do
  $BIN bench linear --model resnet32 --protocol $p --json > $OUT/resnet32_$p.jsonl
  if [ "${MEASURE18:-0}" = 1 ]; then
    $BIN bench linear --model resnet18-32 --protocol $p --json > $OUT/resnet18-32_$p.jsonl
  else
    $BIN bench linear --model resnet18-32 --protocol $p --dry-run --json > $OUT/resnet18-32_$p.jsonl
  fi
done

# Whole ResNet-32 (pretrained, exported by python/privinfer_models; not committed): the
# planner's choice on LAN and WAN, and the all-OT plans on loopback. Needs MODEL32=path.
if [ -n "${MODEL32:-}" ]; then
  $BIN bench --model $MODEL32 --protocol auto --net lan --plan-mbps 3000 --json > $OUT/e2e_resnet32_auto_lan.jsonl
  $BIN bench --model $MODEL32 --protocol auto --net wan --plan-mbps 400 --json > $OUT/e2e_resnet32_auto_wan.jsonl
  $BIN bench --model $MODEL32 --protocol winograd --json > $OUT/e2e_resnet32_winograd.jsonl
  $BIN bench --model $MODEL32 --protocol ot --json > $OUT/e2e_resnet32_ot.jsonl
fi
