#!/bin/bash
# sgsim stand-in for docker:dind's entrypoint. Starts dockerd on unix:///var/run/docker.sock and,
# like the real image, on TCP: with DOCKER_TLS_CERTDIR set (the image default is /certs) it makes a
# CA and server/client certificates there (ca/, server/, client/) and serves TLS on
# tcp://0.0.0.0:2376; with DOCKER_TLS_CERTDIR set but empty, plain tcp://0.0.0.0:2375. The daemon
# log goes to stdout. There is no registry: on the first start the images baked into this image
# are loaded (through a private socket, before the public ones exist, so a client never sees the
# daemon without them) so that `docker run alpine ...` works.
# Arguments starting with '-' go to dockerd; any other command is run instead (e.g. `sh`), as
# the real entrypoint does. Prints "sgsim-dind: ready" once the daemon answers.
set -uo pipefail
source /usr/local/lib/sgsim/iptables-select.sh

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ] && [ "$1" != dockerd ]; then
    exec "$@"
fi
[ "${1:-}" = dockerd ] && shift

say() { echo "sgsim-dind: $*"; }

# make_cert DIR CN USAGE SAN: an EC key and a certificate signed by the CA in $certdir/ca.
make_cert() {
    local dir=$1 cn=$2 usage=$3 san=$4
    mkdir -p "$dir"
    [ -s "$dir/cert.pem" ] && return 0
    openssl ecparam -genkey -name prime256v1 -noout -out "$dir/key.pem"
    openssl req -new -key "$dir/key.pem" -subj "/CN=$cn" -out "$dir/csr.pem"
    {
        echo "extendedKeyUsage = $usage"
        [ -n "$san" ] && echo "subjectAltName = $san"
    } > "$dir/openssl.cnf"
    openssl x509 -req -in "$dir/csr.pem" -CA "$certdir/ca/cert.pem" -CAkey "$certdir/ca/key.pem" \
        -CAcreateserial -days 825 -extfile "$dir/openssl.cnf" -out "$dir/cert.pem"
    cp "$certdir/ca/cert.pem" "$dir/ca.pem"
    chmod 0644 "$dir/cert.pem" "$dir/ca.pem"
    chmod 0600 "$dir/key.pem"
    # Clients in other containers read the client key through a shared path.
    [ "$usage" = clientAuth ] && chmod 0644 "$dir/key.pem"
    return 0
}

make_tls() {
    mkdir -p "$certdir/ca"
    if [ ! -s "$certdir/ca/cert.pem" ]; then
        openssl ecparam -genkey -name prime256v1 -noout -out "$certdir/ca/key.pem"
        openssl req -new -x509 -key "$certdir/ca/key.pem" -subj "/CN=docker:dind CA" -days 825 \
            -out "$certdir/ca/cert.pem"
    fi
    local san="DNS:localhost,DNS:docker,DNS:$(hostname),IP:127.0.0.1,IP:::1" ip
    for ip in $(ip -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }'); do
        san="$san,IP:$ip"
    done
    make_cert "$certdir/server" "docker:dind server" serverAuth "$san"
    make_cert "$certdir/client" "docker:dind client" clientAuth ""
}

# --dns: nested containers get a local resolver, never dockerd's public fallback servers (there
# is no network beyond this machine); a --dns argument adds to it.
args=(--host unix:///var/run/docker.sock --storage-driver "${SGSIM_DIND_STORAGE_DRIVER:-overlay2}" --dns 127.0.0.1)
certdir=${DOCKER_TLS_CERTDIR-}
if [ "${DOCKER_TLS_CERTDIR+set}" = set ] && [ -z "$certdir" ]; then
    # --tls=false says so explicitly; without it dockerd 20.10 sleeps 15 s to warn about it.
    args+=(--host tcp://0.0.0.0:2375 --tls=false)
elif [ -n "$certdir" ]; then
    if make_tls; then
        args+=(--host tcp://0.0.0.0:2376 --tlsverify --tlscacert "$certdir/server/ca.pem"
               --tlscert "$certdir/server/cert.pem" --tlskey "$certdir/server/key.pem")
    else
        say "making TLS certificates in $certdir failed; serving the unix socket only"
    fi
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
