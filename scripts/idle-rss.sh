#!/usr/bin/env bash
# Mean, min and max RSS of N nodes on loopback after some ordinary work: every node answers
# two HTTP reads, one registration is seen by all, one node crashes; RSS read 20 s later.
# Used to compare builds of the binary side by side (docs/scale.md, "Where an idle node's RSS
# went"); the cluster harness (benches/cluster) is the reference figure.
#
#   scripts/idle-rss.sh "$(scripts/build-static.sh)" 64 28000
#
# Loopback only; ports BASE..BASE+N-1 (gossip) and BASE+1000.. (HTTP); everything started
# is stopped at the end.
set -euo pipefail
bin=$1; n=$2; base=${3:-28000}
if (( n < 2 || n > 512 )); then echo "idle-rss: N must be 2-512" >&2; exit 2; fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for i in $(seq 0 $((n - 1))); do
    args=(run --name "n$i" --bind "127.0.0.1:$((base + i))" --http "127.0.0.1:$((base + 1000 + i))")
    if (( i > 0 )); then args+=(--join "127.0.0.1:$base"); fi
    "$bin" "${args[@]}" > /dev/null 2>&1 &
    pids+=($!)
    if (( i == 0 )); then sleep 0.5; fi
done
sleep 10
for i in $(seq 0 $((n - 1))); do
    curl -s "127.0.0.1:$((base + 1000 + i))/v1/agent/members" > /dev/null
    curl -s "127.0.0.1:$((base + 1000 + i))/v1/catalog/service/bench" > /dev/null
done
curl -s -X PUT -d '{"Name":"bench","ID":"b1","Port":1}' "127.0.0.1:$((base + 1000))/v1/agent/service/register"
for i in $(seq 1 $((n - 2))); do
    curl -s "127.0.0.1:$((base + 1000 + i))/v1/catalog/service/bench" > /dev/null
done
kill -9 "${pids[$((n - 1))]}"
sleep 20
for i in $(seq 0 $((n - 2))); do
    awk '/^VmRSS:/ {print $2}' "/proc/${pids[$i]}/status"
done | awk '{s += $1; if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1} END {printf "nodes %d mean %.0f kB min %d max %d\n", NR, s / NR, min, max}'
