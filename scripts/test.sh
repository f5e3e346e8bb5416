#!/usr/bin/env bash
# Run every test hera has, installing first what a fresh machine lacks.
#
#   ./scripts/test.sh            everything (what CI runs)
#   QUICK=1 ./scripts/test.sh    only `cargo test --workspace` (no installs, no external tools)
#
# Tests that need programs from outside Rust (Prometheus, Chromium, nftables, dig) are #[ignore]d
# in plain `cargo test` and run here with --ignored once the programs are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

log "cargo test --workspace --features hera/fuzzing"
# The feature adds tests/fuzz_seeds.rs (the fuzz targets' seeds replayed).
cargo test --workspace --features hera/fuzzing

if [ "${QUICK:-0}" = "1" ]; then
    exit 0
fi

log "installing the tools the external tests need"
# dnsutils: `dig` for tests/dns.rs; dnsperf: the DNS throughput figure in the README;
# python3-consul: an unmodified Consul client for tests/consul_client.rs.
apt_install curl prometheus chromium nftables dnsutils dnsperf python3-consul

log "tests that need external tools (cargo test -- --ignored)"
# The same features as above, so the test binaries built there are reused, not rebuilt.
cargo test --workspace --features hera/fuzzing -- --ignored

if [ -x scripts/chaos.sh ]; then
    log "chaos: real processes, nftables loss, kill -9"
    # Against the build we deploy (statically linked), so CI runs that build for real.
    HERA_BIN="$(scripts/build-static.sh)" scripts/chaos.sh
fi

if [ -x scripts/fuzz-smoke.sh ] && [ "${FUZZ:-1}" = "1" ]; then
    log "fuzz smoke"
    scripts/fuzz-smoke.sh
fi

log "all tests passed"
