#!/usr/bin/env bash
# mypy may only get better: fail when it finds more errors than the count in .mypy-baseline.
# When you fix some, lower that number in the same commit (the message below says to).
set -uo pipefail
cd "$(dirname "$0")/.."
MYPY="${MYPY:-.venv/bin/mypy}"
baseline=$(tr -dc '0-9' < .mypy-baseline)
output=$("$MYPY" 2>&1)
status=$?
if [ "$status" -gt 1 ]; then echo "$output"; echo "mypy could not run (exit $status)" >&2; exit "$status"; fi
found=$(printf '%s\n' "$output" | sed -n 's/^Found \([0-9]*\) error.*/\1/p' | tail -1)
found=${found:-0}
if [ "$found" -gt "$baseline" ]; then
  printf '%s\n' "$output" | grep -E ': error:' | tail -40
  echo "mypy: $found errors, more than the $baseline allowed by .mypy-baseline: fix the new ones" >&2
  exit 1
fi
if [ "$found" -lt "$baseline" ]; then
  echo "mypy: $found errors (baseline $baseline): lower .mypy-baseline to $found in this commit"
  exit 1
fi
echo "mypy: $found errors (baseline $baseline, no new ones)"
