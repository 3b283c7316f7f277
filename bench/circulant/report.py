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
    packed = sum(r["protocol"] == "circulant" and r.get("pack", 1) > 1 for r in layers)
    setup = next((r["setup"]["bytes_c2s"] for r in [json.loads(l) for l in open(os.path.join(D, name + ".jsonl"))] if "setup" in r), 0) / 1e6
    return dict(ms=ms, mb=mb, circ=circ, n=len(layers), exact=exact, predicted=predicted, products=products, protos=protos,
                packed=packed, setup=setup)


def line(label, s, base=None):
    if s is None:
        return f"| {label} | (not run) |"
    rel = f"{base['ms'] / s['ms']:.2f}×" if base else "1×"
    return (f"| {label} | {s['ms']:.0f} | {rel} | {s['mb']:.1f} | {s['products']} | {s['circ']}/{s['n']} | "
            f"{'yes' if s['exact'] else 'NO'} | {'yes' if s['predicted'] else 'NO'} |")


HEAD = "| run | linear ms | speed-up | MB both ways | ct×pt | circulant layers | exact | bytes = predicted |\n|---|---|---|---|---|---|---|---|"

print("Sweep (each distinct shape, --circulant b):\n")
print("| protocol | model | b | plan Mbit/s | layers | circulant (packed) | exact | bytes = predicted |\n|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(D, "sweep_*.jsonl"))):
    name = os.path.basename(path)[:-6]
    s = summary(name)
    rest = name[len("sweep_"):]
    proto = "circulant"
    if rest.startswith("cirencode_"):
        proto, rest = "cirencode", rest[len("cirencode_"):]
    model, b = rest.rsplit("_b", 1)
    b, _, plan = b.partition("_p")
    print(f"| {proto} | {model} | {b} | {plan or 400} | {s['n']} | {s['circ']} ({s['packed']}) | {'yes' if s['exact'] else 'NO'} | {'yes' if s['predicted'] else 'NO'} |")

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

# Block-minor tilings (run.sh pack): the build before them ("old") against this one, alternating.
pack = [("ResNet-18 (64×64) b = 8, loopback, planned at 400 Mbit/s", "pack_r18_b8"),
        ("ResNet-18 b = 8, WAN (400 Mbit/s, 40 ms)", "pack_r18_b8_wan"),
        ("ResNet-18 b = 8, 100 Mbit/s, 40 ms, planned at 100", "pack_r18_b8_100m"),
        ("MobileNetV2 (32×32) b = 8, loopback, planned at 400", "pack_mnv2_b8")]
if summary(pack[0][1] + "_old_1"):
    print("\nPacked circulant responses (old / new, two rounds):\n")
    print("| run | linear ms old | linear ms new | MB old | MB new | key setup MB old / new | packed layers new | exact |\n|---|---|---|---|---|---|---|---|")
    for label, name in pack:
        runs = {v: [summary(f"{name}_{v}_{r}") for r in (1, 2)] for v in ("old", "new")}
        runs = {v: [x for x in xs if x] for v, xs in runs.items()}
        if not runs["old"] or not runs["new"]:
            continue
        ms = {v: " / ".join(f"{x['ms']:.0f}" for x in xs) for v, xs in runs.items()}
        o, n = runs["old"][0], runs["new"][0]
        ok = all(x["exact"] and x["predicted"] for xs in runs.values() for x in xs)
        print(f"| {label} | {ms['old']} | {ms['new']} | {o['mb']:.2f} | {n['mb']:.2f} | {o['setup']:.2f} / {n['setup']:.2f} | "
              f"{n['packed']}/{n['circ']} | {'yes' if ok else 'NO'} |")

# The circulant ViT (run.sh vit): whole private inferences, dense and circulant alternating.
WEIGHT = ("cheetah", "circulant", "layernorm+cheetah", "layernorm+circulant")


def whole(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    steps, total = rows[:-1], rows[-1]
    w = [r for r in steps if r.get("protocol") in WEIGHT]
    return dict(ms=total["ms"], mb=(total["bytes_c2s"] + total["bytes_s2c"]) / 2**20, ok=total["matches_reference"],
                wms=sum(r["ms"] for r in w), wmb=sum(r["bytes_c2s"] + r["bytes_s2c"] for r in w) / 2**20,
                circ=sum(r["protocol"].endswith("circulant") for r in w), n=len(w))


vit = sorted(glob.glob(os.path.join(D, "vitlite_*_*.jsonl")) + glob.glob(os.path.join(D, "vit_*_*_*.jsonl")))
if vit:
    print("\nThe circulant ViT (whole inference; weight layers = token × weight products, LayerNorm-fused or not):\n")
    print("| run | ms | MiB | weight-layer ms | weight-layer MiB | circulant weight layers | equals the reference |\n|---|---|---|---|---|---|---|")
    for path in vit:
        s = whole(path)
        print(f"| {os.path.basename(path)[:-6]} | {s['ms']:.0f} | {s['mb']:.1f} | {s['wms']:.0f} | {s['wmb']:.1f} | "
              f"{s['circ']}/{s['n']} | {'yes' if s['ok'] else 'NO'} |")
