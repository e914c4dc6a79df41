#!/usr/bin/env bash
# The browser tests of the Operations Center page (integration-tests/tests/browser.rs):
# Debian's Chromium, headless, driven by Playwright against the real server,
# worker, gateway, PostgreSQL and RabbitMQ. Screenshots go to
# $SCREENSHOT_DIR (default: $CARGO_TARGET_DIR/tmp/browser-screenshots).
#
#   scripts/browser-tests.sh          the tests that run today
#   scripts/browser-tests.sh --all    also those that need the server's resumable
#                                     upload (uploads from the page, offline, reload)
#   scripts/browser-tests.sh --uploads   only those
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/passare-imports/target}"
scripts/setup.sh
scripts/services.sh
cargo build -p passare-imports-cli --locked
case "${1:-}" in
  --all) ignored=(--run-ignored all) ;;
  --uploads) ignored=(--run-ignored only) ;;
  "") ignored=() ;;
  *) echo "usage: $0 [--all | --uploads]" >&2; exit 2 ;;
esac
exec cargo nextest run -p passare-imports-integration-tests --test browser --locked --no-fail-fast "${ignored[@]}"
