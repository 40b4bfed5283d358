#!/usr/bin/env bash
# Compares two builds at one call at a time, in paired slices: the median round trip of a
# target under build A and under build B, and of the bare echo, measured one right after the
# other many times over. On a shared VM the speed of the host drifts by a third within
# seconds, far more than one change moves a c1 median; a pair of slices taken moments apart
# sees the same host, so the median of the pairs' differences shows what one run cannot.
# The three servers (A's, B's and the echo, all on 127.0.0.1, free ports) run side by side for
# the whole comparison and are stopped by PID; each slice is a fresh client process.
# Usage: examples/bench/compare-c1.sh BIN_A BIN_B [SLICES=30] [TARGET=rpc-service]
# (BIN_A, BIN_B: two `rpc-bench` binaries, e.g. copies of target/release/rpc-bench built at
# two commits.)
set -euo pipefail
a=$1; b=$2; n=${3:-30}; t=${4:-rpc-service}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# The servers stop when their stdin closes (or after --duration): one open pipe for all.
mkfifo "$work/in"
sleep 3600 >"$work/in" &
pids+=($!)
serve() { # BIN TARGET NAME
    "$1" server "$2" --port 0 --duration 3600 <"$work/in" >"$work/$3" 2>&1 &
    pids+=($!)
}
serve "$a" "$t" a
serve "$b" "$t" b
serve "$b" raw raw
port() {
    for _ in $(seq 100); do
        if [ -s "$work/$1" ]; then head -1 "$work/$1"; return; fi
        sleep 0.1
    done
    echo "server $1 did not start: $(cat "$work/$1")" >&2
    exit 1
}
pa=$(port a); pb=$(port b); pr=$(port raw)
p50() { # BIN TARGET PORT
    "$1" client "$2" --addr "127.0.0.1:$3" --concurrency 1 --payload 16 --warmup 0.5 \
        --measure 1.5 | grep -o '"p50_us":[0-9.]*' | cut -d: -f2
}
for _ in $(seq "$n"); do
    echo "$(p50 "$b" raw "$pr") $(p50 "$a" "$t" "$pa") $(p50 "$b" "$t" "$pb")"
done >"$work/slices"
python3 - "$work/slices" "$t" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
raw, a, b = ([r[i] for r in rows] for i in range(3))
t = sys.argv[2]
print(f"{len(rows)} slices of {t} at c1, 16 B: median p50 (us) echo {st.median(raw):.1f}, "
      f"A {st.median(a):.1f}, B {st.median(b):.1f}")
print(f"median of B - A per slice: {st.median([y - x for x, y in zip(a, b)]):+.2f} us; "
      f"B faster in {sum(y < x for x, y in zip(a, b))} of {len(rows)} slices")
print(f"median of the slices' ratios to the echo: A {st.median([x / r for x, r in zip(a, raw)]):.3f}, "
      f"B {st.median([y / r for y, r in zip(b, raw)]):.3f}")
PY
