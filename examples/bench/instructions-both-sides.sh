#!/usr/bin/env bash
# Instructions per call of one target's consumer and provider together, counted by callgrind
# in `rpc-allocs` (both sides in one single-threaded process, calls one after another): no
# scheduling between two processes in it. Runs of one build still spread by about 4 %.
# Runs 2,000 and 12,000 calls and divides the difference of the totals by 10,000, so start-up
# and warm-up cancel out.
# Usage: examples/bench/instructions-both-sides.sh rpc|rpc-stack|rpc-service [PAYLOAD=16]
# (after `cargo build --release` in examples/bench; needs valgrind; BIN overrides the binary).
set -euo pipefail
cd "$(dirname "$0")"
t=$1; p=${2:-16}
bin=${BIN:-target/release/rpc-allocs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$bin" --only "$t" --calls "$1" --payload "$p" >/dev/null 2>"$work/vg.err"
    grep -o 'Collected : [0-9]*' "$work/vg.err" | grep -o '[0-9]*$'
}
short=$(total 2000)
long=$(total 12000)
echo "$t ${p}B: instructions per call, both sides: $(( (long - short) / 10000 ))"
