#!/usr/bin/env bash
# Installs Debian's docker-compose (for `docker-compose config`, the deployment test) when neither
# `docker compose` nor `docker-compose` is there. No Docker engine is needed to validate a file.
set -euo pipefail
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "docker compose is not installed and this user cannot install it: run 'apt-get install docker-compose' as root." >&2
  exit 0
fi
echo "Installing Debian's docker-compose for the deployment test (one time)..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-compose >/dev/null
