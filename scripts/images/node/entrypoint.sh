#!/bin/bash
# sgsim node: a kind-style Kubernetes node. Starts the node's dockerd on
# unix:///run/sgsim/docker.sock (and /var/run/docker.sock for `docker exec <node> docker ...`)
# with the bridge from $SGSIM_NODE_BIP, and the node agent (agent.sock tunnel, TCP 8080 ->
# delegate.sock). Prints "sgsim-node: ready" once both answer; exits when either dies, or 0 on
# SIGTERM/SIGINT after stopping both.
set -uo pipefail
source /usr/local/lib/sgsim/iptables-select.sh

say() { echo "sgsim-node: $*"; }
dir=/run/sgsim
bip=${SGSIM_NODE_BIP:-10.244.0.1/24}
mkdir -p "$dir" /var/run
rm -f "$dir/docker.sock" "$dir/agent.sock" /var/run/docker.sock /var/run/docker.pid

say "iptables backend: $(sgsim_select_iptables)"
dockerd_args=(
    --host "unix://$dir/docker.sock" --host unix:///var/run/docker.sock
    --bip "$bip" --storage-driver overlay2 --log-level "${SGSIM_NODE_DOCKERD_LOG_LEVEL:-warn}"
    # Pods resolve names through /etc/hosts only; an explicit local resolver keeps them from
    # querying the host's resolver (or dockerd's public fallback servers). Nothing listens there.
    --dns 127.0.0.1
)
[ -n "${SGSIM_NODE_CGROUP_PARENT:-}" ] && dockerd_args+=(--cgroup-parent "$SGSIM_NODE_CGROUP_PARENT")
dockerd "${dockerd_args[@]}" ${SGSIM_NODE_DOCKERD_ARGS:-} &
dockerd_pid=$!

# Pods reach the delegate on :8080 and the API server (KUBERNETES_SERVICE_HOST:443, TLS) on :443
# of the node's bridge address; both are forwarded to sockets sgsim serves in the node directory.
# Only the bridge address for :443: dockerd tries https://<registry>:443 on loopback first.
agent_args=(--socket "$dir/agent.sock" --delegate-socket "$dir/delegate.sock" --listen 0.0.0.0:8080
    --api-listen "${bip%/*}:443" --api-socket "$dir/apiserver.sock")
sgsim-node-agent "${agent_args[@]}" &
agent_pid=$!

# The run's registries: the node's loopback :80 (dockerd's registry mirror http://127.0.0.1 and
# every private registry host, mapped to 127.0.0.1 in /etc/hosts) is forwarded to
# /run/sgsim/registry.sock, where sgsim's registry proxy picks the instance by Host header.
registry_args=(--socket "$dir/registry-agent.sock" --delegate-socket "$dir/registry.sock" --listen 127.0.0.1:80)
sgsim-node-agent "${registry_args[@]}" &
registry_pid=$!

stop() {
    say "stopping"
    kill -TERM "$agent_pid" "$registry_pid" "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
    wait "$agent_pid" 2>/dev/null
    exit 0
}
trap stop TERM INT

for _ in $(seq 1 600); do
    kill -0 "$dockerd_pid" 2>/dev/null || { say "dockerd exited before it was ready"; wait "$dockerd_pid"; exit 1; }
    kill -0 "$agent_pid" 2>/dev/null || { say "sgsim-node-agent exited before it was ready"; wait "$agent_pid"; exit 1; }
    if docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && [ -S "$dir/agent.sock" ]; then
        say "ready"
        break
    fi
    sleep 0.1
done
[ -S "$dir/agent.sock" ] || { say "not ready after 60s"; exit 1; }

wait -n "$dockerd_pid" "$agent_pid" "$registry_pid"
rc=$?
gone=""
kill -0 "$dockerd_pid" 2>/dev/null || gone="$gone dockerd"
kill -0 "$agent_pid" 2>/dev/null || gone="$gone sgsim-node-agent(pods)"
kill -0 "$registry_pid" 2>/dev/null || gone="$gone sgsim-node-agent(registry)"
say "${gone# } exited (status $rc)"
kill -TERM "$agent_pid" "$registry_pid" "$dockerd_pid" 2>/dev/null
exit "$rc"
