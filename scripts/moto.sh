#!/usr/bin/env bash
# The S3-compatible object store of the storage tests: moto in server mode
# (installed by scripts/setup.sh into the Python test tools' virtual
# environment), on 127.0.0.1 only. moto keeps its buckets in memory: nothing
# survives it, and every test makes a bucket of its own.
#
#   scripts/moto.sh start PORT PIDFILE   starts it in the background, waits
#                                        until it answers, writes its pid
#   scripts/moto.sh stop PIDFILE         stops the one started so
#   scripts/moto.sh [PORT]               runs it in the foreground (default
#                                        port 5055), for running tests by hand
#                                        with PASSARE_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$HOME/.cache/passare-imports/venv"
moto="$venv/bin/moto_server"
if [ ! -x "$moto" ]; then
  echo "error: $moto is missing; run scripts/setup.sh (it installs moto[server] from integration-tests/python/requirements.txt)" >&2
  exit 1
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-}" in
  start)
    port=${2:?port}
    pidfile=${3:?pid file}
    log="${pidfile%.pid}.log"
    if port_open "$port"; then
      echo "error: port $port is taken; moto cannot start there" >&2
      exit 1
    fi
    nohup "$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 150); do
      if port_open "$port"; then
        echo "moto (S3) on 127.0.0.1:$port, pid $(cat "$pidfile"), log $log"
        exit 0
      fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "error: moto exited at start; its log:" >&2
        cat "$log" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "error: moto did not open port $port within 30 s" >&2
    kill "$(cat "$pidfile")" 2>/dev/null || true
    exit 1
    ;;
  stop)
    pidfile=${2:?pid file}
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    exec "$moto" -H 127.0.0.1 -p "${1:-5055}"
    ;;
esac
