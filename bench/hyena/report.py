#!/usr/bin/env python3
"""Per-layer table of bench/hyena/<model>_{hyena,simd,cheetah}_<tag>.jsonl (bench/hyena/run.sh)."""
import json
import sys

model, tag = sys.argv[1], sys.argv[2]


def load(p):
    rows, total, setup = {}, None, None
    for line in open(f"bench/hyena/{model}_{p}_{tag}.jsonl"):
        r = json.loads(line)
        if "layer" in r:
            rows[r["layer"]] = r
        elif "total" in r:
            total = r["total"]
        elif "setup" in r:
            setup = r["setup"]
    return rows, total, setup


hy, hyt, hys = load("hyena")
si, sit, sis = load("simd")
ch, cht, chs = load("cheetah")
print("| layer | ms hyena / simd / cheetah | KB hyena / simd / cheetah | weight KB hyena / simd | hyena vs simd: time, weights | rotations hyena / simd | working set MB hyena / simd |")
print("|---|---|---|---|---|---|---|")
def ws(r):
    w = r.get("working_set_bytes")
    return "" if w is None else f"{w / 1e6:.0f}"


tot = {"h": 0.0, "s": 0.0, "c": 0.0, "wh": 0, "ws": 0}
for name, h in hy.items():
    s, c = si[name], ch[name]
    kb = lambda r: (r["bytes_c2s"] + r["bytes_s2c"]) / 1000
    ran = h["protocol"] == "hyena" and s["protocol"] == "simd"
    if ran:
        tot["h"] += h["ms"]
        tot["s"] += s["ms"]
        tot["c"] += c["ms"]
        tot["wh"] += h["weight_bytes"]
        tot["ws"] += s["weight_bytes"]
    assert h["exact"] and s["exact"] and c["exact"]
    speed = f"{s['ms'] / h['ms']:.2f}×, {s['weight_bytes'] / h['weight_bytes']:,.0f}×" if ran else f"(both on {h['protocol']})"
    print(
        f"| {name} | {h['ms']:.0f} / {s['ms']:.0f} / {c['ms']:.0f} | {kb(h):.0f} / {kb(s):.0f} / {kb(c):.0f} | "
        f"{h['weight_bytes'] / 1024:,.1f} / {s['weight_bytes'] / 1024:,.0f} | {speed} | "
        f"{h.get('rotations', '')} / {s.get('rotations', '')} | {ws(h)} / {ws(s)} |"
    )
print(
    f"| **convs on hyena/simd ({sum(1 for n in hy if hy[n]['protocol'] == 'hyena')})** | **{tot['h']:.0f} / {tot['s']:.0f} / {tot['c']:.0f}** | | "
    f"**{tot['wh'] / 1024:,.0f} / {tot['ws'] / 1024:,.0f}** | **{tot['s'] / tot['h']:.2f}×, {tot['ws'] / tot['wh']:,.0f}×** | | |"
)
print(f"\nsetup: hyena {hys['bytes_c2s'] / 1e6:.1f} MB ({hys['keys']} keys), simd {sis['bytes_c2s'] / 1e6:.1f} MB ({sis['keys']}), cheetah {chs['bytes_c2s'] / 1e6:.1f} MB ({chs['keys']})")
print(f"totals (all layers): hyena {hyt['ms']:.0f} ms, simd {sit['ms']:.0f} ms, cheetah {cht['ms']:.0f} ms")
