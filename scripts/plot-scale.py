#!/usr/bin/python3
"""Turn hera-sim's JSON reports into the PNG plots of docs/scale.md.

    /usr/bin/python3 scripts/plot-scale.py dc3 docs/data/dc3-lan.json docs/data/dc3-wan.json -o docs/img/dc3-cut-heal.png
    /usr/bin/python3 scripts/plot-scale.py memory docs/data/sim-memory.json -o docs/img/sim-memory.png
    /usr/bin/python3 scripts/plot-scale.py cluster docs/data/cluster/*-[0-9]*.json -o docs/img/cluster-vs-serf.png

`dc3` plots the cut-and-heal timeline of one or more `--scenario dc3 --json` reports (one
column each): per side of the cut, the members seen alive, the nodes with quorum and the
other side's registry entries held (self-preservation keeps them where there is no quorum).
`memory` plots the simulator's peak RSS, peak heap and settled heap against N from a table
of `--scenario join` runs (docs/data/sim-memory.json; each figure is in the run's report:
`peak_rss_bytes`, `peak_heap_bytes`, the note `heap after settling`).

`cluster` plots real processes beside Serf against N from benches/cluster's JSON (one file per
driver and N, `<driver>-<N>.json`): crash seen by all, a write seen by all, join, and idle
bytes on the wire per node.

`spread` plots how one update spreads against log2 N from `--scenario join --json` reports
(the newcomer's alive update, pushed into a settled cluster) and `--scenario registry --json`
reports (registry writes, p50 over the writes): datagram hops (gossip generations) to reach
50%, 99% and everyone, beside the line log2 N, and the time to reach everyone in gossip
rounds (time / gossip interval).

`registry-memory` plots each node's RSS against the entries registered so far, from
scripts/registry-scale.py's JSON (`register.progress`: a row per 10,000 answered, the last
field each node's RSS in KiB), beside the in-core cost per entry counted by tests/memory.rs.

Needs matplotlib (Debian: `apt-get install -y python3-matplotlib`).
"""

import argparse
import json
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot-scale.py needs matplotlib: apt-get install -y python3-matplotlib")

MIB = 1024 * 1024


def load(path):
    with open(path) as f:
        return json.load(f)


