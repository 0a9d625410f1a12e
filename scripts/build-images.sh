#!/usr/bin/env bash
# Builds every image an sgsim run needs, without a registry, from Debian packages and sgsim's own
# static binaries. Each image is tagged by a content hash, sgsim/<name>:<hash12>, over its recipe
# (scripts/images/<name>/), this script, the shared helpers, package lists, the binaries that go in
# and the tags of the images it derives from; an image whose tag exists is not rebuilt.
#
#   scripts/build-images.sh              # build all images
#   scripts/build-images.sh node dind    # build these (and what they derive from)
#   scripts/build-images.sh --list       # print the image names
#   scripts/build-images.sh --prune      # also remove older sgsim/<name>:* tags no container uses
#
# stdout: one "<name>=<tag>" line per image (machine-readable); progress goes to stderr.
# Also writes target/sgsim-images.env with the same lines (merged with earlier entries), headed by
# "# sgsim images: complete" when every image was built by this run.
#
# Environment:
#   SGSIM_ENGINE_BIN_DIR  take sgsim-addon, sgsim-lite-engine, sgsim-node-agent from this
#                         directory instead of running scripts/build-engine.sh
#   XDG_CACHE_HOME        the debootstrap result is cached in ${XDG_CACHE_HOME:-~/.cache}/sgsim
#   SGSIM_IMAGES_ENV      where to write the tags file (default target/sgsim-images.env)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
imgdir=$repo/scripts/images
source "$imgdir/lib.sh"

all=(debian-docker busybox bash pause hello-world addon lite-engine node dind registry python aws-plugin drone-git kubectl pwsh relay)
declare -A parents=(
    [debian-docker]="" [busybox]="" [bash]="busybox" [pause]=""
    [hello-world]="busybox" [addon]="busybox" [lite-engine]="busybox"
    [node]="debian-docker" [dind]="debian-docker busybox hello-world"
    [registry]="busybox" [python]="debian-docker" [aws-plugin]="busybox" [drone-git]="busybox" [kubectl]="busybox" [pwsh]="busybox"
    [relay]="busybox"
)
declare -A binary=([addon]=sgsim-addon [lite-engine]=sgsim-lite-engine [node]=sgsim-node-agent [pwsh]=sgsim-pwsh [relay]=sgsim-node-agent)

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; }

wanted=()
prune=
for arg in "$@"; do
    case "$arg" in
        --list) printf '%s\n' "${all[@]}"; exit 0 ;;
        --prune) prune=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage; die "unknown option $arg" ;;
        *) [ -n "${parents[$arg]+x}" ] || die "unknown image '$arg' (known: ${all[*]})"
           wanted+=("$arg") ;;
    esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")

declare -A selected=()
select_image() {
    local n=$1 p
    [ -n "${selected[$n]+x}" ] && return 0
    selected[$n]=1
    for p in ${parents[$n]}; do select_image "$p"; done
}
for n in "${wanted[@]}"; do select_image "$n"; done
order=()
for n in "${all[@]}"; do [ -n "${selected[$n]+x}" ] && order+=("$n"); done

command -v docker >/dev/null || die "the docker CLI is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker daemon does not answer"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sgsim
mkdir -p "$cache"
# One build at a time per machine (parallel test processes may all ask for the images).
exec 9>"$cache/build-images.lock"
flock 9

# Host packages whose files go into the images. Installed on demand (needs root and apt).
ensure_host_file() {
    local file=$1 pkg=$2
    [ -e "$file" ] && return 0
    [ "$(id -u)" = 0 ] || die "$file is missing: install the Debian package $pkg"
    log "installing $pkg (for $file)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >&2; then
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >&2
    fi
    [ -e "$file" ] || die "$pkg did not provide $file"
}
busybox_bin=/bin/busybox
bash_static_bin=/bin/bash-static
ensure_host_file "$busybox_bin" busybox-static
ensure_host_file "$bash_static_bin" bash-static
is_static "$busybox_bin" || die "$busybox_bin is not static (install busybox-static)"

