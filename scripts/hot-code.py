#!/usr/bin/env python3
"""Profile which of the binary's functions a running node executes, for the link order.

An idle node's resident set is mostly its own code: the kernel maps 64 KiB around every page
of code touched, so a few hundred small functions scattered through 3.5 MB of `.text` keep
most of it resident. `scripts/build-static.sh` links the functions listed in
`scripts/hot-code.txt` first, next to each other, so what a running node executes sits in
a few hundred KiB. This script makes that list:

  1. starts a small cluster on loopback from the static build, two of its nodes (the seed and
     a joiner) under callgrind, each dumping its counts when start-up ends
     (`runtime::resident::trim_startup_pages`, after which start-up code is given back);
  2. drives what a node does after start-up, as users and the benchmark harness do: joins,
     HTTP reads (members, catalog, health, blocking queries, metrics), registrations and
     deregistrations, a crash to detect, a graceful leave, then idle time;
  3. writes the functions executed after start-up, most executed first, by symbol name. The
     build matches a name exactly where it can, and otherwise without its hash (`17h<hex>E`
     in legacy mangling, crate disambiguators in v0): after a compiler or dependency update
     the list still groups the hot code, if less tightly, until it is made again.

    python3 scripts/hot-code.py            # needs valgrind; ~2 minutes; rewrites hot-code.txt

Loopback only; every wait is bounded.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOSSIP_BASE = 26100
HTTP_BASE = 26300
PROFILED = (0, 1)  # the seed and the first joiner


# glibc's string functions come in one variant per instruction set, chosen at start-up for the
# CPU (`__memcpy_evex_unaligned_erms` here, `__memcpy_avx_unaligned_erms` under valgrind, which
# has no AVX-512): a family is listed by its prefix, with a trailing `*`.
GLIBC_VARIANT = re.compile(r"(__[a-z0-9]+?_)(sse2|ssse3|sse4_1|sse4_2|avx2|avx|evex|avx512)\w*$")


def entry(symbol):
    """A symbol's line in the list: its name, or its family's prefix for glibc's variants."""
    symbol = re.sub(r"'\d+$", "", symbol)  # callgrind's recursion marker
    family = GLIBC_VARIANT.fullmatch(symbol)
    return family.group(1) + "*" if family else symbol


def http(port, path, body=None, method="GET", timeout=5.0):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except OSError:
        return None


