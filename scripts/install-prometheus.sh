#!/usr/bin/env bash
# Prometheus and promtool for the metrics tests (Debian's `prometheus` package). The tests start the binary
# themselves on a loopback port with their own config and storage directory; the packaged system service is
# never used. Idempotent: does nothing when both programs are present.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: prometheus and promtool present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "prometheus: installing the Debian package"
$sudo apt-get update -qq
# policy-rc.d-free installs in containers may try to start the service; it is not needed, so a failing
# start is not an error here as long as the programs are installed.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
echo "prometheus: $(prometheus --version 2>&1 | head -n 1)"
