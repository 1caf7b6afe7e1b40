#!/usr/bin/env python3
"""Benchmark results of `make bench` (bench/run.sh), as one flat JSON file, and
what moved between two of them.

    report.py summarize target/bench > target/bench/results.json
    report.py compare bench/recorded.json target/bench/results.json

`summarize` reads what bench/run.sh left in its output directory: the machine,
criterion's estimates, review_latency.json, and per server (webhook, noop, read, before)
oha's JSON reports and the RSS samples. Every figure is one key, with the
issue 6 targets checked in "targets".

`compare` prints each figure of the recorded run beside the fresh one, marks
those that moved by more than --threshold (default 25%: the machines are
noisy), says whether for better or worse, and lists the targets whose verdict
changed. It exits 0 either way: benchmarks inform, they do not gate.
"""

import argparse
import csv
import glob
import json
import math
import os
import sys

CASES = ["small", "typical", "large-100-containers", "update-ephemeral-3mb"]
SERVERS = ["webhook", "noop", "read", "before"]

# (key, target, "max" or "min", what it stands for)
TARGETS = [
    ("review.typical.mean_us", 30, "max", "review path, typical pod: mean <= 30 us"),
    ("review.typical.p99_us", 100, "max", "review path, typical pod: p99 <= 100 us"),
    ("webhook.keepalive.peak_rps", 20000, "min", "reused connections: >= 20,000 reviews/s per core"),
    ("ratio.keepalive.peak_rps", 0.8, "min", "reused connections: >= 0.8x the no-op endpoint"),
    ("webhook.half_peak.steady.p99_ms", 2, "max", "p99 <= 2 ms at half of peak throughput (after the first second)"),
    ("webhook.newconn.c16.rps", 2000, "min", "new connections: >= 2,000 TLS handshakes/s per core"),
    ("webhook.newconn.c1.p99_ms", 5, "max", "first request on a new connection <= 5 ms (p99)"),
    ("webhook.memory.idle.rss_mib", 16, "max", "RSS idle <= 16 MiB"),
    ("webhook.memory.update-3mb.hwm_mib", 64, "max", "peak RSS serving 3 MB reviews at 16 clients <= 64 MiB"),
    ("webhook.update-3mb.c1.p99_ms", 100, "max", "a 3 MB UPDATE answered in <= 100 ms p99 (over TLS, one at a time)"),
]


def higher_is_better(key):
    return key.endswith("rps") or key.startswith("ratio.") or key.endswith("per_s")


def oha(path):
    with open(path) as f:
        report = json.load(f)
    summary, pct = report["summary"], report["latencyPercentiles"]
    ms = lambda s: None if s is None else round(s * 1000, 3)
    codes = report.get("statusCodeDistribution", {})
    return {
        "rps": round(summary["requestsPerSec"], 1),
        "mean_ms": ms(summary["average"]),
        "p50_ms": ms(pct["p50"]),
        "p90_ms": ms(pct["p90"]),
        "p99_ms": ms(pct["p99"]),
        "p99.9_ms": ms(pct["p99.9"]),
        "max_ms": ms(summary["slowest"]),
        "ok": codes.get("200", 0),
        "failed": sum(v for k, v in codes.items() if k != "200") + sum(report.get("errorDistribution", {}).values()),
    }


# Requests of a CSV run started before this many seconds are left out: the
# client's start-up (see oha_steady).
STEADY_AFTER_S = 1.0


