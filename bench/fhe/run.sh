#!/bin/bash
# FHE mode (crate fhe, docs/protocols/hyphen.md): ResNet-20 with AESPA activations
# (models/resnet20_aespa.onnx) end to end at the 128-bit N = 2^16 preset, the programs'
# operation counts against MPCNN's formula, and the pretrained ReLU ResNet-20's plan with the
# composite ReLU.
# Usage: bench/fhe/run.sh [plan|bench|mpcnn|eval|r18|r18i|ab|abk|goals|host]...  (default: all but r18, r18i, ab, abk, goals, host). Run on a quiet
# machine. ab: OLD=<binary> STAMP=<date> alternates OLD, this build and this build with
# --fhe-conv auto twice each, then this build with --fhe-conv diag, on the nine-level preset
# (--fhe-params n16) and with MPCNN's convolution.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p privinfer
BIN=target/release/privinfer
OUT=bench/fhe
DATA=${DATA:-../shared/data/cifar10/test_batch.bin}
STEPS=${*:-plan bench mpcnn eval}
STAMP=${STAMP:-$(date +%F)}
for step in $STEPS; do
  case $step in
  plan) # Dry runs: layouts, levels, rotations per step (MPCNN's formula beside each conv).
    $BIN inspect models/resnet20_aespa.onnx --mode fhe --json > $OUT/plan_resnet20_aespa.jsonl
    $BIN inspect models/resnet20.onnx --mode fhe --json > $OUT/plan_resnet20_relu.jsonl ;;
  bench) # One encrypted inference of the bundled sample, both parties in one process.
    /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --json \
      > $OUT/bench_resnet20_aespa.jsonl 2> $OUT/bench_resnet20_aespa.time ;;
  mpcnn) # The same inference with MPCNN's convolution for every layer (the baseline).
    $BIN inspect models/resnet20_aespa.onnx --mode fhe --fhe-conv mpcnn --json > $OUT/plan_resnet20_aespa_mpcnn.jsonl
    /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --fhe-conv mpcnn --json \
      > $OUT/bench_resnet20_aespa_mpcnn.jsonl 2> $OUT/bench_resnet20_aespa_mpcnn.time ;;
  r18) # ResNet-18 at 64x64 (Tiny ImageNet shape, 200 classes, seeded weights, degree-2
      # activations, BN calibrated on CIFAR-10 images): maps split over up to 8 ciphertexts.
      # About ten minutes and 14 GiB here; the model (45 MB) is exported, not committed.
    M=python/build/models/resnet18_64_aespa.onnx
    [ -f $M ] || python/.venv/bin/python -m privinfer_models.export --models resnet18_64_aespa --out python/build/models
    $BIN inspect $M --mode fhe --json > $OUT/plan_resnet18_64_aespa.jsonl
    # FLOOD: --fhe-flood-bits (default 12; 0 = re-randomization only). CONV: --fhe-conv
    # (default auto, as the CLI; pair, diag). Output bench/fhe/r18_<stamp>_<conv>_flood<b>.{jsonl,time}.
    C=${CONV:-auto}
    /usr/bin/time -v $BIN bench --model $M --mode fhe --image models/samples/cifar10_00_3.png \
      --fhe-flood-bits ${FLOOD:-12} --fhe-conv $C --json \
      > $OUT/r18_${STAMP}_${C}_flood${FLOOD:-12}.jsonl 2> $OUT/r18_${STAMP}_${C}_flood${FLOOD:-12}.time ;;
  r18i) # ResNet-18 at 224x224 (ImageNet shape, 1000 classes, seeded weights, degree-2
      # activations, an average-pooling stem): every map in two row bands of 2^15 slots.
    M=python/build/models/resnet18_224_aespa.onnx
    [ -f $M ] || python/.venv/bin/python -m privinfer_models.export --models resnet18_224_aespa --out python/build/models
    $BIN inspect $M --mode fhe --json > $OUT/plan_resnet18_224_aespa.jsonl
    /usr/bin/time -v $BIN bench --model $M --mode fhe --image models/samples/cifar10_00_3.png \
      --fhe-flood-bits ${FLOOD:-12} --json \
      > $OUT/r18i_${STAMP}_flood${FLOOD:-12}.jsonl 2> $OUT/r18i_${STAMP}_flood${FLOOD:-12}.time ;;
  eval) # Encrypted inference of K test images (default 1000), 100 per class: every tenth
    # (summary: bench/fhe/eval_report.py)
    # image of the class-grouped file. About half a minute each on 2 cores, journaled: a
    # stopped run resumes where it stopped. Each evaluation is also decrypted unflooded and at
    # 10, 14 and 16 bits of flooding.
    $BIN eval --model models/resnet20_aespa.onnx --data "$DATA" --every 10 --limit "${K:-1000}" --mode fhe --jobs 2 \
      --fhe-flood-sweep 0,10,14,16 --journal $OUT/eval_resnet20_aespa.jsonl --json \
      > $OUT/eval_resnet20_aespa.json ;;
  ab) # The previous build (OLD) and this one alternating in one script: only same-run ratios
      # compare on a shared host.
    for i in 1 2; do
      for b in old new auto; do
        bin=$BIN; [ $b = old ] && bin=$OLD
        conv=""; [ $b = auto ] && conv="--fhe-conv auto"
        /usr/bin/time -v $bin bench --model models/resnet20_aespa.onnx --mode fhe $conv --json \
          > $OUT/ab_${STAMP}_${b}_$i.jsonl 2> $OUT/ab_${STAMP}_${b}_$i.time
      done
    done
    /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --fhe-conv diag --json \
      > $OUT/ab_${STAMP}_diag_1.jsonl 2> $OUT/ab_${STAMP}_diag_1.time
    /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --fhe-params n16 --json \
      > $OUT/ab_${STAMP}_new9_1.jsonl 2> $OUT/ab_${STAMP}_new9_1.time
    /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --fhe-conv mpcnn --json \
      > $OUT/ab_${STAMP}_mpcnn_1.jsonl 2> $OUT/ab_${STAMP}_mpcnn_1.time ;;
  abk) # Kernel changes (same plans): OLD and this build alternating twice on ResNet-20, then
      # --fhe-conv diag with each, then ResNet-18 at 64x64 with each (this build first).
    for i in 1 2; do
      for b in old new; do
        bin=$BIN; [ $b = old ] && bin=$OLD
        /usr/bin/time -v $bin bench --model models/resnet20_aespa.onnx --mode fhe --json \
          > $OUT/ab_${STAMP}_${b}_$i.jsonl 2> $OUT/ab_${STAMP}_${b}_$i.time
      done
    done
    for b in old new; do
      bin=$BIN; [ $b = old ] && bin=$OLD
      /usr/bin/time -v $bin bench --model models/resnet20_aespa.onnx --mode fhe --fhe-conv diag --json \
        > $OUT/ab_${STAMP}_diag_$b.jsonl 2> $OUT/ab_${STAMP}_diag_$b.time
    done
    M=python/build/models/resnet18_64_aespa.onnx
    [ -f $M ] || { echo "abk: no $M (python/setup.sh, then the r18 step exports it); ResNet-18 skipped" >&2; continue; }
    for b in new old; do
      bin=$BIN; [ $b = old ] && bin=$OLD
      /usr/bin/time -v $bin bench --model $M --mode fhe --image models/samples/cifar10_00_3.png --json \
        > $OUT/r18_${STAMP}_${b}_auto_flood12.jsonl 2> $OUT/r18_${STAMP}_${b}_auto_flood12.time
    done ;;
  goals) # The issue's comparison in one script: ResNet-20 AESPA with the default plan, the
      # pair everywhere, ConvS (every convolution >= 2.5x below MPCNN's formula) and MPCNN's
      # convolution, then the pretrained ReLU ResNet-20 with the composite ReLU (MPCNN's
      # degrees; about 25 minutes, 11 GiB). Output goals_<stamp>_*.
    for c in auto pair shift mpcnn; do
      /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --fhe-conv $c --json \
        > $OUT/goals_${STAMP}_$c.jsonl 2> $OUT/goals_${STAMP}_$c.time
    done
    /usr/bin/time -v $BIN bench --model models/resnet20.onnx --mode fhe --json \
      > $OUT/goals_${STAMP}_relu.jsonl 2> $OUT/goals_${STAMP}_relu.time ;;
  host) # The host against the one the issue was written on: the CKKS bootstrap the issue quotes
        # ("about 3.4 s at N = 2^16", 2 threads, the AMD EPYC host) and ResNet-20 AESPA's default
        # program, bootstrap / inference / bootstrap in one script. Output host_<stamp>_*.
    for k in 1 2; do
      $BIN bench ckks --json --no-ops --threads 0 > $OUT/host_${STAMP}_ckks_$k.jsonl
      if [ $k = 1 ]; then
        /usr/bin/time -v $BIN bench --model models/resnet20_aespa.onnx --mode fhe --json \
          > $OUT/host_${STAMP}_r20.jsonl 2> $OUT/host_${STAMP}_r20.time
      fi
    done ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
