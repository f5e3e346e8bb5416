//! Arbitrary bytes as a DNS query through the DNS face's real handler, over UDP and TCP: it
//! never panics, and every answer decodes, carries the query's id and fits its transport. The
//! check itself is `hera::runtime::dns::fuzzing::check_query`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hera::runtime::dns::fuzzing::check_query(data));
