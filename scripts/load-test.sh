#!/usr/bin/env bash
# Fairness under load (README "Fairness under load"): builds the CLI and runs
# `passare-imports load`, which starts a server and a worker on loopback
# (fresh database `passare_imports_load`, own queues), imports the same
# generated file idle and while a plain user floods watch streams and
# downloads, and prints the import's duration and a super admin's GetImport
# p99 for both. Bounded: --max-secs per measured import (default 600), the
# whole run at most LOAD_TIMEOUT seconds (default 1800).
#   scripts/load-test.sh [--rows N] [--watchers N] [--downloaders N]
# PROFILE=debug uses the debug build (quicker to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/passare-imports/target}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release -p passare-imports-cli
else
  cargo build -p passare-imports-cli
fi
exec timeout "${LOAD_TIMEOUT:-1800}" "$CARGO_TARGET_DIR/$profile/passare-imports" load "$@"
