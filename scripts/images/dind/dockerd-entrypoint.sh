#!/bin/bash
# sgsim stand-in for docker:dind's entrypoint. Starts dockerd on unix:///var/run/docker.sock
# (plus tcp://0.0.0.0:2375 when DOCKER_TLS_CERTDIR is set and empty, like the real image's
# non-TLS mode) with its log on stdout. There is no registry: on the first start the images
# baked into this image are loaded (through a private socket, before the public ones exist, so
# a client never sees the daemon without them) so that `docker run alpine ...` works.
# Arguments starting with '-' go to dockerd; any other command is run instead (e.g. `sh`), as
# the real entrypoint does. Prints "sgsim-dind: ready" once the daemon answers.
set -uo pipefail
source /usr/local/lib/sgsim/iptables-select.sh

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ] && [ "$1" != dockerd ]; then
    exec "$@"
fi
[ "${1:-}" = dockerd ] && shift

say() { echo "sgsim-dind: $*"; }
args=(--host unix:///var/run/docker.sock --storage-driver "${SGSIM_DIND_STORAGE_DRIVER:-overlay2}")
if [ "${DOCKER_TLS_CERTDIR+set}" = set ] && [ -z "$DOCKER_TLS_CERTDIR" ]; then
    # --tls=false says so explicitly; without it dockerd 20.10 sleeps 15 s to warn about it.
    args+=(--host tcp://0.0.0.0:2375 --tls=false)
elif [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
    say "TLS (DOCKER_TLS_CERTDIR=$DOCKER_TLS_CERTDIR) is not simulated; listening on the unix socket only"
fi
mkdir -p /var/run
rm -f /var/run/docker.sock /var/run/docker.pid
say "iptables backend: $(sgsim_select_iptables)"

# wait_for_daemon PID SOCKET: true once the daemon answers on SOCKET, false if it exits first.
wait_for_daemon() {
    local _
    for _ in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || return 1
        docker -H "unix://$2" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Preload first, on a private socket, so no client ever sees the daemon without the images.
preload=/usr/local/share/sgsim/preload
marker=/var/lib/docker/.sgsim-preloaded
if [ -f "$preload/images.tar" ] && [ ! -f "$marker" ]; then
    private=/run/sgsim-dind-preload.sock
    dockerd --host "unix://$private" --pidfile /run/sgsim-dind-preload.pid \
        --storage-driver "${SGSIM_DIND_STORAGE_DRIVER:-overlay2}" "$@" >/dev/null 2>&1 &
    preload_pid=$!
    if wait_for_daemon "$preload_pid" "$private"; then
        d=(docker -H "unix://$private")
        "${d[@]}" load -q -i "$preload/images.tar" >/dev/null || say "loading preloaded images failed"
        while read -r src dst; do
            case "$src" in ''|'#'*) continue ;; esac
            "${d[@]}" tag "$src" "$dst" || say "tagging $dst failed"
        done < "$preload/preload.list"
        # Drop the build-side names; only the vendor names stay.
        grep -v '^#' "$preload/preload.list" | cut -d' ' -f1 | sort -u | xargs -r "${d[@]}" rmi >/dev/null 2>&1
        touch "$marker"
        say "preloaded: $(grep -v '^#' "$preload/preload.list" | cut -d' ' -f2 | tr '\n' ' ')"
    else
        say "the preload daemon did not start"
    fi
    kill -TERM "$preload_pid" 2>/dev/null
    wait "$preload_pid" 2>/dev/null
    rm -f "$private"
fi

dockerd "${args[@]}" "$@" 2>&1 &
dockerd_pid=$!
trap 'kill -TERM "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid"; exit 0' TERM INT
if ! wait_for_daemon "$dockerd_pid" /var/run/docker.sock; then
    say "dockerd did not start"
    wait "$dockerd_pid"
    exit 1
fi
say "ready"
wait "$dockerd_pid"
