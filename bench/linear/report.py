#!/usr/bin/env python3
"""Markdown tables from bench/linear/run.sh output: per layer, Cheetah's own protocol, the default
and the bandwidth-bound plan, their fractions of Cheetah's bytes, the lower bound of any
coefficient-encoded protocol with this flooding (`lower_bound_bytes`, docs/protocols/cheetah.md),
and whether ½ is reachable at all (lower bound ≤ ½ of Cheetah's own bytes).

"WAN ms": wall time measured over the emulated WAN link (`bench linear --net wan`, files
TAG.cheetah-wan.jsonl / TAG.default-wan.jsonl from `run.sh --wan`). Where no such run exists the
cell is a model, marked "(model)": the loopback ms plus the measured bytes at 400 Mbit/s plus one
40 ms round trip (transport::NetworkModel::WAN). Runs on other emulated links (`run.sh --net
100:20`, files TAG.cheetah-100_20.jsonl ...) get a measured column each."""
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

def nets_of(d, tag):
    """Emulated links with a run for this model: the suffixes of TAG.{cheetah,default}-NET.jsonl."""
    out = set()
    for f in os.listdir(d):
        parts = f.split(".")
        if len(parts) == 3 and parts[0] == tag and parts[2] == "jsonl":
            for p in ("cheetah-", "default-"):
                if parts[1].startswith(p):
                    out.add(parts[1][len(p):])
    return sorted(out, key=lambda n: (n != "wan", n))

def report(d):
    tags = sorted({f.split(".")[0] for f in os.listdir(d) if f.endswith(".jsonl")})
    for tag in tags:
        nets = nets_of(d, tag)
        names = ["cheetah", "default", "bound"] + [f"{p}-{n}" for n in nets for p in ("cheetah", "default")]
        runs = {n: load(os.path.join(d, f"{tag}.{n}.jsonl")) for n in names
                if os.path.exists(os.path.join(d, f"{tag}.{n}.jsonl"))}
        if "default" not in runs:
            continue
        print(f"### {tag}\n")
        for n, (_, _, up) in runs.items():
            print(f"- {n}: load average before / after: {' / '.join(up)}")
        print()
        empty = (OrderedDict(), None, [])
        net_cols = nets if "wan" in nets else ["wan (model)"] + nets
        heads = [f"{n.replace('_', ':').replace('wan', 'WAN').replace('lan', 'LAN')} ms Cheetah · default" + (" (measured)" if n in nets else "") for n in net_cols]
        print("| layer | Cheetah: params · MB · ms | default: params · G · MB · ms | bound: params · G · MB · ms | default / Cheetah | bound / Cheetah | lower bound / Cheetah | ½ reachable | " + " | ".join(heads) + " |")
        print("|---|---|---|---|---:|---:|---:|---|" + "---|" * len(heads))
        net_tot = {n: [0.0, 0.0, True] for n in net_cols}
        ch = runs.get("cheetah", (OrderedDict(), None, []))[0]
        de = runs["default"][0]
        bo = runs.get("bound", (OrderedDict(), None, []))[0]
        n_half = {"default": 0, "bound": 0}
        reach = 0
        tot = {k: [0, 0.0] for k in ("cheetah", "default", "bound")}
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
            for x in (c, r, b):
                if x and not (x["exact"] and x["bytes_c2s"] == x["predicted_c2s"] and x["bytes_s2c"] == x["predicted_s2c"]):
                    print(f"<!-- WARNING {layer}: not exact or bytes != prediction -->")
            cells = []
            for n in net_cols:
                pair = []
                for i, (p, loop) in enumerate((("cheetah", c), ("default", r))):
                    x = runs.get(f"{p}-{n}", empty)[0].get(layer)
                    if x is not None:
                        if not (x["exact"] and x["bytes_c2s"] == x["predicted_c2s"] and x["bytes_s2c"] == x["predicted_s2c"]):
                            print(f"<!-- WARNING {layer} on {n}: not exact or bytes != prediction -->")
                        v = x["ms"]
                    elif loop is not None and n in ("wan", "wan (model)"):
                        v, net_tot[n][2] = wan_ms(loop), False
                        pair.append(f"{v:.0f} (model)")
                        net_tot[n][i] += v
                        continue
                    else:
                        pair.append("—")
                        net_tot[n][2] = False
                        continue
                    net_tot[n][i] += v
                    pair.append(f"{v:.0f}")
                cells.append(" · ".join(pair))
            print(f"| {layer} | {cell(c)} | {cell(r)} | {cell(b)} | {fd:.2f} | {fb:.2f} | {lb:.2f} | {'yes' if ok else 'no'} | " + " | ".join(cells) + " |")
        cbt = tot["cheetah"][0] or sum(r["cheetah_bytes"] for r in de.values())
        print(f"| **total** | **{mb(tot['cheetah'][0]):.2f} MB · {tot['cheetah'][1]/1e3:.2f} s** | **{mb(tot['default'][0]):.2f} MB · {tot['default'][1]/1e3:.2f} s** | **{mb(tot['bound'][0]):.2f} MB · {tot['bound'][1]/1e3:.2f} s** | **{tot['default'][0]/cbt:.2f}** | **{tot['bound'][0]/cbt:.2f}** | | | " + " | ".join(f"**{t[0]:.0f} · {t[1]:.0f}**" + ("" if t[2] or n == "wan (model)" else " (partly model)") for n, t in net_tot.items()) + " |")
        print()
        for n in nets:
            for p in ("cheetah", "default"):
                t = runs.get(f"{p}-{n}", empty)[1]
                if t:
                    print(f"- measured on `--net {n.replace('_', ':')}`, {p}: {t['layers']} layers, {t['ms']/1e3:.2f} s (median of {t.get('repeat', 1)} per layer), exact: {t['exact']}")
            cw, dw = runs.get(f"cheetah-{n}", empty)[0], runs.get(f"default-{n}", empty)[0]
            both = [l for l in de if l in cw and l in dw]
            if both:
                faster = sum(dw[l]["ms"] <= cw[l]["ms"] for l in both)
                print(f"- on `--net {n.replace('_', ':')}` the default plan is at equal or lower time than Cheetah's own protocol on {faster} of {len(both)} layers; total {sum(dw[l]['ms'] for l in both)/1e3:.2f} s vs {sum(cw[l]['ms'] for l in both)/1e3:.2f} s")
        if nets:
            print()
        print(f"Layers at ≤ ½ of Cheetah's bytes: default plan {n_half['default']}, bandwidth-bound plan {n_half['bound']}, of {len(de)}; ½ reachable by the lower bound on {reach}.\n")

report(sys.argv[1])