def wait_for(what, check, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    sys.exit("hot-code: %s did not happen within %d s" % (what, limit))


def alive(port):
    body = http(port, "/v1/agent/members")
    if body is None:
        return set()
    return {m["Name"] for m in json.loads(body) if m.get("Status") == 1}


def workload(n, procs):
    ports = [HTTP_BASE + i for i in range(n)]
    names = {"n%d" % i for i in range(n)}
    for p in PROFILED:
        wait_for("n%d seeing all %d members" % (p, n), lambda p=p: alive(ports[p]) == names, 180)
    for p in PROFILED:
        for path in ("/v1/agent/members", "/v1/catalog/services", "/v1/catalog/nodes",
                     "/v1/catalog/service/bench", "/v1/health/service/bench?passing",
                     "/v1/agent/services", "/v1/agent/self", "/metrics", "/v1/status/leader"):
            http(ports[p], path)
    # Registrations on every profiled node and on a plain one, each seen everywhere.
    for i, p in enumerate((0, 1, 2)):
        body = json.dumps({"Name": "bench", "ID": "b%d" % i, "Port": 8000 + i,
                           "Tags": ["t%d" % i],
                           "Check": {"TTL": "30s"}}).encode()
        http(ports[p], "/v1/agent/service/register", body, "PUT")
    for p in PROFILED:
        wait_for("n%d seeing 3 instances" % p,
                 lambda p=p: len(json.loads(http(ports[p], "/v1/catalog/service/bench")
                                            or b"[]")) == 3, 60)
    for p in PROFILED:
        http(ports[p], "/v1/agent/check/pass/service:b%d" % p, b"", "PUT")
    # A blocking query answered by a write elsewhere.
    index = 1
    for p in PROFILED:
        req = urllib.request.Request("http://127.0.0.1:%d/v1/catalog/service/bench" % ports[p])
        with urllib.request.urlopen(req, timeout=5) as r:
            index = int(r.headers.get("X-Consul-Index", "1"))
    import threading
    answered = []
    watchers = [threading.Thread(target=lambda p=p: answered.append(
        http(ports[p], "/v1/catalog/service/bench?index=%d&wait=20s" % index, timeout=30)))
        for p in PROFILED]
    for t in watchers:
        t.start()
    time.sleep(1)
    http(ports[2], "/v1/agent/service/deregister/b2", b"", "PUT")
    for t in watchers:
        t.join(40)
    # A crash to detect and a graceful leave.
    victim, leaver = n - 1, n - 2
    procs[victim].kill()
    for p in PROFILED:
        wait_for("n%d declaring the crashed n%d failed" % (p, victim),
                 lambda p=p: "n%d" % victim not in alive(ports[p]), 120)
    procs[leaver].send_signal(signal.SIGTERM)
    for p in PROFILED:
        wait_for("n%d seeing n%d leave" % (p, leaver),
                 lambda p=p: "n%d" % leaver not in alive(ports[p]), 120)
    # Idle, as the harness's steady phase is, reading now and then.
    for _ in range(6):
        time.sleep(5)
        for p in PROFILED:
            http(ports[p], "/v1/agent/members")
            http(ports[p], "/v1/catalog/service/bench")


def profile(callgrind_files):
    """Functions executed after start-up, with their cost, summed over the profiled nodes."""
    cost = {}
    for path in callgrind_files:
        names, current, after_call = {}, None, False
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
                if m:
                    kind, ident, name = m.groups()
                    if name:
                        names[ident] = name
                    if kind == "fn":
                        current = names.get(ident)
                        if current is not None:
                            cost.setdefault(current, 0)
                    continue
                # The line after "calls=" is the call's inclusive cost, not the caller's own.
                if line.startswith("calls="):
                    after_call = True
                    continue
                # "position cost" lines: self cost of the current function.
                m = re.match(r"^([+-]?\d+|\*) (\d+)$", line.strip())
                if m and current is not None and not after_call:
                    cost[current] = cost.get(current, 0) + int(m.group(2))
                after_call = False
            for name in names.values():
                cost.setdefault(name, 0)
    return cost


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=12, help="cluster size (default 12)")
    ap.add_argument("--bin", help="the static build (default: scripts/build-static.sh)")
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "hot-code.txt"))
    args = ap.parse_args()
    if not 4 <= args.n <= 64:
        sys.exit("hot-code: -n must be 4-64")
    binary = args.bin or subprocess.run(["bash", os.path.join(ROOT, "scripts/build-static.sh")],
                                        check=True, capture_output=True,
                                        text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="hera-hot-code.")
    procs = {}
    try:
        for i in range(args.n):
            argv = [binary, "run", "--name", "n%d" % i,
                    "--bind", "127.0.0.1:%d" % (GOSSIP_BASE + i),
                    "--http", "127.0.0.1:%d" % (HTTP_BASE + i),
                    "--data-dir", os.path.join(work, "n%d" % i)]
            if i > 0:
                argv += ["--join", "127.0.0.1:%d" % GOSSIP_BASE]
            if i in PROFILED:
                argv = ["valgrind", "--tool=callgrind", "--demangle=no",
                        "--dump-after=*trim_startup_pages*",
                        "--callgrind-out-file=%s/cg.n%d" % (work, i)] + argv
            log = open(os.path.join(work, "n%d.log" % i), "w")
            procs[i] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            if i == 0:
                wait_for("the seed's HTTP port", lambda: http(HTTP_BASE, "/v1/agent/members")
                         is not None, 60)
        workload(args.n, procs)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    # cg.nI.1 is start-up (dumped when trim_startup_pages returns); cg.nI the rest.
    after = [os.path.join(work, "cg.n%d" % i) for i in PROFILED]
    missing = [f for f in after + [f + ".1" for f in after] if not os.path.exists(f)]
    if missing:
        sys.exit("hot-code: callgrind wrote no %s (see %s)" % (", ".join(missing), work))
    cost = profile(after)
    ordered, seen = [], set()
    for name in sorted(cost, key=lambda s: (-cost[s], s)):
        k = entry(name)
        # Addresses and callgrind's own entries ("(below main)") name no symbol.
        if not re.fullmatch(r"[A-Za-z_.$][\w.$]*\*?", k) or k in seen:
            continue
        seen.add(k)
        ordered.append(k)
    # The trim runs on after giving back the code, so its own pages come straight back: link
    # it with the hot code rather than leave it holding a window of start-up code resident.
    trim = [n for n in profile([f + ".1" for f in after]) if "trim_startup_pages" in n]
    ordered += [entry(n) for n in trim if entry(n) not in seen][:1]
    with open(args.out, "w") as f:
        f.write("# The functions a running node executes, most first (scripts/hot-code.py).\n")
        f.write("# Generated; scripts/build-static.sh links them first, in this order.\n")
        f.write("\n".join(ordered) + "\n")
    print("hot-code: %d functions after start-up -> %s" % (len(ordered), args.out))


if __name__ == "__main__":
    main()
