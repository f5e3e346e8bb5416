#!/usr/bin/env python3
"""registry-scale: a real 5-node hera cluster on loopback holding 100,000 instances.

    python3 scripts/registry-scale.py [--bin target/x86_64-unknown-linux-gnu/release/hera]
                                      [--services 100] [--per-service 1000] [--out FILE]

Starts 5 `hera run` processes (separate data dirs under one temp dir), registers
services x per-service instances through Consul's HTTP API (instance j of a service on node
j % 5, a fixed number of client threads), then measures and prints as text and JSON:

  rss        resident memory per node (/proc/<pid>/status) holding every entry
  late_join  a 6th node joining late: seconds until it holds every entry, with the gossip
             bytes and datagrams it received and the five sent (hera's /metrics counters)
  reads      p50/p99 of GET /v1/catalog/service/<s> and /v1/health/service/<s> for one
             per-service-instance service (fixed request count and concurrency)
  watchers   1,000 blocking queries (?index=N&wait=60s) held on one node; one write on
             another; seconds until every watcher has its answer
  idle_cpu   CPU of each node over 30 s idle (/proc/<pid>/stat), percent of one core

Every figure carries the machine's load average when it was taken. Python 3 stdlib only.
Every wait is bounded; every process started here is killed by pid at the end (and gets
PR_SET_PDEATHSIG so it dies with this script).
"""

import argparse
import ctypes
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_PORT = 21000  # above the benchmark range 17300-18800 the team uses
_libc = ctypes.CDLL(None, use_errno=True)


