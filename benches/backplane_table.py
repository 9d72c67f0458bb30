#!/usr/bin/env python3
"""Medians of a benches/backplane.sh run as a Markdown table: fan-out on one
node in memory against two nodes through Redis, and the Redis server's CPU
share during the backplane runs.

Usage: benches/backplane_table.py RESULTS.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict

MEMORY, REDIS = "memory-1-node", "redis-2-nodes"


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def main(path):
    fanout = defaultdict(lambda: defaultdict(list))  # (s, m) -> peer -> lines
    cpu = defaultdict(list)  # (s, m) -> shares
    with open(path) as lines:
        for text in lines:
            line = json.loads(text)
            size = (line["subscribers"], line["messages"])
            if line["scenario"] == "fanout":
                fanout[size][line["peer"]].append(line)
            elif line["scenario"] == "redis_cpu":
                cpu[size].append(line["cpu_share"])
    print("| load | metric | 1 node, memory | 2 nodes, Redis | Redis / memory |")
    print("|---|---|---|---|---|")
    for size in sorted(fanout):
        label = f"fanout {size[0]}x{size[1]}"
        for key, unit in [
            ("deliveries_per_sec", "deliveries/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
        ]:
            memory = median([l[key] for l in fanout[size][MEMORY]])
            redis = median([l[key] for l in fanout[size][REDIS]])
            ratio = f"{redis / memory:.2f}x" if memory and redis else "-"
            print(f"| {label} | {unit} | {fmt(memory)} | {fmt(redis)} | {ratio} |")
        share = median(cpu[size])
        share = None if share is None else share * 100
        print(f"| {label} | Redis CPU share | - | {fmt(share, 1)}% | - |")
    for size in sorted(fanout):
        runs = {peer: fanout[size][peer] for peer in (MEMORY, REDIS)}
        faults = sum(
            l["lost"] + l["gaps"] + l["duplicates"] for lines in runs.values() for l in lines
        )
        print(
            f"\nfanout {size[0]}x{size[1]}: {len(runs[MEMORY])} runs in memory, "
            f"{len(runs[REDIS])} through Redis; {faults} lost, gaps or duplicates in all"
        )


if __name__ == "__main__":
    main(sys.argv[1])
