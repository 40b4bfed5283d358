#!/usr/bin/env bash
# Proves the set-up on a machine with nothing installed by hand: builds a clean Debian 12
# root with debootstrap, adds only what every machine of ours starts with (a C compiler for
# linking, CA certificates), lends it the host's Rust toolchain read-only, and runs the
# README's commands in it:
#   1. scripts/install-deps.sh, then `install-deps.sh --check`;
#   2. `cargo build --workspace --all-targets` with PROTOC pointing nowhere (no protoc needed);
#   3. the demo (`cargo run -p rpc-examples --bin demo`);
#   4. scripts/test.sh (installs nothing more, starts ZooKeeper and etcd, runs every test).
# Needs root (debootstrap, chroot, mounts) and the Debian mirror. Slow (a full build from
# nothing): run it by hand before changing set-up steps; CI runs the same scripts directly.
#
#   sudo bash scripts/fresh-debian-check.sh [--deps-only] [ROOT_DIR]   (default target/fresh-debian)
#
# --deps-only stops after step 1 (and a headless page load in the Chromium it installed): the
# quick proof of a change to install-deps.sh.
set -euo pipefail
deps_only=false
if [ "${1:-}" = "--deps-only" ]; then
    deps_only=true
    shift
fi
cd "$(dirname "$0")/.."
repo="$(pwd)"
root="${1:-$repo/target/fresh-debian}"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

if [ "$(id -u)" -ne 0 ]; then
    echo "fresh-debian-check: needs root" >&2
    exit 1
fi
command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

mounts=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount -l "${mounts[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
bind() { # bind SRC DST [ro]
    mkdir -p "$2"
    mount --bind "$1" "$2"
    mounts+=("$2")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

if [ ! -x "$root/usr/bin/apt-get" ]; then
    rm -rf "$root"
    echo "fresh-debian-check: debootstrap bookworm into $root" >&2
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/hosts "$root/etc/hosts"
bind /proc "$root/proc"
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
bind "$rustup_home" "$root/opt/rustup" ro
bind "$cargo_bin" "$root/opt/cargo-bin" ro

# The machine baseline, as a new machine of ours has it (not the project's packages),
# including the host's locally added CA certificates (a network behind a TLS-inspecting proxy
# needs them for crates.io and the package registries).
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" /bin/bash -c 'export DEBIAN_FRONTEND=noninteractive;
    apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates git >/dev/null
    update-ca-certificates >/dev/null'

rm -rf "$root/root/repo"
git clone -q "$repo" "$root/root/repo"

chroot "$root" /usr/bin/env -i HOME=/root PATH=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/opt/rustup CARGO_HOME=/root/.cargo RUSTUP_TOOLCHAIN="$(rustup show active-toolchain 2>/dev/null | cut -d' ' -f1)" \
    TERM=dumb DEPS_ONLY="$deps_only" /bin/bash -euo pipefail -c '
    cd /root/repo
    echo "== protoc: $(command -v protoc || echo none); zookeeper: $(ls /usr/share/java/zookeeper.jar 2>/dev/null || echo none); etcd: $(command -v etcd || echo none)"
    bash scripts/install-deps.sh
    bash scripts/install-deps.sh --check
    if [ "$DEPS_ONLY" = true ]; then
        echo "== chromium renders a page headless"
        chromium --headless=new --no-sandbox --disable-gpu --dump-dom \
            "data:text/html,<p id=ok>rendered</p>" 2>/dev/null | grep -q "rendered"
        exit 0
    fi
    echo "== build with no protoc anywhere"
    PROTOC=/nonexistent/protoc cargo build --workspace --all-targets --quiet
    echo "== the demo"
    cargo run --quiet -p rpc-examples --bin demo | tail -3
    echo "== the tests"
    bash scripts/test.sh > /root/test.log 2>&1 || { tail -60 /root/test.log; exit 1; }
    grep -E "^test result|SKIPPED|test.sh:" /root/test.log || true
    awk "/^test result/ {p += \$4; f += \$6} END {print \"== all tests: \" p \" passed, \" f \" failed\"}" /root/test.log
'
echo "fresh-debian-check: passed"
