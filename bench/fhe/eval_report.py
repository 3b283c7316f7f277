#!/usr/bin/env python3
"""Summary of a journaled FHE-mode evaluation (`privinfer eval --mode fhe --journal F`):
agreement with the float executor and accuracy at the default flooding and at each flooding of
the sweep, the worst and median precision, and the server time per image.

Usage: bench/fhe/eval_report.py [bench/fhe/eval_resnet20_aespa.jsonl] [--out-of-range I,J,...]

`--out-of-range` names the images whose float trace leaves the range (what `privinfer eval
--mode fhe --json` lists as `out_of_range`; the journal does not hold traces): the summary is
then printed again without them.
"""
import json
import statistics
import sys


def main(path: str, outside: set) -> None:
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    head = json.loads(lines[0])
    rows = []
    for l in lines[1:]:
        try:
            rows.append(json.loads(l))
        except json.JSONDecodeError:  # a line cut short by a stopped run (redone on resume)
            pass
    summary(head, rows)
    if outside:
        kept = [r for r in rows if r["image"] not in outside]
        print(f"without the {len(rows) - len(kept)} image(s) leaving the range "
              f"({', '.join(str(i) for i in sorted(outside))}):")
        summary(head, kept)


def summary(head: dict, rows: list) -> None:
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
    args = sys.argv[1:]
    outside = set()
    if "--out-of-range" in args:
        k = args.index("--out-of-range")
        outside = {int(x) for x in args[k + 1].split(",") if x}
        del args[k:k + 2]
    main(args[0] if args else "bench/fhe/eval_resnet20_aespa.jsonl", outside)
