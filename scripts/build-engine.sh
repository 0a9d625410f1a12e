#!/usr/bin/env bash
# Builds the static in-container binaries of sgsim-engine (sgsim-addon, sgsim-lite-engine,
# sgsim-node-agent, sgsim-pwsh) into their own target directory, so this never waits on the lock of the
# workspace's usual target dir. Progress goes to stderr; stdout is one line: the directory that
# holds the binaries.
#
#   scripts/build-engine.sh            # build (incremental) and print the binary directory
#
# Environment: SGSIM_ENGINE_TARGET_DIR overrides the target dir (default target/engine-static).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/images/lib.sh"

triple=x86_64-unknown-linux-gnu
bins=(sgsim-addon sgsim-lite-engine sgsim-node-agent sgsim-pwsh)
export CARGO_TARGET_DIR=${SGSIM_ENGINE_TARGET_DIR:-$repo/target/engine-static}
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"

log "building static ${bins[*]} (cargo target dir $CARGO_TARGET_DIR)"
(cd "$repo" && cargo build --release -p sgsim-engine --target "$triple" --bins) >&2 \
    || die "cargo build of sgsim-engine failed"

out=$CARGO_TARGET_DIR/$triple/release
for b in "${bins[@]}"; do
    f=$out/$b
    [ -x "$f" ] || die "$f was not built: sgsim-engine must declare a [[bin]] named $b"
    # A static-pie binary is reported as "statically linked" by ldd; a dynamic one lists libraries.
    if ! is_static "$f"; then
        die "$f is not statically linked: $(ldd "$f" 2>&1 | head -3 | tr '\n' ' ')"
    fi
done
log "static binaries ready in $out"
printf '%s\n' "$out"
