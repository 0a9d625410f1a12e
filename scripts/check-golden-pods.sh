#!/usr/bin/env bash
# An independent schema check of every rendered Pod in golden/: kubernetes-validate (PyPI) with the
# Kubernetes 1.37 schemas, in strict mode (unknown fields rejected).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/setup-test.sh):$PATH"
shopt -s nullglob
pods=(golden/*/pod.yaml)
[ "${#pods[@]}" -gt 0 ] || { echo "no golden pod.yaml found" >&2; exit 1; }
failed=0
for f in "${pods[@]}"; do
  out=$(kubernetes-validate -k 1.37.0 --strict --quiet "$f" 2>&1) || true
  if [ -n "$out" ]; then
    echo "$out"
    failed=$((failed + 1))
  fi
done
echo "golden pod schema check (kubernetes-validate 1.37.0, strict): ${#pods[@]} pods, $failed invalid"
[ "$failed" -eq 0 ]
