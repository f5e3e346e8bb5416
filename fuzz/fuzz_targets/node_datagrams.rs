//! A node fed arbitrary and valid datagrams, time steps and commands: it never panics, never
//! thinks itself failed while active, never lowers its incarnation and never leaves a deadline
//! behind. The input framing and the checks are in `hera::fuzzing::check_node`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::fuzzing::check_node(data));
