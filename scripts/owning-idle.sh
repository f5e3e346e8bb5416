#!/bin/bash
# owning-idle.sh BIN [BIN ...]: an idle node alone per binary, owning one instance with a 30 s TTL check reported passing:
# wake-ups (schedstat run count) and CPU over a window, two binaries side by side.
W=${W:-30}
i=0; pids=()
for b in "$@"; do
  i=$((i+1)); hp=$((39000+i)); gp=$((39100+i))
  $b run --name own$i --bind 127.0.0.1:$gp --http 127.0.0.1:$hp >/dev/null 2>&1 &
  pids+=($!)
  for k in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:$hp/v1/agent/self && break; sleep 0.02; done
  curl -s -X PUT -d '{"Name":"db","ID":"db-1","Port":5432,"Check":{"CheckID":"db-ttl","TTL":"30s"}}' http://127.0.0.1:$hp/v1/agent/service/register
  curl -s -X PUT "http://127.0.0.1:$hp/v1/agent/check/pass/db-ttl" >/dev/null
done
sleep 2
snap() { for t in /proc/$1/task/*; do cat $t/schedstat; done | awk '{c+=$1; r+=$3} END {print c, r}'; }
declare -A c0 r0
for p in "${pids[@]}"; do read c r < <(snap $p); c0[$p]=$c; r0[$p]=$r; done
sleep $W
j=0
for p in "${pids[@]}"; do j=$((j+1)); read c r < <(snap $p); echo "bin ${!j}: wake-ups/s $(echo "(${r}-${r0[$p]})/$W" | bc -l | cut -c1-5)  CPU us/s $(echo "(${c}-${c0[$p]})/1000/$W" | bc -l | cut -c1-6)"; done
kill "${pids[@]}"; wait
