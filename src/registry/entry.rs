//! A registry entry as stored and as sent: a service instance, or the tombstone of one.
//!
//! Every field is bounded, so a decoded entry is always within limits, and an encoded entry is
//! checked to fit one datagram before it is accepted from a client ([`ENTRY_MAX_BYTES`]).

use std::time::Duration;

use bincode::{Decode, Encode};

use super::hlc::Hlc;
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::wire::bounded::{BoundedString, BoundedVec};

pub const ADDRESS_MAX_BYTES: usize = 256;
pub const TAGS_MAX: usize = 32;
pub const TAG_MAX_BYTES: usize = 128;
pub const META_MAX: usize = 32;
pub const META_KEY_MAX_BYTES: usize = 64;
pub const META_VALUE_MAX_BYTES: usize = 512;
/// The seed API's free-form JSON object, as text.
pub const BODY_MAX_BYTES: usize = 1_024;
pub const OUTPUT_MAX_BYTES: usize = 256;
pub const URL_MAX_BYTES: usize = 512;
/// An encoded entry must fit one datagram with room for the envelope and a ping: larger
/// registrations are refused at the API (413), so every entry can always be gossiped.
pub const ENTRY_MAX_BYTES: usize = 1_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        match s.to_ascii_lowercase().as_str() {
            "passing" | "pass" => Some(Health::Passing),
            "warning" | "warn" => Some(Health::Warning),
            "critical" | "fail" => Some(Health::Critical),
            _ => None,
        }
    }
}

/// How an instance's health is kept.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Check {
    /// No check: passing while registered.
    None,
    /// The instance reports in; no report within `ttl_ms` makes it critical.
    Ttl { ttl_ms: u64 },
    /// The owning node GETs `url` every `interval_ms`: 2xx passing, 429 warning, else critical.
    Http {
        url: BoundedString<URL_MAX_BYTES>,
        interval_ms: u64,
        timeout_ms: u64,
    },
}

impl Check {
    pub fn ttl(&self) -> Option<Duration> {
        match self {
            Check::Ttl { ttl_ms } => Some(Duration::from_millis(*ttl_ms)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MetaPair {
    pub key: BoundedString<META_KEY_MAX_BYTES>,
    pub value: BoundedString<META_VALUE_MAX_BYTES>,
}

/// A service instance.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Instance {
    pub service: ServiceName,
    pub id: InstanceId,
    pub address: BoundedString<ADDRESS_MAX_BYTES>,
    pub port: u16,
    pub tags: BoundedVec<BoundedString<TAG_MAX_BYTES>, TAGS_MAX>,
    pub meta: BoundedVec<MetaPair, META_MAX>,
    pub body: Option<BoundedString<BODY_MAX_BYTES>>,
    pub check: Check,
    /// Seed API: deregistered this long after the last write or renewal.
    pub liveness_ms: Option<u64>,
    /// Consul: deregistered after being critical this long.
    pub deregister_critical_after_ms: Option<u64>,
    /// The node that enforces its TTL and runs its checks: where it last registered or renewed.
    pub owner: NodeName,
    pub health: Health,
    pub output: BoundedString<OUTPUT_MAX_BYTES>,
    /// Wall milliseconds when `health` last changed.
    pub health_since_ms: u64,
    /// False while in maintenance (off-line).
    pub online: bool,
    pub maintenance_reason: Option<BoundedString<OUTPUT_MAX_BYTES>>,
}

impl Instance {
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.0.iter().map(|t| t.0.as_str())
    }

    pub fn meta(&self) -> impl Iterator<Item = (&str, &str)> {
        self.meta
            .0
            .iter()
            .map(|m| (m.key.0.as_str(), m.value.0.as_str()))
    }

    /// Healthy and on-line: what a load balancer may send traffic to.
    pub fn is_serving(&self) -> bool {
        self.online && self.health == Health::Passing
    }
}

/// One entry as gossiped: the instance at a version, or its tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Entry {
    pub id: InstanceId,
    pub version: Hlc,
    pub instance: Option<Box<Instance>>,
}

/// Truncate `text` to at most `max` bytes on a character boundary.
pub fn clip<const MAX: usize>(text: &str) -> BoundedString<MAX> {
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    BoundedString(text[..end].to_string())
}
