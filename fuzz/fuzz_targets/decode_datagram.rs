//! Arbitrary bytes into the datagram decoder: it never panics, and what decodes re-encodes to the
//! same messages. The check itself is `hera::fuzzing::check_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::fuzzing::check_decode(data));
