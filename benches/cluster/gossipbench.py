#!/usr/bin/env python3
"""gossipbench: loopback benchmark harness for gossip membership systems.

Drivers:
  SerfDriver  - HashiCorp Serf agent (Debian package `serf`), default LAN profile.
  HeraDriver  - the future Rust SWIM node (binary from $HERA_BIN), untested.

Measurements (per cluster size N):
  join      - seconds from spawning agent 0 until every agent lists all N alive
  failure   - kill -9 a non-seed agent; seconds until the first / all survivors
              report it failed (3 victims, median)
  write     - seconds from issuing a write on node 0 until all N nodes see it
              (5 reps, median)
  steady    - 30 s idle: RSS, CPU, UDP datagrams (/proc/net/snmp) and, if
              tcpdump is installed, bytes captured on lo for the gossip ports

Python 3 stdlib only.  Every process started here is tracked by PID and
killed by PID on exit (children also get PR_SET_PDEATHSIG=SIGKILL so they die
if the harness itself is killed).  All waits are bounded by timeouts.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _pdeathsig():
    # PR_SET_PDEATHSIG = 1: child gets SIGKILL if the harness dies.
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class Procs:
    """Every child process this harness starts, stopped by PID only."""

    def __init__(self):
        self.procs = {}  # pid -> Popen

    def spawn(self, argv, log_path, **kw):
        with open(log_path, "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT,
                                 preexec_fn=_pdeathsig, **kw)
        self.procs[p.pid] = p
        return p

    def kill(self, p, sig=signal.SIGKILL, wait_s=5.0):
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        self.procs.pop(p.pid, None)

    def stop_all(self):
        for p in list(self.procs.values()):
            self.kill(p)


PROCS = Procs()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# minimal msgpack (enough for Serf's RPC protocol)
# --------------------------------------------------------------------------

class Incomplete(Exception):
    pass


def mp_pack(o):
    out = []
    _mp_pack(o, out)
    return b"".join(out)


def _mp_pack(o, out):
    if o is None:
        out.append(b"\xc0")
    elif o is True:
        out.append(b"\xc3")
    elif o is False:
        out.append(b"\xc2")
    elif isinstance(o, int):
        if 0 <= o < 128:
            out.append(bytes((o,)))
        elif o >= 0:
            out.append(b"\xcf" + struct.pack(">Q", o))
        else:
            out.append(b"\xd3" + struct.pack(">q", o))
    elif isinstance(o, (str, bytes, bytearray)):
        b = o.encode() if isinstance(o, str) else bytes(o)
        n = len(b)  # old-spec raw: Serf's codec accepts it for string and []byte
        if n < 32:
            out.append(bytes((0xA0 | n,)) + b)
        elif n < 65536:
            out.append(b"\xda" + struct.pack(">H", n) + b)
        else:
            out.append(b"\xdb" + struct.pack(">I", n) + b)
    elif isinstance(o, dict):
        n = len(o)
        out.append(bytes((0x80 | n,)) if n < 16 else b"\xde" + struct.pack(">H", n))
        for k, v in o.items():
            _mp_pack(k, out)
            _mp_pack(v, out)
    elif isinstance(o, (list, tuple)):
        n = len(o)
        out.append(bytes((0x90 | n,)) if n < 16 else b"\xdc" + struct.pack(">H", n))
        for v in o:
            _mp_pack(v, out)
    else:
        raise TypeError(type(o))


_FIXED = {0xCC: (1, ">B"), 0xCD: (2, ">H"), 0xCE: (4, ">I"), 0xCF: (8, ">Q"),
          0xD0: (1, ">b"), 0xD1: (2, ">h"), 0xD2: (4, ">i"), 0xD3: (8, ">q"),
          0xCA: (4, ">f"), 0xCB: (8, ">d")}


def mp_unpack(buf, i):
    """Decode one object from buf[i:]; returns (obj, next_i) or raises Incomplete."""
    if i >= len(buf):
        raise Incomplete
    b = buf[i]
    i += 1
    if b <= 0x7F:
        return b, i
    if b >= 0xE0:
        return b - 256, i
    if 0xA0 <= b <= 0xBF:
        return _raw(buf, i, b & 0x1F, True)
    if 0x80 <= b <= 0x8F:
        return _map(buf, i, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _arr(buf, i, b & 0x0F)
    if b == 0xC0:
        return None, i
    if b == 0xC2:
        return False, i
    if b == 0xC3:
        return True, i
    if b in _FIXED:
        n, fmt = _FIXED[b]
        if i + n > len(buf):
            raise Incomplete
        return struct.unpack_from(fmt, buf, i)[0], i + n
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):  # str8/16/32, bin8/16/32
        w = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[b]
        if i + w > len(buf):
            raise Incomplete
        n = int.from_bytes(buf[i:i + w], "big")
        return _raw(buf, i + w, n, b in (0xD9, 0xDA, 0xDB))
    if b in (0xDC, 0xDD, 0xDE, 0xDF):
        w = 2 if b in (0xDC, 0xDE) else 4
        if i + w > len(buf):
            raise Incomplete
        n = int.from_bytes(buf[i:i + w], "big")
        return (_arr if b in (0xDC, 0xDD) else _map)(buf, i + w, n)
    if b in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):  # fixext: skip
        n = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[b] + 1
        if i + n > len(buf):
            raise Incomplete
        return bytes(buf[i:i + n]), i + n
    raise ValueError("unsupported msgpack byte 0x%02x" % b)


def _raw(buf, i, n, as_str):
    if i + n > len(buf):
        raise Incomplete
    b = bytes(buf[i:i + n])
    if as_str:
        try:
            return b.decode(), i + n
        except UnicodeDecodeError:
            return b, i + n
    return b, i + n


def _map(buf, i, n):
    d = {}
    for _ in range(n):
        k, i = mp_unpack(buf, i)
        v, i = mp_unpack(buf, i)
        d[k] = v
    return d, i


def _arr(buf, i, n):
    a = []
    for _ in range(n):
        v, i = mp_unpack(buf, i)
        a.append(v)
    return a, i


class SerfRPC:
    """One persistent connection to a Serf agent's msgpack RPC port.

    Speaks the same protocol as the `serf` CLI (handshake, members,
    members-filtered, event, tags), without spawning a Go process per call.
    """

    WITH_BODY = {"members", "members-filtered", "join", "stats"}

    def __init__(self, host, port, timeout=3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.seq = 0
        self.call("handshake", {"Version": 1})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_obj(self):
        while True:
            try:
                obj, j = mp_unpack(self.buf, 0)
                del self.buf[:j]
                return obj
            except Incomplete:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("serf rpc: connection closed")
                self.buf += chunk

    def call(self, command, body=None):
        seq = self.seq
        self.seq += 1
        msg = mp_pack({"Command": command, "Seq": seq})
        if body is not None:
            msg += mp_pack(body)
        self.sock.sendall(msg)
        hdr = self._read_obj()
        if hdr.get("Seq") != seq:
            raise RuntimeError("serf rpc: seq mismatch %r" % hdr)
        if hdr.get("Error"):
            raise RuntimeError("serf rpc %s: %s" % (command, hdr["Error"]))
        if command in self.WITH_BODY:
            return self._read_obj()
        return None


# --------------------------------------------------------------------------
# drivers
# --------------------------------------------------------------------------

class Driver:
    """Interface used by the measurements.  Node 0 is the seed.

    start(n)                -> spawn n agents (seed first); returns t0 (time.time())
    alive_count(i)          -> how many members node i lists as alive (None if unreachable)
    status_of(i, name)      -> 'alive' | 'failed' | 'left' | ... | None, as seen by node i
    kill9(i)                -> SIGKILL node i (and reap it)
    token(rep)              -> a unique value for write number rep
    write(token)            -> issue a propagated write on node 0 (run in a helper thread)
    seen(i, token)          -> (bool, precise_ts_or_None): has node i got the write?
    pid(i), name(i), gossip_ports(), info(), stop()
    """

    def name(self, i):
        return "n%d" % i

    def health_scores(self):
        return {}

    def warmup_s(self, n):
        """Seconds after start before periodic background work is in steady state."""
        return 0.0


class SerfDriver(Driver):
    def __init__(self, workdir, serf_bin="serf", bind_base=17946, rpc_base=17373,
                 query="rpc", write_mode="event", log_level="info"):
        self.workdir = workdir
        self.bin = shutil.which(serf_bin) or serf_bin
        self.bind_base, self.rpc_base = bind_base, rpc_base
        self.query, self.write_mode, self.log_level = query, write_mode, log_level
        self.procs, self.rpc = {}, {}
        self._wconn = None
        self.n = 0
        self.handler = os.path.join(workdir, "handler.sh")

    # -- lifecycle --------------------------------------------------------
    def _argv(self, i):
        ev_file = os.path.join(self.workdir, "events", "n%d.log" % i)
        argv = [self.bin, "agent", "-node=n%d" % i,
                "-bind=127.0.0.1:%d" % (self.bind_base + i),
                "-rpc-addr=127.0.0.1:%d" % (self.rpc_base + i),
                "-profile=lan", "-log-level=%s" % self.log_level,
                # user events only: member events would spawn N*N handler runs
                "-event-handler=user=%s %s" % (self.handler, ev_file)]
        if i > 0:
            argv.append("-join=127.0.0.1:%d" % self.bind_base)
        return argv

    def start(self, n):
        self.n = n
        os.makedirs(os.path.join(self.workdir, "events"), exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "logs"), exist_ok=True)
        with open(self.handler, "w") as f:
            # bash's $EPOCHREALTIME: timestamp without forking `date`
            f.write('#!/bin/bash\nread -r _p\n'
                    'printf \'%s %s\\n\' "$EPOCHREALTIME" "$SERF_USER_EVENT" >> "$1"\n')
        os.chmod(self.handler, 0o755)
        t0 = time.time()
        self._spawn(0)
        if not wait_port("127.0.0.1", self.rpc_base, 20):
            raise RuntimeError("serf n0 did not open its RPC port")
        for i in range(1, n):
            self._spawn(i)
        return t0

    def _spawn(self, i):
        log = os.path.join(self.workdir, "logs", "n%d.log" % i)
        self.procs[i] = PROCS.spawn(self._argv(i), log)

    def stop(self):
        for c in list(self.rpc.values()) + ([self._wconn] if self._wconn else []):
            c.close()
        self.rpc.clear()
        self._wconn = None
        for p in self.procs.values():
            PROCS.kill(p)
        self.procs.clear()

    def pid(self, i):
        return self.procs[i].pid

    def alive_nodes(self):
        return [i for i, p in self.procs.items() if p.poll() is None]

    def kill9(self, i):
        c = self.rpc.pop(i, None)
        if c:
            c.close()
        PROCS.kill(self.procs[i], signal.SIGKILL)

    def gossip_ports(self):
        return (self.bind_base, self.bind_base + self.n - 1)

    # -- queries ----------------------------------------------------------
    def _conn(self, i):
        c = self.rpc.get(i)
        if c is None:
            c = SerfRPC("127.0.0.1", self.rpc_base + i, timeout=3.0)
            self.rpc[i] = c
        return c

    def _rpc(self, i, cmd, body=None):
        try:
            return self._conn(i).call(cmd, body)
        except (OSError, ConnectionError, RuntimeError):
            c = self.rpc.pop(i, None)
            if c:
                c.close()
            return None

    def _cli(self, i, *args):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            return self._cli_run(i, *args)
        finally:
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            CLI_CPU[0] += (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    def _cli_run(self, i, *args):
        try:
            # flags must precede positional args (Go flag parsing stops at the first)
            out = subprocess.run([self.bin, args[0], "-rpc-addr=127.0.0.1:%d" % (self.rpc_base + i)] +
                                 list(args[1:]),
                                 capture_output=True, timeout=10, check=True).stdout
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            if args[0] != "members":  # a failed write must not go unnoticed
                raise RuntimeError("serf %s failed: %s" % (args[0], getattr(e, "stderr", b"")[:200]))
            return None
        return out

    def members(self, i, status=None, name=None, tags=None):
        """List of (name, status, tags) as seen by node i, or None."""
        if self.query == "cli":
            args = ["members", "-format=json"]
            if status:
                args.append("-status=%s" % status)
            if name:
                args.append("-name=%s" % name)
            for k, v in (tags or {}).items():
                args.append("-tag=%s=%s" % (k, v))
            out = self._cli(i, *args)
            if out is None:
                return None
            return [(m["name"], m["status"], m.get("tags") or {})
                    for m in (json.loads(out).get("members") or [])]  # null when none match
        if status or name or tags:
            r = self._rpc(i, "members-filtered",
                          {"Tags": tags or {}, "Status": status or "", "Name": name or ""})
        else:
            r = self._rpc(i, "members")
        if r is None:
            return None
        return [(m["Name"], m["Status"], m.get("Tags") or {}) for m in r["Members"]]

    def alive_count(self, i, expect=None):
        """Members node i lists as alive.  In rpc mode the fixed-size `stats`
        call (members - failed - left) is polled, and a hit is confirmed with
        a full members listing, because decoding N member records per node per
        round costs ~2 ms/node at N=64 and would stretch the poll period."""
        if self.query == "rpc" and expect is not None:
            st = self._rpc(i, "stats")
            if st is None:
                return None
            s = st.get("serf", {})
            try:
                cnt = int(s["members"]) - int(s["failed"]) - int(s["left"])
            except (KeyError, ValueError):
                cnt = None
            if cnt != expect:
                return cnt
        m = self.members(i, status="alive")
        return None if m is None else len(m)

    def warmup_s(self, n):
        # memberlist waits a random stagger in [0, PushPullInterval) and then one
        # full (scaled) interval before its first periodic TCP push/pull, so an
        # idle window that starts earlier sees too few push/pulls.
        return SERF_LAN_PROFILE["PushPullInterval_s"] + suspicion_bounds(n)["push_pull_interval_s"]

    def health_scores(self):
        """Lifeguard local health (awareness) score per node, from `stats`."""
        out = {}
        for i in self.alive_nodes():
            st = self._rpc(i, "stats") if self.query == "rpc" else None
            if st:
                out[i] = int(st.get("serf", {}).get("health_score", -1))
        return out

    def status_of(self, i, name):
        m = self.members(i, name=name)
        if not m:
            return None
        return m[0][1]

    # -- writes -----------------------------------------------------------
    def token(self, rep):
        return "bench%d-%d" % (rep, int(time.time() * 1000) % 1000000)

    def write(self, token):
        """May run in a helper thread: uses its own RPC connection to node 0.
        (`tags` blocks until memberlist has finished retransmitting the update,
        ~0.3-0.6 s, so the harness polls while the call is still in flight.)"""
        if self.query == "cli":
            if self.write_mode == "event":
                self._cli(0, "event", "-coalesce=false", token, "x")
            else:
                self._cli(0, "tags", "-set", "bench=%s" % token)
            return
        if self._wconn is None:
            self._wconn = SerfRPC("127.0.0.1", self.rpc_base, timeout=30.0)
        if self.write_mode == "event":
            # Coalesce=False: the agent's UserCoalescePeriod=3s /
            # UserQuiescentPeriod=1s would otherwise delay handler delivery.
            self._wconn.call("event", {"Name": token, "Payload": b"x", "Coalesce": False})
        else:
            self._wconn.call("tags", {"Tags": {"bench": token}, "DeleteTags": []})

    def seen(self, i, token):
        if self.write_mode == "event":
            path = os.path.join(self.workdir, "events", "n%d.log" % i)
            try:
                with open(path) as f:
                    data = f.read()
            except FileNotFoundError:
                return False, None
            for line in data.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == token:
                    return True, float(parts[0].replace(",", "."))
            return False, None
        m = self.members(i, name="n0", tags={"bench": token})
        return bool(m), None

    def info(self):
        ver = subprocess.run([self.bin, "version"], capture_output=True, text=True).stdout
        dpkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "serf"],
                              capture_output=True, text=True).stdout
        return {"driver": "serf", "binary": self.bin, "serf_version_output": ver.strip(),
                "debian_package_version": dpkg,
                "memberlist": "golang-github-hashicorp-memberlist 0.2.2 (Debian Built-Using)",
                "query_method": self.query, "write_mode": self.write_mode,
                "profile": "lan", "lan_profile": SERF_LAN_PROFILE}

    def log_counts(self):
        """Counts of suspicion / failure lines in all agent logs (Lifeguard signals)."""
        pats = {"suspect": re.compile(r"memberlist: Suspect "),
                "marked_failed": re.compile(r"memberlist: Marking \S+ as failed"),
                "member_failed_event": re.compile(r"EventMemberFailed"),
                "refute": re.compile(r"Refuting a suspect|Refuting a dead")}
        tot = dict.fromkeys(pats, 0)
        for fn in glob_logs(self.workdir):
            with open(fn, errors="replace") as f:
                for line in f:
                    for k, p in pats.items():
                        if p.search(line):
                            tot[k] += 1
        return tot

    def victim_confirmations(self, victim):
        """Which nodes declared the victim dead by their own suspicion timer."""
        pat = re.compile(r"Marking %s as failed, suspect timeout reached \((\d+) peer confirmations\)"
                         % re.escape(victim))
        res = {}
        for fn in glob_logs(self.workdir):
            with open(fn, errors="replace") as f:
                for line in f:
                    m = pat.search(line)
                    if m:
                        res[os.path.basename(fn)[:-4]] = int(m.group(1))
        return res


# memberlist 0.2.2 DefaultLANConfig, used by `serf agent -profile=lan` (the default)
SERF_LAN_PROFILE = {
    "ProbeInterval_s": 1.0, "ProbeTimeout_s": 0.5, "IndirectChecks": 3,
    "GossipInterval_s": 0.2, "GossipNodes": 3, "RetransmitMult": 4,
    "SuspicionMult": 4, "SuspicionMaxTimeoutMult": 6,
    "AwarenessMaxMultiplier": 8, "PushPullInterval_s": 30.0,
    "GossipToTheDeadTime_s": 30.0, "TCPTimeout_s": 10.0,
    "suspicion_min_s": "SuspicionMult * max(1, log10(N)) * ProbeInterval",
    "suspicion_max_s": "SuspicionMaxTimeoutMult * suspicion_min",
    "lifeguard_k": "SuspicionMult - 2 = 2 independent confirmations shrink the timer from max to min",
    "serf_agent_coalesce": "CoalescePeriod 3s / QuiescentPeriod 1s for member events; "
                           "UserCoalescePeriod 3s / UserQuiescentPeriod 1s for coalescable user events",
}


def glob_logs(workdir):
    d = os.path.join(workdir, "logs")
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".log")]


class HeraDriver(Driver):
    """Rust SWIM node (untested until the binary exists).  $HERA_BIN run ..."""

    STATUS = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}

    def __init__(self, workdir, bind_base=17946, http_base=18500):
        self.workdir, self.bind_base, self.http_base = workdir, bind_base, http_base
        self.bin = os.environ.get("HERA_BIN") or sys.exit("HeraDriver needs $HERA_BIN")
        self.procs, self.n = {}, 0

    def start(self, n):
        self.n = n
        os.makedirs(os.path.join(self.workdir, "logs"), exist_ok=True)
        t0 = time.time()
        for i in range(n):
            argv = [self.bin, "run", "--name", "n%d" % i,
                    "--bind", "127.0.0.1:%d" % (self.bind_base + i),
                    "--http", "127.0.0.1:%d" % (self.http_base + i)]
            if i > 0:
                argv += ["--join", "127.0.0.1:%d" % self.bind_base]
            self.procs[i] = PROCS.spawn(argv, os.path.join(self.workdir, "logs", "n%d.log" % i))
            if i == 0 and not wait_port("127.0.0.1", self.http_base, 20):
                raise RuntimeError("hera n0 did not open its HTTP port")
        return t0

    def _get(self, i, path, data=None, method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_base + i, path),
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                body = r.read()
            return json.loads(body) if body else None
        except (OSError, ValueError):
            return None

    def _members(self, i):
        r = self._get(i, "/v1/agent/members")
        return None if r is None else {m["Name"]: self.STATUS.get(m["Status"], str(m["Status"])) for m in r}

    def alive_count(self, i, expect=None):
        m = self._members(i)
        return None if m is None else sum(1 for s in m.values() if s == "alive")

    def status_of(self, i, name):
        m = self._members(i)
        return None if m is None else m.get(name)

    def token(self, rep):
        # Precise arrival times, like Serf's event handler: before the write, every agent gets
        # a Consul blocking query on the catalog, all held by one selector loop that stamps the
        # moment each socket turns readable (before any parsing, so N answers arriving at once
        # are not serialised by the interpreter); the polled figure stays as a cross-check.
        tok = "x%d" % rep
        self.arrivals = getattr(self, "arrivals", {})
        self.arrivals[tok] = {}
        index = {}
        for i in self.alive_nodes():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/v1/catalog/service/bench"
                                            % (self.http_base + i), timeout=3) as r:
                    r.read()
                    index[i] = r.headers.get("X-Consul-Index") or "0"
            except OSError:
                pass
        ready = threading.Event()
        threading.Thread(target=self._watch_all, args=(tok, index, ready), daemon=True).start()
        ready.wait(10)
        time.sleep(0.2)  # let every node register its waiting query before the write
        return tok

    def _blocking_get(self, i, index):
        sk = socket.create_connection(("127.0.0.1", self.http_base + i), timeout=3)
        sk.setblocking(False)
        sk.sendall(("GET /v1/catalog/service/bench?index=%s&wait=60s HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n" % index).encode())
        return sk

    @staticmethod
    def _parse_http(raw):
        head, _, body = raw.partition(b"\r\n\r\n")
        hdrs = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
            out, rest = b"", body
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size.split(b";")[0] or b"0", 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2:]
            body = out
        return hdrs, body

    def _watch_all(self, tok, index, ready):
        import selectors
        sel = selectors.DefaultSelector()
        state = {}
        for i, ix in index.items():
            try:
                sk = self._blocking_get(i, ix)
            except OSError:
                continue
            state[i] = {"buf": b"", "first": None}
            sel.register(sk, selectors.EVENT_READ, i)
        ready.set()
        end = time.time() + 90
        while state and time.time() < end:
            events = sel.select(timeout=1.0)
            t = time.time()
            for key, _ in events:
                i, sk = key.data, key.fileobj
                st = state[i]
                if st["first"] is None:
                    st["first"] = t
                try:
                    chunk = sk.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    st["buf"] += chunk
                    continue
                sel.unregister(sk)
                sk.close()
                hdrs, body = self._parse_http(st["buf"])
                try:
                    found = any(e.get("ServiceID") == tok for e in json.loads(body or b"[]"))
                except ValueError:
                    found = False
                if found:
                    self.arrivals[tok][i] = st["first"]
                    del state[i]
                    continue
                ix = (hdrs.get(b"x-consul-index") or b"0").decode()
                try:
                    sk = self._blocking_get(i, ix)
                    state[i] = {"buf": b"", "first": None}
                    sel.register(sk, selectors.EVENT_READ, i)
                except OSError:
                    del state[i]
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def write(self, token):
        body = json.dumps({"Name": "bench", "ID": token, "Address": "127.0.0.1", "Port": 1}).encode()
        self._get(0, "/v1/agent/service/register", data=body, method="PUT")

    def seen(self, i, token):
        r = self._get(i, "/v1/catalog/service/bench") or []
        ok = any(e.get("ServiceID") == token for e in r)
        if not ok:
            return False, None
        end = time.time() + 1.0  # the watcher's answer arrived too; give it time to stamp it
        while i not in self.arrivals.get(token, {}) and time.time() < end:
            time.sleep(0.005)
        return True, self.arrivals.get(token, {}).get(i)

    def pid(self, i):
        return self.procs[i].pid

    def alive_nodes(self):
        return [i for i, p in self.procs.items() if p.poll() is None]

    def kill9(self, i):
        PROCS.kill(self.procs[i], signal.SIGKILL)

    def gossip_ports(self):
        return (self.bind_base, self.bind_base + self.n - 1)

    def stop(self):
        for p in self.procs.values():
            PROCS.kill(p)
        self.procs.clear()

    def info(self):
        return {"driver": "hera", "binary": self.bin}

    def log_counts(self):
        return {}

    def victim_confirmations(self, victim):
        return {}


# --------------------------------------------------------------------------
# helpers: ports, /proc, tcpdump
# --------------------------------------------------------------------------

def wait_port(host, port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def udp_snmp():
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


BENCH_CPUS = sorted(os.sched_getaffinity(0))


def machine_cpu():
    """Total and idle jiffies of the CPUs this harness may run on (its affinity set: with
    `taskset -c 1`, only CPU 1 counts, and builds pinned elsewhere are not foreign load)."""
    tot = idle = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *rest = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in BENCH_CPUS:
                v = list(map(int, rest))
                tot, idle = tot + sum(v), idle + v[3] + v[4]  # idle+iowait
    return tot, idle


CLI_CPU = [0.0]  # CPU of `serf` CLI subprocesses run by the harness (query=cli)


def harness_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime + CLI_CPU[0]


class Capture:
    """tcpdump on lo for the gossip port range (UDP + TCP); parsed with struct."""

    def __init__(self, workdir, lo_port, hi_port, tag="idle", snaplen=96):
        self.lo, self.hi = lo_port, hi_port
        self.path = os.path.join(workdir, "%s.pcap" % tag)
        self.log = os.path.join(workdir, "tcpdump-%s.log" % tag)
        bpf = "portrange %d-%d" % (lo_port, hi_port)
        self.p = PROCS.spawn(["tcpdump", "-i", "lo", "-n", "-s", str(snaplen), "-B", "16384",
                              "-w", self.path, bpf], self.log)
        # wait until tcpdump reports it is listening
        end = time.time() + 10
        while time.time() < end:
            with open(self.log, errors="replace") as f:
                if "listening on" in f.read():
                    break
            time.sleep(0.05)

    def stop(self):
        PROCS.kill(self.p, signal.SIGINT, wait_s=10)
        with open(self.log, errors="replace") as f:
            txt = f.read()
        m = re.search(r"(\d+) packets dropped by kernel", txt)
        res = parse_pcap(self.path, self.lo, self.hi)
        self.foreign_ts = res.pop("_foreign_ts")
        top = sorted(res["foreign_udp_sources"].items(), key=lambda kv: -kv[1])[:5]
        res["foreign_udp_sources"] = dict(top)
        res["dropped_by_kernel"] = int(m.group(1)) if m else None
        return res


def parse_pcap(path, lo_port=0, hi_port=65535):
    """UDP between two cluster ports counts as cluster traffic; UDP with only
    one end in the range is someone else's (another process on this machine)
    and is reported as foreign.  TCP counts if either end is in the range."""
    res = {"udp_packets": 0, "udp_ip_bytes": 0, "udp_payload_bytes": 0,
           "tcp_packets": 0, "tcp_ip_bytes": 0, "foreign_udp_packets": 0,
           "foreign_udp_sources": {}, "first_ts": None, "last_ts": None}
    foreign_ts = res["_foreign_ts"] = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return res
    magic = struct.unpack_from("<I", data, 0)[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack_from(end + "I", data, 20)[0]
    l2 = {1: 14, 113: 16, 276: 20}.get(linktype, 14)  # EN10MB, LINUX_SLL, SLL2
    i = 24
    while i + 16 <= len(data):
        ts_s, ts_f, incl, orig = struct.unpack_from(end + "IIII", data, i)
        pkt = data[i + 16:i + 16 + incl]
        i += 16 + incl
        ts = ts_s + ts_f / (1e9 if nano else 1e6)
        res["first_ts"] = res["first_ts"] or ts
        res["last_ts"] = ts
        if len(pkt) < l2 + 20 or (pkt[l2] >> 4) != 4:
            continue
        ihl = (pkt[l2] & 0x0F) * 4
        tot_len = struct.unpack_from(">H", pkt, l2 + 2)[0]
        proto = pkt[l2 + 9]
        if proto == 17:
            if len(pkt) < l2 + ihl + 4:
                continue
            sp, dp = struct.unpack_from(">HH", pkt, l2 + ihl)
            if not (lo_port <= sp <= hi_port and lo_port <= dp <= hi_port):
                res["foreign_udp_packets"] += 1
                foreign_ts.append(ts)
                key = "%d->%d" % (sp, dp)
                res["foreign_udp_sources"][key] = res["foreign_udp_sources"].get(key, 0) + 1
                continue
            res["udp_packets"] += 1
            res["udp_ip_bytes"] += tot_len
            res["udp_payload_bytes"] += tot_len - ihl - 8
        elif proto == 6:
            res["tcp_packets"] += 1
            res["tcp_ip_bytes"] += tot_len
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 4) if xs else None


# --------------------------------------------------------------------------
# CPU accounting: the 2-core machine may be shared with other work
# --------------------------------------------------------------------------

def _pid_jiffies(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fl = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fl[11:15])  # utime stime cutime cstime
    except (OSError, IndexError, ValueError):
        return None


def load_snap():
    tot, idle = machine_cpu()
    mine = {pid: _pid_jiffies(pid) for pid in list(PROCS.procs)}
    return {"t": time.time(), "tot": tot, "idle": idle, "mine": mine,
            "self": harness_cpu_s() * CLK_TCK}


def foreign_cores(s0, s1):
    """CPU (in cores) used during [s0,s1] by processes this harness did not start."""
    dt = s1["tot"] - s0["tot"]
    if dt <= 0:
        return None
    busy = dt - (s1["idle"] - s0["idle"])
    mine = s1["self"] - s0["self"]
    for pid, j1 in s1["mine"].items():
        j0 = s0["mine"].get(pid, 0)  # started inside the window: all its CPU counts
        if j0 is not None and j1 is not None:
            mine += j1 - j0
    ncpu = len(BENCH_CPUS) or 1
    return round(max(0.0, (busy - mine) / dt * ncpu), 3)


def wait_quiet(max_wait, threshold):
    """Wait (bounded) until other processes use < threshold cores over 1 s."""
    t0 = time.time()
    f = None
    while True:
        s0 = load_snap()
        time.sleep(1.0)
        f = foreign_cores(s0, load_snap())
        if f is not None and f < threshold:
            break
        if time.time() - t0 >= max_wait:
            break
    return {"waited_s": round(time.time() - t0, 1), "foreign_cores": f,
            "quiet": f is not None and f < threshold}


class Phase:
    """Records foreign CPU load and UDP counter deltas over a phase."""

    def __init__(self):
        self.s0, self.u0 = load_snap(), udp_snmp()
        self.t0 = time.time()

    def done(self):
        t1 = time.time()
        u1 = udp_snmp()
        du = {k: u1[k] - self.u0[k] for k in ("InDatagrams", "OutDatagrams", "InErrors",
                                               "RcvbufErrors", "SndbufErrors", "NoPorts")}
        return {"window": [round(self.t0, 3), round(t1, 3)],
                "foreign_cores_mean": foreign_cores(self.s0, load_snap()),
                "udp_delta": du, "loadavg": open("/proc/loadavg").read().split()[:3]}


# --------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------

class Poller:
    """Bounded poll loop; records round durations to state timing resolution."""

    def __init__(self, interval):
        self.interval = interval
        self.rounds = []

    def loop(self, pending, check, timeout):
        """check(i) -> True when node i is done.
        Returns ({i: (t_seen, t_previous_poll_or_None)}, timed_out)."""
        done, last = {}, {}
        end = time.time() + timeout
        pending = list(pending)
        while pending and time.time() < end:
            r0 = time.time()
            still = []
            for i in pending:
                t_poll = time.time()
                if check(i):
                    done[i] = (time.time(), last.get(i))
                else:
                    last[i] = t_poll
                    still.append(i)
            pending = still
            el = time.time() - r0
            self.rounds.append(el)
            if pending:
                time.sleep(max(0.0, self.interval - el))
        return done, bool(pending)

    def stats(self):
        if not self.rounds:
            return None
        r = sorted(self.rounds)
        return {"rounds": len(r), "interval_target_s": self.interval,
                "round_work_median_s": round(statistics.median(r), 4),
                "round_work_p95_s": round(r[int(0.95 * (len(r) - 1))], 4),
                "round_work_max_s": round(r[-1], 4),
                "effective_period_median_s": round(max(self.interval, statistics.median(r)), 4)}


def measure_join(drv, n, poll, timeout):
    p = Poller(poll)
    ph = Phase()
    t0 = drv.start(n)
    t_spawned = time.time()
    done, to = p.loop(range(n), lambda i: drv.alive_count(i, expect=n) == n, timeout)
    verify = {i: drv.alive_count(i) for i in range(n)}  # full listing on every node
    return {"spawn_all_s": round(t_spawned - t0, 4),
            "converged_s": round(max(v[0] for v in done.values()) - t0, 4) if not to else None,
            "first_node_converged_s": round(min(v[0] for v in done.values()) - t0, 4) if done else None,
            "per_node_s": {i: round(done[i][0] - t0, 4) for i in sorted(done)},
            "timed_out": to, "verify_alive_counts_ok": all(v == n for v in verify.values()),
            "poll": p.stats(), "phase": ph.done()}


def measure_steady(drv, idle_s, use_tcpdump, tag="idle"):
    nodes = drv.alive_nodes()
    pids = {i: drv.pid(i) for i in nodes}
    cap = None
    if use_tcpdump and shutil.which("tcpdump"):
        lo, hi = drv.gossip_ports()
        cap = Capture(drv.workdir, lo, hi, tag)
    logs0 = drv.log_counts()
    cpu0 = {i: proc_cpu_s(p) for i, p in pids.items()}
    u0, ls0 = udp_snmp(), load_snap()
    t0 = time.time()
    time.sleep(idle_s)  # no polling during the window
    dt = time.time() - t0
    u1, ls1 = udp_snmp(), load_snap()
    cpu1 = {i: proc_cpu_s(p) for i, p in pids.items()}
    rss = {i: proc_rss_kib(p) for i, p in pids.items()}
    logs1 = drv.log_counts()
    cpu = {i: cpu1[i] - cpu0[i] for i in pids}
    du = {k: u1[k] - u0[k] for k in u0}
    k = len(pids)
    res = {"window_s": round(dt, 3), "agents": k, "window": [round(t0, 3), round(t0 + dt, 3)],
           "rss_kib_mean": round(statistics.mean(rss.values()), 1),
           "rss_kib_max": max(rss.values()), "rss_kib_min": min(rss.values()),
           "cpu_s_total": round(sum(cpu.values()), 3),
           "cpu_s_per_agent_mean": round(sum(cpu.values()) / k, 4),
           "cpu_pct_of_one_core_per_agent": round(100 * sum(cpu.values()) / k / dt, 3),
           "cpu_s_per_agent_max": round(max(cpu.values()), 3),
           "foreign_cores_mean": foreign_cores(ls0, ls1),
           "udp_snmp_delta": du,
           "udp_out_datagrams_per_agent_per_s": round(du["OutDatagrams"] / k / dt, 3),
           "udp_in_datagrams_per_agent_per_s": round(du["InDatagrams"] / k / dt, 3),
           "log_delta": {key: logs1.get(key, 0) - logs0.get(key, 0) for key in logs1},
           "health_scores_nonzero": {i: s for i, s in drv.health_scores().items() if s}}
    if cap:
        c = cap.stop()
        c["udp_ip_bytes_per_agent_per_s"] = round(c["udp_ip_bytes"] / k / dt, 1)
        c["udp_payload_bytes_per_agent_per_s"] = round(c["udp_payload_bytes"] / k / dt, 1)
        c["udp_packets_per_agent_per_s"] = round(c["udp_packets"] / k / dt, 3)
        c["tcp_ip_bytes_per_agent_per_s"] = round(c["tcp_ip_bytes"] / k / dt, 1)
        c["mean_udp_payload_bytes"] = round(c["udp_payload_bytes"] / max(1, c["udp_packets"]), 1)
        res["tcpdump"] = c
    return res


def measure_writes(drv, reps, poll, timeout, gap, late_s):
    p = Poller(poll)
    ph = Phase()
    trials = []
    for rep in range(reps):
        nodes = drv.alive_nodes()
        precise = {}
        tok = {}

        def check(i):
            ok, ts = drv.seen(i, tok["t"])
            if ok:
                precise[i] = ts
            return ok

        tok["t"] = drv.token(rep)
        box = {}

        def writer():
            try:
                drv.write(tok["t"])
            except Exception as e:  # noqa: BLE001 - recorded in the JSON
                box["error"] = repr(e)
            box["returned"] = time.time()

        th = threading.Thread(target=writer, daemon=True)
        t0 = time.time()
        th.start()  # poll while the write call is in flight
        done, to = p.loop(nodes, check, timeout)
        th.join(timeout=60)
        obs = {i: done[i][0] - t0 for i in done}
        tr = {"token": tok["t"], "timed_out": to,
              "write_call_returned_s": round(box["returned"] - t0, 4) if "returned" in box else None,
              "write_error": box.get("error"),
              "nodes_seen": len(done), "nodes": len(nodes),
              "all_seen_polled_s": round(max(obs.values()), 4) if not to else None,
              "nodes_later_than_%gs" % late_s: sorted(i for i, v in obs.items() if v > late_s)}
        if precise and all(v is not None for v in precise.values()):
            pr = {i: v - t0 for i, v in precise.items()}
            tr["all_seen_handler_s"] = round(max(pr.values()), 4) if not to else None
            tr["node0_handler_s"] = round(pr.get(0, float("nan")), 4)
            tr["per_node_handler_s"] = {i: round(v, 4) for i, v in sorted(pr.items())}
        trials.append(tr)
        time.sleep(gap)
    out = {"trials": trials, "poll": p.stats(), "phase": ph.done(),
           "median_all_seen_polled_s": med([t["all_seen_polled_s"] for t in trials]),
           "trials_with_late_nodes": sum(1 for t in trials if t["nodes_later_than_%gs" % late_s])}
    if any("all_seen_handler_s" in t for t in trials):
        out["median_all_seen_handler_s"] = med([t.get("all_seen_handler_s") for t in trials])
    return out


def measure_delivery(drv, reps, spacing, window):
    """Fire `reps` writes `spacing` s apart; each is checked on every node
    `window` s after it was issued.  A node without it then was missed by
    gossip (Serf repairs that only via TCP push/pull, every 30 s+)."""
    nodes = drv.alive_nodes()
    ph = Phase()
    issued, checks, misses = [], [], {}
    t_start = time.time()
    end = t_start + reps * spacing + window + 30  # hard bound
    nxt = 0
    while (nxt < reps or len(checks) < reps) and time.time() < end:
        now = time.time()
        if nxt < reps and now >= t_start + nxt * spacing:
            token, t_w = drv.token(1000 + nxt), time.time()
            drv.write(token)
            issued.append((token, t_w))
            nxt += 1
        while len(checks) < len(issued) and time.time() >= issued[len(checks)][1] + window:
            token, _ = issued[len(checks)]
            missed = [i for i in nodes if not drv.seen(i, token)[0]]
            checks.append(token)
            if missed:
                misses[token] = missed
        time.sleep(0.01)
    node_misses = sum(len(v) for v in misses.values())
    return {"writes": len(checks), "spacing_s": spacing, "window_s": window,
            "nodes": len(nodes), "node_misses": node_misses,
            "miss_rate": round(node_misses / max(1, len(checks) * (len(nodes) - 1)), 5),
            "writes_with_a_miss": len(misses), "misses": misses, "phase": ph.done()}


def measure_failures(drv, n, reps, poll, timeout, gap, quiet):
    p = Poller(poll)
    victims = [n - 1, n // 2, 1, n // 4, n // 2 + 1][:reps]
    trials = []
    for v in victims:
        gate = wait_quiet(*quiet) if quiet else None
        vname = drv.name(v)
        survivors = [i for i in drv.alive_nodes() if i != v]
        ph = Phase()
        t0 = time.time()
        drv.kill9(v)
        done, to = p.loop(survivors, lambda i: drv.status_of(i, vname) == "failed", timeout)
        obs = sorted(done[i][0] - t0 for i in done)
        unc = [done[i][0] - done[i][1] for i in done if done[i][1] is not None]
        conf = drv.victim_confirmations(vname)
        trials.append({"victim": vname, "survivors": len(survivors), "timed_out": to,
                       "first_failed_s": round(obs[0], 4) if obs else None,
                       "all_failed_s": round(obs[-1], 4) if not to else None,
                       "nodes_marked": len(done),
                       "max_observation_uncertainty_s": round(max(unc), 4) if unc else None,
                       "nodes_declared_by_own_suspicion_timer": len(conf),
                       "peer_confirmations_at_timeout": sorted(conf.values()),
                       "quiet_gate": gate, "phase": ph.done()})
        time.sleep(gap)
    return {"trials": trials, "poll": p.stats(),
            "median_first_failed_s": med([t["first_failed_s"] for t in trials]),
            "median_all_failed_s": med([t["all_failed_s"] for t in trials])}


def suspicion_bounds(n, prof=SERF_LAN_PROFILE):
    import math
    mn = prof["SuspicionMult"] * max(1.0, math.log10(max(1, n))) * prof["ProbeInterval_s"]
    return {"suspicion_min_s": round(mn, 3),
            "suspicion_max_s": round(mn * prof["SuspicionMaxTimeoutMult"], 3),
            "retransmit_limit": prof["RetransmitMult"] * math.ceil(math.log10(n + 1)),
            "push_pull_interval_s": prof["PushPullInterval_s"] *
            (1 if n <= 32 else math.ceil(math.log2(n) - math.log2(32)) + 1)}


def make_driver(args, workdir):
    if args.driver == "serf":
        return SerfDriver(workdir, serf_bin=args.serf_bin, query=args.query,
                          write_mode=args.write_modes[0], bind_base=args.bind_base,
                          rpc_base=args.rpc_base)
    return HeraDriver(workdir, bind_base=args.bind_base, http_base=args.rpc_base)


def run_one(args, n):
    base = os.path.join(HERE, "run", "%s%s-%d" % (args.driver, "-" + args.label if args.label else "", n))
    shutil.rmtree(base, ignore_errors=True)
    quiet = (args.quiet_wait, args.quiet_threshold) if args.quiet_wait > 0 else None
    res = {"n": n, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "machine": {"nproc": os.cpu_count(), "bench_cpus": BENCH_CPUS, "kernel": platform.release(),
                       "python": platform.python_version(),
                       "mem_total": open("/proc/meminfo").readline().split()[1] + " kB"},
           "settings": {k: getattr(args, k) for k in (
               "poll", "idle", "settle", "fail_reps", "write_reps", "join_reps",
               "delivery_reps", "delivery_spacing", "delivery_window", "query",
               "write_modes", "quiet_wait", "quiet_threshold", "label", "bind_base",
               "rpc_base", "idle_retries", "warmup")}}
    if args.driver == "serf":
        res["expected"] = suspicion_bounds(n)
    drv = None
    os.makedirs(base)
    runcap = None
    if not args.no_tcpdump and shutil.which("tcpdump"):
        # headers only, whole run: flags phases hit by other processes' UDP
        runcap = Capture(base, args.bind_base, args.bind_base + n - 1, "run", snaplen=64)
    try:
        res["join"] = {"reps": []}
        for r in range(args.join_reps):
            if drv:
                drv.stop()
                time.sleep(1.0)
            workdir = os.path.join(base, "rep%d" % r)
            os.makedirs(workdir)
            drv = make_driver(args, workdir)
            res.setdefault("info", drv.info())
            gate = wait_quiet(*quiet) if quiet else None
            j = measure_join(drv, n, args.poll, args.join_timeout)
            j["quiet_gate"] = gate
            res["join"]["reps"].append(j)
            log("[N=%d] join rep %d: converged %s s (spawn %s s, foreign load %s cores)" % (
                n, r, j["converged_s"], j["spawn_all_s"], j["phase"]["foreign_cores_mean"]))
            if j["timed_out"]:
                raise RuntimeError("join did not converge within %ss" % args.join_timeout)
        res["join"]["median_converged_s"] = med([j["converged_s"] for j in res["join"]["reps"]])
        res["join"]["reps_slower_than_5s"] = sum(1 for j in res["join"]["reps"] if (j["converged_s"] or 1e9) > 5)
        t_started = time.time() - (res["join"]["reps"][-1]["converged_s"] or 0)
        warm = drv.warmup_s(n) if args.warmup < 0 else args.warmup
        wait = max(args.settle, warm - (time.time() - t_started))
        res["steady_warmup_wait_s"] = round(wait, 1)
        log("[N=%d] waiting %.0f s for steady state (warm-up %.0f s)" % (n, wait, warm))
        time.sleep(wait)

        attempts = []
        for a in range(1 + args.idle_retries):
            gate = wait_quiet(*quiet) if quiet else None
            log("[N=%d] steady: %gs idle (attempt %d)" % (n, args.idle, a))
            st = measure_steady(drv, args.idle, not args.no_tcpdump, "idle%d" % a)
            st["quiet_gate"] = gate
            attempts.append(st)
            foreign = st.get("tcpdump", {}).get("foreign_udp_packets", 0)
            if not foreign:
                break
            log("[N=%d] steady: %d foreign UDP packets hit the cluster ports; retrying" % (n, foreign))
        res["steady"] = dict(attempts[-1])
        res["steady"]["attempts"] = len(attempts)
        res["steady"]["earlier_attempts"] = attempts[:-1]
        s = res["steady"]
        log("[N=%d] steady: rss %.0f KiB, cpu %.3f%% core/agent, udp out %.2f dgram/agent/s, foreign %s" % (
            n, s["rss_kib_mean"], s["cpu_pct_of_one_core_per_agent"],
            s["udp_out_datagrams_per_agent_per_s"], s["foreign_cores_mean"]))

        res["write"], res["delivery"] = {}, {}
        for mode in args.write_modes:
            if hasattr(drv, "write_mode"):
                drv.write_mode = mode
            gate = wait_quiet(*quiet) if quiet else None
            w = measure_writes(drv, args.write_reps, args.poll, args.write_timeout, 1.0, args.delivery_window)
            w["quiet_gate"] = gate
            res["write"][mode] = w
            log("[N=%d] write %s: median all-seen polled %s s, handler %s s, late trials %d" % (
                n, mode, w["median_all_seen_polled_s"], w.get("median_all_seen_handler_s"),
                w["trials_with_late_nodes"]))
            # tags hold one value, so back-to-back tag writes overwrite each
            # other: the miss-rate phase only makes sense for events/services
            if args.delivery_reps and mode in ("event", "service"):
                d = measure_delivery(drv, args.delivery_reps, args.delivery_spacing, args.delivery_window)
                res["delivery"][mode] = d
                log("[N=%d] delivery %s: %d node-misses in %d writes (rate %s)" % (
                    n, mode, d["node_misses"], d["writes"], d["miss_rate"]))

        log("[N=%d] failure detection" % n)
        res["failure"] = measure_failures(drv, n, args.fail_reps, args.poll, args.fail_timeout,
                                          args.settle, quiet)
        log("[N=%d] failure: median first %s s, all %s s" % (
            n, res["failure"]["median_first_failed_s"], res["failure"]["median_all_failed_s"]))
        res["log_counts_final_cluster"] = drv.log_counts()
    except Exception as e:  # record what failed, still write the JSON
        res["error"] = "%s: %s" % (type(e).__name__, e)
        log("[N=%d] ERROR %s" % (n, res["error"]))
    finally:
        if drv:
            drv.stop()
        if runcap:
            c = runcap.stop()
            res["run_capture"] = {k: c[k] for k in ("foreign_udp_packets", "foreign_udp_sources",
                                                     "dropped_by_kernel", "udp_packets")}
            mark_foreign(res, runcap.foreign_ts)
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    out = os.path.join(args.out, "%s%s-%d.json" % (args.driver, "-" + args.label if args.label else "", n))
    with open(out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    log("[N=%d] wrote %s" % (n, out))
    return res


def mark_foreign(node, ts):
    """Add foreign_udp_on_cluster_ports to every dict that has a 'window'."""
    if isinstance(node, dict):
        w = node.get("window")
        if isinstance(w, list) and len(w) == 2:
            node["foreign_udp_on_cluster_ports"] = sum(1 for t in ts if w[0] <= t <= w[1])
        for v in node.values():
            mark_foreign(v, ts)
    elif isinstance(node, list):
        for v in node:
            mark_foreign(v, ts)


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", choices=["serf", "hera"], default="serf")
    ap.add_argument("-n", "--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--poll", type=float, default=0.05, help="poll interval s (<= 0.05)")
    ap.add_argument("--idle", type=float, default=30.0, help="steady-state window s")
    ap.add_argument("--settle", type=float, default=5.0, help="pause after join / between kills")
    ap.add_argument("--join-reps", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=-1,
                    help="s after start before the idle window; -1 = driver default "
                         "(serf: 30 s + push/pull interval, i.e. 60 s, 90 s for N>32)")
    ap.add_argument("--fail-reps", type=int, default=3)
    ap.add_argument("--write-reps", type=int, default=5)
    ap.add_argument("--write-modes", nargs="+", default=["event", "tag"],
                    help="serf: event and/or tag; hera: ignored (service registration)")
    ap.add_argument("--delivery-reps", type=int, default=40,
                    help="extra writes fired back to back to estimate the gossip miss rate (0=off)")
    ap.add_argument("--delivery-spacing", type=float, default=0.6)
    ap.add_argument("--delivery-window", type=float, default=2.0)
    ap.add_argument("--query", choices=["rpc", "cli"], default="rpc",
                    help="serf: msgpack RPC (default) or `serf members -format=json` per poll")
    ap.add_argument("--serf-bin", default="serf")
    ap.add_argument("--label", default="", help="suffix for result file names, e.g. cli -> serf-cli-8.json")
    ap.add_argument("--no-tcpdump", action="store_true")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each phase wait up to this many s for other processes to go idle (0=off)")
    ap.add_argument("--quiet-threshold", type=float, default=0.3, help="cores used by others that count as quiet")
    ap.add_argument("--idle-retries", type=int, default=2,
                    help="repeat the idle window if tcpdump saw foreign UDP on the cluster ports")
    ap.add_argument("--bind-base", type=int, default=17946, help="gossip port of node 0 (node i: +i)")
    ap.add_argument("--rpc-base", type=int, default=17373, help="serf RPC / hera HTTP port of node 0")
    ap.add_argument("--join-timeout", type=float, default=120)
    ap.add_argument("--fail-timeout", type=float, default=120)
    ap.add_argument("--write-timeout", type=float, default=90)
    args = ap.parse_args()
    if args.driver == "hera":
        args.write_modes = ["service"]
    if args.poll > 0.05:
        ap.error("--poll must be <= 0.05")
    os.makedirs(args.out, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        for n in args.sizes:
            run_one(args, n)
    finally:
        PROCS.stop_all()


if __name__ == "__main__":
    main()
