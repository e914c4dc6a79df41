#!/usr/bin/env bash
# Installs what a clean checkout needs to build and test Passare Imports:
# rustfmt and clippy, cargo-nextest when missing, the PostgreSQL client (psql,
# used by the benchmark), and the Node packages of the grpc-web test client
# (which also bring the buf CLI) with its generated code, the Operations
# Center page (gateway/web: npm ci, then its build into gateway/web/dist) with
# Playwright's library (no browser download), Debian's Chromium for the
# browser tests, and the Python test tools (integration-tests/python: pyarrow,
# and moto, the S3-compatible server of the storage tests). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$installed" || rustup component add "$c"
  done
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

client=integration-tests/grpc-web
want=$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$client/node_modules/.installed-lock-sha256" 2>/dev/null)" != "$want" ]; then
  npm ci --prefix "$client" --no-audit --no-fund --loglevel=error
  echo "$want" >"$client/node_modules/.installed-lock-sha256"
fi
npm --prefix "$client" run --silent generate

# Python readers the tests check the service's output with (pyarrow for the
# raw archive) and moto in server mode (the S3 tests' object store, which
# scripts/test.sh starts with scripts/moto.sh), in a virtual environment of
# their own.
venv="$HOME/.cache/passare-imports/venv"
requirements=integration-tests/python/requirements.txt
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$venv/.installed-requirements-sha256" 2>/dev/null)" != "$want" ]; then
  echo "installing the Python test tools ($requirements)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$venv/.installed-requirements-sha256"
fi

scripts/build-web.sh
