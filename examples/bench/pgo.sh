#!/usr/bin/env bash
# Builds rpc-bench with profile-guided optimisation (PGO): an instrumented build runs every
# target of the matrix for a few seconds, and the profile it leaves lays the next build's
# code out by what those calls run (BENCHMARKS.md, sixteenth pass). The same binary serves
# every target, the echo and the other frameworks included, so ratios within one run stay
# fair. Prints the optimised binary's path as its last line.
# Uses `cargo-pgo` (installed pinned if missing) and rustup's `llvm-tools` component.
# Usage: examples/bench/pgo.sh [SECONDS_PER_POINT=1]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-1}

if ! cargo pgo --version >/dev/null 2>&1; then
    cargo install cargo-pgo --version 0.3.0 --locked >&2
fi
rustup component add llvm-tools >&2

cargo pgo build -- --bin rpc-bench >&2
host=$(rustc -vV | sed -n 's/^host: //p')
bin=target/$host/release/rpc-bench

# Each side writes its profile when it exits normally (the server when its stdin closes),
# each process to a file of its own.
export LLVM_PROFILE_FILE="$PWD/target/pgo-profiles/rpc-bench_%m_%p.profraw"
for t in raw tarpc tonic rpc rpc-bincode rpc-hessian2 rpc-stack rpc-tls rpc-service tri tri-proto; do
    for c in 1 64; do
        for p in 16 4096; do
            coproc SRV { exec "$bin" server "$t" --port 0 --duration 120; }
            read -r line <&"${SRV[0]}"
            port=$(echo "$line" | grep -o '[0-9]\+' | tail -1)
            "$bin" client "$t" --addr "127.0.0.1:$port" --concurrency "$c" --payload "$p" \
                --warmup 0 --measure "$secs" >/dev/null
            eval "exec ${SRV[1]}>&-"
            wait "$SRV_PID"
            echo "trained $t c$c ${p}B" >&2
        done
    done
done

cargo pgo optimize build -- --bin rpc-bench >&2
echo "$PWD/$bin"
