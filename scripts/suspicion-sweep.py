#!/usr/bin/env python3
"""suspicion-sweep: is a shorter suspicion_base safe? False failures and detection in hera-sim.

    python3 scripts/suspicion-sweep.py [--nodes 32,128] [--bases 1000,1250,1500] [--seeds 8]
        [--scenarios loss,flaky,pause,churn,crash] [--losses 0.01,0.05,0.1,0.2,0.3]
        [--pauses 2,3,4,5,6,8] [--flaky 0.5,0.7,0.8,0.9] [--budget SECS]
        [--run-timeout SECS] [--out-dir DIR]
    python3 scripts/suspicion-sweep.py --table [--out-dir DIR]   # the markdown table only

For each cluster size N, each suspicion_base (milliseconds, `hera-sim --suspicion-base`) and
each seed 1..S, runs the lan preset through:

  loss   uniform loss P for 120 s (the `loss` scenario), for each P of --losses. No node
         crashes, so every failure declared is false: counted from `failures_seen`, which
         also covers the monitor's start-up grace and the scenario's early exit
  pause  one node stalls for D seconds, for each D of --pauses: how often the others declare
         it failed (the monitor excuses a paused node, so this is not a "false failure" in
         its counts; it is the cost a shorter suspicion has: a shorter stall becomes a failure)
  flaky  one node's links lose P of their datagrams both ways for 120 s, for each P of
         --flaky: it is live and its refutations are what gets lost; every failure of it, or
         of anyone, is false (monitor)
  churn  random crashes, restarts and leaves for 90 s: false failures (monitor)
  crash  one crash (N/100, 1 to 10): time until every live node declared it failed (p50 of
         the run; the table gives the median over seeds)

Runs one simulator at a time under `nice`, each with a wall-time limit (--run-timeout), and
starts no run after --budget seconds. Writes docs/data/suspicion/sweep-n<N>.json after every
run (so an interrupted sweep keeps what it measured; runs of earlier invocations in the file
stay unless run again, and each invocation's command is kept under "sweeps") and prints the
table. Python 3 stdlib only.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def floats(s):
    return [float(x) for x in s.split(",") if x]


def ints(s):
    return [int(x) for x in s.split(",") if x]


def commit():
    try:
        return subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def one_run(binary, scenario, nodes, base_ms, seed, timeout, loss=None, pause_s=None):
    # `loss` is --loss: uniform loss for `loss`, one node's link loss for `flaky`.
    """One simulator run; a compact record of what it measured."""
    cmd = ["nice", "-n", "10", binary, "--scenario", scenario, "--nodes", str(nodes),
           "--seed", str(seed), "--suspicion-base", str(base_ms), "--json"]
    if loss is not None:
        cmd += ["--loss", str(loss)]
    if pause_s is not None:
        cmd += ["--duration", str(pause_s)]
    rec = {"scenario": scenario, "nodes": nodes, "base_ms": base_ms, "seed": seed,
           "loss": loss, "pause_s": pause_s}
    started = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        rec.update(timed_out=True, wall_s=round(time.monotonic() - started, 2))
        return rec
    try:
        r = json.loads(p.stdout)
    except json.JSONDecodeError:
        rec.update(error=(p.stderr or p.stdout)[-300:])
        return rec
    c = r["counts"]
    d = (r.get("detection") or {}).get("all_failed") or {}
    pause = r.get("pause") or {}
    flaky = r.get("flaky") or {}
    rec.update(
        passed=r["passed"],
        failure=(r["failure"] or "")[:200] or None,
        false_failures=c["false_failures"],
        failures_seen=c["failures_seen"],
        false_suspicions=c["false_suspicions"],
        suspicions_raised=c["suspicions_raised"],
        refutations=c["refutations"],
        detect_all_p50_s=d.get("p50_s"),
        pause_suspected=pause.get("suspected"),
        pause_failed=pause.get("failed"),
        flaky_suspected=flaky.get("suspected"),
        flaky_failed=flaky.get("failed"),
        simulated_s=round(r["simulated_s"], 1),
        wall_s=round(time.monotonic() - started, 2),
        trace_hash=r["trace_hash"],
    )
    return rec


def accusations(rec):
    """False failure declarations in a run (one per observer)."""
    if rec["scenario"] == "loss":
        # Nothing crashes in `loss`: every failure is false, even inside the monitor's grace.
        return max(rec.get("failures_seen", 0), rec.get("false_failures", 0))
    if rec["scenario"] == "pause":
        # The paused node's own failures are its stall's; anyone else's are false.
        return rec.get("failures_seen", 0) - (rec.get("pause_failed") or 0)
    return rec.get("false_failures", 0)


def cells(runs):
    """Group runs by (scenario, N, loss or pause, base)."""
    groups = {}
    for rec in runs:
        key = (rec["scenario"], rec["nodes"], rec.get("loss"), rec.get("pause_s"), rec["base_ms"])
        groups.setdefault(key, []).append(rec)
    out = []
    for (scenario, nodes, loss, pause_s, base), rs in groups.items():
        done = [r for r in rs if "passed" in r]
        det = [r["detect_all_p50_s"] for r in done if r.get("detect_all_p50_s") is not None]
        out.append({
            "scenario": scenario, "nodes": nodes, "loss": loss, "pause_s": pause_s,
            "base_ms": base,
            "runs": len(done),
            "timed_out": sum(1 for r in rs if r.get("timed_out")),
            "runs_failed": sum(1 for r in done if not r["passed"]),
            "false_failures": sum(accusations(r) for r in done),
            "runs_with_false_failure": sum(1 for r in done if accusations(r) > 0),
            "false_suspicions": sum(r.get("suspicions_raised", 0) for r in done
                                    if scenario == "loss"),
            "flaky_suspected": (sum(r.get("flaky_suspected") or 0 for r in done)
                                if scenario == "flaky" else None),
            "paused_declared_failed": (sum(1 for r in done if (r.get("pause_failed") or 0) > 0)
                                       if scenario == "pause" else None),
            # Of the false failures, those of the flaky node itself (the rest are its
            # accusations of others, and their echoes).
            "flaky_node_failed": (sum(r.get("flaky_failed") or 0 for r in done)
                                  if scenario == "flaky" else None),
            "runs_flaky_node_failed": (sum(1 for r in done if (r.get("flaky_failed") or 0) > 0)
                                       if scenario == "flaky" else None),
            "detect_all_median_s": round(statistics.median(det), 3) if det else None,
        })
    return sorted(out, key=sort_key)


def sort_key(c):
    return (c["scenario"], c["nodes"], c["loss"] or 0, c["pause_s"] or 0, c["base_ms"])


SCENARIO_ORDER = ["crash", "loss", "flaky", "churn", "pause"]


def what(c):
    if c["loss"] is not None:
        return f"{'its links lose' if c['scenario'] == 'flaky' else 'loss'} {c['loss']:.0%}"
    if c["pause_s"] is not None:
        return f"stalls {c['pause_s']:g} s"
    return ""


def cell_text(c):
    """One base's figure for one row: what the scenario is there to show."""
    if c["scenario"] == "crash":
        det = c["detect_all_median_s"]
        return "-" if det is None else f"{det:.2f} s"
    if c["scenario"] == "pause":
        return f"{c['paused_declared_failed']}/{c['runs']}"
    text = f"{c['false_failures']} ({c['runs_with_false_failure']}/{c['runs']})"
    if c["scenario"] == "flaky":
        text += f"; it: {c['flaky_node_failed']} ({c['runs_flaky_node_failed']})"
    return text


