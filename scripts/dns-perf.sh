#!/usr/bin/env bash
# The DNS face's throughput and CPU per query (docs/dns.md, "Performance"), for one or more
# builds in one sitting, so that their figures compare:
#
#   scripts/dns-perf.sh target/release/hera [other/hera ...]
#
# Each build: a fresh node on loopback with a 100-instance service, then dnsperf for 10 s per
# query kind. Prints queries/s and the node's own CPU time per query (utime+stime from
# /proc/<pid>/stat around the run), which the machine's other load changes far less.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 HERA_BINARY..." >&2; exit 2; }
command -v dnsperf >/dev/null || { echo "needs dnsperf (Debian package dnsperf)" >&2; exit 2; }
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
echo 'web.service.consul A' > "$work/a.txt"
echo '_web._tcp.service.consul SRV' > "$work/srv.txt"
ticks="$(getconf CLK_TCK)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for bin in "$@"; do
    "$bin" run --name perf --bind 127.0.0.1:17950 --http 127.0.0.1:18550 \
        --dns 127.0.0.1:18650 --log-level warn >"$work/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null http://127.0.0.1:18550/v1/agent/self && break
        sleep 0.1
    done
    for i in $(seq 1 100); do
        curl -sf -o /dev/null -X PUT -d "{\"Name\":\"web\",\"ID\":\"web-$i\",\"Address\":\"10.2.0.$i\",\"Port\":8080}" \
            http://127.0.0.1:18550/v1/agent/service/register
    done
    for kind in "a -e" "a" "srv -e"; do
        set -- $kind
        file="$work/$1.txt"; edns="${2:-}"
        before="$(cpu_ticks "$pid")"
        out="$(dnsperf -s 127.0.0.1 -p 18650 -d "$file" -l "$SECONDS_PER_RUN" -c 4 -q 200 $edns 2>&1)"
        after="$(cpu_ticks "$pid")"
        qps="$(echo "$out" | awk '/Queries per second/ {print $4}')"
        done_q="$(echo "$out" | awk '/Queries completed/ {print $3}')"
        us="$(awk -v t=$((after - before)) -v hz="$ticks" -v q="$done_q" 'BEGIN { if (q > 0) printf "%.1f", t / hz * 1e6 / q; else print "-" }')"
        printf '%-24s %-10s %12s q/s %8s us CPU/query\n' "$(basename "$(dirname "$bin")")/$(basename "$bin")" "$1${edns:+ edns}" "$qps" "$us"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
