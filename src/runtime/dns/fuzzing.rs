//! The DNS fuzz target's check, shared with the seed replay in `tests/fuzz_seeds.rs`: any bytes
//! through the real query handler, against a snapshot of a real node holding services of every
//! kind. Nothing panics, and every response is a well-formed DNS message for that query that
//! fits its transport.

// A fuzz harness: its job is to panic when an invariant breaks, so the lints that keep
// panics out of the node do not apply here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::cache::{AnswerCache, UDP_CACHE_RECORDS};
use super::query::{respond, Transport, UDP_EDNS_MAX_BYTES, UDP_PLAIN_BYTES};
use super::DnsConfig;
use crate::config::Config;
use crate::names::{InstanceId, Label, NodeName, ServiceName};
use crate::node::{Command, Identity, Node};
use crate::registry::{Health, InstanceSpec};
use crate::runtime::driver::Snapshot;
use crate::time::Instant;

/// A node of its own with 70 `web` instances (tagged, IPv4 and IPv6, one by host name, one on
/// its node's address, one critical, one in maintenance) and a `db`.
pub fn fixture() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let now = Instant::from_micros(1_700_000_000_000_000);
        let name = |s: &str| NodeName::new(s).unwrap_or_else(|_| unreachable_name());
        let identity = Identity {
            name: name("fuzz-node"),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7946)),
            dc: Label::new("dc1").unwrap_or_else(|_| Label::new("x").expect("a label")),
            tags: Vec::new(),
        };
        let mut node = Node::new(Config::local(), identity, 1, now);
        let mut register = |service: &str, id: String, address: String, tags: &[&str]| {
            let Ok(service) = ServiceName::new(service) else {
                return;
            };
            let mut spec = InstanceSpec::new(service, &address, 8080);
            spec.id = InstanceId::new(&id).ok();
            spec.tags = tags.iter().map(|t| t.to_string()).collect();
            let _ = node.handle_command(now, Command::Register(spec));
        };
        for i in 0..64u8 {
            let tags: &[&str] = if i % 2 == 0 {
                &["v2", "primary"]
            } else {
                &["v1"]
            };
            register("web", format!("web-{i}"), format!("10.0.0.{i}"), tags);
        }
        register("web", "web-v6".into(), "2001:db8::7".into(), &["v2"]);
        register("web", "web-host".into(), "web.example.com".into(), &[]);
        register("web", "web-node".into(), String::new(), &[]);
        register("web", "web-sick".into(), "10.0.1.1".into(), &[]);
        register("web", "web-away".into(), "10.0.1.2".into(), &[]);
        register("db", "db-1".into(), "10.0.2.1".into(), &["primary"]);
        let id = |s: &str| InstanceId::new(s).ok();
        if let Some(sick) = id("web-sick") {
            let _ = node.handle_command(
                now,
                Command::SetHealth {
                    id: sick,
                    health: Health::Critical,
                    output: "down".into(),
                },
            );
        }
        if let Some(away) = id("web-away") {
            let _ = node.handle_command(
                now,
                Command::SetMaintenance {
                    id: away,
                    enable: true,
                    reason: None,
                },
            );
        }
        Snapshot::of(&node, now)
    })
}

fn unreachable_name() -> NodeName {
    NodeName::new("n").expect("a valid name")
}

/// Any bytes as a query, over both transports.
pub fn check_query(data: &[u8]) {
    let snapshot = fixture();
    let config = DnsConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let asked = Message::from_vec(data).ok();
    // The UDP path as served (a cache, asked twice: built, then kept) and TCP's (none).
    let mut cache = AnswerCache::new(UDP_CACHE_RECORDS);
    let mut no_cache = AnswerCache::new(0);
    for transport in [Transport::Udp, Transport::Udp, Transport::Tcp] {
        let cache = match transport {
            Transport::Udp => &mut cache,
            Transport::Tcp => &mut no_cache,
        };
        let Some(answer) = respond(snapshot, &config, cache, data, transport, &mut rng) else {
            continue;
        };
        let response = match Message::from_vec(&answer) {
            Ok(response) => response,
            Err(e) => panic!("an answer that does not decode ({e}): {answer:02x?}"),
        };
        assert_eq!(response.metadata.message_type, MessageType::Response);
        assert_eq!(
            answer.get(..2),
            data.get(..2),
            "the answer carries the query's id"
        );
        match transport {
            Transport::Udp => {
                let offered = asked
                    .as_ref()
                    .and_then(|m| m.edns.as_ref())
                    .map_or(UDP_PLAIN_BYTES, |e| {
                        e.max_payload().clamp(UDP_PLAIN_BYTES, UDP_EDNS_MAX_BYTES)
                    });
                assert!(
                    answer.len() <= usize::from(offered),
                    "{} bytes over UDP, {offered} offered",
                    answer.len()
                );
            }
            Transport::Tcp => assert!(!response.metadata.truncation, "truncated over TCP"),
        }
        if let Some(asked) = &asked {
            assert!(response.queries.len() <= 1);
            if let (Some(q), Some(a)) = (asked.queries.first(), response.queries.first()) {
                assert_eq!(q, a, "the answer repeats the question");
            }
        }
    }
}
