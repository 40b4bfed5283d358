#!/usr/bin/env bash
# Runs the whole test suite. Installs and starts what the tests need, and stops it afterwards.
#
# ZooKeeper, etcd and rnacos (a Nacos server; a second one with login on) are started on
# 127.0.0.1 (free ports, data under a temp dir) and their addresses exported as
# RPC_TEST_ZOOKEEPER, RPC_TEST_ETCD, RPC_TEST_NACOS and RPC_TEST_NACOS_AUTH for the registry tests. If one is already set, that server is used and none
# is started. If a server cannot be installed or started, its variable stays unset and the
# registry tests for it skip themselves loudly.
#
# The stock Dubbo peers of the interop tests (Python and Node packages, pinned) are installed
# under target/interop and that directory exported as RPC_TEST_INTEROP_DIR; in CI (CI=true)
# an interop test whose peer could not be installed fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

work="$(mktemp -d "${TMPDIR:-/tmp}/rpc-test.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

zk_ok() {
    local reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'ruok' >&3
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [ "$reply" = "imok" ]
}

nacos_ok() {
    local reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET /nacos/v1/ns/service/list?pageNo=1&pageSize=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    reply="$(timeout 2 cat <&3 || true)"
    exec 3>&-
    [[ "$reply" == *'"count"'* ]]
}

