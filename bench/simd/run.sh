#!/usr/bin/env bash
# Per-layer SIMD against Cheetah (issue 12), and the planner's per-layer choice (auto): every
# distinct conv/FC shape, one run per model and protocol on this machine; JSON lines in
# bench/simd/<model>_<protocol>.jsonl, the conversions in bench/simd/nonlinear.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/privinfer
for m in resnet20 resnet18-64 vgg16-32 resnet32 mobilenetv2-32 vit-cifar; do
  for p in cheetah simd auto; do
    $bin bench linear --model "$m" --protocol "$p" --distinct --json > "bench/simd/${m}_${p}.jsonl"
  done
done
$bin bench nonlinear --json > bench/simd/nonlinear.jsonl
