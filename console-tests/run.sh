#!/usr/bin/env bash
# Browser tests of the admin console: Debian's chromium (headless, never downloaded) driven by
# puppeteer-core. Builds the binary, starts the WeCom simulator (sample corporation) and the
# provider with ADMIN_GROUPS=tag:管理员 on a fresh SQLite file on free loopback ports, runs
# console.test.mjs, and stops everything. Screenshots go to docs/screenshots/ (SCREENSHOTS=dir to
# change). Exits non-zero if a check fails, printing the servers' logs.
#
#   bash console-tests/run.sh
#   WECOM_OIDC_BIN=path bash console-tests/run.sh   # use a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wecom-oidc-console.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "---- $(basename "$log") (last 40 lines)"
      tail -n 40 "$log"
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "console-tests: $CHROMIUM is missing (apt-get install -y chromium)" >&2
  exit 1
fi

if [ -z "${WECOM_OIDC_BIN:-}" ]; then
  echo "== console: cargo build"
  cargo build --quiet --bin wecom-oidc
  WECOM_OIDC_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/wecom-oidc"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # URL NAME PID
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$3" 2>/dev/null; then
      echo "console-tests: $2 exited at start-up" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "console-tests: $2 did not answer at $1" >&2
  return 1
}

SIM_PORT=$(free_port)
export SIMULATOR="http://127.0.0.1:$SIM_PORT"
"$WECOM_OIDC_BIN" simulator --listen "127.0.0.1:$SIM_PORT" >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
wait_for "$SIMULATOR/_sim" simulator "${PIDS[-1]}"

PROVIDER_PORT=$(free_port)
export ISSUER="http://127.0.0.1:$PROVIDER_PORT"
export ADMIN_TOKEN="console-admin-token-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export SCREENSHOTS="${SCREENSHOTS:-$ROOT/docs/screenshots}"
# The sample corporation's first app (src/simulator/sample_corp.toml); ZhangSan holds the tag 管理员.
env -u DATABASE_URL \
  OIDC_ISSUER="$ISSUER" \
  LISTEN_ADDR="127.0.0.1:$PROVIDER_PORT" \
  DATABASE_URL="sqlite://$WORK/console.db" \
  ADMIN_GROUPS="tag:管理员" \
  WECOM_CORP_ID=wwsim0000000001 \
  WECOM_CORP_SECRET=sim-secret-1000002 \
  WECOM_AGENT_ID=1000002 \
  WECOM_API_BASE="$SIMULATOR" \
  WECOM_LOGIN_BASE="$SIMULATOR" \
  WECOM_OAUTH_BASE="$SIMULATOR" \
  RUST_LOG=info,sqlx=warn \
  "$WECOM_OIDC_BIN" serve >"$WORK/provider.log" 2>&1 &
PIDS+=($!)
wait_for "$ISSUER/readyz" provider "${PIDS[-1]}"
echo "== console: provider $ISSUER, WeCom simulator $SIMULATOR, chromium $CHROMIUM"

(cd console-tests && npm ci --silent --no-audit --no-fund && node --test --test-reporter=spec console.test.mjs)
echo "== console: every browser check passed"
