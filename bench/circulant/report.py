#!/usr/bin/env python3
"""Summarizes bench/circulant/*.jsonl (written by run.sh) as the BENCHMARKS.md rows."""
import glob
import json
import os
import sys

D = os.path.dirname(os.path.abspath(__file__))


def load(name):
    path = os.path.join(D, name + ".jsonl")
    if not os.path.exists(path):
        return None
    rows = [json.loads(l) for l in open(path) if l.strip()]
    layers = [r for r in rows if "layer" in r]
    total = next((r["total"] for r in rows if "total" in r), None)
    return layers, total


def summary(name):
    got = load(name)
    if got is None:
        return None
    layers, total = got
    ms = sum(r["ms"] for r in layers if r.get("ms") is not None)
    mb = sum(r["bytes_c2s"] + r["bytes_s2c"] for r in layers) / 1e6
    circ = sum(r["protocol"] in ("circulant", "cirencode") for r in layers)
    exact = all(r.get("exact") is not False for r in layers)
    predicted = all(r["bytes_c2s"] == r["predicted_c2s"] and r["bytes_s2c"] == r["predicted_s2c"] for r in layers)
    products = sum(r.get("ct_pt_mults", 0) for r in layers)
    protos = sorted({r["protocol"] for r in layers})
    return dict(ms=ms, mb=mb, circ=circ, n=len(layers), exact=exact, predicted=predicted, products=products, protos=protos)


def line(label, s, base=None):
    if s is None:
        return f"| {label} | (not run) |"
    rel = f"{base['ms'] / s['ms']:.2f}×" if base else "1×"
    return (f"| {label} | {s['ms']:.0f} | {rel} | {s['mb']:.1f} | {s['products']} | {s['circ']}/{s['n']} | "
            f"{'yes' if s['exact'] else 'NO'} | {'yes' if s['predicted'] else 'NO'} |")


HEAD = "| run | linear ms | speed-up | MB both ways | ct×pt | circulant layers | exact | bytes = predicted |\n|---|---|---|---|---|---|---|---|"

print("Sweep (each distinct shape, --circulant b):\n")
print("| protocol | model | b | layers | circulant | exact | bytes = predicted |\n|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(D, "sweep_*.jsonl"))):
    name = os.path.basename(path)[:-6]
    s = summary(name)
    rest = name[len("sweep_"):]
    proto = "circulant"
    if rest.startswith("cirencode_"):
        proto, rest = "cirencode", rest[len("cirencode_"):]
    model, b = rest.rsplit("_b", 1)
    print(f"| {proto} | {model} | {b} | {s['n']} | {s['circ']} | {'yes' if s['exact'] else 'NO'} | {'yes' if s['predicted'] else 'NO'} |")

groups = {
    "ResNet-20 (32×32)": [("dense model, cheetah", "r20_dense_cheetah"), ("circulant model, cheetah", "r20_circulant_cheetah"),
                          ("circulant model, circulant", "r20_circulant_circulant"), ("seeded, uniform b = 4, circulant", "r20_seeded_b4")],
    "ResNet-18 (64×64)": [("cheetah (our dense plan)", "r18_cheetah"), ("simd (Bolt-style dense)", "r18_simd"),
                          ("circulant, uniform b = 8", "r18_circulant_b8"), ("cirencode, uniform b = 8", "r18_cirencode_b8"),
                          ("circulant, ILP mix", "r18_circulant_ilp")],
    "MobileNetV2 (32×32)": [("dense, cheetah", "mnv2_dense_cheetah"), ("dense, auto", "mnv2_dense_auto"),
                            ("b = 8, circulant", "mnv2_circulant_b8_circulant"), ("b = 8, auto", "mnv2_circulant_b8_auto")],
}
for title, runs in groups.items():
    print(f"\n{title}:\n\n{HEAD}")
    base = summary(runs[0][1])
    for label, name in runs:
        print(line(label, summary(name), base))
    if title.startswith("ResNet-18"):
        simd = summary("r18_simd")
        for label, name in runs[2:]:
            s = summary(name)
            if s and simd:
                print(f"\n{label}: {simd['ms'] / s['ms']:.2f}× faster than simd, {base['ms'] / s['ms']:.2f}× than cheetah")

print("\nWhole private inference (privinfer bench --protocol auto):\n")
for name in ["e2e_r20_dense", "e2e_r20_circulant", "e2e_r18_dense", "e2e_r18_circulant"]:
    path = os.path.join(D, name + ".jsonl")
    if os.path.exists(path):
        rows = [json.loads(l) for l in open(path) if l.strip()]
        print(name, json.dumps(rows[-1])[:600])
