#!/usr/bin/env bash
# Real faults on real processes: a cluster of `hera` processes on loopback, 10% of their UDP
# datagrams dropped by nftables, nodes killed with SIGKILL and restarted.
#
#   sudo scripts/chaos.sh          (root: nftables; CI runs it from scripts/test.sh)
#
# It checks, in order:
#   1. the fault takes effect (the drop rule's counter moves) and, over LOSS_SECONDS at 10%
#      loss, no node ever marks a live node failed, and no registration is lost;
#   2. every node killed with -9 is marked failed by every live node, while the registrations
#      owned by live nodes stay everywhere;
#   3. once the faults stop and the killed nodes restart (from their data dirs, without
#      `--join`), every node sees every other alive and all nodes list the same registrations,
#      the restarted nodes' own included: they survive the restart.
# Gossip is sealed with a fresh cluster key, so the encrypted path is what gets battered.
#
# Bounded: every wait has a deadline; the whole run takes about LOSS_SECONDS + 2 minutes.
# Loopback only; the nftables table is its own (`hera_chaos_<pid>`) and matches only this run's
# ports. Rules and processes are removed on every exit path.
#
# Environment: HERA_BIN (default: the release binary if built, else the debug one), NODES (5),
# LOSS_PERCENT (10), LOSS_SECONDS (60), PRESET (local), KEEP_LOGS=1 to keep the work dir.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-5}
LOSS_PERCENT=${LOSS_PERCENT:-10}
LOSS_SECONDS=${LOSS_SECONDS:-60}
PRESET=${PRESET:-local}
KILLED=2                      # the last two nodes are killed and restarted
DETECT_SECONDS=60             # bound for detecting a kill -9
HEAL_SECONDS=90               # bound for agreement after the faults stop
TABLE="hera_chaos_$$"

target=${CARGO_TARGET_DIR:-target}
if [ -z "${HERA_BIN:-}" ]; then
    if [ -x "$target/release/hera" ]; then HERA_BIN="$target/release/hera"; else HERA_BIN="$target/debug/hera"; fi
