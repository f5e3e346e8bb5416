//! Three nodes, sans-IO, wired by a network the input drives, fed well-formed adversarial
//! messages from members' addresses and from a stranger: no panic, every node keeps the
//! one-node invariants, and a stranger never gets more bytes back than it sent. The input
//! framing and the checks are in `hera::fuzzing::check_cluster`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::fuzzing::check_cluster(data));
