//! The records for a question, read from the published snapshot: which instances a service
//! name stands for, their addresses and SRV targets, nodes, and the zone's SOA.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand_core::RngCore;

use super::names::{addr_label, Asked, ServiceLookup};
use super::DnsConfig;
use crate::names::{NodeName, ServiceName};
use crate::node::MemberView;
use crate::registry::{Health, Instance};
use crate::runtime::driver::Snapshot;

/// What the zone says about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists; its records of the asked type (none: NODATA) and the addresses of
    /// SRV targets for the additional section.
    Found {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// NXDOMAIN.
    NoSuchName,
}

impl Answer {
    fn empty() -> Answer {
        Answer::Found {
            answers: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// The records for `name` (as asked, case kept) of type `wanted`.
pub fn answer(
    s: &Snapshot,
    config: &DnsConfig,
    name: &Name,
    wanted: RecordType,
    asked: &Asked,
    rng: &mut impl RngCore,
) -> Answer {
    match asked {
        Asked::Apex if wanted == RecordType::SOA => Answer::Found {
            answers: vec![soa(s, config)],
            additionals: Vec::new(),
        },
        Asked::Apex => Answer::empty(),
        Asked::Service(lookup) => service(s, config, name, wanted, lookup, rng),
        Asked::Node { node, dc } => match find_member(s, node) {
            Some(m) if m.state.is_live() && dc_matches(dc, &m.profile.dc) => Answer::Found {
                answers: address(name, m.profile.addr.ip(), wanted, config.ttl)
                    .into_iter()
                    .collect(),
                additionals: Vec::new(),
            },
            _ => Answer::NoSuchName,
        },
        Asked::Addr(ip) => Answer::Found {
            answers: address(name, *ip, wanted, config.ttl).into_iter().collect(),
            additionals: Vec::new(),
        },
        Asked::Reverse(ip) => reverse(s, config, name, wanted, *ip),
        Asked::Unknown | Asked::Outside => Answer::NoSuchName,
    }
}

/// The zone's SOA: in the answer for the apex, in the authority section of every negative
/// answer, where its minimum is how long resolvers may cache the negative (RFC 2308).
pub fn soa(s: &Snapshot, config: &DnsConfig) -> Record {
    let zone = config.domain.name();
    let label = |l: &str| {
        Name::from_ascii(l)
            .and_then(|n| n.append_domain(zone))
            .unwrap_or_else(|_| zone.clone())
    };
    // The registry index as serial: it grows with every change the node has seen.
    let serial = (s.registry.index() & u64::from(u32::MAX)) as u32;
    let data = SOA::new(
        label("ns"),
        label("hostmaster"),
        serial,
        3_600,
        600,
        86_400,
        config.ttl,
    );
    Record::from_rdata(zone.clone(), config.ttl, RData::SOA(data))
}

/// An A or AAAA record of `ip` if it is of the asked type.
fn address(name: &Name, ip: IpAddr, wanted: RecordType, ttl: u32) -> Option<Record> {
    let data = match (ip, wanted) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), ttl, data))
}

/// Members are listed self first, then by name: a binary search on the rest.
fn find_member<'s>(s: &'s Snapshot, name: &str) -> Option<&'s MemberView> {
    let (me, others) = s.members.split_first()?;
    if me.name.as_str().eq_ignore_ascii_case(name) {
        return Some(me);
    }
    match others.binary_search_by(|m| m.name.as_str().cmp(name)) {
        Ok(at) => others.get(at),
        // Case differs: DNS names are case-insensitive, hera's are not.
        Err(_) => others
            .iter()
            .find(|m| m.name.as_str().eq_ignore_ascii_case(name)),
    }
}

fn owner<'s>(s: &'s Snapshot, owner: &NodeName) -> Option<&'s MemberView> {
    find_member(s, owner.as_str())
}

fn dc_matches(asked: &Option<String>, dc: &crate::names::Label) -> bool {
    asked
        .as_ref()
        .is_none_or(|want| want.eq_ignore_ascii_case(dc.as_str()))
}

/// The instances a service lookup names, whatever their health: if there are none, the name
/// does not exist.
fn named<'s>(s: &'s Snapshot, lookup: &ServiceLookup) -> Vec<&'s Arc<Instance>> {
    let matches = |i: &&Arc<Instance>| {
        let tag_ok = lookup
            .tag
            .as_ref()
            .is_none_or(|want| i.tags().any(|t| t.eq_ignore_ascii_case(want)));
        let dc_ok = lookup.dc.is_none()
            || owner(s, &i.owner).is_some_and(|m| dc_matches(&lookup.dc, &m.profile.dc));
        tag_ok && dc_ok
    };
    let exact: Vec<_> = ServiceName::new(&lookup.service)
        .map(|name| s.registry.service(&name).filter(matches).collect())
        .unwrap_or_default();
    if !exact.is_empty() {
        return exact;
    }
    // DNS names are case-insensitive, hera's service names are not: a scan, only on a miss.
    s.registry
        .instances()
        .filter(|i| i.service.as_str().eq_ignore_ascii_case(&lookup.service))
        .filter(matches)
        .collect()
}

/// What DNS hands out, as Consul's DNS does: on-line and not critical (warning still serves).
/// Instances kept stale for want of quorum are served, as the HTTP health listing serves them:
/// self-preservation exists so that discovery goes on through a partition.
fn serves(i: &Instance) -> bool {
    i.online && i.health != Health::Critical
}