def oha_steady(path, after=STEADY_AFTER_S):
    """The figures of `oha()` from oha's per-request CSV, for the requests
    started `after` seconds into the run or later. oha's first request on a
    connection waits for the client's own TLS set-up (about 30 ms here; the
    server's part of a handshake is under 1 ms, see newconn), and under a
    fixed rate with latency correction the requests scheduled behind it count
    that wait too, which can move a p99 by tens of milliseconds."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    steady = [r for r in rows if float(r["request-start"]) >= after]
    if not steady:
        return {}
    latencies = sorted(float(r["request-duration"]) for r in steady)
    n = len(latencies)
    pct = lambda p: latencies[max(0, math.ceil(p * n) - 1)]  # nearest rank
    ms = lambda s: round(s * 1000, 3)
    span = max(float(r["request-start"]) for r in steady) - after
    ok = sum(1 for r in steady if r["status"] == "200")
    return {
        "rps": round(n / span, 1) if span > 0 else None,
        "mean_ms": ms(sum(latencies) / n),
        "p50_ms": ms(pct(0.50)),
        "p90_ms": ms(pct(0.90)),
        "p99_ms": ms(pct(0.99)),
        "p99.9_ms": ms(pct(0.999)),
        "max_ms": ms(latencies[-1]),
        "ok": ok,
        "failed": n - ok,
    }


def summarize(out):
    r = {}
    with open(os.path.join(out, "machine.txt")) as f:
        for line in f:
            k, _, v = line.partition(": ")
            r["machine." + k.strip()] = v.strip()
    for path in glob.glob(os.path.join(out, "..", "criterion", "review_path", "*", "*", "new", "estimates.json")):
        case = path.split(os.sep)[-4]
        with open(path) as f:
            r[f"criterion.{case}.mean_us"] = round(json.load(f)["mean"]["point_estimate"] / 1000, 1)
    with open(os.path.join(out, "review_latency.json")) as f:
        for case in json.load(f)["review_latency"]:
            name = case["name"].replace("-3mb", "")
            r[f"review.{name}.bytes"] = case["bytes"]
            for k in ["mean_us", "p50_us", "p90_us", "p99_us"]:
                r[f"review.{name}.{k}"] = case[k]
    for server in SERVERS:
        d = os.path.join(out, "load", server)
        if not os.path.isdir(d):
            continue
        runs = {
            "keepalive.c1": "keepalive-c1",
            "keepalive.c16": "keepalive-c16",
            "keepalive.c64": "keepalive-c64",
            "half_peak": "half-peak",
            "newconn.c1": "newconn-c1",
            "newconn.c16": "newconn-c16",
            "update-3mb.c1": "update-3mb-c1",
            "update-3mb.c16": "update-3mb-c16",
        }
        for key, file in runs.items():
            path = os.path.join(d, file + ".json")
            if os.path.exists(path):
                for k, v in oha(path).items():
                    r[f"{server}.{key}.{k}"] = v
        path = os.path.join(d, "half-peak.csv")
        if os.path.exists(path):
            for k, v in oha_steady(path).items():
                r[f"{server}.half_peak.steady.{k}"] = v
        peaks = [r.get(f"{server}.keepalive.c{c}.rps", 0) for c in (1, 16, 64)]
        r[f"{server}.keepalive.peak_rps"] = max(peaks)
        with open(os.path.join(d, "memory.jsonl")) as f:
            for line in f:
                m = json.loads(line)
                r[f"{server}.memory.{m['phase']}.rss_mib"] = round(m["vm_rss_kib"] / 1024, 1)
                r[f"{server}.memory.{m['phase']}.hwm_mib"] = round(m["vm_hwm_kib"] / 1024, 1)
    for key in list(r):
        if key.startswith("webhook.") and key.endswith("rps"):
            noop = r.get("noop." + key[len("webhook."):])
            if noop:
                r["ratio." + key[len("webhook."):]] = round(r[key] / noop, 3)
    # The webhook / no-op gap in two: reading the review (read / no-op) and
    # the engine, patch and answer (webhook / read).
    noop, read, webhook = (r.get(f"{s}.keepalive.peak_rps") for s in ("noop", "read", "webhook"))
    if noop and read and webhook:
        r["split.read_over_noop.peak_rps"] = round(read / noop, 3)
        r["split.webhook_over_read.peak_rps"] = round(webhook / read, 3)
        # Per review on the server's one core: microseconds = 1e6 / rate.
        r["split.noop_us"] = round(1e6 / noop, 1)
        r["split.reading_us"] = round(1e6 / read - 1e6 / noop, 1)
        r["split.hardening_us"] = round(1e6 / webhook - 1e6 / read, 1)
    r["targets"] = {}
    for key, target, kind, what in TARGETS:
        value = r.get(key)
        met = None if value is None else (value <= target if kind == "max" else value >= target)
        r["targets"][key] = {"what": what, "target": target, "value": value, "met": met}
    return r


def compare(recorded, fresh, threshold):
    moved = []
    print(f"{'figure':<44} {'recorded':>12} {'fresh':>12} {'fresh/rec':>9}")
    for key in sorted(set(recorded) & set(fresh)):
        a, b = recorded[key], fresh[key]
        if not all(isinstance(x, (int, float)) for x in (a, b)) or key.endswith(".ok") or key.endswith(".bytes"):
            continue
        ratio = b / a if a else float("inf") if b else 1.0
        mark = ""
        if abs(ratio - 1) > threshold:
            better = (ratio > 1) == higher_is_better(key)
            mark = "better" if better else "WORSE"
            moved.append((key, mark))
        print(f"{key:<44} {a:>12} {b:>12} {ratio:>9.2f} {mark}")
    print()
    for key, t in fresh.get("targets", {}).items():
        before = recorded.get("targets", {}).get(key, {}).get("met")
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        change = "" if before == t["met"] else f" (was {({True: 'met', False: 'missed', None: 'not measured'})[before]})"
        print(f"target: {t['what']}: {t['value']} -> {verdict}{change}")
    print()
    if moved:
        print(f"moved by more than {threshold:.0%}: " + ", ".join(f"{k} ({m})" for k, m in moved))
    else:
        print(f"nothing moved by more than {threshold:.0%}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("recorded")
    c.add_argument("fresh")
    c.add_argument("--threshold", type=float, default=0.25)
    args = p.parse_args()
    if args.command == "summarize":
        json.dump(summarize(args.out), sys.stdout, indent=1, sort_keys=True)
        print()
    elif not os.path.exists(args.recorded):
        print(f"no recorded figures in {args.recorded}: nothing to compare")
    else:
        with open(args.recorded) as f:
            recorded = json.load(f)
        with open(args.fresh) as f:
            fresh = json.load(f)
        compare(recorded, fresh, args.threshold)


if __name__ == "__main__":
    main()
