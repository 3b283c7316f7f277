#!/usr/bin/env bash
# Runs `privinfer bench he` and the SEAL peer (seal-python 4.4.0 in a venv this
# script creates) in the same run, on the same machine, and prints a Markdown
# table of medians with the ratio privinfer / SEAL.
#   usage: bench/seal/run.sh [N_LIST] [BUDGET_MS]     e.g. bench/seal/run.sh 4096,8192 300
set -euo pipefail
cd "$(dirname "$0")/../.."
NS="${1:-4096,8192}"
BUDGET="${2:-300}"
VENV="${SEAL_VENV:-target/seal-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "seal-python==4.4.0" numpy
fi
cargo build --release -q -p privinfer
OUT="target/bench-he-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
# interleave the two implementations per N so that both see the same machine load
for n in ${NS//,/ }; do
  ./target/release/privinfer bench he --n "$n" --json --budget-ms "$BUDGET" | sed 's/}$/,"impl":"privinfer"}/' >> "$OUT"
  "$VENV/bin/python" bench/seal/bench_seal.py --n "$n" --budget-ms "$BUDGET" >> "$OUT"
done
echo "# raw: $OUT"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%Y-%m-%d)"
"$VENV/bin/python" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = {(r["op"], r["n"]): r for r in rows if r["impl"] == "privinfer"}
seal = {(r["op"], r["n"]): r for r in rows if r["impl"] == "seal" and "ns" in r}
keys = sorted(set(ours) | set(seal), key=lambda k: (k[1], k[0]))
print("| op | N | log Q | privinfer (µs) | SEAL (µs) | ratio |")
print("|---|---|---|---|---|---|")
for k in keys:
    o, s = ours.get(k), seal.get(k)
    lq = (o or s)["log_q"]
    fo = f"{o['ns']/1e3:.1f}" if o else "–"
    fs = f"{s['ns']/1e3:.1f}" if s else "–"
    ratio = f"{o['ns']/s['ns']:.2f}" if o and s else "–"
    print(f"| {k[0]} | {k[1]} | {lq} | {fo} | {fs} | {ratio} |")
PY
