#!/usr/bin/env python3
"""Tables for BENCHMARKS.md § OT and Winograd linear layers from bench/copriv/*.jsonl.

Per 3×3 stride-1 conv: bytes (both directions, measured where the run was measured, else the
exact prediction) of ot, winograd2, winograd4 and cheetah, Winograd's ratios against ot, and ms.
"""
import json, os, sys

D = os.path.dirname(os.path.abspath(__file__))


def rows(model, proto):
    p = os.path.join(D, f"{model}_{proto}.jsonl")
    out, total = {}, None
    for line in open(p):
        r = json.loads(line)
        if "total" in r:
            total = r["total"]
        elif "layer" in r:
            out[r["layer"]] = r
    return out, total


def nbytes(r):
    if "bytes_s2c" in r:
        return r["bytes_c2s"] + r["bytes_s2c"]
    return r["predicted_c2s"] + r["predicted_s2c"]


def mb(b):
    return f"{b / 1e6:,.1f}"


for model in sys.argv[1:] or ["resnet32", "resnet18-32"]:
    ot, tot_ot = rows(model, "ot")
    w2, _ = rows(model, "winograd2")
    w4, _ = rows(model, "winograd4")
    ch, _ = rows(model, "cheetah")
    measured = tot_ot["measured"]
    print(f"\n### {model} ({'measured' if measured else 'predicted: exact cost model'})\n")
    print("| layer | im2col MB | ot MB | winograd2 MB | ×im2col | ×ot | winograd4 MB | ×im2col | ×ot | cheetah MB |"
          + (" ot ms | w2 ms | w4 ms | cheetah ms | exact |" if measured else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|---|" if measured else ""))
    sums = [0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0]
    im2col = 0
    groups = {}
    pred_eq = True
    for name, r2 in w2.items():
        if r2["protocol"] != "winograd2":
            continue
        o, a, b, c = ot[name], r2, w4[name], ch[name]
        for r in (o, a, b):
            if "bytes_s2c" in r:
                pred_eq &= r["bytes_s2c"] == r["predicted_s2c"] and r["bytes_c2s"] == r["predicted_c2s"]
        bo, ba, bb, bc = nbytes(o), nbytes(a), nbytes(b), nbytes(c)
        for i, v in enumerate([bo, ba, bb, bc]):
            sums[i] += v
        ex = all(r.get("exact", True) for r in (o, a, b, c))
        bi = o["im2col_bytes"]
        im2col += bi
        line = (f"| {name} | {mb(bi)} | {mb(bo)} | {mb(ba)} | {bi / ba:.2f} | {bo / ba:.2f} | {mb(bb)} | "
                f"{bi / bb:.2f} | {bo / bb:.2f} | {mb(bc)} |")
        if measured:
            ms = [o["ms"], a["ms"], b["ms"], c["ms"]]
            for i, v in enumerate(ms):
                sums[4 + i] += v
            line += " " + " | ".join(f"{v:,.0f}" for v in ms) + f" | {'yes' if ex else 'NO'} |"
        print(line)
    line = (f"| **all 3×3 stride-1** | {mb(im2col)} | {mb(sums[0])} | {mb(sums[1])} | {im2col / sums[1]:.2f} | "
            f"{sums[0] / sums[1]:.2f} | {mb(sums[2])} | {im2col / sums[2]:.2f} | {sums[0] / sums[2]:.2f} | {mb(sums[3])} |")
    if measured:
        line += " " + " | ".join(f"{v:,.0f}" for v in sums[4:]) + " | |"
    print(line)
    if measured:
        print(f"\npredicted bytes = measured on every OT-based row: {pred_eq}")