def _pdeathsig():
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Node:
    def __init__(self, binary, root, index, join):
        self.name = f"n{index}"
        self.gossip = BASE_PORT + index
        self.http = BASE_PORT + 100 + index
        self.dir = os.path.join(root, self.name)
        os.makedirs(self.dir)
        args = [
            binary, "run", "--name", self.name,
            "--bind", f"127.0.0.1:{self.gossip}",
            "--http", f"127.0.0.1:{self.http}",
            "--dns", "",
            "--data-dir", self.dir,
            "--log-level", "warn",
        ]
        if join is not None:
            args += ["--join", f"127.0.0.1:{join}"]
        self.log = open(os.path.join(root, f"{self.name}.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     preexec_fn=_pdeathsig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def get(self, path, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            # Header names lower-cased: HTTP/1.1 names are case-insensitive (hyper sends them so).
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def metrics(self):
        """Prometheus text as {name{labels}: value}."""
        _, _, body = self.get("/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out

    def instances(self):
        try:
            m = self.metrics()
        except OSError:
            return -1
        # One gauge per health: passing, warning, critical.
        return int(sum(v for k, v in m.items() if k.startswith("hera_registry_instances{")))

    def rss_kib(self):
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        return int(stat[11]) + int(stat[12])  # utime + stime


def trim_probe(node):
    """What glibc's malloc_trim(0) gives back in a running node: its RSS before and after, and
    the node's CPU ticks while gdb made the call (a bound on the call's cost, in ticks of
    1/CLK_TCK s, the attach and detach included). malloc_stats() before and after prints each
    arena's in-use and system bytes to the node's log. Needs gdb and a binary that links
    malloc_trim (the static build does)."""
    rss0 = node.rss_kib()[0]
    cpu0 = node.cpu_ticks()
    out = subprocess.run(
        ["gdb", "-p", str(node.proc.pid), "-batch", "-nx",
         "-ex", "call (void)malloc_stats()", "-ex", "call (int)malloc_trim(0)",
         "-ex", "call (void)malloc_stats()"],
        capture_output=True, text=True, timeout=120)
    trimmed = [l for l in out.stdout.splitlines() if l.startswith("$")]
    return {"rss_kib_before": rss0, "rss_kib_after": node.rss_kib()[0],
            "cpu_ticks": node.cpu_ticks() - cpu0, "returned": trimmed}


def wait_until(what, predicate, timeout, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ConnectionRefusedError:
            pass  # not listening yet (a slow start, e.g. under a profiler)
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout} s")


def counter(m, name, direction):
    return m.get(f'{name}{{direction="{direction}"}}', 0.0)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def register_all(nodes, services, per_service, threads, progress):
    """PUT every instance, instance j of a service on node j % len(nodes). Appends to
    `progress`, at every 10,000 answered, [answered, seconds, rate of the last 10,000, load,
    RSS KiB of each node] (the memory-against-registry-size plot's points)."""
    jobs = [(s, j) for s in range(services) for j in range(per_service)]
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "first_error": None, "done": 0}
    t0 = time.monotonic()
    last = [t0]

    def answered():
        state["done"] += 1
        if state["done"] % 10_000 == 0:
            now = time.monotonic()
            progress.append([state["done"], round(now - t0, 1),
                             round(10_000 / max(now - last[0], 1e-9)), load(),
                             [n.rss_kib()[0] for n in nodes]])
            last[0] = now
            log(f"registered {progress[-1]}")

    def worker():
        conns = {}
        while True:
            with lock:
                k = state["next"]
                if k >= len(jobs):
                    break
                state["next"] = k + 1
            s, j = jobs[k]
            node = nodes[j % len(nodes)]
            body = json.dumps({
                "Name": f"svc-{s:04d}", "ID": f"svc-{s:04d}-{j:05d}",
                "Address": f"10.{s % 256}.{j // 256 % 256}.{j % 256}", "Port": 8000 + j % 1000,
                "Tags": ["v1", f"shard-{j % 10}"], "Meta": {"zone": f"z{j % 3}"},
            })
            for attempt in range(3):
                c = conns.get(node.name)
                if c is None:
                    c = conns[node.name] = http.client.HTTPConnection(
                        "127.0.0.1", node.http, timeout=30)
                try:
                    c.request("PUT", "/v1/agent/service/register", body,
                              {"Content-Type": "application/json"})
                    r = c.getresponse()
                    text = r.read()
                    if r.status == 200:
                        break
                    err = f"{r.status} {text[:200]!r}"
                except OSError as e:
                    err = repr(e)
                    c.close()
                    conns.pop(node.name, None)
            else:
                with lock:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or err
            with lock:
                answered()
        for c in conns.values():
            c.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return state["errors"], state["first_error"]


def read_latencies(node, path, requests, concurrency):
    """Seconds per GET, `requests` of them over `concurrency` keep-alive connections."""
    lock = threading.Lock()
    state = {"left": requests, "lat": [], "bad": 0, "bytes": 0}

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=30)
        while True:
            with lock:
                if state["left"] == 0:
                    break
                state["left"] -= 1
            t0 = time.perf_counter()
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            dt = time.perf_counter() - t0
            with lock:
                state["lat"].append(dt)
                state["bytes"] = len(body)
                state["bad"] += r.status != 200
        c.close()

    ts = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat = state["lat"]
    return {
        "path": path, "requests": requests, "concurrency": concurrency,
        "p50_ms": round(pct(lat, 0.50) * 1e3, 2), "p99_ms": round(pct(lat, 0.99) * 1e3, 2),
        "max_ms": round(max(lat) * 1e3, 2), "non_200": state["bad"],
        "body_bytes": state["bytes"], "load": load(),
    }


def watchers_run(watched, writer, service, count, settle):
    """`count` blocking queries on `watched`, one write through `writer`: seconds until every
    watcher has its answer."""
    status, headers, _ = watched.get(f"/v1/health/service/{service}")
    index = int(headers["x-consul-index"])
    sel = selectors.DefaultSelector()
    request = (f"GET /v1/health/service/{service}?index={index}&wait=60s HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nConnection: close\r\n\r\n").encode()
    states = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", watched.http), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        st = {"sock": s, "buf": bytearray(), "done": None}
        sel.register(s, selectors.EVENT_READ, st)
        states.append(st)
    early = len(sel.select(timeout=settle))
    load_at = load()
    t0 = time.monotonic()
    body = json.dumps({"Name": service, "ID": f"{service}-watched-write",
                       "Address": "10.255.255.1", "Port": 9999})
    c = http.client.HTTPConnection("127.0.0.1", writer.http, timeout=30)
    c.request("PUT", "/v1/agent/service/register", body)
    put_status = c.getresponse().status
    put_s = time.monotonic() - t0
    c.close()
    pending = count
    deadline = t0 + 90
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            st = key.data
            try:
                chunk = st["sock"].recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                st["buf"] += chunk
                continue
            st["done"] = time.monotonic() - t0
            sel.unregister(st["sock"])
            st["sock"].close()
            pending -= 1
    for st in states:
        if st["done"] is None:
            sel.unregister(st["sock"])
            st["sock"].close()
    done = [st["done"] for st in states if st["done"] is not None]
    saw = sum(1 for st in states if b"watched-write" in st["buf"])
    codes = {}
    for st in states:
        line = bytes(st["buf"][:16]).split(b" ")
        code = line[1].decode() if len(line) > 1 else "none"
        codes[code] = codes.get(code, 0) + 1
    return {
        "watchers": count, "watched_node": watched.name, "writer_node": writer.name,
        "index": index, "answered_before_write": early, "write_status": put_status,
        "write_ack_s": round(put_s, 4), "answered": len(done),
        "answered_with_the_write": saw, "status_codes": codes,
        "first_s": round(min(done), 4) if done else None,
        "p50_s": round(pct(done, 0.5), 4) if done else None,
        "all_s": round(max(done), 4) if len(done) == count else None,
        "load": load_at,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/x86_64-unknown-linux-gnu/release/hera")
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--per-service", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--threads", type=int, default=16, help="registration client threads")
    ap.add_argument("--reads", type=int, default=400, help="requests per read route")
    ap.add_argument("--read-concurrency", type=int, default=4)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--converge-timeout", type=float, default=900)
    ap.add_argument("--out", default="registry-scale.json")
    ap.add_argument("--label", help="names this run in the plots (scripts/plot-scale.py)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--trim-probe", action="store_true",
                    help="at the end, call glibc's malloc_trim(0) in every node through gdb "
                         "and record its RSS before and after (malloc_stats goes to its log)")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    total = a.services * a.per_service
    root = tempfile.mkdtemp(prefix="hera-scale-")
    nodes = []
    result = {"nodes": a.nodes, "services": a.services, "per_service": a.per_service,
              "instances": total, "binary": binary, "cpus": os.cpu_count(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if a.label:
        result["label"] = a.label

    def report():
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)

    try:
        for i in range(a.nodes):
            nodes.append(Node(binary, root, i, None if i == 0 else BASE_PORT))
        wait_until("cluster formed", lambda: all(
            n.get("/v1/agent/members")[0] == 200 and
            len(json.loads(n.get("/v1/agent/members")[2])) == a.nodes for n in nodes), 60)
        log(f"{a.nodes} nodes up; registering {total} instances with {a.threads} threads")
        t0 = time.monotonic()
        result["register"] = {"progress": []}
        errors, first = register_all(nodes, a.services, a.per_service, a.threads,
                                     result["register"]["progress"])
        reg_s = time.monotonic() - t0
        result["register"].update({
            "seconds": round(reg_s, 1), "per_second": round(total / reg_s), "errors": errors,
            "first_error": first, "threads": a.threads, "load": load()})
        log(f"registered in {reg_s:.1f} s ({errors} errors: {first})")
        t1 = time.monotonic()
        wait_until("every node holds every instance",
                   lambda: all(n.instances() >= total - errors for n in nodes),
                   a.converge_timeout, every=1)
        result["register"]["converged_after_s"] = round(time.monotonic() - t1, 1)
        rss = {n.name: n.rss_kib() for n in nodes}
        result["rss_kib"] = {k: {"rss": v[0], "hwm": v[1]} for k, v in rss.items()}
        result["rss_load"] = load()
        log(f"RSS KiB {result['rss_kib']}")
        report()

        # The late joiner.
        before = {n.name: n.metrics() for n in nodes}
        t0 = time.monotonic()
        late = Node(binary, root, a.nodes, BASE_PORT)
        nodes.append(late)
        seen = []

        def late_holds_all():
            k = late.instances()
            seen.append((round(time.monotonic() - t0, 2), k))
            return k >= total - errors
        wait_until("late node holds every instance", late_holds_all, a.converge_timeout, 0.5)
        join_s = time.monotonic() - t0
        after = {n.name: n.metrics() for n in nodes}
        lm = after[late.name]
        sent = {n: counter(after[n], "hera_gossip_bytes_total", "out") -
                counter(before[n], "hera_gossip_bytes_total", "out") for n in before}
        result["late_join"] = {
            "seconds": round(join_s, 2),
            "bytes_in": counter(lm, "hera_gossip_bytes_total", "in"),
            "datagrams_in": counter(lm, "hera_gossip_datagrams_total", "in"),
            "bytes_out": counter(lm, "hera_gossip_bytes_total", "out"),
            "datagrams_out": counter(lm, "hera_gossip_datagrams_total", "out"),
            "others_bytes_out": sent,
            "entries_per_second": round(total / join_s),
            "progress": seen[:: max(1, len(seen) // 20)],
            "rss_kib": late.rss_kib()[0], "load": load(),
            # Every node's RSS once the late joiner holds everything: a node that pushed it
            # the registry shows what that transient left.
            "rss_kib_after": {n.name: n.rss_kib()[0] for n in nodes},
        }
        log(f"late join {result['late_join']}")
        report()

        # Reads of a per-service-instance service, from a node that owns a fifth of it.
        result["reads"] = [
            read_latencies(nodes[0], f"/v1/catalog/service/svc-0000", a.reads,
                           a.read_concurrency),
            read_latencies(nodes[0], f"/v1/health/service/svc-0000", a.reads,
                           a.read_concurrency),
            read_latencies(nodes[0], f"/v1/health/service/svc-0001?passing", a.reads,
                           a.read_concurrency),
        ]
        log(f"reads {result['reads']}")
        report()

        result["watch"] = watchers_run(nodes[0], nodes[2], "svc-0002", a.watchers, settle=3)
        log(f"watchers {result['watch']}")
        report()

        # Idle CPU, every node, the late one included.
        # Idle means the write's gossip is done: every node's dissemination queue empty.
        try:
            wait_until("gossip queues empty",
                       lambda: all(n.metrics().get("hera_dissemination_queue_length", 1) == 0
                                   for n in nodes), 60)
        except TimeoutError as e:
            # Measured all the same, with the queues that were still not empty.
            result["idle_queues_not_empty"] = {
                n.name: n.metrics().get("hera_dissemination_queue_length") for n in nodes}
            log(f"{e}; idle CPU measured anyway: {result['idle_queues_not_empty']}")
        c0 = {n.name: n.cpu_ticks() for n in nodes}
        l0 = load()
        time.sleep(a.idle_seconds)
        result["idle_cpu_percent"] = {
            n.name: round((n.cpu_ticks() - c0[n.name]) / CLK_TCK / a.idle_seconds * 100, 2)
            for n in nodes}
        result["idle_load"] = [l0, load()]
        result["rss_kib_end"] = {n.name: n.rss_kib()[0] for n in nodes}
        log(f"idle CPU % {result['idle_cpu_percent']}")
        if a.trim_probe:
            result["trim_probe"] = {n.name: trim_probe(n) for n in nodes}
            log(f"malloc_trim probe {result['trim_probe']}")
    finally:
        for n in nodes:
            try:
                n.stop()
            except Exception as e:  # keep stopping the others
                log(f"stop {n.name}: {e!r}")
        if a.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        report()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
