# Sourced by interop/run.sh and console-tests/run.sh: starts the WeCom simulator (sample
# corporation) and the provider on free loopback ports with a fresh SQLite file in a temporary
# directory, and stops both when the sourcing script exits, printing their logs if it failed.
#
#   SERVERS_NAME=interop            # names the temporary directory, the database and messages
#   source interop/servers.sh
#   start_servers [VAR=value …]     # extra provider settings
#
# Afterwards ISSUER, SIMULATOR and ADMIN_TOKEN are exported and WORK is the temporary directory.
# WECOM_OIDC_BIN=path uses a binary already built instead of `cargo build`.

ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wecom-oidc-$SERVERS_NAME.XXXXXX")
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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # URL NAME PID
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$3" 2>/dev/null; then
      echo "$SERVERS_NAME: $2 exited at start-up" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "$SERVERS_NAME: $2 did not answer at $1" >&2
  return 1
}

start_servers() {
  if [ -z "${WECOM_OIDC_BIN:-}" ]; then
    echo "== $SERVERS_NAME: cargo build"
    cargo build --quiet --bin wecom-oidc
    WECOM_OIDC_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/wecom-oidc"
  fi

  local sim_port provider_port
  sim_port=$(free_port)
  export SIMULATOR="http://127.0.0.1:$sim_port"
  "$WECOM_OIDC_BIN" simulator --listen "127.0.0.1:$sim_port" >"$WORK/simulator.log" 2>&1 &
  PIDS+=($!)
  wait_for "$SIMULATOR/_sim" simulator "${PIDS[-1]}"

  provider_port=$(free_port)
  export ISSUER="http://127.0.0.1:$provider_port"
  ADMIN_TOKEN="$SERVERS_NAME-admin-token-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  export ADMIN_TOKEN
  # The sample corporation's first app (src/simulator/sample_corp.toml).
  env -u DATABASE_URL \
    OIDC_ISSUER="$ISSUER" \
    LISTEN_ADDR="127.0.0.1:$provider_port" \
    DATABASE_URL="sqlite://$WORK/$SERVERS_NAME.db" \
    KEY_ENCRYPTION_KEY="$SERVERS_NAME-key-encryption-key-0123456789abcdef" \
    WECOM_CORP_ID=wwsim0000000001 \
    WECOM_CORP_SECRET=sim-secret-1000002 \
    WECOM_AGENT_ID=1000002 \
    WECOM_API_BASE="$SIMULATOR" \
    WECOM_LOGIN_BASE="$SIMULATOR" \
    WECOM_OAUTH_BASE="$SIMULATOR" \
    RUST_LOG=info,sqlx=warn \
    "$@" \
    "$WECOM_OIDC_BIN" serve >"$WORK/provider.log" 2>&1 &
  PIDS+=($!)
  wait_for "$ISSUER/readyz" provider "${PIDS[-1]}"
  echo "== $SERVERS_NAME: provider $ISSUER, WeCom simulator $SIMULATOR"
}
