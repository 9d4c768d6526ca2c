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
SERVERS_NAME=interop
# shellcheck source=interop/servers.sh
source interop/servers.sh

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "interop: needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

start_servers DEVICE_POLL_INTERVAL_SECS=1

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
