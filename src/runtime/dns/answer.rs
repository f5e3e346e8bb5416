//! The records for a question, read from the published snapshot: which instances a service
//! name stands for, their addresses and SRV targets, nodes, and the zone's SOA.

use std::collections::HashMap;
use std::net::IpAddr;

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

/// What a name stands for in one snapshot, before an answer's shuffle. Building it is most of
/// a query's work (the service's instances, their health, owners and addresses); it depends
/// only on the snapshot and the question, so the face keeps it per snapshot
/// ([`super::cache`]) and each query only picks from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Handed out as they are: the SOA, a node's address, PTRs, NODATA.
    Fixed(Answer),
    /// A service's records, one per serving address (A/AAAA) or instance (SRV). Each answer
    /// takes at most `records_max` of them, chosen at random and in random order.
    Shuffled {
        records: Vec<Record>,
        /// For each record, its SRV target's address record in `targets`, if it has one.
        target_of: Vec<Option<usize>>,
        /// Address records of SRV targets, one per target name.
        targets: Vec<Record>,
    },
}

impl Prepared {
    /// Records in the answer and in the additional section (what the cache's bound counts).
    pub fn records(&self) -> usize {
        match self {
            Prepared::Fixed(Answer::Found {
                answers,
                additionals,
            }) => answers.len() + additionals.len(),
            Prepared::Fixed(Answer::NoSuchName) => 0,
            Prepared::Shuffled {
                records, targets, ..
            } => records.len() + targets.len(),
        }
    }

    /// One answer: for a service, at most `records_max` records drawn at random (a uniform
    /// sample, in random order), with the addresses of the chosen SRV targets. The records
    /// are borrowed: the encoder writes them from here.
    pub fn pick(&self, records_max: usize, rng: &mut impl RngCore) -> Picked<'_> {
        let (records, target_of, targets) = match self {
            Prepared::Fixed(Answer::NoSuchName) => return Picked::NoSuchName,
            Prepared::Fixed(Answer::Found {
                answers,
                additionals,
            }) => {
                return Picked::Found {
                    answers: answers.iter().collect(),
                    additionals: additionals.iter().collect(),
                }
            }
            Prepared::Shuffled {
                records,
                target_of,
                targets,
            } => (records, target_of, targets),
        };
        let chosen = sample(records.len(), records_max, rng);
        let mut answers = Vec::with_capacity(chosen.len());
        let mut extra: Vec<usize> = Vec::new();
        for at in chosen {
            answers.extend(records.get(at));
            if let Some(Some(t)) = target_of.get(at) {
                // At most `records_max` targets: a linear check is cheaper than hashing.
                if !extra.contains(t) {
                    extra.push(*t);
                }
            }
        }
        Picked::Found {
            answers,
            additionals: extra.into_iter().filter_map(|t| targets.get(t)).collect(),
        }
    }
}

/// One answer's records, borrowed from the [`Prepared`] they were drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked<'a> {
    Found {
        answers: Vec<&'a Record>,
        additionals: Vec<&'a Record>,
    },
    NoSuchName,
}

/// `k` distinct indices below `n`, uniformly chosen and in random order: a partial
/// Fisher-Yates shuffle over a virtual identity array, whose displaced entries are kept in a
/// short list, so the work is O(k^2) with k <= records_max, whatever the service's size.
fn sample(n: usize, k: usize, rng: &mut impl RngCore) -> Vec<usize> {
    let k = k.min(n);
    let mut chosen = Vec::with_capacity(k);
    // (position, value) of the virtual array's entries moved by earlier swaps.
    let mut moved: Vec<(usize, usize)> = Vec::with_capacity(k);
    let value_at = |moved: &[(usize, usize)], pos: usize| {
        moved
            .iter()
            .rev()
            .find(|(p, _)| *p == pos)
            .map_or(pos, |(_, v)| *v)
    };
    for i in 0..k {
        let span = (n - i) as u64;
        let j = i + (rng.next_u64() % span) as usize;
        let (vi, vj) = (value_at(&moved, i), value_at(&moved, j));
        chosen.push(vj);
        moved.push((j, vi));
    }
    chosen
}

