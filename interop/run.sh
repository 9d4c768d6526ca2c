#!/usr/bin/env bash
# Interop check: real relying-party libraries sign in against wecom-oidc end to end. Builds the
# binary, starts the WeCom simulator (sample corporation) and the provider on a fresh SQLite file in
# a temporary directory on free loopback ports, and runs, each against its own registered client:
#   interop/node     openid-client (code flow, and a CLI's device flow: initiateDeviceAuthorization,
#                    pollDeviceAuthorizationGrant), passport + its strategy, passport-oauth2
#                    (npm ci, lock file)
#   interop/python   Authlib's Flask client (pinned requirements, throw-away virtualenv)
#   interop/ruby     GitLab's omniauth strategy   } Debian packages; skipped when missing unless
#   interop/apache   Apache's mod_auth_openidc    } INTEROP_REQUIRE_ALL is set (CI sets it)
#   interop/node     oidc-agent's oidc-gen --flow=device (oidc-agent-cli) }
# then stops everything. Exits non-zero if any check fails, printing the servers' logs.
#
#   bash interop/run.sh
#   WECOM_OIDC_BIN=path bash interop/run.sh   # use a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wecom-oidc-interop.XXXXXX")
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

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "interop: needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ -z "${WECOM_OIDC_BIN:-}" ]; then
  echo "== interop: cargo build"
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
      echo "interop: $2 exited at start-up" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "interop: $2 did not answer at $1" >&2
  return 1
}

SIM_PORT=$(free_port)
SIMULATOR="http://127.0.0.1:$SIM_PORT"
"$WECOM_OIDC_BIN" simulator --listen "127.0.0.1:$SIM_PORT" >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
wait_for "$SIMULATOR/_sim" simulator "${PIDS[-1]}"

PROVIDER_PORT=$(free_port)
export ISSUER="http://127.0.0.1:$PROVIDER_PORT"
export ADMIN_TOKEN="interop-admin-token-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export SIMULATOR
# The sample corporation's first app (src/simulator/sample_corp.toml).
env -u DATABASE_URL \
  OIDC_ISSUER="$ISSUER" \
  LISTEN_ADDR="127.0.0.1:$PROVIDER_PORT" \
  DATABASE_URL="sqlite://$WORK/interop.db" \
  KEY_ENCRYPTION_KEY="interop-key-encryption-key-0123456789abcdef" \
  WECOM_CORP_ID=wwsim0000000001 \
  WECOM_CORP_SECRET=sim-secret-1000002 \
  WECOM_AGENT_ID=1000002 \
  WECOM_API_BASE="$SIMULATOR" \
  WECOM_LOGIN_BASE="$SIMULATOR" \
  WECOM_OAUTH_BASE="$SIMULATOR" \
  DEVICE_POLL_INTERVAL_SECS=1 \
  RUST_LOG=info,sqlx=warn \
  "$WECOM_OIDC_BIN" serve >"$WORK/provider.log" 2>&1 &
PIDS+=($!)
wait_for "$ISSUER/readyz" provider "${PIDS[-1]}"
echo "== interop: provider $ISSUER, WeCom simulator $SIMULATOR"

echo "== interop: Node (openid-client code and device flows, passport)"
(cd interop/node && npm ci --silent --no-audit --no-fund && node --test --test-reporter=spec)

echo "== interop: oidc-agent (oidc-gen --flow=device)"
if command -v oidc-gen >/dev/null 2>&1 && command -v oidc-agent >/dev/null 2>&1; then
  (cd interop/node && node --test --test-reporter=spec oidc-agent.check.js)
elif [ -n "${INTEROP_REQUIRE_ALL:-}" ]; then
  echo "interop: oidc-agent-cli (oidc-gen, oidc-agent) is required" >&2
  exit 1
else
  echo "SKIPPED: needs oidc-agent-cli (Debian package)"
fi

echo "== interop: Python (Authlib's Flask client)"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check -r interop/python/requirements.txt
(cd interop/python && "$WORK/venv/bin/python" -m unittest -v test_authlib)

echo "== interop: Ruby (GitLab's omniauth strategy)"
if ruby -e 'require "omniauth_openid_connect"; require "rack/test"; require "minitest"' 2>/dev/null; then
  ruby interop/ruby/gitlab_omniauth_test.rb --verbose
elif [ -n "${INTEROP_REQUIRE_ALL:-}" ]; then
  echo "interop: Ruby with ruby-omniauth-openid-connect and ruby-rack-test is required" >&2
  exit 1
else
  echo "SKIPPED: needs ruby, ruby-omniauth-openid-connect and ruby-rack-test (Debian packages)"
fi

echo "== interop: Apache (mod_auth_openidc)"
if command -v apache2 >/dev/null 2>&1 && [ -f /usr/lib/apache2/modules/mod_auth_openidc.so ]; then
  (cd interop/apache && "$WORK/venv/bin/python" -m unittest -v test_mod_auth_openidc)
elif [ -n "${INTEROP_REQUIRE_ALL:-}" ]; then
  echo "interop: apache2-bin and libapache2-mod-auth-openidc are required" >&2
  exit 1
else
  echo "SKIPPED: needs apache2-bin and libapache2-mod-auth-openidc (Debian packages)"
fi

echo "== interop: every check passed"
