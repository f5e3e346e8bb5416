//! The HTTP surface: a real node on loopback, one raw request per input (method, path and
//! query, body). The checks live in `hera::runtime::http::fuzzing`, shared with the seed replay
//! in `tests/fuzz_seeds.rs`.

#![no_main]

use hera::runtime::http::fuzzing::HttpTarget;
use libfuzzer_sys::fuzz_target;

thread_local! {
    // One node for the whole run: starting one per input would measure start-up, not the API.
    static TARGET: HttpTarget = HttpTarget::start();
}

fuzz_target!(|data: &[u8]| {
    TARGET.with(|target| {
        target.check(data);
    });
});
