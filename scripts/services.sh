#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) are up.
# Starts them when they are installed but stopped; fails with a clear message
# when they are missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2 seconds=${3:-60}
  for _ in $(seq "$seconds"); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "error: $name did not open port $port within ${seconds}s" >&2
  return 1
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port 5432 PostgreSQL 60
    return 0
  fi
  echo "error: PostgreSQL is not running on 127.0.0.1:5432 and is not installed (Debian: apt-get install postgresql)" >&2
  exit 1
}

ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached
    timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
    wait_port 5672 RabbitMQ 120
    return 0
  fi
  echo "error: RabbitMQ is not running on 127.0.0.1:5672 and is not installed (Debian: apt-get install rabbitmq-server)" >&2
  exit 1
}

ensure_postgres
ensure_rabbitmq
