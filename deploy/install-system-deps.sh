#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: clickhouse-server, Kamailio + SIPp, Chromium +
# chromedriver, docker-compose and promtool. Each step acts only when running as root and its binary is
# missing; otherwise it explains what to do.
set -euo pipefail
# Kamailio (acc + db_text + dialog modules are in the main package) and SIPp (sip-tester) for the
# tests that run real calls through a real proxy (tests/integration/test_kamailio_real.py).
if ! command -v kamailio >/dev/null 2>&1 || ! command -v sipp >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian kamailio and sip-tester (needed by the Kamailio tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio sip-tester >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio sip-tester >/dev/null; }
  else
    echo "kamailio/sipp missing and this is not root: apt-get install kamailio sip-tester" >&2
  fi
fi
# Chromium + chromedriver for the portal's real-browser test (tests/integration/test_portal_browser.py).
if ! command -v chromium >/dev/null 2>&1 || ! [ -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian chromium and chromium-driver (needed by the portal browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
  else
    echo "chromium/chromedriver missing and this is not root: apt-get install chromium chromium-driver" >&2
  fi
fi
# docker-compose (validates deploy/docker-compose.yml offline) and promtool from the Debian
# prometheus package (checks deploy/prometheus/ and runs its alert-rule tests): tests/unit/test_deploy_files.py.
if ! command -v docker-compose >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian docker-compose and prometheus (promtool), needed by the deploy tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose prometheus >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose prometheus >/dev/null; }
  else
    echo "docker-compose/promtool missing and this is not root: apt-get install docker-compose prometheus" >&2
  fi
fi
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
