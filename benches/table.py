#!/usr/bin/env python3
"""Medians of `tether-loadgen` JSON lines, per scenario and peer, as a Markdown
table with each peer's ratio to a base peer (tether-smol unless named).

Usage: benches/table.py RESULTS.jsonl [BASE]

A ratio is the base peer's advantage: above 1 the base is better (higher
throughput, or lower latency, memory or time), below 1 it is worse.
"""

import json
import statistics
import sys
from collections import defaultdict

PEER_ORDER = ["tether-smol", "tether-smol-t1", "tether-blocking", "tether-tokio", "tether-tokio-t1",
              "tether-tokio-ct", "node-ws", "tokio-ws"]

# (scenario label, metric, unit, higher is better)
def rows_for(scenario, line):
    if scenario == "fanout":
        label = f"fanout {line['subscribers']}x{line['messages']}"
        return label, [
            ("deliveries_per_sec", "deliveries/s", True),
            ("p50_us", "p50 µs", False),
            ("p99_us", "p99 µs", False),
            ("lost", "lost", False),
            ("gaps", "gaps", False),
        ]
    if scenario == "rtt":
        return f"rtt {line['connections']} conns", [
            ("round_trips_per_sec", "round trips/s", True),
            ("p50_us", "p50 µs", False),
            ("p99_us", "p99 µs", False),
            ("server_cpu_us_per_round_trip", "server CPU µs/round trip", False),
        ]
    if scenario == "idle":
        return "idle", [
            ("connections", "connections held", True),
            ("rss_per_connection_bytes", "RSS bytes/conn", False),
        ]
    if scenario == "connect":
        return f"connect {line['clients']}", [
            ("all_connected_ms", "all connected ms", False),
            ("p50_ms", "p50 ms", False),
            ("failures", "failures", False),
        ]
    return None, []


def fmt(value):
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def main(path, base="tether-smol"):
    samples = defaultdict(list)  # (label, metric) -> peer -> values
    metrics = {}  # label -> [(metric, unit, higher)]
    order = []
    peers = set()
    with open(path) as results:
        for text in results:
            line = json.loads(text)
            label, rows = rows_for(line["scenario"], line)
            if label is None:
                continue
            if label not in metrics:
                metrics[label] = rows
                order.append(label)
            peer = line.get("peer", "?")
            peers.add(peer)
            for metric, _, _ in rows:
                if metric in line:
                    samples[(label, metric, peer)].append(line[metric])
    peers = [p for p in PEER_ORDER if p in peers] + sorted(peers - set(PEER_ORDER))
    others = [p for p in peers if p != base]
    header = ["scenario", "metric"] + peers + [f"{base} vs {p}" for p in others]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label in order:
        for metric, unit, higher in metrics[label]:
            medians = {}
            for peer in peers:
                values = samples.get((label, metric, peer))
                medians[peer] = statistics.median(values) if values else None
            cells = [label, unit] + [fmt(medians[p]) for p in peers]
            mine = medians.get(base)
            for peer in others:
                other = medians[peer]
                if mine is None or other is None or mine == 0 or other == 0:
                    cells.append("-")
                else:
                    ratio = mine / other if higher else other / mine
                    cells.append(f"{ratio:.2f}x")
            print("| " + " | ".join(cells) + " |")
    runs = {p: len(samples.get((order[0], metrics[order[0]][0][0], p), [])) for p in peers} if order else {}
    print(f"\nMedians of {max(runs.values(), default=0)} runs per peer; ratios are {base}'s advantage (>1: {base} better).")


if __name__ == "__main__":
    main(*sys.argv[1:3])
