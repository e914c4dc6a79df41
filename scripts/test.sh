#!/usr/bin/env bash
# The test command: formatting, clippy, buf lint, and every test (unit and
# integration, against the real PostgreSQL and RabbitMQ on this machine, and
# an S3-compatible object store: moto, started here and stopped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/passare-imports/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/setup.sh
scripts/services.sh

# The object store of the S3 tests (crates/storage's suite, many_hosts,
# storage_faults): moto on a free local port, stopped however this script
# ends. The tests find it through PASSARE_TEST_S3_ENDPOINT, always set here.
moto_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_pid="$(mktemp -d)/moto.pid"
trap 'scripts/moto.sh stop "$moto_pid"' EXIT
scripts/moto.sh start "$moto_port" "$moto_pid"
export PASSARE_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_port"

# Databases of test runs that crashed more than an hour ago.
psql -h 127.0.0.1 -U postgres -d postgres -qAt -c "
  SELECT datname FROM pg_database
   WHERE datname ~ '^pi_test_[0-9]{14}_'
     AND to_timestamp(substr(datname, 9, 14), 'YYYYMMDDHH24MISS') < now() - interval '1 hour'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"; done

echo "== house rules (file and function size, module cycles)"
python3 scripts/structure.py
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== TypeScript (gateway/web: tsc --noEmit)"
npm --prefix gateway/web run --silent typecheck
echo "== buf lint"
(cd integration-tests/grpc-web && node_modules/.bin/buf lint ../..)
echo "== tests"
# Integration tests start `passare-imports work` processes: build the binary first.
cargo build -p passare-imports-cli --locked
# The integration tests are one binary (integration-tests/tests/it), a
# module per area. Its broker_restart module stops RabbitMQ for a few seconds,
# which would disturb every other test: it runs alone, after them, and runs
# even when they failed. `cargo nextest list -E …` shows what a filter selects.
broker_restart="test(/^broker_restart::/)"
status=0
cargo nextest run --workspace --locked --no-fail-fast -E "not $broker_restart" || status=$?
echo "== broker restart test (alone)"
cargo nextest run -p passare-imports-integration-tests --locked -E "$broker_restart" || status=$?
exit "$status"
