#!/usr/bin/env bash
# Instructions per call of one target's client or server, counted by callgrind: a figure that
# does not move with the host's speed, for comparing two builds on a noisy machine. The side
# is run under `valgrind --tool=callgrind` for 2 s and for 5 s of load (the other side runs
# natively), and the difference of the two totals is divided by the difference of their calls,
# so start-up cancels out. Repeated runs of one build agree within about 3%.
# With LINES=1 it also counts the distinct cache lines of code a call runs, and which functions
# they belong to (code-lines-per-call.py): at one call at a time that, more than the count of
# instructions, is what a call costs (BENCHMARKS.md, fifteenth pass). FILTER sets the `filter`
# key of both sides (rpc-service), as `rpc-bench --filter` does.
# Usage: examples/bench/instructions-per-call.sh TARGET [client|server] [CONCURRENCY=64] [PAYLOAD=16]
# (after `cargo build --release` in examples/bench; needs valgrind; BIN overrides the binary).
set -euo pipefail
cd "$(dirname "$0")"
t=$1; side=${2:-client}; c=${3:-64}; p=${4:-16}
bin=${BIN:-target/release/rpc-bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
vg=(valgrind --tool=callgrind)
[ "${LINES:-0}" = 1 ] && vg+=(--dump-instr=yes)
filter=()
[ -n "${FILTER:-}" ] && filter=(--filter "$FILTER")

# one SECONDS: prints "CALLS INSTRUCTIONS" for one run of SECONDS of load.
one() {
    local secs=$1 line port out calls
    if [ "$side" = client ]; then
        coproc SRV { exec "$bin" server "$t" --port 0 --duration 120 "${filter[@]}"; }
        read -r line <&"${SRV[0]}"
        port=$(echo "$line" | grep -o '[0-9]\+' | tail -1)
        out=$("${vg[@]}" --callgrind-out-file="$work/cg-$secs.out" \
            "$bin" client "$t" --addr "127.0.0.1:$port" --concurrency "$c" --payload "$p" \
            --warmup 0 --measure "$secs" "${filter[@]}" 2>"$work/vg.err")
        kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
    else
        # Under valgrind a request runs ~50 times slower: a budget as large as that keeps the
        # provider's requests where the connection is read, as they are in a native run.
        coproc SRV { exec "${vg[@]}" --callgrind-out-file="$work/cg-$secs.out" \
            "$bin" server "$t" --port 0 --duration $((secs + 8)) --inplace-budget 50000 \
            "${filter[@]}" 2>"$work/vg.err"; }
        read -r line <&"${SRV[0]}"
        port=$(echo "$line" | grep -o '[0-9]\+' | tail -1)
        out=$("$bin" client "$t" --addr "127.0.0.1:$port" --concurrency "$c" --payload "$p" \
            --warmup 0 --measure "$secs" "${filter[@]}")
        wait "$SRV_PID" 2>/dev/null || true
    fi
    calls=$(echo "$out" | grep -o '"calls":[0-9]*' | head -1 | cut -d: -f2)
    echo "$calls $(grep -o 'Collected : [0-9]*' "$work/vg.err" | grep -o '[0-9]*$')"
}

short=$(one 2)
long=$(one 5)
python3 -c "
c1, i1 = map(int, '$short'.split()); c2, i2 = map(int, '$long'.split())
print('$t $side c$c ${p}B: calls %d / %d, instructions per call %.0f' % (c1, c2, (i2 - i1) / (c2 - c1)))"
if [ "${LINES:-0}" = 1 ]; then
    python3 code-lines-per-call.py "$work/cg-2.out" "${short%% *}" "$work/cg-5.out" "${long%% *}" \
        "${TOP:-25}"
fi
