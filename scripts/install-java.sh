#!/usr/bin/env bash
# Installs Debian's Java 17 runtime for the Spark tests (`--engine spark`, PySpark local mode), if
# no java is on the PATH.
set -euo pipefail
if command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ]; then exit 0; fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "java is not installed and this user cannot install it: run 'apt-get install openjdk-17-jre-headless' as root." >&2
  exit 0
fi
echo "Installing Debian's Java 17 runtime for the Spark tests (one time)..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
