#!/usr/bin/env bash
# Installs the system packages the workspace needs (Debian/Ubuntu, as root):
#   protobuf-compiler  protoc, needed to build the etcd registry crate (etcd-client)
#   zookeeper          ZooKeeper server for the registry tests (pulls a Java runtime)
#   etcd-server        etcd server for the registry tests
# Without root or apt-get it installs nothing and says so; the registry tests then skip
# themselves loudly, and the etcd crate needs `protoc` from elsewhere (or PROTOC=...).
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)

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
