#!/usr/bin/env bash
# Issue 15's comparison: hyena (padded channel-minor kernel) against simd (the conventional
# slot-encoded convolution) and cheetah (our default), every distinct linear layer of ResNet-20,
# VGG-16 (32×32) and MobileNetV1 (224×224), protocols alternating per model in one script.
# Usage: bench/hyena/run.sh [binary] [tag]
set -euo pipefail
bin=${1:-target/release/privinfer}
tag=${2:-$(date -u +%Y-%m-%d)}
out=$(dirname "$0")
for model in resnet20 vgg16-32 mobilenetv1-224; do
  for p in hyena simd cheetah; do
    "$bin" bench linear --model "$model" --protocol "$p" --distinct --repeat 3 --json \
      > "$out/${model}_${p}_${tag}.jsonl"
  done
done
