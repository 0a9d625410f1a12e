# Sourced by the node and dind entrypoints (bash). Picks the iptables backend that works in this
# network namespace: legacy when the kernel's ip_tables is usable (what an older host dockerd
# uses), nf_tables otherwise. dockerd calls plain `iptables`, so the alternative is switched.
sgsim_select_iptables() {
    local backend
    for backend in legacy nft; do
        if "iptables-$backend" -t nat -nL >/dev/null 2>&1; then
            update-alternatives --quiet --set iptables "/usr/sbin/iptables-$backend" >/dev/null 2>&1 || true
            update-alternatives --quiet --set ip6tables "/usr/sbin/ip6tables-$backend" >/dev/null 2>&1 || true
            echo "$backend"
            return 0
        fi
    done
    echo none
}
