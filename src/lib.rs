//! hera: a decentralised service registry.
//!
//! Every node runs SWIM with the Lifeguard extensions over UDP and replicates the registry as
//! last-writer-wins deltas piggybacked on the same datagrams. The crate is one sans-IO protocol
//! core and the thin shells around it:
//!
//! | module | job |
//! |---|---|
//! | [`node`] | the state machine: routing (`node/mod.rs`) between two sub-machines, `membership` (SWIM + Lifeguard) and `catalog` (the registry's protocol), over one `io` context; its contract (`node/api.rs`) |
//! | [`time`] | the core's own `Instant`; the core never reads a clock |
//! | [`duration`] | the one grammar and the bounds for durations read from outside |
//! | [`bounded`] | strings and vectors that cannot exceed their limit, and their decoding |
//! | [`record`] | what the registry holds, as data: an instance, its checks, its HLC version, the gossiped entry |
//! | [`wire`] | datagram envelope (magic, version, flags, CRC32), messages, typed decode errors, the entry size rule |
//! | [`registry`] | the store of entries, the last-writer-wins merge, tombstones, digests |
//! | [`swim`] | the merge rule, probing, suspicion, Lifeguard awareness, the gossip queue |
//! | [`stable_hash`] | the one hash behind every digest nodes compare (FNV-1a + fmix64) |
//! | [`timers`] | the deadline table behind `Node::poll_timeout` |
//! | [`config`] | protocol knobs and the lan / wan / local presets |
//! | [`stats`] | plain counters; only the shell exports them |
//! | `fuzzing` | invariant checks shared by the fuzz targets and the seed-replay test (feature `fuzzing`) |
//! | `runtime` | the shells: tokio driver, HTTP and DNS faces, the data dir, telemetry, settings, CLI |
//!
//! The shells sit in `runtime/` behind the default `runtime` feature (one `cfg`), so the core
//! builds without tokio; the simulator in `sim/` and the fuzz targets use the core alone.
//!
//! # Layers
//!
//! Each layer uses only those above it in this list; an import the other way is a design
//! question, not a shortcut.
//!
//! 1. vocabulary: `names`, `time`, `duration`, `stable_hash`, `bounded`, then `record` (the
//!    registry's data types, built of the others): no protocol
//! 2. `wire`: the datagram format and the size rule every entry obeys; knows the vocabulary,
//!    nothing of the state machines
//! 3. data structures: `swim` (member table, probes, suspicion, gossip queue), `registry`
//!    (entries, HLC, merge), `timers`, `stats`, `config`
//! 4. `node`: `membership` and `catalog` over one `io`, routed by `Node`
//! 5. `runtime`: the shells (driver, faces, store, telemetry, settings, CLI), and `main`
//!
//! Unit tests may reach up (a wire test builds an entry through `registry::InstanceSpec`);
//! the code under test does not.

// Three reviewed exceptions (`names::from_ascii`, an ASCII-checked name on the decoder's hot
// path; `runtime::resident`, the binary's start-up pages given back with madvise;
// `runtime::driver::unreachable`, the socket's ICMP error queue read with recvmsg); anything
// else unsafe fails the build.
#![deny(unsafe_code)]
// Release builds abort on panic, so a panic reachable from input is a remote kill switch: no
// unwrap, expect or panic in the node's code. The few invariants that must hold are allowed
// where they stand, each with its reason; fuzz harnesses allow them as a whole.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_debug_implementations)]

pub mod bounded;
pub mod config;
pub mod duration;
// Test and fuzzing hooks (a caller-chosen nonce among them): never in a production build.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod names;
pub mod node;
pub mod record;
pub mod registry;
pub mod stable_hash;
pub mod stats;
pub mod swim;
pub mod time;
pub mod timers;
pub mod wire;

// The shells never replay: std's randomly seeded maps are fine there (and resist hash
// flooding of keys that come from HTTP clients). clippy.toml keeps them out of the core.
#[cfg(feature = "runtime")]
#[allow(clippy::disallowed_types)]
pub mod runtime;

pub use node::{Command, CommandError, Event, Identity, Node, Outputs, Reply, Sink, Transmit};
pub use time::Instant;