# A config written through the open API can be read back (bounded: 5 s).
nacos_config_ok() {
    local body="probe-$RANDOM"
    curl -s -m 2 -X POST "http://127.0.0.1:$1/nacos/v1/cs/configs" \
        -d "dataId=rpc-test-probe&group=rpc-test&content=$body" >/dev/null || return 1
    for _ in $(seq 1 25); do
        if [ "$(curl -s -m 2 "http://127.0.0.1:$1/nacos/v1/cs/configs?dataId=rpc-test-probe&group=rpc-test")" = "$body" ]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

etcd_ok() {
    local reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    reply="$(timeout 2 cat <&3 || true)"
    exec 3>&-
    [[ "$reply" == *'"health":"true"'* ]]
}

# wait_for NAME CHECK PORT PID [LOG]: bounded wait (30 s) until CHECK PORT answers; gives up
# at once when the process exits or LOG shows a panic.
wait_for() {
    for _ in $(seq 1 150); do
        if ! kill -0 "$4" 2>/dev/null; then
            echo "test.sh: $1 exited early; see its log below" >&2
            return 1
        fi
        if [ -n "${5:-}" ] && grep -q 'panicked at' "$5" 2>/dev/null; then
            echo "test.sh: $1 panicked while starting" >&2
            return 1
        fi
        if "$2" "$3" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "test.sh: $1 did not answer within 30 s" >&2
    return 1
}

if [ -z "${RPC_TEST_ZOOKEEPER:-}" ] && [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then
    port="$(free_port)"
    mkdir -p "$work/zk/data" "$work/zk/conf"
    cat >"$work/zk/conf/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$work/zk/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
CFG
    java -Xmx256m -cp "$work/zk/conf:/usr/share/java/zookeeper.jar" \
        -Dzookeeper.admin.enableServer=false \
        org.apache.zookeeper.server.ZooKeeperServerMain "$work/zk/conf/zoo.cfg" \
        >"$work/zk/log" 2>&1 &
    pids+=($!)
    if wait_for zookeeper zk_ok "$port" "$!"; then
        export RPC_TEST_ZOOKEEPER="127.0.0.1:$port"
        echo "test.sh: ZooKeeper on $RPC_TEST_ZOOKEEPER" >&2
    else
        tail -20 "$work/zk/log" >&2 || true
    fi
fi

if [ -z "${RPC_TEST_ETCD:-}" ] && command -v etcd >/dev/null 2>&1; then
    port="$(free_port)"
    peer="$(free_port)"
    ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-}" etcd --name rpc-test \
        --data-dir "$work/etcd" \
        --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "rpc-test=http://127.0.0.1:$peer" \
        >"$work/etcd.log" 2>&1 &
    pids+=($!)
    if wait_for etcd etcd_ok "$port" "$!"; then
        export RPC_TEST_ETCD="127.0.0.1:$port"
        echo "test.sh: etcd on $RPC_TEST_ETCD" >&2
    else
        tail -20 "$work/etcd.log" >&2 || true
    fi
fi

# --- Stock Dubbo peers for the hessian2 interop tests (tests/tests/interop.rs) -------------
# dubbo-ssl-python 0.9.6 (pip, venv) and dubbo2.js 2.3.9 / apache-dubbo-service 0.0.1 (npm),
# pinned, under target/interop. If they cannot be installed RPC_TEST_INTEROP_DIR stays unset:
# the interop tests then skip loudly, or fail under CI (CI=true).
if [ -z "${RPC_TEST_INTEROP_DIR:-}" ]; then
    if interop_dir="$(bash scripts/install-interop.sh)"; then
        export RPC_TEST_INTEROP_DIR="$interop_dir"
        echo "test.sh: Dubbo interop peers in $RPC_TEST_INTEROP_DIR" >&2
    else
        echo "test.sh: the Dubbo interop peers could not be installed" >&2
    fi
fi
# --- end of the interop block ---------------------------------------------------------------

# --- Nacos: rnacos (a Rust re-implementation of the Nacos server, Apache-2.0) ---------------
# Installed once with cargo into a tools directory outside the checkout, kept between runs
# (RPC_TOOLS_DIR, default ~/.cache/rpc-tools: compiling it takes 10 to 30 minutes on a fresh
# 2-core machine, paid once per machine), then started on free 127.0.0.1 ports with its data
# in the temp dir. Heartbeat timeouts are short so the tests see a dead client's instances go within seconds.
RNACOS_VERSION=0.8.8
rnacos_root="${RPC_TOOLS_DIR:-${HOME:-/root}/.cache/rpc-tools}/rnacos-$RNACOS_VERSION"
rnacos_bin="$rnacos_root/bin/rnacos"
if [ -z "${RPC_TEST_NACOS:-}" ]; then
    if [ ! -x "$rnacos_bin" ]; then
        echo "test.sh: installing rnacos $RNACOS_VERSION (cargo install, once)" >&2
        cargo install rnacos --version "$RNACOS_VERSION" --locked --root "$rnacos_root" \
            >"$work/rnacos-install.log" 2>&1 || tail -20 "$work/rnacos-install.log" >&2 || true
    fi
    if [ ! -x "$rnacos_bin" ]; then
        echo "test.sh: rnacos could not be installed; the Nacos tests skip" >&2
    fi
fi

# start_rnacos NAME CHECK [VAR=VALUE...]: starts rnacos under $work/NAME with the given extra
# environment and sets rnacos_port once CHECK PORT passes. rnacos 0.8.8 sometimes loses a
# start-up race in its raft state machine (a panic in raftapply.rs): it then answers HTTP but
# never applies a write, so neither a config nor the initial login user ever appears. CHECK
# therefore proves a write took effect; a server that fails it, or logs a panic, is started
# again (5 tries: a panic shows within a second).
start_rnacos() {
    local name="$1" check="$2" attempt pid grpc console
    shift 2
    for attempt in 1 2 3 4 5; do
        rnacos_port="$(free_port)"
        grpc="$(free_port)"
        console="$(free_port)"
        rm -rf "${work:?}/$name" "$work/$name.log"
        mkdir -p "$work/$name/data"
        (
            cd "$work/$name"
            exec env "$@" RNACOS_SDK_HOST=127.0.0.1 RNACOS_CONSOLE_HOST=127.0.0.1 \
                RNACOS_HTTP_PORT="$rnacos_port" RNACOS_GRPC_PORT="$grpc" \
                RNACOS_HTTP_CONSOLE_PORT="$console" RNACOS_RAFT_NODE_ADDR="127.0.0.1:$grpc" \
                RNACOS_DATA_DIR="$work/$name/data" RNACOS_ENABLE_METRICS=false \
                "$rnacos_bin"
        ) >"$work/$name.log" 2>&1 &
        pid=$!
        if wait_for "$name" "$check" "$rnacos_port" "$pid" "$work/$name.log"; then
            pids+=("$pid")
            return 0
        fi
        echo "test.sh: $name start $attempt failed its probe; starting it again" >&2
        tail -5 "$work/$name.log" >&2 || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    return 1
}

# Answers, and a config written through the open API can be read back.
nacos_ready() { nacos_ok "$1" && nacos_config_ok "$1"; }

if [ -z "${RPC_TEST_NACOS:-}" ] && [ -x "$rnacos_bin" ]; then
    if start_rnacos nacos nacos_ready \
        RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=3 RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND=6; then
        export RPC_TEST_NACOS="127.0.0.1:$rnacos_port"
        echo "test.sh: rnacos on $RPC_TEST_NACOS" >&2
    fi
fi

# A second rnacos with open-API login on, for the Nacos login test (RPC_TEST_NACOS_AUTH is
# user:password@host:port; the password is made up for this run). Ready when the made-up
# user can log in: the user is written by the server itself at start-up.
nacos_login_ok() {
    curl -s -m 2 -X POST "http://127.0.0.1:$1/nacos/v1/auth/login" \
        -d "username=ann&password=$nacos_password" | grep -q '"accessToken"'
}
if [ -z "${RPC_TEST_NACOS_AUTH:-}" ] && [ -x "$rnacos_bin" ]; then
    nacos_password="pw$RANDOM$RANDOM"
    if start_rnacos nacos-auth nacos_login_ok RNACOS_ENABLE_OPEN_API_AUTH=true \
        RNACOS_INIT_ADMIN_USERNAME=ann RNACOS_INIT_ADMIN_PASSWORD="$nacos_password"; then
        export RPC_TEST_NACOS_AUTH="ann:$nacos_password@127.0.0.1:$rnacos_port"
        echo "test.sh: rnacos with login on 127.0.0.1:$rnacos_port" >&2
    fi
fi

# The tests must keep their files in temp directories: the user's provider-list cache in the
# home directory is compared before and after (a test that forgets `cache.file` shows here).
home_cache="${HOME:-/nonexistent}/.rpc/cache"
listing() { ls -A "$home_cache" 2>/dev/null | sort || true; }
before="$(listing)"

cargo test --workspace --all-targets --no-fail-fast
cargo test --workspace --doc

after="$(listing)"
if [ "$before" != "$after" ]; then
    echo "test.sh: the tests wrote into $home_cache (use a temp dir and cache.file):" >&2
    comm -13 <(echo "$before") <(echo "$after") >&2
    exit 1
fi
