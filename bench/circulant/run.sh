#!/bin/bash
# PrivCirNet's block-circulant layers on our ring (--protocol circulant, linear::circulant) and
# by CirEncode on the SIMD substrate (--protocol cirencode, linear::cirencode) against our dense plan (--protocol cheetah) and the SIMD (Bolt-style) dense baseline
# (--protocol simd). Seeded weights are projected onto the structure by --circulant B (or a
# per-layer choice, --circulant-blocks FILE); every measured row is checked against the integer
# reference ("exact") and its bytes against the prediction.
# Usage: bench/circulant/run.sh [sweep|pack|r20|r18|mnv2|e2e|vit]...  (default: all but pack and vit)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p privinfer
BIN=target/release/privinfer
OUT=bench/circulant
PY=python/.venv/bin/python
STEPS=${*:-sweep r20 r18 mnv2 e2e}
for step in $STEPS; do
  case $step in
  sweep) # Exactness: each distinct circulant conv / FC shape for b = 2, 4, 8, 16, both protocols
         # (circulant planned at 400 and at 10 Mbit/s, where most layers pack their responses).
    for m in resnet20 resnet32 resnet18-64 mobilenetv2-32; do
      for b in 2 4 8 16; do
        for bw in 400 10; do
          $BIN bench linear --model $m --circulant $b --protocol circulant --distinct --plan-mbps $bw --json > $OUT/sweep_${m}_b${b}_p$bw.jsonl
        done
        $BIN bench linear --model $m --circulant $b --protocol cirencode --distinct --json > $OUT/sweep_cirencode_${m}_b$b.jsonl
      done
    done ;;
  pack) # Block-minor tilings (packed circulant responses) against the build before them: set OLD
        # to that binary; ResNet-18 (64x64) and MobileNetV2 (32x32) at b = 8, alternating.
    for r in 1 2; do
      for v in old new; do
        B=$BIN; [ $v = old ] && B=${OLD:?pack needs OLD=<the binary of the build before>}
        $B bench linear --model resnet18-64 --circulant 8 --protocol circulant --json > $OUT/pack_r18_b8_${v}_$r.jsonl
        $B bench linear --model resnet18-64 --circulant 8 --protocol circulant --net wan --json > $OUT/pack_r18_b8_wan_${v}_$r.jsonl
        $B bench linear --model resnet18-64 --circulant 8 --protocol circulant --net 100:40 --plan-mbps 100 --json > $OUT/pack_r18_b8_100m_${v}_$r.jsonl
        $B bench linear --model mobilenetv2-32 --circulant 8 --protocol circulant --json > $OUT/pack_mnv2_b8_${v}_$r.jsonl
      done
    done ;;
  r20) # ResNet-20: the trained circulant model against the dense one, same run; seeded b = 4.
    for p in cheetah circulant; do
      $BIN bench linear --model models/resnet20.onnx --protocol $p --repeat 3 --json > $OUT/r20_dense_$p.jsonl
      $BIN bench linear --model models/resnet20_circulant.onnx --protocol $p --repeat 3 --json > $OUT/r20_circulant_$p.jsonl
    done
    $BIN bench linear --model resnet20 --circulant 4 --protocol circulant --repeat 3 --json > $OUT/r20_seeded_b4.jsonl ;;
  r18) # ResNet-18 (64x64, ImageNet stem: bench linear's resnet18-64 shapes), seeded: uniform b = 8
       # and the ILP mix at the uniform-b=4 budget.
    mkdir -p python/build/circulant/r18
    (cd python && .venv/bin/python -m privinfer_models.circulant --model resnet18_64_imagenet --solve-only \
       --fisher-batches 8 --batch-size 32 --fisher-images 256 --out build/circulant/r18)
    cp python/build/circulant/r18/blocks.json $OUT/r18_ilp_blocks.json
    M18=python/build/circulant/r18/resnet18_64_imagenet.onnx
    $BIN bench linear --model $M18 --protocol cheetah --json > $OUT/r18_cheetah.jsonl
    $BIN bench linear --model $M18 --protocol simd --json > $OUT/r18_simd.jsonl
    $BIN bench linear --model $M18 --protocol circulant --circulant 8 --json > $OUT/r18_circulant_b8.jsonl
    $BIN bench linear --model $M18 --protocol cirencode --circulant 8 --json > $OUT/r18_cirencode_b8.jsonl
    $BIN bench linear --model $M18 --protocol circulant --circulant-blocks $OUT/r18_ilp_blocks.json \
      --json > $OUT/r18_circulant_ilp.jsonl ;;
  mnv2) # MobileNetV2 (32x32), seeded: the 1x1 convs and the classifier at b = 8 (depthwise layers
        # stay dense): forced, and the planner's choice (falcon may take the depthwise layers).
    for p in cheetah auto; do
      $BIN bench linear --model mobilenetv2-32 --protocol $p --json > $OUT/mnv2_dense_$p.jsonl
    done
    for p in circulant auto; do
      $BIN bench linear --model mobilenetv2-32 --protocol $p --circulant 8 --json > $OUT/mnv2_circulant_b8_$p.jsonl
    done ;;
  e2e) # Whole private inference, same run: ResNet-20 trained, ResNet-18 (64x64) projected b = 8.
    $BIN bench --model models/resnet20.onnx --protocol auto --json > $OUT/e2e_r20_dense.jsonl
    $BIN bench --model models/resnet20_circulant.onnx --protocol auto --json > $OUT/e2e_r20_circulant.jsonl
    (cd python && .venv/bin/python -m privinfer_models.circulant --model resnet18_64 --solve-only --uniform 8 \
       --fisher-batches 1 --batch-size 8 --fisher-images 16 --out build/circulant/r18u8)
    $BIN bench --model python/build/circulant/r18u8/resnet18_64.onnx --protocol auto --json > $OUT/e2e_r18_dense.jsonl
    $BIN bench --model python/build/circulant/r18u8/resnet18_64_circulant_projected.onnx --protocol auto --json > $OUT/e2e_r18_circulant.jsonl ;;
  vit) # The circulant ViT: the seeded ViT-Lite shape projected to b = 4 and 8 (cost only) and the
       # trained vit_cifar10 against models/vit_cifar10_circulant.onnx, dense and circulant
       # alternating, loopback then the emulated WAN; accuracy of both on the test file.
    S=${STAMP:-$(date -u +%F)}
    (cd python && $PY -m privinfer_models.train_vit --seeded --depth 7 --dim 256 --mlp 512 --out build/vitlite >/dev/null
     for b in 4 8; do
       $PY -m privinfer_models.circulant_vit --onnx build/vitlite/vit_cifar10_seeded.onnx --patch 4 --dim 256 \
         --depth 7 --heads 4 --mlp 512 --block $b --epochs 0 --test-limit 200 --out build/circulant/vitlite_b${b}_proj >/dev/null
     done)
    for r in 1 2; do
      $BIN bench --model python/build/vitlite/vit_cifar10_seeded.onnx --json > $OUT/vitlite_dense_${S}_$r.jsonl
      for b in 4 8; do
        $BIN bench --model python/build/circulant/vitlite_b${b}_proj/vit_cifar10_circulant.onnx --json > $OUT/vitlite_b${b}_${S}_$r.jsonl
      done
    done
    for r in 1 2; do
      for net in loopback wan; do
        NET=(); [ $net = wan ] && NET=(--net wan)
        $BIN bench --model models/vit_cifar10.onnx "${NET[@]}" --json > $OUT/vit_dense_${net}_${S}_$r.jsonl
        $BIN bench --model models/vit_cifar10_circulant.onnx "${NET[@]}" --json > $OUT/vit_circulant_${net}_${S}_$r.jsonl
      done
    done
    for m in vit_cifar10 vit_cifar10_circulant; do
      $BIN eval --model models/$m.onnx --data ../shared/data/cifar10/test_batch.bin --fixed-point --json > $OUT/eval_$m.json
    done
    python3 $OUT/report.py ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