/// What `name` (as asked, case kept) of type `wanted` stands for in this snapshot.
pub fn prepare(
    s: &Snapshot,
    config: &DnsConfig,
    name: &Name,
    wanted: RecordType,
    asked: &Asked,
) -> Prepared {
    let fixed = |answers: Vec<Record>| {
        Prepared::Fixed(Answer::Found {
            answers,
            additionals: Vec::new(),
        })
    };
    match asked {
        Asked::Apex if wanted == RecordType::SOA => fixed(vec![soa(s, config)]),
        Asked::Apex => Prepared::Fixed(Answer::empty()),
        Asked::Service(lookup) => service(s, config, name, wanted, lookup),
        Asked::Node { node, dc } => match find_member(s, node) {
            Some(m) if m.state.is_live() && dc_matches(dc, &m.profile.dc) => fixed(
                address(name, m.profile.addr.ip(), wanted, config.ttl)
                    .into_iter()
                    .collect(),
            ),
            _ => Prepared::Fixed(Answer::NoSuchName),
        },
        Asked::Addr(ip) => fixed(address(name, *ip, wanted, config.ttl).into_iter().collect()),
        Asked::Reverse(ip) => Prepared::Fixed(reverse(s, config, name, wanted, *ip)),
        Asked::Unknown | Asked::Outside => Prepared::Fixed(Answer::NoSuchName),
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
fn named<'s>(s: &'s Snapshot, lookup: &ServiceLookup) -> Vec<&'s Instance> {
    let matches = |i: &&Instance| {
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

fn service(
    s: &Snapshot,
    config: &DnsConfig,
    name: &Name,
    wanted: RecordType,
    lookup: &ServiceLookup,
) -> Prepared {
    let named = named(s, lookup);
    if named.is_empty() {
        return Prepared::Fixed(Answer::NoSuchName);
    }
    let serving = named.into_iter().filter(|i| serves(i));
    match wanted {
        RecordType::SRV => srv(s, config, name, serving),
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
            let records: Vec<Record> = ips
                .into_iter()
                .filter_map(|ip| address(name, ip, wanted, config.ttl))
                .collect();
            Prepared::Shuffled {
                target_of: vec![None; records.len()],
                records,
                targets: Vec::new(),
            }
        }
        _ => Prepared::Fixed(Answer::empty()),
    }
}

/// RFC 2782 SRV records, with Consul's target names: `<node>.node.<dc>.<domain>` for an
/// instance at its node's address, `<hex>.addr.<dc>.<domain>` for one with its own, the host
/// name for one registered by name; the targets' addresses go in the additional section.
fn srv<'s>(
    s: &'s Snapshot,
    config: &DnsConfig,
    name: &Name,
    serving: impl Iterator<Item = &'s Instance>,
) -> Prepared {
    let mut records = Vec::new();
    let mut target_of = Vec::new();
    let mut targets: Vec<Record> = Vec::new();
    // Target name (lower case) -> its address record's index in `targets`.
    let mut target_index: HashMap<String, usize> = HashMap::new();
    for i in serving {
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
        let extra = ip.and_then(|ip| {
            let key = host.to_lowercase().to_ascii();
            if let Some(at) = target_index.get(&key) {
                return Some(*at);
            }
            let record = address(&host, ip, RecordType::ANY, config.ttl)?;
            targets.push(record);
            let at = targets.len() - 1;
            target_index.insert(key, at);
            Some(at)
        });
        let data = SRV::new(1, 1, i.port, host);
        records.push(Record::from_rdata(
            name.clone(),
            config.ttl,
            RData::SRV(data),
        ));
        target_of.push(extra);
    }
    Prepared::Shuffled {
        records,
        target_of,
        targets,
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

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::sample;

    #[test]
    fn a_sample_is_distinct_bounded_and_reaches_every_index() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        assert!(sample(0, 64, &mut rng).is_empty());
        assert_eq!(sample(3, 64, &mut rng).len(), 3);
        let mut seen = [0u32; 100];
        let mut first = [0u32; 100];
        for _ in 0..2_000 {
            let mut got = sample(100, 10, &mut rng);
            first[got[0]] += 1;
            assert_eq!(got.len(), 10);
            got.iter().for_each(|&i| seen[i] += 1);
            got.sort_unstable();
            got.dedup();
            assert_eq!(got.len(), 10, "distinct");
        }
        // 200 expected per index (and 20 for the first place): far from 0 and from twice that.
        assert!(seen.iter().all(|&n| (120..300).contains(&n)), "{seen:?}");
        assert!(first.iter().all(|&n| n < 60), "{first:?}");
        // The whole set, in some order, when k >= n.
        let mut all = sample(50, 64, &mut rng);
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }
}
