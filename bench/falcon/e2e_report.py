#!/usr/bin/env python3
"""Summary of bench/falcon/e2e_*.jsonl: per plan, latency, bytes, rounds, exactness, and the
time of the depthwise steps and of all linear steps."""
import glob
import json
import re
import statistics

rows = {}
for f in sorted(glob.glob("bench/falcon/e2e_mobilenetv2_32_*.jsonl")):
    plan = re.match(r".*_32_(.*)_\d+\.jsonl", f).group(1)
    lines = [json.loads(l) for l in open(f) if l.startswith("{")]
    total = [l for l in lines if l.get("layer") == "total"]
    if not total:
        continue
    t = total[0]
    steps = [l for l in lines if l.get("layer") not in ("total",) and "protocol" in l]
    lin = [s for s in steps if s.get("op") in ("Conv", "DepthwiseConv", "Gemm")]
    dw = [s for s in lin if s.get("op") == "DepthwiseConv"]
    protos = {}
    for s in lin:
        protos[s["protocol"]] = protos.get(s["protocol"], 0) + 1
    rows.setdefault(plan, []).append((t["ms"] / 1e3, (t["bytes_c2s"]) / 2**20, t["bytes_s2c"] / 2**20, t["rounds"],
                                      t["matches_reference"], sum(s["ms"] for s in lin) / 1e3, protos,
                                      sum(s["ms"] for s in dw) / 1e3, sum(s["bytes_c2s"] + s["bytes_s2c"] for s in dw) / 2**20))
for plan, rs in rows.items():
    print(plan, [f"{r[0]:.1f} s" for r in rs], f"median {statistics.median(r[0] for r in rs):.1f} s",
          f"c2s {rs[0][1]:.1f} MiB s2c {rs[0][2]:.1f} MiB rounds {rs[0][3]} exact {all(r[4] for r in rs)}",
          f"linear steps {[round(r[5], 1) for r in rs]} s", f"depthwise steps {[round(r[7], 1) for r in rs]} s, {rs[0][8]:.1f} MiB", rs[0][6])
