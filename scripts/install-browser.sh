#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the dashboard's browser tests (Debian's chromium +
# chromium-driver; selenium comes from the dev extra). Idempotent: does nothing when both are present.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "browser: chromium and chromedriver present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "browser: installing chromium and chromium-driver (Debian packages)"
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null
echo "browser: $(chromium --version 2>/dev/null || echo chromium installed)"