# The registry stand-in: Debian's docker-registry (distribution v2), its .deb fetched with the
# host's apt into the cache (never re-fetched while cached); its binary needs only glibc, which
# comes from the host (same Debian release). htpasswd (apache2-utils) makes the bcrypt entries of
# registries with credentials at run time.
registry_deb=
libc_so=/lib/x86_64-linux-gnu/libc.so.6
ld_so=/lib64/ld-linux-x86-64.so.2
if [ -n "${selected[registry]+x}" ]; then
    registry_deb=$(find "$cache" -maxdepth 1 -name 'docker-registry_*.deb' | LC_ALL=C sort | tail -n1)
    if [ -z "$registry_deb" ]; then
        log "registry: fetching the docker-registry package with apt-get download"
        (cd "$cache" && apt-get download docker-registry >&2 2>/dev/null) \
            || { apt-get update -q >&2 && (cd "$cache" && apt-get download docker-registry >&2); } \
            || die "cannot fetch the Debian package docker-registry"
        registry_deb=$(find "$cache" -maxdepth 1 -name 'docker-registry_*.deb' | LC_ALL=C sort | tail -n1)
    fi
    [ -f "$registry_deb" ] || die "no docker-registry package in $cache"
    [ -e "$libc_so" ] && [ -e "$ld_so" ] || die "$libc_so or $ld_so missing on the host"
    ensure_host_file /usr/bin/htpasswd apache2-utils
fi

# The python stand-in (python:* images): Debian's python3-minimal and what it needs beyond
# debian-docker, .debs fetched with the host's apt into the cache (never re-fetched while cached).
python_debs=$cache/python-debs
python_pkgs=(python3-minimal python3.11-minimal libpython3.11-minimal libexpat1)
if [ -n "${selected[python]+x}" ]; then
    mkdir -p "$python_debs"
    for pkg in "${python_pkgs[@]}"; do
        [ -n "$(find "$python_debs" -maxdepth 1 -name "${pkg}_*.deb")" ] && continue
        (cd "$python_debs" && apt-get download "$pkg" >&2 2>/dev/null) \
            || { apt-get update -q >&2 && (cd "$python_debs" && apt-get download "$pkg" >&2); } \
            || die "cannot fetch the Debian package $pkg"
    done
fi

# docker-compose in the dind stand-in: the .debs of dind/compose-packages.txt, fetched with the
# host's apt into the cache (never re-fetched while cached), extracted into the image.
compose_debs=$cache/compose-debs
if [ -n "${selected[dind]+x}" ]; then
    mkdir -p "$compose_debs"
    for pkg in $(sed -e 's/#.*//' "$imgdir/dind/compose-packages.txt"); do
        [ -n "$(find "$compose_debs" -maxdepth 1 -name "${pkg}_*.deb")" ] && continue
        (cd "$compose_debs" && apt-get download "$pkg" >&2 2>/dev/null) \
            || { apt-get update -q >&2 && (cd "$compose_debs" && apt-get download "$pkg" >&2); } \
            || die "cannot fetch the Debian package $pkg"
    done
fi

# The kubectl stand-in (bitnami/kubectl and the like): the host's kubectl when it is a static
# binary (client-go's in-cluster config then talks to sgsim's TLS endpoint for pods); otherwise a
# script that says why kubectl is missing and exits 127.
kubectl_bin=
if [ -n "${selected[kubectl]+x}" ]; then
    k=$(command -v kubectl || true)
    if [ -n "$k" ] && k=$(readlink -f "$k") && is_static "$k"; then
        kubectl_bin=$k
    else
        log "kubectl: no static kubectl on the host; the stand-in will only say so"
    fi
