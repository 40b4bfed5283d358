#!/usr/bin/env bash
# Installs the stock Dubbo peers the interop tests run against, pinned, under target/interop:
#   - dubbo-ssl-python 0.9.6 and kazoo 2.11.0 (its ZooKeeper client), and the Nacos client
#     nacos-sdk-python 0.1.17, in a Python venv (target/interop/venv)
#   - dubbo2.js 2.3.9 and the stock Node provider apache-dubbo-service 0.0.1 (with the
#     packages it requires but does not declare) in target/interop/node_modules
#   - hessian.js 2.11.0 there too, for the Hessian cross-check (tests/tests/hessian_crosscheck.rs)
# Prints the directory on success (export it as RPC_TEST_INTEROP_DIR); exits non-zero when a
# peer cannot be installed, saying which.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/interop"
mkdir -p "$dir"
fail=0
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c 'import dubbo_ssl, kazoo, nacos' 2>/dev/null; then
    if ! { python3 -m venv "$dir/venv" && "$dir/venv/bin/pip" install --quiet 'dubbo-ssl-python==0.9.6' 'kazoo==2.11.0' 'nacos-sdk-python==0.1.17'; } >&2; then
        echo "install-interop.sh: could not install dubbo-ssl-python 0.9.6 / kazoo 2.11.0 / nacos-sdk-python 0.1.17 (pip)" >&2
        fail=1
    fi
fi
if [ ! -d "$dir/node_modules/dubbo2.js" ] || [ ! -d "$dir/node_modules/apache-dubbo-service" ] \
    || [ ! -d "$dir/node_modules/hessian.js" ]; then
    if ! npm install --silent --no-audit --no-fund --prefix "$dir" \
        dubbo2.js@2.3.9 apache-dubbo-service@0.0.1 debug@4 koa-compose@4 hessian.js@2.11.0 >&2; then
        echo "install-interop.sh: could not install dubbo2.js 2.3.9 / apache-dubbo-service 0.0.1 / hessian.js 2.11.0 (npm)" >&2
        fail=1
    fi
fi
[ "$fail" = 0 ] || exit 1
echo "$dir"