def finish_axes(ax, xlabel, ylabel, title, legend_size=8, title_size=None):
    """The look every panel shares: labels, a title, y from zero, a light grid, a legend."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title_size:
        ax.set_title(title, fontsize=title_size)
    else:
        ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save(fig, out, suptitle=None):
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_dc3(paths, out):
    """Per report two columns: the first two minutes of the cut, and the heal."""
    reports = [load(p) for p in paths]
    rows = [
        ("members seen alive (mean)", "alive_seen_mean"),
        ("nodes with quorum", "with_quorum"),
        ("other side's entries\nheld (mean)", "other_side_entries_mean"),
    ]
    fig, axes = plt.subplots(len(rows), 2 * len(reports), figsize=(4.2 * 2 * len(reports), 8.5),
                             squeeze=False, sharey="row")
    for k, r in enumerate(reports):
        d = r["dc3"]
        tl = d["timeline"]
        cut_s = d["cut"]["seconds"]
        heal = d["heal"]
        windows = [
            (0, "cut", -2, min(120, cut_s)),
            (1, "heal", cut_s - 5, tl[-1]["t_s"] + 1),
        ]
        for w, what, lo, hi in windows:
            col = 2 * k + w
            sel = [s for s in tl if lo <= s["t_s"] <= hi]
            t = [s["t_s"] - (cut_s if what == "heal" else 0) for s in sel]
            for row, (label, key) in enumerate(rows):
                ax = axes[row][col]
                ax.step(t, [s["majority"][key] for s in sel], where="post",
                        label="connected DCs (%d nodes)" % (2 * d["nodes_per_dc"][0]))
                ax.step(t, [s["minority"][key] for s in sel], where="post", linestyle="--",
                        label="cut-off DC (%d nodes)" % d["nodes_per_dc"][-1])
                ax.axvline(0, color="grey", linewidth=0.8)
                ax.grid(alpha=0.3)
                if col == 0:
                    ax.set_ylabel(label)
            if what == "cut":
                axes[0][col].set_title("preset %s: the cut (first %.0f s of %.0f)"
                                       % (r["preset"], hi, cut_s), fontsize=9)
                axes[-1][col].set_xlabel("seconds since the cut")
                axes[0][col].legend(fontsize=7)
            else:
                axes[0][col].set_title(
                    "preset %s: the heal (membership agrees %.1f s, registry %.1f s)"
                    % (r["preset"], heal["membership_agrees_s"] or -1,
                       heal["registry_agrees_s"] or -1), fontsize=9)
                axes[-1][col].set_xlabel("seconds since the heal")
    fig.suptitle("3 data centres x %d nodes, one cut off for %.0f s and healed "
                 "(hera-sim dc3, seed %d)"
                 % (reports[0]["dc3"]["nodes_per_dc"][0], reports[0]["dc3"]["cut"]["seconds"],
                    reports[0]["seed"]))
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_memory(paths, out):
    """From docs/data/sim-memory.json: rows of nodes, allocator ("glibc default", "mmap
    threshold 64 KiB", or another label for a later core: its own series), peak RSS, peak heap
    and settled heap in MiB."""
    rows = [row for p in paths for row in load(p)["rows"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    # Known series first, then any other label (a later build of the core) in its own style.
    series = [("glibc default", "-o"), ("mmap threshold 64 KiB", "--s")]
    known = {alloc for alloc, _ in series}
    others = sorted({r["allocator"] for r in rows} - known)
    series += [(alloc, "-.D") for alloc in others]
    for alloc, style in series:
        sel = sorted((r for r in rows if r["allocator"] == alloc), key=lambda r: r["nodes"])
        if not sel:
            continue
        n = [r["nodes"] for r in sel]
        ax.plot(n, [r["peak_rss_mib"] for r in sel], style, label="peak RSS, " + alloc)
        if alloc == "glibc default":
            heap = [r for r in sel if r.get("peak_heap_mib")]
            ax.plot([r["nodes"] for r in heap], [r["peak_heap_mib"] for r in heap], "-^",
                    label="peak heap")
            settled = [r for r in sel if r.get("settled_heap_mib")]
            ax.plot([r["nodes"] for r in settled], [r["settled_heap_mib"] for r in settled],
                    "-v", label="heap after settling (member tables)")
    ax.axhline(8 * 1024, color="red", linewidth=0.8, linestyle=":", label="goal at 10,000: 8 GiB")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("nodes N (membership only: N(N-1) member records)")
    ax.set_ylabel("MiB")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("hera-sim --scenario join: memory against N")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_cluster(paths, out):
    """Four panels against N, hera and Serf, from gossipbench results."""
    import os
    import re

    series = {}
    for p in paths:
        m = re.match(r"(hera|serf)-(\d+)\.json$", os.path.basename(p))
        r = load(p)
        if not m or "error" in r:
            continue
        w = list(r["write"].values())[0]
        st = r["steady"]
        reps = sorted(x["converged_s"] for x in r["join"]["reps"] if x["converged_s"] is not None)
        series.setdefault(m.group(1), []).append((int(m.group(2)), {
            "detect": r["failure"]["median_all_failed_s"],
            "write": 1000 * (w.get("median_all_seen_handler_s") or w["median_all_seen_polled_s"]),
            "join": reps[len(reps) // 2],
            "bytes": st["tcpdump"]["udp_ip_bytes_per_agent_per_s"],
        }))
    panels = [("detect", "crash seen by all survivors, s"), ("write", "a write seen by all, ms"),
              ("join", "N agents started: all see all alive, s"),
              ("bytes", "idle UDP on the wire per node, B/s")]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, (key, title) in zip(axes.flat, panels):
        for driver, style in (("serf", "--s"), ("hera", "-o")):
            pts = sorted(series.get(driver, []))
            ax.plot([n for n, _ in pts], [f[key] for _, f in pts], style,
                    label="Serf 0.9.4" if driver == "serf" else "hera")
        ax.set_xscale("log", base=2)
        finish_axes(ax, "N (real processes on loopback)", None, title, title_size=10)
    save(fig, out, "hera beside Serf, one sitting per N (benches/cluster)")


def plot_spread(paths, out):
    """Hops and time against log2 N: join reports (one update) and registry reports."""
    import math
    import statistics

    joins, writes = {}, {}
    for p in paths:
        r = load(p)
        if r.get("join"):
            j = r["join"]
            joins.setdefault(r["nodes"], []).append(
                (j["hops_p50"], j["hops_p99"], j["hops_max"], j["all_rounds"]))
        if r.get("write_reach"):
            w = r["write_reach"]
            writes.setdefault(r["nodes"], []).append(
                (w["to_half"]["hops_p50"], w["to_p99"]["hops_p50"], w["to_all"]["hops_p50"],
                 w["to_all"]["p99_rounds"]))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 4.6))
    colours = {"50%": "tab:blue", "99%": "tab:orange", "all": "tab:green"}
    for table, label, marker, style in ((joins, "join", "o", "-"),
                                        (writes, "registry write", "s", "--")):
        ns = sorted(table)
        if not ns:
            continue
        x = [math.log2(n) for n in ns]
        for k, what in enumerate(("50%", "99%", "all")):
            ax.plot(x, [statistics.median(row[k] for row in table[n]) for n in ns],
                    style + marker, color=colours[what], label=f"{label}: hops to {what}")
        for n in ns:
            rounds = [row[3] for row in table[n] if row[3] is not None]
            bx.plot([math.log2(n)] * len(rounds), rounds, marker, linestyle="none",
                    color="tab:green" if table is joins else "tab:purple", alpha=0.6)
        bx.plot(x, [statistics.median([row[3] for row in table[n] if row[3] is not None]
                                      or [float("nan")]) for n in ns], style,
                color="tab:green" if table is joins else "tab:purple",
                label="join: to all (each run; line: median)" if table is joins
                else "registry write: to all, p99 of writes")
    xs = [math.log2(n) for n in list(joins) + list(writes)]
    if xs:
        ax.plot([min(xs), max(xs)], [min(xs), max(xs)], color="grey", linewidth=0.8,
                label="log2 N")
    for a, title, ylabel in ((ax, "datagram hops (gossip generations), median of runs", "hops"),
                             (bx, "time until every live node holds it", "gossip rounds (200 ms)")):
        finish_axes(a, "log2 N", ylabel, title, legend_size=7, title_size=10)
    save(fig, out, "hera-sim: how one update spreads against log N (lan preset)")


def plot_registry_memory(paths, out, entry_bytes=293):
    """RSS per node against entries registered, one line per run (its JSON's "label", else
    the file's name), nodes as a band."""
    import os

    x = []
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for p in paths:
        r = load(p)
        rows = [row for row in r["register"]["progress"] if len(row) >= 5]
        if not rows:
            continue
        x = [row[0] for row in rows]
        per_node = [[kib / 1024 for kib in row[4]] for row in rows]
        ax.fill_between(x, [min(v) for v in per_node], [max(v) for v in per_node], alpha=0.25)
        name = r.get("label") or os.path.basename(p)
        ax.plot(x, [sum(v) / len(v) for v in per_node], "-o",
                label=f"{name}: RSS per node (mean of {r['nodes']}; band: min-max)")
        base = min(per_node[0])
    if x:
        ax.plot([x[0], x[-1]], [base, base + (x[-1] - x[0]) * entry_bytes / MIB], ":",
                color="grey", label=f"first point + {entry_bytes} B per entry (tests/memory.rs)")
    finish_axes(ax, "instances registered in the cluster (each node holds all)", "MiB",
                "scripts/registry-scale.py: memory per node against registry size")
    save(fig, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["dc3", "memory", "cluster", "spread", "registry-memory"])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    plots = {"dc3": plot_dc3, "memory": plot_memory, "cluster": plot_cluster,
             "spread": plot_spread, "registry-memory": plot_registry_memory}
    plots[a.kind](a.reports, a.out)


if __name__ == "__main__":
    main()
