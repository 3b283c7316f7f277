#!/usr/bin/env python3
"""Helpers of bench/e2e/run.sh (standard library only, so any python3 runs it).

    report.py privinfer-row  --model NAME --bench OUT.jsonl --estimate EST.jsonl --meta META.json
    report.py crypten-row    --model NAME --out CRYPTEN.json --estimate EST.jsonl --meta META.json
    report.py error-row      --system S --model NAME --error-file ERR --meta META.json
    report.py table          RESULTS.jsonl

A row is one JSON object per model per system: latency (`ms`), bytes each way (`bytes_c2s` =
client to server, `bytes_s2c`), `rounds`, the LAN and WAN estimates, the correctness check, and
the run's context (date, machine, load, commit) from META.json.
"""

from __future__ import annotations

import argparse
import json
import sys

MIB = 1024 * 1024


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def estimates(path):
    """`privinfer estimate --json` output: {"network": "LAN"|"WAN", "seconds": s} per line."""
    return {e["network"].lower() + "_s": e["seconds"] for e in read_jsonl(path)}


def privinfer_row(a):
    lines = read_jsonl(a.bench)
    total = [line for line in lines if line.get("layer") == "total"]
    if not total:
        raise SystemExit(f"{a.bench}: no total line")
    t = total[-1]
    setup = [line for line in lines if line.get("layer") == "setup"]
    row = {
        "system": "privinfer" if a.plan_mbps == 400 else f"privinfer, plan {a.plan_mbps} Mbit/s",
        "model": a.model,
        "plan_mbps": a.plan_mbps,
        "ms": t["ms"],
        "bytes_c2s": t["bytes_c2s"],
        "bytes_s2c": t["bytes_s2c"],
        "rounds": t["rounds"],
        "matches_reference": t["matches_reference"],
        "max_abs_diff_ulp": t["max_abs_diff"],
        "layers": sum(1 for line in lines if line.get("layer") not in ("total", "setup", "output")),
    }
    if setup:
        s = setup[0]
        row.update({
            "setup_ms": s.get("ms"),
            "setup_bytes_c2s": s.get("bytes_c2s"),
            "setup_bytes_s2c": s.get("bytes_s2c"),
        })
    if a.cpu:
        # CPU of the whole process: both parties, plus the model import and the plaintext
        # fixed-point reference that `bench` checks against (an upper bound on the parties').
        row["process_cpu_ms"] = 1000 * float(open(a.cpu).read())
    add_lo(row, a.lo)
    row.update(estimates(a.estimate))
    row.update(json.load(open(a.meta)))
    return row


def crypten_row(a):
    with open(a.out) as f:
        lines = [json.loads(line) for line in f if line.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"{a.out}: no result line")
    r = lines[-1]
    if "error" in r:
        r.update(json.load(open(a.meta)))
        return r
    add_lo(r, a.lo)
    r.update(estimates(a.estimate))
    r.update(json.load(open(a.meta)))
    return r


def error_row(a):
    with open(a.error_file, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    # The one-line error privinfer prints, else the last line (a Python exception).
    err = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "no output")
    row = {"system": a.system, "model": a.model, "error": err}
    row.update(json.load(open(a.meta)))
    return row


