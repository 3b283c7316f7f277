#!/usr/bin/env python3
"""Tables for BENCHMARKS.md § Falcon from bench/falcon/<model>_<run>.jsonl.

Usage: bench/falcon/report.py <model>  (runs: falcon, falcon-total, falcon-capped, cheetah, nopacking)"""
import json
import subprocess
import sys

RUNS = ["falcon", "falcon-total", "falcon-capped", "cheetah", "nopacking"]


def load(model, run):
    rows, total = [], None
    with open(f"bench/falcon/{model}_{run}.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if "layer" in r:
                rows.append(r)
            elif "total" in r:
                total = r["total"]
    return rows, total


def multiplicities(model, rows):
    """Occurrences of each measured (distinct) layer's shape among all the model's depthwise
    layers, matched by the exact predicted cost of a Cheetah dry run (equal shapes, equal cost)."""
    out = subprocess.run(["target/release/privinfer", "bench", "linear", "--model", model, "--only", ".dw",
                          "--dry-run", "--json"], capture_output=True, text=True, check=True).stdout
    key = lambda r: (r["predicted_c2s"], r["predicted_s2c"], r["ct_pt_mults"], r["ntts"])
    allk = [key(json.loads(l)) for l in out.splitlines() if '"layer"' in l]
    if len(allk) == len(rows):
        return [1] * len(rows)  # every layer measured
    return [allk.count(key(r)) for r in rows]


def main():
    model = sys.argv[1]
    data = {r: load(model, r)[0] for r in RUNS}
    mult = multiplicities(model, data["cheetah"])
    names = [r["layer"] for r in data["cheetah"]]
    print("| layer | ms falcon / at total / capped / cheetah / no-packing | KB falcon / at total / capped / cheetah / no-packing "
          "| ct×pt falcon / cheetah | NTTs falcon / cheetah | key sw. falcon / cheetah | falcon tiling | speed-up vs cheetah |")
    print("|---|---|---|---|---|---|---|---|")
    tot = {r: [0.0, 0] for r in RUNS}
    for i, n in enumerate(names):
        row = {r: data[r][i] for r in RUNS}
        assert all(row[r]["layer"] == n for r in RUNS)
        assert all(row[r]["exact"] for r in RUNS), n
        for r in RUNS:
            tot[r][0] += mult[i] * row[r]["ms"]
            tot[r][1] += mult[i] * (row[r]["bytes_c2s"] + row[r]["bytes_s2c"])
        f, c = row["falcon"], row["cheetah"]
        d = f.get("dense")
        til = (f"{'searched ' if d.get('searched') else ''}m={d['m']} k={d['k']} g={d['g']} bands={d['bands']}, {f['params']}, G={f['pack']}"
               if d else f"cheetah layout, {f['params']}, G={f['pack']}")
        if f["polyphase"]:
            til += ", s2d"
        kb = lambda r: (row[r]["bytes_c2s"] + row[r]["bytes_s2c"]) / 1e3
        print(f"| {n}{' (×%d)' % mult[i] if mult[i] > 1 else ''} | {f['ms']:.0f} / {row['falcon-total']['ms']:.0f} / {row['falcon-capped']['ms']:.0f} / {c['ms']:.0f} / "
              f"{row['nopacking']['ms']:.0f} | {kb('falcon'):.0f} / {kb('falcon-total'):.0f} / {kb('falcon-capped'):.0f} / {kb('cheetah'):.0f} / "
              f"{kb('nopacking'):.0f} | {f['ct_pt_mults']} / {c['ct_pt_mults']} | {f['ntts']} / {c['ntts']} | "
              f"{f['key_switches']} / {c['key_switches']} | {til} | {c['ms'] / f['ms']:.2f}× |")
    t = {r: tot[r] for r in RUNS}
    print(f"| **total ({sum(mult)} layers)** | **{t['falcon'][0]:.0f} / {t['falcon-total'][0]:.0f} / {t['falcon-capped'][0]:.0f} / "
          f"{t['cheetah'][0]:.0f} / {t['nopacking'][0]:.0f}** | **{t['falcon'][1] / 1e3:.0f} / {t['falcon-total'][1] / 1e3:.0f} / "
          f"{t['falcon-capped'][1] / 1e3:.0f} / {t['cheetah'][1] / 1e3:.0f} / {t['nopacking'][1] / 1e3:.0f}** | | | | | "
          f"**{t['cheetah'][0] / t['falcon'][0]:.2f}× (at total {t['cheetah'][0] / t['falcon-total'][0]:.2f}×, capped {t['cheetah'][0] / t['falcon-capped'][0]:.2f}×)** |")


if __name__ == "__main__":
    main()
