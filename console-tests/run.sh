#!/usr/bin/env bash
# Browser tests of the admin console and of the device flow's pages: Debian's chromium (headless,
# never downloaded) driven by puppeteer-core. Builds the binary, starts the WeCom simulator (sample
# corporation) and the provider with ADMIN_GROUPS=tag:管理员 on a fresh SQLite file on free
# loopback ports (interop/servers.sh), runs console.test.mjs and device.test.mjs, and stops
# everything. Screenshots go to docs/screenshots/ (SCREENSHOTS=dir to change). Exits non-zero if a
# check fails, printing the servers' logs.
#
#   bash console-tests/run.sh
#   WECOM_OIDC_BIN=path bash console-tests/run.sh   # use a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS_NAME=console
# shellcheck source=interop/servers.sh
source interop/servers.sh

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "console-tests: $CHROMIUM is missing (apt-get install -y chromium)" >&2
  exit 1
fi

export SCREENSHOTS="${SCREENSHOTS:-$ROOT/docs/screenshots}"
# ZhangSan holds the tag 管理员 in the sample corporation.
start_servers ADMIN_GROUPS="tag:管理员"
echo "== console: chromium $CHROMIUM"

(cd console-tests && npm ci --silent --no-audit --no-fund && node --test --test-reporter=spec console.test.mjs device.test.mjs)
echo "== console: every browser check passed"
