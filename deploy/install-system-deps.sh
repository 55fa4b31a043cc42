#!/usr/bin/env bash
# Installs the Debian clickhouse-server used by the native-protocol tests.
# Only acts when running as root and the binary is missing; otherwise explains what to do.
set -euo pipefail
have_server() { command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse ]; }
if have_server; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian clickhouse-server (needed by the native-protocol tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's postinst may try to start a service; there is no init system here, so ignore that part.
  apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null || true
  have_server || { echo "clickhouse-server failed to install" >&2; exit 1; }
else
  echo "clickhouse-server is not installed and this is not root: install it with 'apt-get install clickhouse-server'" >&2
  echo "(the native-protocol tests will fail under CI=true without it)" >&2
fi
