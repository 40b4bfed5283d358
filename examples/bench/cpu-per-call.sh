#!/usr/bin/env bash
# CPU time per call of one target's server and client, a figure less sensitive than calls/s
# to other work on the machine: the server's utime+stime (from /proc/PID/stat) and the
# client's (/usr/bin/time) over one 5 s client run, divided by the calls it completed.
# Usage: examples/bench/cpu-per-call.sh TARGET [CONCURRENCY=64] [PAYLOAD=16]
# (after `cargo build --release` in examples/bench; run from examples/bench; BIN overrides the
# binary).
set -euo pipefail
cd "$(dirname "$0")"
t=$1; c=${2:-64}; p=${3:-16}
bin=${BIN:-target/release/rpc-bench}
coproc SRV { exec $bin server $t --port 0 --duration 30; }
read -r line <&"${SRV[0]}"
port=$(echo "$line" | grep -o '[0-9]\+' | tail -1)
spid=$SRV_PID
tick=$(getconf CLK_TCK)
s0=$(awk '{print $14+$15}' /proc/$spid/stat)
out=$( { /usr/bin/time -f "%U %S" $bin client $t --addr 127.0.0.1:$port --concurrency $c --payload $p --warmup 0 --measure 5 ; } 2>&1 )
s1=$(awk '{print $14+$15}' /proc/$spid/stat)
kill "$spid"; wait "$spid" 2>/dev/null || true
calls=$(echo "$out" | grep -o '"calls":[0-9]*' | head -1 | cut -d: -f2)
cps=$(echo "$out" | grep -o '"calls_per_sec":[0-9.]*' | cut -d: -f2)
ctime=$(echo "$out" | tail -1)
python3 -c "
u,s='$ctime'.split(); calls=float('${calls:-0}') or 1
print('$t c$c ${p}B: calls/s ${cps}  client CPU/call %.2f us  server CPU/call %.2f us' % ((float(u)+float(s))*1e6/calls, ($s1-$s0)/$tick*1e6/calls))"
