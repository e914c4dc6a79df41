#!/usr/bin/env bash
# The browser tests of the Operations Center page (integration-tests/tests/browser.rs):
# Debian's Chromium, headless, driven by Playwright against the real server,
# worker, gateway, PostgreSQL and RabbitMQ. Screenshots go to
# $SCREENSHOT_DIR (default: $CARGO_TARGET_DIR/tmp/browser-screenshots).
#
#   scripts/browser-tests.sh   every browser test (page, journeys, uploads
#                              through offline and reload)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/passare-imports/target}"
scripts/setup.sh
scripts/services.sh
cargo build -p passare-imports-cli --locked
exec cargo nextest run -p passare-imports-integration-tests --locked --no-fail-fast -E "test(/^browser::/)"
