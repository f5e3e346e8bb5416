//! The DNS face: Consul's DNS interface on UDP and TCP, answered from the published snapshot
//! (never from the node's task, so a flood of queries cannot slow the protocol).
//!
//! | module | job |
//! |---|---|
//! | [`names`] | the zone's domain, and what a query name asks for |
//! | [`answer`] | snapshot + question -> records (health filter, shuffle, SRV targets, SOA) |
//! | [`cache`] | what a service name stands for, kept per snapshot; each query only shuffles |
//! | [`query`] | bytes in, bytes out: header checks, response codes, EDNS0, truncation |
//! | [`server`] | the UDP and TCP listeners, with their bounds and timeouts |
//!
//! Parsing and encoding are hickory-proto's; nothing here writes packet bytes by hand.

pub mod answer;
pub mod cache;
// The fuzz target's and the seed replay's harness: never in a production build.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod names;
pub mod query;
pub mod server;

use std::time::Duration;

pub use cache::AnswerCache;
pub use names::{Domain, DomainError};
pub use query::{respond, Transport};
pub use server::{bind, serve, BindError, Listeners};

/// The default address: Consul's DNS port, on loopback.
pub const DEFAULT_DNS: &str = "127.0.0.1:8600";

/// Records in one answer at most (A/AAAA, SRV or PTR): bounds the work and the size of every
/// answer, whatever a service's size. 64 addresses are ~1 KiB over TCP; a client needs a few
/// addresses to spread its load, and the shuffle hands every instance out in turn.
pub const RECORDS_MAX: usize = 64;

/// How the face answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub domain: Domain,
    /// The TTL of every record and of negative answers (the SOA minimum), in seconds. 0 by
    /// default, as in Consul: resolvers ask again each time and see health changes at once.
    pub ttl: u32,
    pub records_max: usize,
}

impl DnsConfig {
    pub fn new(domain: Domain, ttl: Duration) -> DnsConfig {
        DnsConfig {
            domain,
            ttl: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            records_max: RECORDS_MAX,
        }
    }
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig::new(Domain::default(), Duration::ZERO)
    }
}
