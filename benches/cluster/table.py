#!/usr/bin/env python3
"""hera beside Serf, one row per N, from gossipbench JSON in DIR (default docs/data/cluster):
the figures issue 17 sets targets for, each with hera's ratio to Serf from the same sitting.

    python3 benches/cluster/table.py [DIR]
"""
import glob
import json
import os
import sys


def load(d, driver, n):
    p = os.path.join(d, "%s-%d.json" % (driver, n))
    return json.load(open(p)) if os.path.exists(p) else None


def figures(r):
    if r is None or "error" in r:
        return None
    j = r["join"]["reps"]
    conv = sorted(x["converged_s"] for x in j if x["converged_s"] is not None)
    after_spawn = sorted(x["converged_s"] - x["spawn_all_s"] for x in j if x["converged_s"] is not None)
    w = list(r["write"].values())[0]
    st = r["steady"]
    return {
        "detect": r["failure"]["median_all_failed_s"],
        "write": w.get("median_all_seen_handler_s") or w.get("median_all_seen_polled_s"),
        "join": conv[len(conv) // 2],
        "join_slowest": conv[-1],
        "join_after_spawn": after_spawn[len(after_spawn) // 2],
        "cpu": st["cpu_pct_of_one_core_per_agent"],
        "rss_mib": st["rss_kib_mean"] / 1024,
        "bytes": st["tcpdump"]["udp_ip_bytes_per_agent_per_s"] if "tcpdump" in st else None,
    }


def cell(h, s, key, fmt):
    if h is None:
        return "—"
    v = fmt % h[key]
    if s is not None and s.get(key):
        v += " (%.2f×)" % (h[key] / s[key])
    return v


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "docs/data/cluster"
    ns = sorted({int(p.rsplit("-", 1)[1][:-5]) for p in glob.glob(os.path.join(d, "*-[0-9]*.json"))})
    print("| N | crash seen by all, s | write seen by all, ms | join, s (slowest) | join after the last start, s | idle CPU, % core | RSS, MiB | idle UDP B/s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in ns:
        hr, sr = load(d, "hera", n), load(d, "serf", n)
        h, s = figures(hr), figures(sr)
        if s is None and sr is not None:
            s_note = " (Serf: %s)" % sr.get("error", "no result")
        else:
            s_note = ""
        hw = dict(h, write=h["write"] * 1000) if h else None
        sw = dict(s, write=s["write"] * 1000) if s else None
        print("| %d%s | %s | %s | %s (%s) | %s | %s | %s | %s |" % (
            n, s_note,
            cell(h, s, "detect", "%.2f"),
            cell(hw, sw, "write", "%.0f"),
            cell(h, s, "join", "%.2f"), "—" if h is None else "%.2f" % h["join_slowest"],
            cell(h, s, "join_after_spawn", "%.2f"),
            cell(h, s, "cpu", "%.3f"),
            cell(h, s, "rss_mib", "%.2f"),
            cell(h, s, "bytes", "%.0f") if h and h["bytes"] is not None else "—"))


if __name__ == "__main__":
    main()