def lo_bytes():
    """Bytes sent on the loopback interface (/proc/net/dev): in a network namespace of its
    own, all the traffic between the parties, with TCP/IP headers and connection set-up."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])  # transmit bytes
    raise SystemExit("no loopback interface in /proc/net/dev")


def add_lo(row, path):
    if path:
        try:
            row["loopback_bytes"] = int(open(path).read())
        except (OSError, ValueError):
            pass


def fmt_mib(b):
    return f"{b / MIB:,.2f}"


def table(path):
    rows = read_jsonl(path)
    models = []
    for r in rows:
        if r["model"] not in models:
            models.append(r["model"])
    out = [
        "| model | system | latency s (loopback) | CPU s | client→server MiB | server→client MiB | total MiB | on loopback MiB | rounds | LAN s | WAN s | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        for r in rows:
            if r["model"] != m:
                continue
            if "error" in r:
                out.append(f"| {m} | {r['system']} | failed: `{r['error']}` | | | | | | | | | |")
                continue
            total = r["bytes_c2s"] + r["bytes_s2c"]
            # privinfer: the whole process (both parties, model import, plaintext reference);
            # CrypTen: both parties' forward passes.
            cpu = r.get("process_cpu_ms")
            if cpu is None and "cpu_ms_server" in r:
                cpu = r["cpu_ms_server"] + r["cpu_ms_client"]
            cpu = "" if cpu is None else f"{cpu / 1e3:.2f}"
            lo = fmt_mib(r["loopback_bytes"]) if "loopback_bytes" in r else ""
            if r["system"].startswith("privinfer"):
                check = "logits = fixed-point reference" if r["matches_reference"] else f"differs by {r['max_abs_diff_ulp']} ulp"
            else:
                check = ("top-1 = onnxruntime" if r["matches_reference"] else "top-1 differs") + f", max abs diff {r['max_abs_diff_float']:.3g}"
            out.append(
                f"| {m} | {r['system']} | {r['ms'] / 1e3:.2f} | {cpu} | {fmt_mib(r['bytes_c2s'])} | {fmt_mib(r['bytes_s2c'])} | "
                f"{fmt_mib(total)} | {lo} | {r['rounds']} | {r['lan_s']:.2f} | {r['wan_s']:.2f} | {check} |"
            )
    return "\n".join(out)


def breakdown(paths):
    """Where privinfer's time and bytes go: its per-layer lines summed by op and protocol."""
    out = [
        "| model | op | protocol | layers | s | client→server MiB | server→client MiB | rounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        model = path.rsplit("/", 1)[-1].removeprefix("privinfer-").removesuffix(".jsonl").replace("-plan", ", plan ")
        agg = {}
        for line in read_jsonl(path):
            if line.get("layer") == "total":
                continue
            a = agg.setdefault((line["op"], line["protocol"]), [0, 0.0, 0, 0, 0])
            a[0] += 1
            a[1] += line["ms"]
            a[2] += line["bytes_c2s"]
            a[3] += line["bytes_s2c"]
            a[4] += line["rounds"]
        for (op, proto), a in sorted(agg.items(), key=lambda kv: -(kv[1][2] + kv[1][3])):
            if a[2] + a[3] + a[4] == 0:
                continue  # local steps
            out.append(f"| {model} | {op} | {proto} | {a[0]} | {a[1] / 1e3:.2f} | {fmt_mib(a[2])} | {fmt_mib(a[3])} | {a[4]} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("privinfer-row")
    p.add_argument("--model", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--cpu")
    p.add_argument("--plan-mbps", type=int, default=400)
    p.add_argument("--lo")
    p.add_argument("--estimate", required=True)
    p.add_argument("--meta", required=True)
    p = sub.add_parser("crypten-row")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lo")
    p.add_argument("--estimate", required=True)
    p.add_argument("--meta", required=True)
    p = sub.add_parser("error-row")
    p.add_argument("--system", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--error-file", required=True)
    p.add_argument("--meta", required=True)
    p = sub.add_parser("run-timed", help="run a command, then write its CPU seconds (user+sys) to a file")
    p.add_argument("--lo", help="also write the bytes the loopback interface carried (use in a fresh network namespace)")
    p.add_argument("cpu_file")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("table")
    p.add_argument("results")
    p = sub.add_parser("breakdown")
    p.add_argument("raw", nargs="+")
    p = sub.add_parser("field")
    p.add_argument("file")
    p.add_argument("key")
    a = ap.parse_args()
    if a.cmd == "run-timed":
        import resource
        import subprocess

        argv = a.argv[1:] if a.argv and a.argv[0] == "--" else a.argv
        if a.lo:
            subprocess.check_call(["ip", "link", "set", "lo", "up"])
            lo0 = lo_bytes()
        rc = subprocess.call(argv)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(a.cpu_file, "w") as f:
            f.write(f"{ru.ru_utime + ru.ru_stime}\n")
        if a.lo:
            with open(a.lo, "w") as f:
                f.write(f"{lo_bytes() - lo0}\n")
        return rc
    if a.cmd == "privinfer-row":
        print(json.dumps(privinfer_row(a)))
    elif a.cmd == "crypten-row":
        print(json.dumps(crypten_row(a)))
    elif a.cmd == "error-row":
        print(json.dumps(error_row(a)))
    elif a.cmd == "table":
        print(table(a.results))
    elif a.cmd == "breakdown":
        print(breakdown(a.raw))
    elif a.cmd == "field":
        # One field of the last JSON line of a file whose last line has a "layer": "total" or
        # is the CrypTen result: used to feed `privinfer estimate`.
        lines = read_jsonl(a.file)
        tot = [line for line in lines if line.get("layer") == "total"] or lines
        v = tot[-1]
        if a.key == "bytes":
            print(v["bytes_c2s"] + v["bytes_s2c"])
        else:
            print(v[a.key])
    return 0


if __name__ == "__main__":
    sys.exit(main())