def table(all_cells):
    """One row per scenario, N and fault; one column per suspicion_base."""
    bases = sorted({c["base_ms"] for c in all_cells})
    rows = {}
    for c in all_cells:
        rows.setdefault((c["scenario"], c["nodes"], c["loss"] or 0, c["pause_s"] or 0), {})[
            c["base_ms"]] = c
    head = " | ".join(f"{b / 1000:g} s" for b in bases)
    lines = [f"| scenario | N | fault | figure | {head} |",
             "|---|---|---|---|" + "---|" * len(bases)]
    figure = {"crash": "crash seen by all, median over seeds",
              "pause": "runs in which the stalled node was declared failed",
              "flaky": "false failures (runs with any); of the flaky node itself"}
    order = {s: i for i, s in enumerate(SCENARIO_ORDER)}
    for k in sorted(rows, key=lambda k: (k[1], order.get(k[0], 99), k[2], k[3])):
        by_base = rows[k]
        any_cell = next(iter(by_base.values()))
        texts = " | ".join(cell_text(by_base[b]) if b in by_base else "" for b in bases)
        lines.append(f"| {k[0]} | {k[1]} | {what(any_cell)} | "
                     f"{figure.get(k[0], 'false failures (runs with any)')} | {texts} |")
    return "\n".join(lines)


