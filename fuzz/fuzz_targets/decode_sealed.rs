//! Arbitrary bytes into the sealed-datagram path with a fixed test keyring: it never panics,
//! whatever opens decodes or is refused cleanly, and a validly sealed datagram with bytes
//! flipped, cut or added never opens. The input framing and the checks are in
//! `hera::fuzzing::check_sealed`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::fuzzing::check_sealed(data));
