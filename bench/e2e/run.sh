#!/usr/bin/env bash
# End-to-end benchmark: privinfer and CrypTen on the same models, in the same run.
#
#   bench/e2e/run.sh [--models resnet20,resnet56,resnet18_64,mobilenetv2_32]
#                    [--systems privinfer,crypten] [--plans 400,10] [--release] [--out FILE]
#
# On a fresh machine (Debian, Rust toolchain, ../shared/data beside the repo) it:
#   1. builds bench/.venv: Debian's torch 1.13 (system site-packages), the repo's python export
#      tooling (python/, onnx, onnxruntime) and CrypTen 0.4.1 with --no-deps plus the small
#      pure-python packages it imports (bench/e2e/requirements-crypten.txt);
#   2. exports the models to ONNX with python/privinfer_models (ResNet-20/56: pretrained CIFAR-10
#      checkpoints from ../shared/data/resnet-cifar10; ResNet-18 64x64 and MobileNetV2 32x32:
#      seeded random weights, BatchNorm calibrated on CIFAR-10 images);
#   3. builds privinfer (`cargo build -p privinfer`, or --release);
#   4. for each model: `privinfer bench --model M --json` (both parties in one process over TCP
#      loopback, one thread each; once per `--plans` bandwidth, passed as --plan-mbps: 400 is
#      privinfer's default plan, 10 its bandwidth-bound plan with packed HE responses),
#      `privinfer estimate` for LAN/WAN, then the same ONNX file
#      under CrypTen (bench/e2e/crypten_bench.py: two processes, gloo over localhost, one torch
#      thread each);
#   5. writes one JSON line per model per system to bench/e2e/results-<date>.jsonl (or --out),
#      the per-layer privinfer output to bench/e2e/build/raw/, and a markdown table to stdout.
# A model that fails under a system gets a row with its one-line error instead of numbers.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

MODELS="resnet20,resnet56,resnet18_64,mobilenetv2_32"
SYSTEMS="privinfer,crypten"
PROFILE=dev
PLANS="400"
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --models) MODELS="$2"; shift 2 ;;
        --systems) SYSTEMS="$2"; shift 2 ;;
        --release) PROFILE=release; shift ;;
        --plans) PLANS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

DATA="${PRIVINFER_DATA:-$ROOT/../shared/data}"
if [ ! -d "$DATA/resnet-cifar10" ] || [ ! -f "$DATA/cifar10/test_batch.bin" ]; then
    echo "run.sh: the data directory $DATA (resnet-cifar10/, cifar10/) is missing; set PRIVINFER_DATA" >&2
    exit 1
fi
DATA="$(cd "$DATA" && pwd)"
BUILD="$HERE/build"
mkdir -p "$BUILD/models" "$BUILD/raw"
DATE="$(date -u +%Y-%m-%d)"
OUT="${OUT:-$HERE/results-$DATE.jsonl}"
: > "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- 1. python environment
VENV="$ROOT/bench/.venv"
if ! /usr/bin/python3 -c "import torch, numpy, PIL" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-venv python3-pil python3-numpy
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
if ! "$PY" -c "import privinfer_models, onnx, onnxruntime" 2>/dev/null; then
    log "installing the export tooling (python/)"
    "${PIP[@]}" -c python/constraints.txt -e python
fi
if [[ ",$SYSTEMS," == *",crypten,"* ]] && ! "$PY" -c "import crypten, omegaconf" 2>/dev/null; then
    log "installing CrypTen 0.4.1 (--no-deps: its declared deps would replace torch 1.13)"
    "${PIP[@]}" --no-deps -r "$HERE/requirements-crypten.txt"
fi

