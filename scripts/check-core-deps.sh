#!/usr/bin/env bash
# sgsim-core must stay pure: no IO or async crate anywhere in its dependency tree.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|async-std|smol|mio|hyper|hyper-util|reqwest|bollard|kube|kube-client|axum|tonic|testcontainers|futures-io|socket2)$'
bad=$(cargo tree -p sgsim-core -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u | grep -E "$forbidden" || true)
if [ -n "$bad" ]; then
  echo "sgsim-core depends on IO/async crates: $bad" >&2
  exit 1
fi
echo "sgsim-core dependency check: ok (no IO or async crates)"