fi
bindir=
for n in "${order[@]}"; do
    if [ -n "${binary[$n]+x}" ] && [ -z "$bindir" ]; then
        if [ -n "${SGSIM_ENGINE_BIN_DIR:-}" ]; then
            bindir=$SGSIM_ENGINE_BIN_DIR
        else
            bindir=$("$repo/scripts/build-engine.sh")
        fi
        for b in "${binary[@]}"; do [ -x "$bindir/$b" ] || die "$bindir/$b is missing"; done
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sgsim-images.XXXXXX")
build_containers=()
cleanup() {
    local c
    for c in "${build_containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

declare -A tag=()

# image_inputs NAME: the files whose content decides NAME's tag.
image_inputs() {
    local n=$1 f
    printf '%s\n' "$repo/scripts/build-images.sh" "$imgdir/lib.sh"
    if [ -d "$imgdir/$n" ]; then
        find "$imgdir/$n" -type f | LC_ALL=C sort
    fi
    case "$n" in
        busybox|pause) printf '%s\n' "$busybox_bin" ;;
        node|dind) printf '%s\n' "$imgdir/iptables-select.sh" ;;
    esac
    [ "$n" = bash ] && printf '%s\n' "$bash_static_bin"
    [ "$n" = registry ] && printf '%s\n' "$registry_deb" "$libc_so" "$ld_so"
    [ "$n" = python ] && find "$python_debs" -maxdepth 1 -name '*.deb' | LC_ALL=C sort
    [ "$n" = dind ] && find "$compose_debs" -maxdepth 1 -name '*.deb' | LC_ALL=C sort
    [ "$n" = kubectl ] && [ -n "$kubectl_bin" ] && printf '%s\n' "$kubectl_bin"
    [ -n "${binary[$n]+x}" ] && printf '%s\n' "$bindir/${binary[$n]}"
    return 0
}

