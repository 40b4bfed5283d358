#!/usr/bin/env bash
# Builds the benchmark in release and runs the whole matrix, then the micro-benchmarks.
# Usage: [PGO=1] examples/bench/run.sh [--quick] [other `rpc-bench run` flags]
# Writes the tables to stdout and to examples/bench/target/results.md. With PGO=1 the binary
# is a profile-guided build (pgo.sh), the same for every target.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${PGO:-0}" = 1 ]; then
    bin=$(./pgo.sh | tail -1)
else
    cargo build --release --manifest-path Cargo.toml
    bin=target/release/rpc-bench
fi
out=target/results.md

{
    echo "## Machine"
    echo
    echo "- cores: $(nproc)"
    echo "- CPU: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
    echo "- rustc: $(rustc --version)"
    echo "- build: release, fat LTO$([ "${PGO:-0}" = 1 ] && echo ", profile-guided (pgo.sh)")"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- load average before the run: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine skews numbers)"
    echo
    echo "## Load matrix"
    echo
    "$bin" run "$@"
    echo
    echo "## Per-layer micro-benchmarks"
    echo
    "$bin" micro
} | tee "$out"
echo "written to examples/bench/$out" >&2
