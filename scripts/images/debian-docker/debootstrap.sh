#!/usr/bin/env bash
# Builds the Debian bookworm minbase root filesystem with Docker Engine (docker.io) and writes it
# as an uncompressed tarball to $1. Needs root and the host's Debian mirror (read from its apt
# sources). Slow (minutes); build-images.sh caches the result by content hash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

out=${1:?usage: debootstrap.sh OUT.tar}
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
mirror=$(debian_mirror bookworm) || true
[ -n "$mirror" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d}"

pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/,$//')
work=$(mktemp -d "${TMPDIR:-/tmp}/sgsim-debootstrap.XXXXXX")
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
root=$work/rootfs

log "debootstrap bookworm (minbase) from $mirror with: $pkgs"
debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >&2

# Trim what a container never needs; keep dpkg state so the image stays a normal Debian.
# (libnetwork's test tools dnet/ovrouter, containerd's ctr and v1 shims, translations, docs.)
rm -f "$root"/usr/bin/dnet "$root"/usr/sbin/ovrouter "$root"/usr/bin/ctr \
      "$root"/usr/bin/containerd-shim "$root"/usr/bin/containerd-shim-runc-v1
rm -rf "$root"/usr/share/locale/*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/etc/machine-id
: > "$root/etc/machine-id"
# Files docker manages at run time inside containers.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
: > "$root/etc/hostname"; : > "$root/etc/resolv.conf"

tar --numeric-owner --xattrs -C "$root" -cf "$out.partial" .
mv "$out.partial" "$out"
log "rootfs tarball: $out ($(du -h "$out" | cut -f1))"
