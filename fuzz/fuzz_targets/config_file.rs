//! Arbitrary text as a node's config file: reading and resolving it never panics, errors point
//! at a line of the text, and what is accepted passes the one validator. The check itself is
//! `hera::fuzzing::check_config_file`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::fuzzing::check_config_file(data));