/// Where an instance is reached.
enum Target {
    /// Its node's address (an instance registered without one, or with its node's).
    Node(IpAddr),
    /// An address of its own.
    Ip(IpAddr),
    Host(Name),
}

fn target<'s>(s: &'s Snapshot, i: &Instance) -> Option<(Target, Option<&'s MemberView>)> {
    let member = owner(s, &i.owner);
    let node_ip = member.map(|m| m.profile.addr.ip());
    let text = i.address.0.as_str();
    let target = if text.is_empty() {
        Target::Node(node_ip?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        if Some(ip) == node_ip {
            Target::Node(ip)
        } else {
            Target::Ip(ip)
        }
    } else {
        let mut host = Name::from_ascii(text).ok()?;
        host.set_fqdn(true);
        Target::Host(host)
    };
    Some((target, member))
}

fn shuffle<T>(items: &mut [T], rng: &mut impl RngCore) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn service(
    s: &Snapshot,
    config: &DnsConfig,
    name: &Name,
    wanted: RecordType,
    lookup: &ServiceLookup,
    rng: &mut impl RngCore,
) -> Answer {
    let named = named(s, lookup);
    if named.is_empty() {
        return Answer::NoSuchName;
    }
    let serving = named.into_iter().filter(|i| serves(i));
    match wanted {
        RecordType::SRV => srv(s, config, name, serving, rng),
        RecordType::A | RecordType::AAAA | RecordType::ANY => {
            let mut ips: Vec<IpAddr> = serving
                .filter_map(|i| match target(s, i)?.0 {
                    Target::Node(ip) | Target::Ip(ip) => Some(ip),
                    // A name cannot hold several CNAMEs; hostname instances answer SRV only.
                    Target::Host(_) => None,
                })
                .collect();
            // One record per address: several instances on one host share it.
            ips.sort_unstable();
            ips.dedup();
            ips.retain(|ip| address(name, *ip, wanted, config.ttl).is_some());
            shuffle(&mut ips, rng);
            ips.truncate(config.records_max);
            Answer::Found {
                answers: ips
                    .into_iter()
                    .filter_map(|ip| address(name, ip, wanted, config.ttl))
                    .collect(),
                additionals: Vec::new(),
            }
        }
        _ => Answer::empty(),
    }
}

/// RFC 2782 SRV records, with Consul's target names: `<node>.node.<dc>.<domain>` for an
/// instance at its node's address, `<hex>.addr.<dc>.<domain>` for one with its own, the host
/// name for one registered by name; the targets' addresses go in the additional section.
fn srv<'s>(
    s: &'s Snapshot,
    config: &DnsConfig,
    name: &Name,
    serving: impl Iterator<Item = &'s Arc<Instance>>,
    rng: &mut impl RngCore,
) -> Answer {
    let mut chosen: Vec<&Arc<Instance>> = serving.collect();
    shuffle(&mut chosen, rng);
    chosen.truncate(config.records_max);
    let mut answers = Vec::with_capacity(chosen.len());
    let mut additionals: Vec<Record> = Vec::new();
    for i in chosen {
        let Some((target, member)) = target(s, i) else {
            continue;
        };
        let dc = member.map_or("unknown", |m| m.profile.dc.as_str());
        let (host, ip) = match target {
            Target::Node(ip) => (prefixed(&[i.owner.as_str(), "node", dc], config), Some(ip)),
            Target::Ip(ip) => (prefixed(&[&addr_label(ip), "addr", dc], config), Some(ip)),
            Target::Host(host) => (Some(host), None),
        };
        let Some(host) = host else {
            continue;
        };
        if let Some(ip) = ip {
            if !additionals.iter().any(|r| r.name == host) {
                additionals.extend(address(&host, ip, RecordType::ANY, config.ttl));
            }
        }
        let data = SRV::new(1, 1, i.port, host);
        answers.push(Record::from_rdata(
            name.clone(),
            config.ttl,
            RData::SRV(data),
        ));
    }
    Answer::Found {
        answers,
        additionals,
    }
}

/// `labels` (each possibly dotted, as node names are) under the domain.
fn prefixed(labels: &[&str], config: &DnsConfig) -> Option<Name> {
    Name::from_ascii(labels.join("."))
        .ok()?
        .append_domain(config.domain.name())
        .ok()
}

/// PTR records naming the live members at `ip`.
fn reverse(
    s: &Snapshot,
    config: &DnsConfig,
    name: &Name,
    wanted: RecordType,
    ip: IpAddr,
) -> Answer {
    let at: Vec<&MemberView> = s
        .members
        .iter()
        .filter(|m| m.state.is_live() && m.profile.addr.ip() == ip)
        .take(config.records_max)
        .collect();
    if at.is_empty() {
        return Answer::NoSuchName;
    }
    if !matches!(wanted, RecordType::PTR | RecordType::ANY) {
        return Answer::empty();
    }
    let answers = at
        .into_iter()
        .filter_map(|m| prefixed(&[m.name.as_str(), "node", m.profile.dc.as_str()], config))
        .map(|host| Record::from_rdata(name.clone(), config.ttl, RData::PTR(PTR(host))))
        .collect();
    Answer::Found {
        answers,
        additionals: Vec::new(),
    }
}
