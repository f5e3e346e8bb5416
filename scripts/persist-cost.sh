#!/bin/sh
# What keeping state in a data_dir costs a write: register latency without and with a data_dir
# (one client, sequential), then a burst from 16 clients with the fsyncs counted by strace.
# Usage: scripts/persist-cost.sh [path/to/hera]   (default: target/release/hera)
# Needs python3, curl and strace; binds 127.0.0.1:17946 (UDP) and 127.0.0.1:18500 (TCP).
set -eu
BIN=${1:-target/release/hera}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
HTTP=127.0.0.1:18500

up() {
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "http://$HTTP/v1/agent/self" && return 0
        sleep 0.05
    done
    echo "the node did not come up" >&2
    exit 1
}

# clients, registrations per client: prints latency percentiles and the rate
load() {
    python3 - "$1" "$2" <<'PY'
import http.client, json, sys, threading, time
clients, per = int(sys.argv[1]), int(sys.argv[2])
lat = []
def run(k):
    c = http.client.HTTPConnection("127.0.0.1", 18500)
    for i in range(per):
        body = json.dumps({"Name": "web", "ID": f"w-{k}-{i}", "Port": 80, "Check": {"TTL": "60s"}})
        t = time.perf_counter()
        c.request("PUT", "/v1/agent/service/register", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        lat.append(time.perf_counter() - t)
        assert r.status == 200, r.status
start = time.perf_counter()
threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - start
lat.sort(); n = len(lat)
print(f"  {n} registrations, {clients} client(s): p50 {lat[n//2]*1e3:.2f} ms, "
      f"p99 {lat[int(n*0.99)]*1e3:.2f} ms, {n/elapsed:.0f}/s")
with open(__import__("os").environ["ELAPSED"], "w") as f: f.write(str(elapsed))
PY
}

run_node() { # extra args...; sets PID (a child of this shell, so `wait` works)
    "$BIN" run --name bench --bind 127.0.0.1:17946 --http "$HTTP" --preset local "$@" \
        >"$WORK/log" 2>&1 &
    PID=$!
}

export ELAPSED="$WORK/elapsed"
echo "without data_dir:"
run_node; up; load 1 300; kill "$PID"; wait "$PID" || true

echo "with data_dir:"
run_node --data-dir "$WORK/a"; up; load 1 300; kill "$PID"; wait "$PID" || true

echo "with data_dir, a burst from 16 clients, fsyncs counted:"
# strace buffers what it writes to a file until it exits: the calls are counted afterwards, by
# their time stamps, between the burst's start and end (counting the file during the run read
# far too few).
strace -f -qq -ttt -e trace=fsync,fdatasync -o "$WORK/strace" \
    "$BIN" run --name bench --bind 127.0.0.1:17946 --http "$HTTP" --preset local \
    --data-dir "$WORK/b" >"$WORK/log" 2>&1 &
TRACER=$!
up
FROM=$(date +%s.%N)
load 16 50
TO=$(date +%s.%N)
# Stop the node itself (a signal to strace would only detach it).
kill "$(pgrep -P "$TRACER")"; wait "$TRACER" || true
python3 - "$WORK/strace" "$FROM" "$TO" <<'PY'
import os, sys
path, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n = sum(1 for l in open(path) if "sync(" in l and lo <= float(l.split()[1]) <= hi)
e = float(open(os.environ["ELAPSED"]).read())
print(f"  {n} fsyncs: {n/e:.0f}/s, {n/800:.2f} per registration")
PY