def key(rec):
    return (rec["scenario"], rec["base_ms"], rec["seed"], rec.get("loss"), rec.get("pause_s"))


def load_file(path):
    """The sweeps and runs already in `path` (none if it does not exist)."""
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        d = json.load(f)
    return d.get("sweeps") or [d["meta"]] * ("meta" in d), d.get("runs", [])


def write(path, sweeps, runs):
    """The file, one run (and one cell) a line: diffs and greps stay readable."""
    runs = sorted(runs, key=lambda r: tuple(-1 if v is None else v for v in key(r)))

    def rows(items):
        return ",\n".join("  " + json.dumps(x, sort_keys=True) for x in items)

    text = (f'{{\n "sweeps": [\n{rows(sweeps)}\n ],\n "cells": [\n{rows(cells(runs))}\n ],\n'
            f' "runs": [\n{rows(runs)}\n ]\n}}\n')
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/hera-sim"))
    ap.add_argument("--nodes", type=ints, default=[32, 128])
    ap.add_argument("--bases", type=ints, default=[1000, 1250, 1500], help="milliseconds")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--scenarios", default="loss,flaky,pause,churn,crash")
    ap.add_argument("--losses", type=floats, default=[0.01, 0.05, 0.10, 0.20, 0.30])
    ap.add_argument("--pauses", type=floats, default=[2, 3, 4, 5, 6, 8], help="seconds")
    ap.add_argument("--flaky", type=floats, default=[0.5, 0.7, 0.8, 0.9],
                    help="link loss of the flaky node")
    ap.add_argument("--budget", type=float, default=3600, help="seconds: start no run after")
    ap.add_argument("--run-timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "docs/data/suspicion"))
    ap.add_argument("--table", action="store_true", help="print the table of --out-dir only")
    a = ap.parse_args()

    if a.table:
        all_cells = []
        for path in sorted(glob.glob(os.path.join(a.out_dir, "sweep-n*.json"))):
            with open(path) as f:
                all_cells += cells(json.load(f)["runs"])
        print(table(all_cells))
        return 0
    if not (1 <= a.seeds <= 1000):
        sys.exit("--seeds is 1 to 1000")
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"{a.bin}: not built (cargo build --release -p hera-sim)")
    os.makedirs(a.out_dir, exist_ok=True)
    scenarios = [s for s in a.scenarios.split(",") if s]
    unknown = set(scenarios) - {"loss", "flaky", "pause", "churn", "crash"}
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}")

    t0 = time.monotonic()
    all_cells = []
    for n in a.nodes:
        meta = {
            "what": "hera-sim lan preset, suspicion_base swept (issue 17)",
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "commit": commit(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_at_start": load(),
            "nodes": n, "seeds": a.seeds, "complete": False,
        }
        path = os.path.join(a.out_dir, f"sweep-n{n}.json")
        # Another invocation's runs stay, unless this one runs them again.
        sweeps, kept = load_file(path)
        sweeps.append(meta)
        plan = []
        for s in scenarios:
            params = {"loss": [(l, None) for l in a.losses],
                      "flaky": [(l, None) for l in a.flaky],
                      "pause": [(None, d) for d in a.pauses]}.get(s, [(None, None)])
            for loss, pause_s in params:
                for base in a.bases:
                    for seed in range(1, a.seeds + 1):
                        plan.append((s, base, seed, loss, pause_s))
        planned = {(s, base, seed, loss, pause_s) for s, base, seed, loss, pause_s in plan}
        kept = [r for r in kept if key(r) not in planned]
        runs = []
        for i, (s, base, seed, loss, pause_s) in enumerate(plan):
            if time.monotonic() - t0 > a.budget:
                log(f"budget of {a.budget:.0f} s spent: {len(plan) - i} runs at N = {n} "
                    "not started")
                break
            rec = one_run(a.bin, s, n, base, seed, a.run_timeout, loss, pause_s)
            rec["commit"] = meta["commit"]
            runs.append(rec)
            log(f"N={n} {s} loss={loss} pause={pause_s} base={base} seed={seed}: "
                f"false={accusations(rec) if 'passed' in rec else '-'} "
                f"passed={rec.get('passed')} wall={rec.get('wall_s')}s")
            write(path, sweeps, kept + runs)
        else:
            meta["complete"] = True
        meta["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write(path, sweeps, kept + runs)
        all_cells += cells(kept + runs)
    print(table(all_cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
