#!/usr/bin/env bash
# Build the release binary linked statically against glibc: the build to deploy, and the one
# the performance figures are measured on. Prints the binary's path.
#
#   scripts/build-static.sh            -> <cargo's target directory>/<host>/release/hera
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
# Cargo's target directory as cargo itself resolves it (CARGO_TARGET_DIR, then `build.target-dir`
# in any config file, then target/), absolute: the paths below go to the linker and are printed
# for the caller.
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [[ "$target_dir" != /* ]]; then
    echo "build-static: cargo metadata named no absolute target directory: '$target_dir'" >&2
    exit 2
fi
release="$target_dir/$host/release"
bin="$release/hera"

# Code layout: the functions a running node executes (scripts/hot-code.txt, made by
# scripts/hot-code.py) are linked first, next to each other. The kernel maps 64 KiB of code
# around every page a process touches, so the same few hundred functions scattered through
# .text kept most of it resident (2.9 of 3.5 MB at N = 64); together they fill a few hundred
# KiB. The list names functions without their hashes, so it outlives a compiler or dependency
# update; the symbols of this build are found with nm and handed to the linker (lld, rustc's
# default here) as an ordering file. The file's name carries a hash of its contents: a new
# order changes the link flags, so cargo relinks, and an unchanged one rebuilds nothing.
profile="scripts/hot-code.txt"
link() { # $1: the ordering file, or "" for none
    local order=()
    if [[ -n "$1" ]]; then
        local file="$1"
        [[ "$file" == /* ]] || file="$PWD/$file" # a path recorded by an older run
        order=(-- -C "link-arg=-Wl,--symbol-ordering-file=$file" -C "link-arg=-Wl,--no-warn-symbol-ordering")
    fi
    RUSTFLAGS="-C target-feature=+crt-static" cargo rustc --release --target "$host" --bin hera "${extra[@]}" "${order[@]}" >&2
}
# The profile's functions, in its order, as this binary names them: by exact name where the
# binary has it (a profile of this toolchain and these dependencies); otherwise every symbol of
# the same name without its hash (the instances of a generic function), so a stale profile
# still groups most of the hot code; a line ending in "*" names glibc's per-CPU variants of a
# function by their prefix.
ordering() {
    nm --defined-only "$bin" | awk '
        function unhashed(s) { sub(/17h[0-9a-f]+E$/, "", s); gsub(/Cs[0-9A-Za-z]+_/, "Cs_", s); return s }
        FNR == NR {
            if ($0 ~ /^#/ || !NF) next
            ++n
            if ($0 ~ /\*$/) { prefix[++p] = substr($0, 1, length($0) - 1); prank[p] = n; next }
            rank[$0] = n
            k = unhashed($0)
            if (!(k in krank)) krank[k] = n
            next
        }
        $2 ~ /^[tTwWi]$/ { sym[++m] = $3; if ($3 in rank) exact[unhashed($3)] = 1 }
        END {
            for (j = 1; j <= m; j++) {
                s = sym[j]
                if (s in rank) { print rank[s], s; continue }
                k = unhashed(s)
                if ((k in krank) && !(k in exact)) { print krank[k], s; continue }
                for (i = 1; i <= p; i++) if (index(s, prefix[i]) == 1) { print prank[i], s; break }
            }
        }' "$profile" - | sort -n -s -k1,1 | cut -d" " -f2
}
extra=("$@")
used=""
if [[ -f "$release/hot-order.last" ]]; then used="$(cat "$release/hot-order.last")"; fi
if [[ -n "$used" && ! -f "$used" ]]; then used=""; fi
link "$used"
# The ordering file is an lld option: rustc links with lld by default on x86_64 Linux since
# 1.90; an older toolchain or another host links with the system's ld, and gets no order.
linked_by_lld() {
    command -v nm > /dev/null && command -v readelf > /dev/null \
        && readelf -p .comment "$bin" 2> /dev/null | grep "Linker: LLD" > /dev/null
}
if [[ -f "$profile" ]] && ! linked_by_lld; then
    echo "build-static: not linked by lld (or no nm/readelf): the hot code is not grouped" >&2
elif [[ -f "$profile" ]]; then
    ordering > "$release/hot-order.tmp"
    order="$release/hot-order-$(sha256sum "$release/hot-order.tmp" | cut -c1-16).txt"
    mv "$release/hot-order.tmp" "$order"
    if [[ "$order" != "$used" ]]; then
        link "$order"
        echo "$order" > "$release/hot-order.last"
    fi
    echo "build-static: $(wc -l < "$order") functions linked first, from $(grep -vc '^#' "$profile") in $profile" >&2
fi
# ldd says "statically linked" (static-pie) or "not a dynamic executable" (static).
# ldd exits 1 for the latter: read its words, not its status (pipefail).
linkage="$(ldd "$bin" 2>&1 || true)"
if ! grep -qE 'statically linked|not a dynamic executable' <<< "$linkage"; then
    echo "build-static: $bin is dynamically linked" >&2
    exit 1
fi
echo "$bin"
