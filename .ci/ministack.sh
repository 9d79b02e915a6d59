#!/usr/bin/env bash
# MiniStack, a local AWS emulator from PyPI, pinned, in its own venv, bound to 127.0.0.1.
#
#   bash .ci/ministack.sh start STATE_DIR   # prints the endpoint, leaves STATE_DIR/pid
#   bash .ci/ministack.sh stop STATE_DIR    # stops that process by its PID
#
# MiniStack pins botocore, so it lives in .venv-ministack, installed in one pip command
# with aws-sam-translator (which would otherwise upgrade botocore and break it).
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/tools.sh # MINISTACK_VERSION, SAM_TRANSLATOR_VERSION
VENV=.venv-ministack

install() {
    if [[ ! -x $VENV/bin/ministack ]] || ! "$VENV/bin/pip" show ministack 2>/dev/null | grep -qx "Version: $MINISTACK_VERSION"; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "ministack==$MINISTACK_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local state=$1
    mkdir -p "$state"
    install
    local port
    port=$(free_port)
    local endpoint="http://127.0.0.1:$port"
    # Loopback only; AWS_ENDPOINT_URL so that what MiniStack runs (Lambda bootstraps)
    # reaches MiniStack's own services. Its temporary files stay under STATE_DIR.
    # setsid: its own process group, so that stop also ends the Lambda processes it runs.
    GATEWAY_PORT=$port BIND_HOST=127.0.0.1 MINISTACK_HOST=127.0.0.1 \
        AWS_ENDPOINT_URL=$endpoint TMPDIR=$state S3_DATA_DIR=$state/s3 LOG_LEVEL=WARNING \
        setsid "$VENV/bin/ministack" >"$state/ministack.log" 2>&1 &
    echo $! >"$state/pid"
    echo "$endpoint" >"$state/endpoint"
    for _ in $(seq 1 150); do
        if curl -fsS "$endpoint/_ministack/health" >/dev/null 2>&1 \
            || curl -fsS "$endpoint/_localstack/health" >/dev/null 2>&1; then
            echo "$endpoint"
            return 0
        fi
        if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
            echo "ministack exited; its log:" >&2
            cat "$state/ministack.log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "ministack did not answer on $endpoint within 30 s; its log:" >&2
    cat "$state/ministack.log" >&2
    stop "$state"
    return 1
}

stop() {
    local state=$1
    [[ -f $state/pid ]] || return 0
    local pid
    pid=$(cat "$state/pid")
    # The process group led by that PID: MiniStack and the Lambda bootstraps it started.
    if kill -0 "$pid" 2>/dev/null; then
        kill -- "-$pid" 2>/dev/null || kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    kill -9 -- "-$pid" 2>/dev/null || true
    rm -f "$state/pid"
}

case ${1:-} in
    start) start "${2:?state dir}" ;;
    stop) stop "${2:?state dir}" ;;
    *) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
