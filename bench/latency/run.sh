#!/usr/bin/env bash
# Latency (hops) and traffic of the non-linear protocols, the private ViT and ResNet-20, for the
# current build and, when OLD points at an earlier build's privinfer binary, for it in the same
# run (BENCHMARKS.md § Latency). Usage: [OLD=/path/to/old/privinfer] bench/latency/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
NEW=target/release/privinfer
OUT=bench/latency
stamp=${STAMP:-$(date -u +%Y-%m-%d)}
for who in ${WHO:-new old}; do
    bin=$NEW
    if [ "$who" = old ]; then
        [ -n "${OLD:-}" ] || break
        bin=$OLD
    fi
    echo "== $who: $bin" >&2
    $bin bench nonlinear --elements 65792 --json > $OUT/nonlinear_${who}_$stamp.jsonl
    $bin bench --model models/vit_cifar10.onnx --json > $OUT/vit_loopback_${who}_$stamp.jsonl
    $bin bench --model models/vit_cifar10.onnx --net wan --json > $OUT/vit_wan_${who}_$stamp.jsonl
    $bin bench --model models/resnet20.onnx --json > $OUT/resnet20_loopback_${who}_$stamp.jsonl
    $bin bench --model models/resnet20.onnx --net wan --json > $OUT/resnet20_wan_${who}_$stamp.jsonl
done
