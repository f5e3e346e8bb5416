//! Arbitrary bytes as a node's data_dir files (instances.json, instances.log and the small state
//! files), read by the real loader from real files: no panic, a refusal names the file (and the
//! log's offset), and what loads is within the registry's bounds and loads again the same once
//! written back. The check itself is `hera::runtime::store::fuzzing::check_data_dir`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::runtime::store::fuzzing::check_data_dir(data));
