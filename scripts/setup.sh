#!/usr/bin/env bash
# One-time machine set-up for sgsim, idempotent: host packages the image builds need and a running
# Docker Engine (what running sgsim needs; test-only tools: scripts/setup-test.sh). Safe to run on every invocation; does nothing when all is there.
set -euo pipefail

log() { printf 'sgsim setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
[ -x /bin/bash-static ] || need_pkgs+=(bash-static)
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v file >/dev/null 2>&1 || need_pkgs+=(file)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]} (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "Docker Engine is not running; starting dockerd"
  as_root sh -c 'nohup dockerd >/var/log/sgsim-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/sgsim-dockerd.log"; exit 1; }
fi
