#!/usr/bin/env python3
"""Markdown tables from bench/linear/run.sh output: per layer, Cheetah's own protocol, the default
and the bandwidth-bound plan, their fractions of Cheetah's bytes, the lower bound of any
coefficient-encoded protocol with this flooding (`lower_bound_bytes`, docs/protocols/cheetah.md),
and whether ½ is reachable at all (lower bound ≤ ½ of Cheetah's own bytes). "WAN" adds the
measured bytes at 400 Mbit/s and one 40 ms round trip to the measured compute (Cheetah's WAN
setting, transport::NetworkModel::WAN)."""
import json, os, sys
from collections import OrderedDict

def load(path):
    rows, total, up = OrderedDict(), None, []
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "layer" in r:
            rows[r["layer"]] = r
        elif "total" in r:
            total = r["total"]
        elif "uptime_before" in r or "uptime_after" in r:
            up.append(list(r.values())[0].split("load average:")[-1].strip())
    return rows, total, up

def mb(b):
    return b / 1e6

def wan_ms(r):
    return r["ms"] + (r["bytes_c2s"] + r["bytes_s2c"]) * 8 / 400e6 * 1e3 + 40.0

def report(d):
    tags = sorted({f.split(".")[0] for f in os.listdir(d) if f.endswith(".jsonl")})
    for tag in tags:
        runs = {n: load(os.path.join(d, f"{tag}.{n}.jsonl")) for n in ("cheetah", "default", "bound")
                if os.path.exists(os.path.join(d, f"{tag}.{n}.jsonl"))}
        if "default" not in runs:
            continue
        print(f"### {tag}\n")
        for n, (_, _, up) in runs.items():
            print(f"- {n}: load average before / after: {' / '.join(up)}")
        print()
        print("| layer | Cheetah: params · MB · ms | default: params · G · MB · ms | bound: params · G · MB · ms | default / Cheetah | bound / Cheetah | lower bound / Cheetah | ½ reachable | WAN ms Cheetah · default |")
        print("|---|---|---|---|---:|---:|---:|---|---|")
        ch = runs.get("cheetah", (OrderedDict(), None, []))[0]
        de = runs["default"][0]
        bo = runs.get("bound", (OrderedDict(), None, []))[0]
        n_half = {"default": 0, "bound": 0}
        reach = 0
        tot = {k: [0, 0.0, 0.0] for k in ("cheetah", "default", "bound")}
        for layer, r in de.items():
            cb = r["cheetah_bytes"]
            def cell(x):
                if x is None:
                    return "—"
                g = f" · {x['pack']}" if "pack" in x else ""
                pp = "+pp" if x.get("polyphase") else ""
                return f"{x['params']}{pp}{g} · {mb(x['bytes_c2s'] + x['bytes_s2c']):.2f} · {x['ms']:.0f}"
            c, b = ch.get(layer), bo.get(layer)
            fd = (r["bytes_c2s"] + r["bytes_s2c"]) / cb
            fb = (b["bytes_c2s"] + b["bytes_s2c"]) / cb if b else float("nan")
            lb = r["lower_bound_bytes"] / cb
            ok = lb <= 0.5
            reach += ok
            n_half["default"] += fd <= 0.5
            n_half["bound"] += b is not None and fb <= 0.5
            for k, x in (("cheetah", c), ("default", r), ("bound", b)):
                if x:
                    tot[k][0] += x["bytes_c2s"] + x["bytes_s2c"]
                    tot[k][1] += x["ms"]
                    tot[k][2] += wan_ms(x)
            for x in (c, r, b):
                if x and not (x["exact"] and x["bytes_c2s"] == x["predicted_c2s"] and x["bytes_s2c"] == x["predicted_s2c"]):
                    print(f"<!-- WARNING {layer}: not exact or bytes != prediction -->")
            wc = f"{wan_ms(c):.0f}" if c else "—"
            print(f"| {layer} | {cell(c)} | {cell(r)} | {cell(b)} | {fd:.2f} | {fb:.2f} | {lb:.2f} | {'yes' if ok else 'no'} | {wc} · {wan_ms(r):.0f} |")
        cbt = tot["cheetah"][0] or sum(r["cheetah_bytes"] for r in de.values())
        print(f"| **total** | **{mb(tot['cheetah'][0]):.2f} MB · {tot['cheetah'][1]/1e3:.2f} s** | **{mb(tot['default'][0]):.2f} MB · {tot['default'][1]/1e3:.2f} s** | **{mb(tot['bound'][0]):.2f} MB · {tot['bound'][1]/1e3:.2f} s** | **{tot['default'][0]/cbt:.2f}** | **{tot['bound'][0]/cbt:.2f}** | | | **{tot['cheetah'][2]:.0f} · {tot['default'][2]:.0f}** |")
        print()
        print(f"Layers at ≤ ½ of Cheetah's bytes: default plan {n_half['default']}, bandwidth-bound plan {n_half['bound']}, of {len(de)}; ½ reachable by the lower bound on {reach}.\n")

report(sys.argv[1])