image_tag() {
    local n=$1 p f
    {
        while read -r f; do
            # Recipe files by their path in the repo, binaries by name: the tag must not depend
            # on where the repo or the binaries are.
            case "$f" in
                "$repo"/scripts/*) printf 'file %s\n' "${f#"$repo/"}" ;;
                *) printf 'file %s\n' "$(basename "$f")" ;;
            esac
            sha256sum < "$f"
        done < <(image_inputs "$n")
        for p in ${parents[$n]}; do printf 'parent %s=%s\n' "$p" "${tag[$p]}"; done
    } | sha256sum | cut -c1-12 | sed "s|^|sgsim/$n:|"
}

# import_rootfs NAME TAG DIR|TAR CHANGE...: docker import of a staged root filesystem.
import_rootfs() {
    local n=$1 t=$2 src=$3; shift 3
    local changes=(--change "LABEL dev.sgsim.managed=true" --change "LABEL dev.sgsim.image=$n")
    local c
    for c in "$@"; do changes+=(--change "$c"); done
    if [ -d "$src" ]; then
        tar --numeric-owner --owner=0 --group=0 -C "$src" -cf - . | docker import "${changes[@]}" - "$t" >/dev/null
    else
        docker import "${changes[@]}" "$src" "$t" >/dev/null
    fi
}

# derive NAME TAG BASE STAGE_DIR CHANGE...: BASE plus the files of STAGE_DIR, committed as TAG.
derive() {
    local n=$1 t=$2 base=$3 stage=$4; shift 4
    local changes=(--change "LABEL dev.sgsim.image=$n")
    local c cid
    for c in "$@"; do changes+=(--change "$c"); done
    # No labels on the build container: docker commit would copy them into the image.
    cid=$(docker create "$base" /bin/true)
    build_containers+=("$cid")
    tar --numeric-owner --owner=0 --group=0 -C "$stage" -cf - . | docker cp - "$cid:/"
    docker commit "${changes[@]}" "$cid" "$t" >/dev/null
    docker rm -f "$cid" >/dev/null
}

stage_dir() { local d=$work/$1; mkdir -p "$d"; printf '%s\n' "$d"; }

build_debian_docker() {
    local t=$1 key rootfs
    key=$(hash_files "$imgdir/debian-docker/debootstrap.sh" "$imgdir/debian-docker/packages.txt" | cut -c1-12)
    rootfs=$cache/debian-docker-rootfs-$key.tar
    if [ -f "$rootfs" ]; then
        log "debian-docker: using cached root filesystem $rootfs"
    else
        ensure_host_file /usr/sbin/debootstrap debootstrap
        log "debian-docker: debootstrap (cached afterwards as $rootfs)"
        "$imgdir/debian-docker/debootstrap.sh" "$rootfs"
        # Older cached root filesystems are of no further use.
        find "$cache" -maxdepth 1 -name 'debian-docker-rootfs-*.tar' ! -name "$(basename "$rootfs")" -delete
    fi
    import_rootfs debian-docker "$t" "$rootfs" \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["/bin/bash"]'
}

build_busybox() {
    local t=$1 s a
    s=$(stage_dir busybox)
    mkdir -p "$s"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,tmp,var/tmp,proc,sys,dev,home,run}
    chmod 1777 "$s/tmp" "$s/var/tmp"
    chmod 700 "$s/root"
    cp "$busybox_bin" "$s/bin/busybox"
    # One link per applet, at the path busybox itself reports.
    while read -r a; do
        [ -e "$s/$a" ] || ln -s /bin/busybox "$s/$a"
    done < <("$busybox_bin" --list-full | grep -v '^bin/busybox$')
    # No bash: alpine and busybox have none (bash-carrying images get the `bash` stand-in).
    rm -f "$s/bin/bash"
    cp "$imgdir/busybox/passwd" "$s/etc/passwd"
    cp "$imgdir/busybox/group" "$s/etc/group"
    : > "$s/etc/hostname"; : > "$s/etc/resolv.conf"; : > "$s/etc/hosts"
    import_rootfs busybox "$t" "$s" \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["sh"]'
}

build_bash() {
    local t=$1 s
    s=$(stage_dir bash)
    mkdir -p "$s/bin"
    cp "$bash_static_bin" "$s/bin/bash"
    derive bash "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT []' 'CMD ["bash"]'
}

build_pause() {
    local t=$1 s
    s=$(stage_dir pause)
    mkdir -p "$s"/{bin,proc,sys,dev,etc,tmp}
    cp "$busybox_bin" "$s/bin/busybox"
    ln -s busybox "$s/bin/sh"
    ln -s busybox "$s/bin/sleep"
    cp "$imgdir/pause/pause" "$s/pause"
    : > "$s/etc/hostname"; : > "$s/etc/resolv.conf"; : > "$s/etc/hosts"
    import_rootfs pause "$t" "$s" 'ENV PATH=/bin' 'ENTRYPOINT ["/pause"]' 'CMD []'
}

build_hello_world() {
    local t=$1 s
    s=$(stage_dir hello-world)
    cp "$imgdir/hello-world/hello" "$s/hello"
    derive hello-world "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT []' 'CMD ["/hello"]'
}

build_addon() {
    local t=$1 s
    s=$(stage_dir addon)
    mkdir -p "$s/usr/local/bin"
    # Where the real harness/ci-addon image has it (the product's setup-addon script copies
    # /usr/local/bin/ci-addon-linux-amd64); tmate, java-agent.jar and split_tests are not ours to
    # ship, so the script's copies of them fail in its log, as they would with an image lacking them.
    cp "$bindir/sgsim-addon" "$s/usr/local/bin/ci-addon-linux-amd64"
    derive addon "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT []' 'CMD ["/usr/local/bin/ci-addon-linux-amd64"]'
}

build_lite_engine() {
    local t=$1 s
    s=$(stage_dir lite-engine)
    mkdir -p "$s/usr/local/bin"
    cp "$bindir/sgsim-lite-engine" "$s/usr/local/bin/ci-lite-engine"
    derive lite-engine "$t" "${tag[busybox]}" "$s" \
        'ENTRYPOINT ["/usr/local/bin/ci-lite-engine"]' 'CMD []'
}

build_node() {
    local t=$1 s
    s=$(stage_dir node)
    mkdir -p "$s/usr/local/bin" "$s/usr/local/lib/sgsim" "$s/run/sgsim"
    cp "$bindir/sgsim-node-agent" "$s/usr/local/bin/sgsim-node-agent"
    cp "$imgdir/node/entrypoint.sh" "$s/usr/local/bin/sgsim-node-entrypoint"
    cp "$imgdir/iptables-select.sh" "$s/usr/local/lib/sgsim/iptables-select.sh"
    derive node "$t" "${tag[debian-docker]}" "$s" \
        'ENTRYPOINT ["/usr/local/bin/sgsim-node-entrypoint"]' 'CMD []'
}

# The in-cluster delegate relay of `--backend kube` (sgsim's own image, no product image's
# stand-in): the node agent in relay mode.
build_relay() {
    local t=$1 s
    s=$(stage_dir relay)
    mkdir -p "$s/usr/local/bin"
    cp "$bindir/sgsim-node-agent" "$s/usr/local/bin/sgsim-relay"
    derive relay "$t" "${tag[busybox]}" "$s" \
        'ENTRYPOINT ["/usr/local/bin/sgsim-relay", "--listen", "0.0.0.0:8080", "--relay-back", "0.0.0.0:8081"]' 'CMD []'
}

build_dind() {
    local t=$1 s p src dst
    s=$(stage_dir dind)
    p=$s/usr/local/share/sgsim/preload
    mkdir -p "$s/usr/local/bin" "$s/usr/local/lib/sgsim" "$p" "$s/var/lib/docker"
    cp "$imgdir/dind/dockerd-entrypoint.sh" "$s/usr/local/bin/dockerd-entrypoint.sh"
    cp "$imgdir/iptables-select.sh" "$s/usr/local/lib/sgsim/iptables-select.sh"
    : > "$p/preload.list"
    while read -r src dst; do
        case "$src" in ''|'#'*) continue ;; esac
        [ -n "${tag[$src]+x}" ] || die "dind/preload.list names unknown image $src"
        printf '%s %s\n' "${tag[$src]}" "$dst" >> "$p/preload.list"
    done < "$imgdir/dind/preload.list"
    docker save -o "$p/images.tar" $(cut -d' ' -f1 "$p/preload.list" | sort -u)
    for d in "$compose_debs"/*.deb; do dpkg-deb -x "$d" "$s"; done
    # debian-docker is merged-/usr: /lib is a symlink there, so nothing may be copied onto it.
    if [ -d "$s/lib" ]; then
        mkdir -p "$s/usr/lib"
        cp -a "$s/lib/." "$s/usr/lib/"
        rm -rf "$s/lib"
    fi
    derive dind "$t" "${tag[debian-docker]}" "$s" \
        'ENTRYPOINT ["/usr/local/bin/dockerd-entrypoint.sh"]' 'CMD []' 'VOLUME /var/lib/docker' \
        'ENV DOCKER_TLS_CERTDIR=/certs'
}

build_registry() {
    local t=$1 s x
    s=$(stage_dir registry)
    x=$work/registry-deb
    mkdir -p "$x" "$s/usr/bin" "$s/etc/docker/registry" "$s/lib/x86_64-linux-gnu" "$s/lib64" "$s/var/lib/registry"
    dpkg-deb -x "$registry_deb" "$x"
    cp "$x/usr/bin/docker-registry" "$s/usr/bin/docker-registry"
    cp -L "$libc_so" "$s/lib/x86_64-linux-gnu/libc.so.6"
    cp -L "$ld_so" "$s/lib64/ld-linux-x86-64.so.2"
    cp "$imgdir/registry/config.yml" "$s/etc/docker/registry/config.yml"
    derive registry "$t" "${tag[busybox]}" "$s" \
        'ENTRYPOINT ["/usr/bin/docker-registry"]' 'CMD ["serve", "/etc/docker/registry/config.yml"]'
}

build_python() {
    local t=$1 s d
    s=$(stage_dir python)
    for d in "$python_debs"/*.deb; do dpkg-deb -x "$d" "$s"; done
    # debian-docker is merged-/usr: /lib is a symlink there, so nothing may be copied onto it.
    if [ -d "$s/lib" ]; then
        mkdir -p "$s/usr/lib"
        cp -a "$s/lib/." "$s/usr/lib/"
        rm -rf "$s/lib"
    fi
    derive python "$t" "${tag[debian-docker]}" "$s" 'ENTRYPOINT []' 'CMD ["python3"]'
}

# The AWS SAM / Serverless.com plugin stand-in: a script that reports the credentials and the
# command the real image would use (scripts/images/aws-plugin/aws-plugin.sh).
build_aws_plugin() {
    local t=$1 s
    s=$(stage_dir aws-plugin)
    mkdir -p "$s/usr/local/bin"
    cp "$imgdir/aws-plugin/aws-plugin.sh" "$s/usr/local/bin/aws-plugin"
    chmod 755 "$s/usr/local/bin/aws-plugin"
    derive aws-plugin "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT ["/usr/local/bin/aws-plugin"]' 'CMD []'
}

# drone-git: busybox with a script reporting what the product's drone-git image would clone
# (scripts/images/drone-git/drone-git.sh).
build_drone_git() {
    local t=$1 s
    s=$(stage_dir drone-git)
    mkdir -p "$s/usr/local/bin"
    cp "$imgdir/drone-git/drone-git.sh" "$s/usr/local/bin/drone-git"
    chmod 755 "$s/usr/local/bin/drone-git"
    derive drone-git "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT ["/usr/local/bin/drone-git"]' 'CMD []'
}

# pwsh: busybox with sgsim's PowerShell stand-in (harness/engine/src/pwsh.rs) as /usr/bin/pwsh.
build_pwsh() {
    local t=$1 s
    s=$(stage_dir pwsh)
    mkdir -p "$s/usr/bin"
    cp "$bindir/sgsim-pwsh" "$s/usr/bin/pwsh"
    derive pwsh "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT []' 'CMD ["pwsh"]'
}

build_kubectl() {
    local t=$1 s
    s=$(stage_dir kubectl)
    mkdir -p "$s/usr/local/bin"
    if [ -n "$kubectl_bin" ]; then
        cp "$kubectl_bin" "$s/usr/local/bin/kubectl"
    else
        printf '#!/bin/sh\necho "kubectl: not in sgsim'"'"'s stand-in image (no static kubectl on the host when the images were built)" >&2\nexit 127\n' \
            > "$s/usr/local/bin/kubectl"
    fi
    chmod 755 "$s/usr/local/bin/kubectl"
    derive kubectl "$t" "${tag[busybox]}" "$s" 'ENTRYPOINT ["/usr/local/bin/kubectl"]' 'CMD ["--help"]'
}

for n in "${order[@]}"; do
    t=$(image_tag "$n")
    tag[$n]=$t
    if docker image inspect "$t" >/dev/null 2>&1; then
        log "$n: $t is up to date"
        continue
    fi
    log "$n: building $t"
    start=$SECONDS
    "build_${n//-/_}" "$t"
    size=$(docker image inspect --format '{{.Size}}' "$t")
    log "$n: built $t in $((SECONDS - start))s ($((size / 1024 / 1024)) MiB)"
done

if [ -n "$prune" ]; then
    for n in "${order[@]}"; do
        docker image ls --format '{{.Repository}}:{{.Tag}}' "sgsim/$n" | while read -r old; do
            [ "$old" = "${tag[$n]}" ] && continue
            # docker refuses to remove an image a container uses; such tags stay.
            docker image rm "$old" >/dev/null 2>&1 && log "pruned $old"
        done
    done
fi

envfile=${SGSIM_IMAGES_ENV:-$repo/target/sgsim-images.env}
mkdir -p "$(dirname "$envfile")"
declare -A merged=()
if [ -f "$envfile" ]; then
    while IFS='=' read -r k v; do [ -n "$k" ] && merged[$k]=$v; done < "$envfile"
fi
for n in "${order[@]}"; do merged[$n]=${tag[$n]}; done
{
    # ensure_built (images.rs) trusts only a file written by a build of every image.
    if [ ${#order[@]} -eq ${#all[@]} ]; then
        echo "# sgsim images: complete"
    else
        echo "# sgsim images: partial (${order[*]})"
    fi
    for n in "${all[@]}"; do [ -n "${merged[$n]+x}" ] && printf '%s=%s\n' "$n" "${merged[$n]}"; done
} > "$envfile.tmp.$$"
mv "$envfile.tmp.$$" "$envfile"
for n in "${order[@]}"; do printf '%s=%s\n' "$n" "${tag[$n]}"; done
