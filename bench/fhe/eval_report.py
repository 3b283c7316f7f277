#!/usr/bin/env python3
"""Summary of a journaled FHE-mode evaluation (`privinfer eval --mode fhe --journal F`):
agreement with the float executor and accuracy at the default flooding and at each flooding of
the sweep, the worst and median precision, and the server time per image.

Usage: bench/fhe/eval_report.py bench/fhe/eval_resnet20_aespa.jsonl
"""
import json
import statistics
import sys


def main(path: str) -> None:
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    head = json.loads(lines[0])
    rows = []
    for l in lines[1:]:
        try:
            rows.append(json.loads(l))
        except json.JSONDecodeError:  # a line cut short by a stopped run (redone on resume)
            pass
    n = len(rows)
    if n == 0:
        print("no images yet")
        return
    classes = len({r["label"] for r in rows})
    agree = sum(r["fhe"] == r["float"] for r in rows)
    acc = sum(r["fhe"] == r["label"] for r in rows)
    facc = sum(r["float"] == r["label"] for r in rows)
    bits = sorted(r["bits"] for r in rows)
    print(f"{n} images ({classes} classes), flooding b = {head['flood_bits']}: top-1 = float on "
          f"{agree}/{n}, FHE accuracy {acc}/{n} (float {facc}/{n}), precision worst "
          f"{bits[0]:.1f} bits, median {statistics.median(bits):.1f}")
    for k, b in enumerate(head["sweep"]):
        ag = sum(r["sweep_fhe"][k] == r["float"] for r in rows)
        worst = min(r["sweep_bits"][k] for r in rows)
        print(f"  b = {b} ({'unflooded' if b == 0 else 'flooded'}): top-1 = float on {ag}/{n}, "
              f"worst {worst:.1f} bits")
    ms = sorted(r["server_ms"] for r in rows)
    print(f"server time per evaluation: median {statistics.median(ms) / 1e3:.1f} s "
          f"(with --jobs J, J images share the cores)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/fhe/eval_resnet20_aespa.jsonl")
