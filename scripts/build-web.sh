#!/usr/bin/env bash
# Builds the Operations Center page into gateway/web/dist (served by the
# gateway): installs its Node packages from the committed lockfile when they
# changed (Playwright's browser download skipped: tests use Debian's
# /usr/bin/chromium), generates the API's TypeScript, bundles with esbuild.
set -euo pipefail
cd "$(dirname "$0")/../gateway/web"
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.installed-lock-sha256 2>/dev/null)" != "$want" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >node_modules/.installed-lock-sha256
fi
npm run --silent build
