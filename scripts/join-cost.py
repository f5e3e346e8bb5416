#!/usr/bin/env python3
"""join-cost: where the Serf harness's join time goes, on one core.

    python3 scripts/join-cost.py start BIN [BIN ...] [--reps 20]
    python3 scripts/join-cost.py join BIN --nodes 64 [--reps 3]
    python3 scripts/join-cost.py floor --nodes 64 [--reps 3]

The harness (benches/cluster/gossipbench.py) times a join from the first process start, and
starts N processes one after another from a Python process pinned, with every agent, to one
core (BENCH_CPU). Its figure is therefore the sum, on that core, of three costs measured here
separately (this script pinned to --cpu, default 1, and so everything it starts):

  start  one node from exec until its HTTP face answers (and 50 ms more, past the start-up
         trim): CPU of all its threads (schedstat) and bytes read from storage (/proc/PID/io),
         alternating the binaries given, each start right after the previous one's exit
  join   N nodes started as the harness starts them, each joining the first: the CPU all of
         them used until every node lists N alive (start-up plus the cluster's reaction)
  floor  the harness's own spawn loop (fork, exec, the same Popen arguments) with `sleep`
         in place of an agent: what N starts cost before any agent runs

Loopback ports 36000-36999 (start) and 37000-38999 (join). Every process is stopped on exit.
"""
import argparse
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def pdeathsig():
    LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan outlives this script


def cpu_ms(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1e6


def storage_reads(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["read_bytes"])


def get(port, path, timeout=1.0):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.read()


def wait_http(port, limit_s=20.0):
    end = time.time() + limit_s
    while time.time() < end:
        try:
            get(port, "/v1/agent/self")
            return True
        except OSError:
            time.sleep(0.002)
    return False


def spawn(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=pdeathsig)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cmd_start(args):
    got = {b: [] for b in args.bins}
    for _ in range(args.reps):
        for b in args.bins:
            p = spawn([b, "run", "--name", "s", "--bind", "127.0.0.1:36001",
                       "--http", "127.0.0.1:36002"])
            try:
                if not wait_http(36002):
                    sys.exit("%s did not answer" % b)
                time.sleep(0.05)
                got[b].append((cpu_ms(p.pid), storage_reads(p.pid)))
            finally:
                stop([p])
    for b, xs in got.items():
        cpu = [x[0] for x in xs]
        print(json.dumps({"bin": b, "starts": len(xs), "cpu_ms_median": round(statistics.median(cpu), 2),
                          "cpu_ms_min": round(min(cpu), 2), "cpu_ms_max": round(max(cpu), 2),
                          "storage_read_bytes_median": statistics.median(x[1] for x in xs)}))


def alive(port):
    try:
        return sum(1 for m in json.loads(get(port, "/v1/agent/members", 3)) if m["Status"] == 1)
    except (OSError, ValueError):
        return None


def cmd_join(args):
    n, gossip, http = args.nodes, 37000, 38000
    for _ in range(args.reps):
        procs = []
        try:
            t0 = time.time()
            for i in range(n):
                argv = [args.bin, "run", "--name", "n%d" % i, "--bind", "127.0.0.1:%d" % (gossip + i),
                        "--http", "127.0.0.1:%d" % (http + i)]
                if i:
                    argv += ["--join", "127.0.0.1:%d" % gossip]
                procs.append(spawn(argv))
                if i == 0 and not wait_http(http):
                    sys.exit("n0 did not answer")
            spawned = time.time() - t0
            pending, end = set(range(n)), time.time() + 120
            while pending and time.time() < end:
                pending = {i for i in pending if alive(http + i) != n}
                if pending:
                    time.sleep(0.2)
            cpu = [cpu_ms(p.pid) for p in procs]
            print(json.dumps({"bin": args.bin, "n": n, "converged": not pending,
                              "spawn_all_s": round(spawned, 3),
                              "cpu_all_nodes_s": round(sum(cpu) / 1e3, 3),
                              "cpu_per_node_ms": round(sum(cpu) / n, 2)}))
        finally:
            stop(procs)


def cmd_floor(args):
    for _ in range(args.reps):
        procs = []
        try:
            t0 = time.time()
            for _ in range(args.nodes):
                procs.append(subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                              preexec_fn=pdeathsig))
            print(json.dumps({"n": args.nodes, "spawn_all_s": round(time.time() - t0, 4)}))
        finally:
            stop(procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="1", help="the core everything is pinned to")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("bins", nargs="+")
    s.add_argument("--reps", type=int, default=20)
    j = sub.add_parser("join")
    j.add_argument("bin")
    j.add_argument("--nodes", type=int, default=64)
    j.add_argument("--reps", type=int, default=3)
    f = sub.add_parser("floor")
    f.add_argument("--nodes", type=int, default=64)
    f.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    # Gossip ports 37000+i and HTTP ports 38000+i must not meet.
    if getattr(args, "nodes", 1) > 1000 or getattr(args, "nodes", 1) < 1:
        ap.error("--nodes must be 1 to 1000")
    # Pinned as the harness is: this process, and so every process it starts.
    os.sched_setaffinity(0, {int(args.cpu)})
    {"start": cmd_start, "join": cmd_join, "floor": cmd_floor}[args.cmd](args)


if __name__ == "__main__":
    main()
