#!/usr/bin/env bash
# Installs the system packages the test suite needs (Debian/Ubuntu, as root). Building the
# workspace needs none of them: only the Rust toolchain.
#   zookeeper    ZooKeeper server for the registry tests (pulls a Java runtime)
#   etcd-server  etcd server for the registry tests
#   curl         posts JSON to a Triple provider over HTTP/2 (tests/tests/triple_interop.rs)
#   chromium     headless browser that drives the web console (examples/rpcctl/tests/console.rs)
# Each package is checked by the file the tests run, not by a command that might come from
# elsewhere. Without root or apt-get it installs nothing and says so; the registry tests then
# skip themselves loudly. `--check` lists what is missing and exits 1 if anything is.
set -euo pipefail

# package -> the file the test script runs from it
declare -A needs=(
    [zookeeper]=/usr/share/java/zookeeper.jar
    [etcd-server]=/usr/bin/etcd
    [curl]=/usr/bin/curl
    [chromium]=/usr/bin/chromium
)
# A Java runtime comes with zookeeper as a dependency; checked too, since the jar alone
# does not run.
missing=()
for pkg in "${!needs[@]}"; do
    [ -e "${needs[$pkg]}" ] || missing+=("$pkg")
done
if [ -e /usr/share/java/zookeeper.jar ] && ! command -v java >/dev/null 2>&1; then
    missing+=(default-jre-headless)
fi

if [ "${1:-}" = "--check" ]; then
    if [ ${#missing[@]} -eq 0 ]; then
        echo "install-deps: everything is installed"
        exit 0
    fi
    echo "install-deps: missing ${missing[*]}" >&2
    exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: cannot install ${missing[*]} (needs root and apt-get); skipping" >&2
    exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