# ---------------------------------------------------------------- 2. models
need=()
for m in ${MODELS//,/ }; do
    [ -f "$BUILD/models/$m.onnx" ] || need+=("$m")
done
if [ ${#need[@]} -gt 0 ]; then
    log "exporting ${need[*]}"
    (cd python && "$PY" -m privinfer_models.export --data "$DATA" --out "$BUILD/models" \
        --models "$(IFS=,; echo "${need[*]}")" 2>"$BUILD/export.log") || {
        tail -5 "$BUILD/export.log" >&2; exit 1; }
fi
# Inputs: the bundled CIFAR-10 sample, and the same image scaled to 64x64 for ResNet-18.
IMG32="$ROOT/models/samples/cifar10_00_3.png"
IMG64="$BUILD/cifar10_00_3_64.png"
[ -f "$IMG64" ] || "$PY" -c "
from PIL import Image; import sys
Image.open(sys.argv[1]).convert('RGB').resize((64, 64), Image.BILINEAR).save(sys.argv[2])" "$IMG32" "$IMG64"

# ---------------------------------------------------------------- 3. privinfer
# (always: `privinfer estimate` gives the LAN/WAN figures of both systems)
log "building privinfer ($PROFILE)"
if [ "$PROFILE" = release ]; then
    cargo build -q --release -p privinfer; BIN="$ROOT/target/release/privinfer"
else
    cargo build -q -p privinfer; BIN="$ROOT/target/debug/privinfer"
fi

# ---------------------------------------------------------------- 4. measurements
CPU="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
grep -qw avx512f /proc/cpuinfo 2>/dev/null && CPU="$CPU (AVX-512)"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
meta() {  # the context of one measurement, taken just before it
    "$PY" -c "
import json, os, sys
print(json.dumps({'date': sys.argv[1], 'cpu': sys.argv[2], 'cores': os.cpu_count(),
    'loadavg_1m': os.getloadavg()[0], 'commit': sys.argv[3], 'profile': sys.argv[4]}))" \
        "$DATE" "$CPU" "$COMMIT" "$PROFILE" > "$BUILD/meta.json"
}
estimate() {  # estimate FILE_WITH_TOTAL OUT
    local ms bytes rounds
    ms="$("$PY" "$HERE/report.py" field "$1" ms)"
    bytes="$("$PY" "$HERE/report.py" field "$1" bytes)"
    rounds="$("$PY" "$HERE/report.py" field "$1" rounds)"
    "$BIN" estimate --ms "$ms" --bytes "$bytes" --rounds "$rounds" --json > "$2"
}

# Each measurement runs in a network namespace of its own where one can be made (root, unshare):
# its loopback counter then gives the bytes on the wire, an independent check of both systems'
# own counts (it adds TCP/IP headers, acknowledgements and connection set-up).
NETNS=()
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
    NETNS=(unshare -n --)
fi
timed() {  # timed NAME CMD...: CPU seconds to raw/NAME.cpu, loopback bytes to raw/NAME.lo
    local name="$1"; shift
    rm -f "$BUILD/raw/$name.lo"
    if [ ${#NETNS[@]} -gt 0 ]; then
        "${NETNS[@]}" "$PY" "$HERE/report.py" run-timed --lo "$BUILD/raw/$name.lo" "$BUILD/raw/$name.cpu" -- "$@"
    else
        "$PY" "$HERE/report.py" run-timed "$BUILD/raw/$name.cpu" -- "$@"
    fi
}

for m in ${MODELS//,/ }; do
    model="$BUILD/models/$m.onnx"
    img="$IMG32"; [[ "$m" == *_64 ]] && img="$IMG64"
    if [[ ",$SYSTEMS," == *",privinfer,"* ]]; then
        for plan in ${PLANS//,/ }; do
            log "privinfer: $m (plan for $plan Mbit/s)"
            meta
            name="privinfer-$m"; sys="privinfer"
            [ "$plan" = 400 ] || { name="privinfer-$m-plan$plan"; sys="privinfer, plan $plan Mbit/s"; }
            raw="$BUILD/raw/$name.jsonl"
            if timed "$name" "$BIN" bench --model "$model" --image "$img" --plan-mbps "$plan" --json \
                > "$raw" 2> "$BUILD/raw/$name.err"; then
                estimate "$raw" "$BUILD/raw/$name.est"
                "$PY" "$HERE/report.py" privinfer-row --model "$m" --plan-mbps "$plan" --bench "$raw" \
                    --cpu "$BUILD/raw/$name.cpu" --lo "$BUILD/raw/$name.lo" \
                    --estimate "$BUILD/raw/$name.est" --meta "$BUILD/meta.json" >> "$OUT"
            else
                "$PY" "$HERE/report.py" error-row --system "$sys" --model "$m" \
                    --error-file "$BUILD/raw/$name.err" --meta "$BUILD/meta.json" >> "$OUT"
            fi
            tail -1 "$OUT" >&2
        done
    fi
    if [[ ",$SYSTEMS," == *",crypten,"* ]]; then
        log "crypten: $m"
        meta
        raw="$BUILD/raw/crypten-$m.json"
        if timed "crypten-$m" "$PY" "$HERE/crypten_bench.py" --model "$model" --name "$m" --image "$img" \
            > "$raw" 2> "$BUILD/raw/crypten-$m.err"; then
            estimate "$raw" "$BUILD/raw/crypten-$m.est"
            "$PY" "$HERE/report.py" crypten-row --model "$m" --out "$raw" --lo "$BUILD/raw/crypten-$m.lo" \
                --estimate "$BUILD/raw/crypten-$m.est" --meta "$BUILD/meta.json" >> "$OUT"
        else
            "$PY" "$HERE/report.py" error-row --system crypten --model "$m" \
                --error-file "$BUILD/raw/crypten-$m.err" --meta "$BUILD/meta.json" >> "$OUT"
        fi
        tail -1 "$OUT" >&2
    fi
done

# ---------------------------------------------------------------- 5. tables
{
    echo "Machine: $CPU, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uptime | sed 's/^ *//')"
    echo "Commit $COMMIT, profile $PROFILE, $DATE; results in ${OUT#"$ROOT"/}"
    echo
    "$PY" "$HERE/report.py" table "$OUT"
    raws=()
    [[ ",$SYSTEMS," == *",privinfer,"* ]] && for m in ${MODELS//,/ }; do
        for plan in ${PLANS//,/ }; do
            f="$BUILD/raw/privinfer-$m.jsonl"; [ "$plan" = 400 ] || f="$BUILD/raw/privinfer-$m-plan$plan.jsonl"
            [ -s "$f" ] && grep -q '"total"' "$f" && raws+=("$f")
        done
    done
    if [ ${#raws[@]} -gt 0 ]; then
        echo
        echo "privinfer per op (sum over the layers of each kind):"
        echo
        "$PY" "$HERE/report.py" breakdown "${raws[@]}"
    fi
} | tee "${OUT%.jsonl}.md"
