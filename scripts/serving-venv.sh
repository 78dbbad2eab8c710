#!/usr/bin/env bash
# The serving image's contents as a venv, for machines without a Docker engine: the packages of
# requirements-serving.lock and the code the Dockerfile's serving stage copies (leadscore/,
# features/, serving/; not training/). tests/serving/test_serving_install.py runs the compose
# topology against it (`make serving-venv` builds it before `make test`).
#   bash scripts/serving-venv.sh [VENV]   (default: $LEADSCORE_SERVING_VENV, else .venv-serving)
# The packages are installed again only when the lock changed (they need the network); the code
# is installed again every time (quick; pip fetches setuptools to build it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${LEADSCORE_SERVING_VENV:-.venv-serving}}"
python="${PYTHON:-python3}"
pip=(--quiet --disable-pip-version-check)
lock_sum=$(sha256sum requirements-serving.lock | cut -d' ' -f1)
if [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install "${pip[@]}" -r requirements-serving.lock
  echo "$lock_sum" > "$venv/.lock-sha256"
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp pyproject.toml README.md "$stage"/
cp -r leadscore features serving "$stage"/  # the Dockerfile's serving stage copies the same
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
"$venv/bin/python" -m pip install "${pip[@]}" --no-deps --force-reinstall "$stage"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$venv: $(du -sh "$site" | cut -f1) in $site"
