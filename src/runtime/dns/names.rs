//! What a query name asks for: Consul's DNS name forms, read right to left under the
//! configured domain. Nothing here looks at the registry; [`super::answer`] does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// The zone the face answers for (`consul.` by default): lower case, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(Name);

/// Why a configured domain was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    pub domain: String,
    pub reason: String,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a DNS domain: {}", self.domain, self.reason)
    }
}

impl std::error::Error for DomainError {}

impl Domain {
    pub const DEFAULT: &'static str = "consul";

    /// A domain as operators write it: `consul`, `hera.`, `sd.example.com`.
    pub fn new(text: &str) -> Result<Domain, DomainError> {
        let refuse = |reason: &str| DomainError {
            domain: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(refuse("it is empty (the root zone is not ours to answer)"));
        }
        let valid = trimmed.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !valid {
            return Err(refuse("use labels of letters, digits, '-' and '_'"));
        }
        let mut name = Name::from_ascii(trimmed).map_err(|e| refuse(&e.to_string()))?;
        name.set_fqdn(true);
        Ok(Domain(name.to_lowercase()))
    }

    pub fn name(&self) -> &Name {
        &self.0
    }

    fn labels(&self) -> usize {
        usize::from(self.0.num_labels())
    }
}

impl Default for Domain {
    fn default() -> Domain {
        Domain::new(Domain::DEFAULT).unwrap_or_else(|_| Domain(Name::root()))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A service lookup: `[tag.]service.service[.dc]` or `_service._tag.service[.dc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLookup {
    pub service: String,
    /// Only instances with this tag (`_tcp` in the RFC 2782 form means no filter).
    pub tag: Option<String>,
    pub dc: Option<String>,
}

/// What a query name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The domain itself: its SOA.
    Apex,
    Service(ServiceLookup),
    /// `<node>.node[.dc]`: a member's address.
    Node {
        node: String,
        dc: Option<String>,
    },
    /// `<hex>.addr[.dc]`: an address spelt in hex, the SRV target of an instance whose address
    /// is not its node's (Consul's form).
    Addr(IpAddr),
    /// A reverse lookup (`in-addr.arpa`, `ip6.arpa`) of a whole address.
    Reverse(IpAddr),
    /// Under the domain, but no form matches: the name does not exist.
    Unknown,
    /// Not under the domain: not ours to answer, and no recursion.
    Outside,
}

/// Read a query name.
pub fn parse(name: &Name, domain: &Domain) -> Asked {
    if let Some(ip) = reverse(name) {
        return ip;
    }
    if !domain.name().zone_of(name) {
        return Asked::Outside;
    }
    let labels: Vec<&[u8]> = name.iter().collect();
    let Some(mine) = labels.len().checked_sub(domain.labels()) else {
        return Asked::Outside;
    };
    let Some(labels) = labels.get(..mine) else {
        return Asked::Outside;
    };
    let Some((last, rest)) = labels.split_last() else {
        return Asked::Apex;
    };
    // `<...>.<kind>` or `<...>.<kind>.<dc>`.
    let (kind, before, dc) = match Kind::of(last) {
        Some(kind) => (kind, rest, None),
        None => match rest.split_last() {
            Some((kind, before)) => match Kind::of(kind) {
                Some(kind) => (kind, before, text(last)),
                None => return Asked::Unknown,
            },
            None => return Asked::Unknown,
        },
    };
    let parsed = match kind {
        Kind::Service => service(before, dc),
        Kind::Node => node(before, dc),
        Kind::Addr => match before {
            [hex] => addr(hex).map(Asked::Addr),
            _ => None,
        },
    };
    parsed.unwrap_or(Asked::Unknown)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Service,
    Node,
    Addr,
}

impl Kind {
    fn of(label: &[u8]) -> Option<Kind> {
        [
            (&b"service"[..], Kind::Service),
            (b"node", Kind::Node),
            (b"addr", Kind::Addr),
        ]
        .into_iter()
        .find(|(word, _)| label.eq_ignore_ascii_case(word))
        .map(|(_, kind)| kind)
    }
}

/// A label as text: hera's names are ASCII, so anything else matches nothing.
fn text(label: &[u8]) -> Option<String> {
    std::str::from_utf8(label).ok().map(str::to_string)
}

fn service(before: &[&[u8]], dc: Option<String>) -> Option<Asked> {
    let lookup = match before {
        [service] => ServiceLookup {
            service: text(service)?,
            tag: None,
            dc,
        },
        // RFC 2782: `_service._proto` or Consul's `_service._tag`.
        [service, tag] if service.starts_with(b"_") && tag.starts_with(b"_") => {
            let tag = text(tag.get(1..)?)?;
            ServiceLookup {
                service: text(service.get(1..)?)?,
                tag: (!tag.eq_ignore_ascii_case("tcp")).then_some(tag),
                dc,
            }
        }
        [tag, service] => ServiceLookup {
            service: text(service)?,
            tag: Some(text(tag)?),
            dc,
        },
        _ => return None,
    };
    Some(Asked::Service(lookup))
}

/// Node names may hold dots: every label before `node` is the name.
fn node(before: &[&[u8]], dc: Option<String>) -> Option<Asked> {
    if before.is_empty() {
        return None;
    }
    let parts: Option<Vec<String>> = before.iter().map(|l| text(l)).collect();
    Some(Asked::Node {
        node: parts?.join("."),
        dc,
    })
}

/// 8 hex digits for IPv4, 32 for IPv6.
fn addr(hex: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hex).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match text.len() {
        8 => u32::from_str_radix(text, 16)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        32 => u128::from_str_radix(text, 16)
            .ok()
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// The hex label of [`Asked::Addr`] for an address.
pub fn addr_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

/// A reverse name of one whole address; a partial one (a zone cut) is a name we do not know.
fn reverse(name: &Name) -> Option<Asked> {
    let last_two: Vec<&[u8]> = name.iter().rev().take(2).collect();
    let arpa = matches!(last_two.as_slice(), [arpa, zone]
        if arpa.eq_ignore_ascii_case(b"arpa")
            && (zone.eq_ignore_ascii_case(b"in-addr") || zone.eq_ignore_ascii_case(b"ip6")));
    if !arpa {
        return None;
    }
    Some(match name.parse_arpa_name() {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => Asked::Reverse(net.addr()),
        _ => Asked::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(name: &str) -> Asked {
        parse(&Name::from_ascii(name).unwrap(), &Domain::default())
    }

    fn lookup(service: &str, tag: Option<&str>, dc: Option<&str>) -> Asked {
        Asked::Service(ServiceLookup {
            service: service.into(),
            tag: tag.map(Into::into),
            dc: dc.map(Into::into),
        })
    }

    #[test]
    fn every_name_form() {
        let table = [
            ("consul.", Asked::Apex),
            ("web.service.consul.", lookup("web", None, None)),
            ("WEB.Service.CONSUL.", lookup("WEB", None, None)),
            ("v2.web.service.consul.", lookup("web", Some("v2"), None)),
            ("web.service.dc1.consul.", lookup("web", None, Some("dc1"))),
            (
                "v2.web.service.dc1.consul.",
                lookup("web", Some("v2"), Some("dc1")),
            ),
            ("_web._tcp.service.consul.", lookup("web", None, None)),
            ("_web._v2.service.consul.", lookup("web", Some("v2"), None)),
            (
                "_web._v2.service.east.consul.",
                lookup("web", Some("v2"), Some("east")),
            ),
            (
                "n1.node.consul.",
                Asked::Node {
                    node: "n1".into(),
                    dc: None,
                },
            ),
            (
                "host.a.node.dc1.consul.",
                Asked::Node {
                    node: "host.a".into(),
                    dc: Some("dc1".into()),
                },
            ),
            (
                "7f000001.addr.dc1.consul.",
                Asked::Addr("127.0.0.1".parse().unwrap()),
            ),
            (
                "00000000000000000000000000000001.addr.consul.",
                Asked::Addr("::1".parse().unwrap()),
            ),
            (
                "1.0.0.127.in-addr.arpa.",
                Asked::Reverse("127.0.0.1".parse().unwrap()),
            ),
            ("0.127.in-addr.arpa.", Asked::Unknown),
            ("service.consul.", Asked::Unknown),
            ("a.b.c.service.consul.", Asked::Unknown),
            ("web.query.consul.", Asked::Unknown),
            ("x.web.query.dc1.consul.", Asked::Unknown),
            ("node.consul.", Asked::Unknown),
            ("xyz.addr.consul.", Asked::Unknown),
            ("example.com.", Asked::Outside),
            ("consul.example.com.", Asked::Outside),
            (".", Asked::Outside),
        ];
        for (name, expected) in table {
            assert_eq!(asked(name), expected, "{name}");
        }
    }

    #[test]
    fn addr_labels_read_back() {
        for ip in ["10.1.2.3", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            let name = format!("{}.addr.consul.", addr_label(ip));
            assert_eq!(asked(&name), Asked::Addr(ip));
        }
    }

    #[test]
    fn domains_are_checked_and_lowered() {
        let hera = Domain::new("Hera.").unwrap();
        assert_eq!(hera.to_string(), "hera.");
        let name = Name::from_ascii("web.service.hera.").unwrap();
        assert_eq!(parse(&name, &hera), lookup("web", None, None));
        assert_eq!(
            Domain::new("sd.example.com").unwrap().to_string(),
            "sd.example.com."
        );
        for bad in ["", ".", "a..b", "a b", "dömain"] {
            assert!(Domain::new(bad).is_err(), "{bad:?}");
        }
    }
}
