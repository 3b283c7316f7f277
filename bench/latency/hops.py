#!/usr/bin/env python3
"""Where a run's time goes beside its hops, per plan step, from the trace of one emulated run:

    privinfer bench --model M --net wan --json -vvv 2> trace.txt > /dev/null
    bench/latency/hops.py trace.txt [--rtt-ms 40] [--mbps 400]

For each hop of the critical path, the time from the first message of the previous hop to the
first message of this one, minus the one-way latency, is charged to the step the sending party
is in: compute, and the transfer of the previous hop's bytes (estimated at the link's rate,
listed beside it). Steps are the plan's (`privinfer inspect M --plan` names them); setup is
before step 0.
"""
import argparse
import collections
import re

SEND = re.compile(r'emulated send end="(a|b)" hop=(\d+) bytes=(\d+) at_us=(\d+)')
STEP = re.compile(r'step party="(server|client)" step=(\d+) hops=(\d+)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--rtt-ms", type=float, default=40.0)
    ap.add_argument("--mbps", type=float, default=400.0)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    step = {"a": "setup", "b": "setup"}
    # `emulate(server, client)` in `privinfer bench`: end a is the server's.
    end_of = {"server": "a", "client": "b"}
    first = {}
    hop_bytes = collections.Counter()
    for line in open(a.trace, errors="replace"):
        m = STEP.search(line)
        if m:
            step[end_of[m.group(1)]] = int(m.group(2))
            continue
        m = SEND.search(line)
        if not m:
            continue
        end, hop, size, at = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        hop_bytes[hop] += size
        first.setdefault(hop, (at / 1000.0, step[end]))
    hops = sorted(first)
    gap = collections.defaultdict(float)
    xfer = collections.defaultdict(float)
    count = collections.Counter()
    for prev, cur in zip(hops, hops[1:]):
        st = first[cur][1]
        gap[st] += first[cur][0] - first[prev][0] - a.rtt_ms / 2
        xfer[st] += hop_bytes[prev] * 8 / (a.mbps * 1e3)
        count[st] += 1
    print(f"{len(hops)} hops; beyond the latency: {sum(gap.values()):.0f} ms, of which "
          f"≈ {sum(xfer.values()):.0f} ms the previous hops' transfer at {a.mbps:g} Mbit/s")
    print(f"{'step':>6} {'hops':>5} {'ms beyond latency':>18} {'transfer ms':>12}")
    for st in sorted(gap, key=lambda s: -gap[s])[: a.top]:
        print(f"{st!s:>6} {count[st]:>5} {gap[st]:>18.0f} {xfer[st]:>12.0f}")


if __name__ == "__main__":
    main()