fi
[ -x "$HERA_BIN" ] || { echo "chaos: no hera binary at $HERA_BIN (cargo build --release first)" >&2; exit 2; }
command -v nft >/dev/null || { echo "chaos: nft not found (apt-get install nftables)" >&2; exit 2; }
command -v curl >/dev/null || { echo "chaos: curl not found" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "chaos: nftables needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/hera-chaos.XXXXXX)
declare -a PIDS=()
status=1

log() { printf '[chaos %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

cleanup() {
    nft delete table inet "$TABLE" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$status" = 0 ] && [ "${KEEP_LOGS:-0}" != 1 ]; then
        rm -rf "$work"
    else
        log "logs kept in $work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free ports: a random base, checked against what is bound now.
pick_base() {
    local base i used
    # `ss` (iproute2) may be missing on a minimal machine: then only the random base guards.
    used=$( (ss -Hltun 2>/dev/null || true) | awk '{print $5}' | sed 's/.*://' | sort -u)
    for _ in $(seq 50); do
        base=$((20000 + RANDOM % 20000))
        local clash=0
        for i in $(seq 0 $((NODES - 1))); do
            if grep -qx "$((base + i))" <<<"$used" || grep -qx "$((base + 100 + i))" <<<"$used"; then
                clash=1
            fi
        done
        [ $clash = 0 ] && { echo "$base"; return; }
    done
    echo "chaos: no free ports" >&2
    exit 2
}
BASE=$(pick_base)
gossip() { echo $((BASE + $1)); }
http() { echo "127.0.0.1:$((BASE + 100 + $1))"; }
KEY=$("$HERA_BIN" keygen)

# start_node I [restart]: a restarted node rejoins through the members its data dir remembers.
start_node() {
    local i=$1 restart=${2:-}
    local join=()
    [ "$i" != 0 ] && [ -z "$restart" ] && join=(--join "127.0.0.1:$(gossip 0)")
    "$HERA_BIN" run --name "c$i" --bind "127.0.0.1:$(gossip "$i")" --http "$(http "$i")" \
        --preset "$PRESET" --encrypt "$KEY" --log-level info --data-dir "$work/data/c$i" \
        "${join[@]}" \
        >>"$work/c$i.log" 2>&1 &
    PIDS[$i]=$!
}

# The members table as node $1 sees it, through hera's own CLI: Node, Address, Status, ...
members() { timeout 5 "$HERA_BIN" members --http-addr "$(http "$1")" 2>/dev/null || true; }
# Name of every member node $1 sees in state $2 ("alive", "suspect", "failed", ...).
names_in_state() { members "$1" | awk -v s="$2" 'NR > 1 && $3 == s { print $1 }' | sort; }
count_state() { names_in_state "$1" "$2" | wc -l; }
instances() {
    curl -fsS --max-time 2 "http://$(http "$1")/v1/catalog/service/chaos" 2>/dev/null |
        grep -o '"ServiceID":"[^"]*"' | sort -u | tr '\n' ' ' || true
}
live_nodes() { seq 0 $((NODES - 1 - KILLED)); }

# wait_until SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds or time runs out.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            log "FAILED: $what (not within ${limit}s)"
            return 1
        fi
        sleep 0.5
    done
    log "ok: $what"
}

all_see_alive() {
    local n=$1 i
    for i in $(seq 0 $((NODES - 1))); do
        [ "$(count_state "$i" alive)" = "$n" ] || return 1
    done
}

register_all() {
    local i
    for i in $(seq 0 $((NODES - 1))); do
        curl -fsS --max-time 5 -X PUT "http://$(http "$i")/v1/agent/service/register" \
            -d "{\"Name\":\"chaos\",\"ID\":\"chaos-$i\",\"Address\":\"127.0.0.1\",\"Port\":$((9000 + i))}" \
            >/dev/null
    done
}

# Every node in $1 (a list) lists every live-owned instance.
live_instances_everywhere() {
    local i id
    for i in $1; do
        local have
        have=$(instances "$i")
        for id in $(live_nodes); do
            [[ $have == *"\"chaos-$id\""* ]] || return 1
        done
    done
}

drop_rule() {
    local ports
    ports=$(seq -s, "$(gossip 0)" "$(gossip $((NODES - 1)))")
    nft -f - <<EOF
table inet $TABLE {
    chain input {
        type filter hook input priority -10; policy accept;
        udp dport { $ports } numgen random mod 100 < $LOSS_PERCENT counter drop
    }
}
EOF
}
dropped() { nft list table inet "$TABLE" | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}'; }

# ---- phase 0: a healthy, sealed cluster with registrations ----
log "binary $HERA_BIN, $NODES nodes, gossip ports $(gossip 0)-$(gossip $((NODES - 1))), preset $PRESET"
for i in $(seq 0 $((NODES - 1))); do start_node "$i"; done
wait_until 30 "all $NODES nodes see $NODES alive" all_see_alive "$NODES"
wait_until 10 "registrations accepted" register_all
all_instances() {
    local i
    for i in $(seq 0 $((NODES - 1))); do
        [ "$(instances "$i" | wc -w)" = "$NODES" ] || return 1
    done
}
wait_until 30 "every node lists all $NODES instances" all_instances

# ---- phase 1: loss ----
drop_rule
log "dropping ${LOSS_PERCENT}% of gossip datagrams for ${LOSS_SECONDS}s"
end=$((SECONDS + LOSS_SECONDS))
checks=0
while [ $SECONDS -lt $end ]; do
    for i in $(seq 0 $((NODES - 1))); do
        failed=$(names_in_state "$i" failed | tr '\n' ' ')
        if [ -n "$failed" ]; then
            log "FAILED: at ${LOSS_PERCENT}% loss c$i marked live nodes failed: $failed"
            exit 1
        fi
    done
    live_instances_everywhere "$(seq 0 $((NODES - 1)))" || {
        log "FAILED: a registration went missing under loss"
        for i in $(seq 0 $((NODES - 1))); do log "  c$i: $(instances "$i")"; done
        exit 1
    }
    checks=$((checks + 1))
    sleep 1
done
lost=$(dropped)
[ "$lost" -gt 0 ] || { log "FAILED: the drop rule dropped nothing: the fault did not take effect"; exit 1; }
log "ok: no false failure and no lost registration in $checks checks; $lost datagrams dropped"

# ---- phase 2: kill -9, loss still on ----
for i in $(seq $((NODES - KILLED)) $((NODES - 1))); do
    log "kill -9 c$i (pid ${PIDS[$i]})"
    kill -9 "${PIDS[$i]}"
    wait "${PIDS[$i]}" 2>/dev/null || true
    PIDS[$i]=""
done
killed_detected() {
    local i j
    for i in $(live_nodes); do
        local failed
        failed=$(names_in_state "$i" failed)
        for j in $(seq $((NODES - KILLED)) $((NODES - 1))); do
            grep -qx "c$j" <<<"$failed" || return 1
        done
    done
}
wait_until "$DETECT_SECONDS" "every live node marks the killed nodes failed" killed_detected
no_live_failed() {
    local i
    for i in $(live_nodes); do
        [ "$(count_state "$i" alive)" = "$((NODES - KILLED))" ] || return 1
    done
}
no_live_failed || { log "FAILED: a live node is not alive in some view"; exit 1; }
live_instances_everywhere "$(live_nodes)" || { log "FAILED: live-owned registrations lost after the kills"; exit 1; }
log "ok: live-owned registrations intact on every live node"

# ---- phase 3: faults stop, killed nodes restart, the cluster agrees ----
nft delete table inet "$TABLE"
log "loss stopped; restarting the killed nodes"
for i in $(seq $((NODES - KILLED)) $((NODES - 1))); do start_node "$i" restart; done
wait_until "$HEAL_SECONDS" "all $NODES nodes see $NODES alive again" all_see_alive "$NODES"
agree() {
    local first i
    first=$(instances 0)
    for i in $(seq 1 $((NODES - 1))); do
        [ "$(instances "$i")" = "$first" ] || return 1
    done
    live_instances_everywhere "$(seq 0 $((NODES - 1)))"
}
wait_until "$HEAL_SECONDS" "every node lists the same registrations" agree
wait_until "$HEAL_SECONDS" "every node lists all $NODES, the restarted nodes' own included" all_instances
log "registrations everywhere: $(instances 0)"
status=0
log "chaos passed"
