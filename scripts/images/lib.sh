#!/usr/bin/env bash
# Shared helpers for the sgsim image recipes. Sourced, not executed.

# Prints "[sgsim-images] ..." on stderr.
log() { printf '[sgsim-images] %s\n' "$*" >&2; }

die() { log "error: $*"; exit 1; }

# debian_mirror: prints the URI of the host's Debian archive for the given suite (default
# bookworm), read from the host's apt sources (one-line and deb822 formats). Nothing is
# hard-coded: the mirror is whatever this machine's apt already uses.
debian_mirror() {
    local suite=${1:-bookworm} f
    local files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    awk -v suite="$suite" '
        function flush() {
            if (uris != "" && (" " suites " ") ~ (" " suite " ") && (" " comps " ") ~ / main /) {
                split(uris, u, " "); print u[1]; found = 1; exit
            }
            uris = ""; suites = ""; comps = ""
        }
        FNR == 1 { flush() }
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        /^deb[[:space:]]/ {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i+1) == suite) {
                for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; found = 1; exit }
            }
            next
        }
        /^URIs:/       { sub(/^URIs:[[:space:]]*/, "");       uris = $0; next }
        /^Suites:/     { sub(/^Suites:[[:space:]]*/, "");     suites = $0; next }
        /^Components:/ { sub(/^Components:[[:space:]]*/, ""); comps = $0; next }
        END { if (!found) flush() }
    ' "${files[@]}"
}

# hash_files FILE...: sha256 over the names and contents of the given files, 64 hex chars.
hash_files() {
    local f
    for f in "$@"; do
        printf '%s\n' "$(basename "$f")"
        sha256sum < "$f"
    done | sha256sum | cut -c1-64
}

# is_static FILE: true when FILE is a statically linked executable (static-pie included).
is_static() {
    local out
    out=$(ldd "$1" 2>&1 || true)
    case "$out" in
        *'not a dynamic executable'*|*'statically linked'*) return 0 ;;
        *) return 1 ;;
    esac
}
