#!/usr/bin/env bash
# One sitting per cluster size: Serf, then hera, N real agents each on loopback, measured by
# the same harness (gossipbench.py, copied from ../shared/bench and changed only to count
# foreign load on the CPUs it is pinned to). Results: benches/cluster/results/<driver>-N.json.
#
#   benches/cluster/run.sh 32 64 128 256          # needs: apt-get install serf tcpdump
#   BENCH_CPU=1 benches/cluster/run.sh 256         # pin the sitting (and every agent) to CPU 1
#
# hera runs as the static release build (scripts/build-static.sh), as deployed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${BENCH_OUT:-benches/cluster/results}"
mkdir -p "$out"
bin="${HERA_BIN:-$(bash scripts/build-static.sh)}"
pin=()
if [[ -n "${BENCH_CPU:-}" ]]; then pin=(taskset -c "$BENCH_CPU"); fi
for n in "$@"; do
    "${pin[@]}" python3 benches/cluster/gossipbench.py --driver serf --out "$out" -n "$n"
    HERA_BIN="$bin" "${pin[@]}" python3 benches/cluster/gossipbench.py --driver hera --out "$out" -n "$n"
done
python3 benches/cluster/table.py "$out"
