#!/usr/bin/env bash
# Build the release binary linked statically against glibc: the build to deploy, and the one
# the performance figures are measured on. Prints the binary's path.
#
#   scripts/build-static.sh            -> target/<host>/release/hera
#
# Why static: an idle node's resident memory is mostly pages of its binary and of the shared
# libraries it maps. Dynamically linked, ~2 MiB of libc, libm and the loader stay resident;
# statically, only the few libc functions hera calls (3.8 MiB idle instead of 4.8, measured in
# one sitting; README, performance section). Name lookups (`--join host:port`) still work: the
# files and dns resolvers are part of glibc itself.
#
# Why a script and not .cargo/config.toml: `crt-static` set for the host target also applies to
# proc-macro crates, which cannot be built that way. RUSTFLAGS with an explicit --target reaches
# only the target's artifacts, not build scripts or proc macros.
set -euo pipefail
cd "$(dirname "$0")/.."
host="$(rustc -vV | sed -n 's/^host: //p')"
case "$host" in
    *-linux-gnu) ;;
    *) echo "build-static: static glibc builds need a *-linux-gnu host; this is $host" >&2; exit 2 ;;
esac
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target "$host" --bin hera "$@" >&2
bin="target/$host/release/hera"
# ldd says "statically linked" (static-pie) or "not a dynamic executable" (static).
if ! ldd "$bin" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
    echo "build-static: $bin is dynamically linked" >&2
    exit 1
fi
echo "$PWD/$bin"
