#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser test of the /ops page, if missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "chromium is not installed and this user cannot install it: run 'apt-get install chromium chromium-driver' as root." >&2
  exit 0
fi
echo "Installing Debian's chromium for the browser tests (one time)..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
