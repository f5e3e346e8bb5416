//! A registry entry as stored and as sent: a service instance, or the tombstone of one.
//!
//! Every field is bounded, so a decoded entry is always within limits, and an encoded entry is
//! checked to fit one datagram before it is accepted from a client ([`crate::wire::ENTRY_MAX_BYTES`]).

use std::sync::Arc;
use std::time::Duration;

use bincode::{Decode, Encode};

use super::checks::CheckList;
use super::hlc::Hlc;
use crate::bounded::{BoundedString, BoundedVec};
use crate::names::{InstanceId, NodeName, ServiceName};

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

/// The longest TTL or check interval an entry may carry: the API's own bound (a day).
pub const CHECK_PERIOD_MS_MAX: u64 = 24 * 3_600 * 1_000;
/// The longest check timeout an entry may carry: the API's own bound; zero is the default.
pub const CHECK_TIMEOUT_MS_MAX: u64 = 300 * 1_000;

/// How an instance's health is kept.
///
/// Decoded through [`CheckOnWire`] and [`Check::validate`]: a gossiped check is held to the
/// rules a registration is (issue 14, finding 6), whoever sent it.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub enum Check {
    /// No check: passing while registered.
    None,
    /// The instance reports in; no report within `ttl_ms` makes it critical.
    Ttl { ttl_ms: u64 },
    /// The owning node GETs the URL every interval: 2xx passing, 429 warning, else critical.
    /// Boxed, as every kind with a text: `Check` stays two words in every entry (it was five
    /// with the URL inline, 24 B of each entry's 320, tests/memory.rs), and a TTL check, the
    /// common one, allocates nothing. Encoded as the three fields were when inline.
    Http(Box<HttpCheck>),
    /// The owning node connects to `address` (`host:port`) every `interval_ms`: a connection
    /// within the timeout is passing, anything else critical. Only ever in a [`CheckList`].
    /// Boxed, as `Http`.
    Tcp(Box<TcpCheck>),
    /// An HTTP check with a method other than GET or headers of its own; judged as `Http`.
    /// Only ever in a [`CheckList`]. Boxed, as `Http`.
    Request(Box<HttpRequest>),
}

/// [`Check::Http`]'s fields: GET `url` every `interval_ms`, `timeout_ms` (0: the default).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HttpCheck {
    pub url: BoundedString<URL_MAX_BYTES>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

/// [`Check::Tcp`]'s fields.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TcpCheck {
    pub address: BoundedString<ADDRESS_MAX_BYTES>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

/// [`Check::Request`]'s fields.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HttpRequest {
    pub url: BoundedString<URL_MAX_BYTES>,
    pub method: BoundedString<HTTP_METHOD_MAX_BYTES>,
    pub headers: BoundedVec<MetaPair, HTTP_HEADERS_MAX>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

/// Longest HTTP check method (`OPTIONS` is the longest standard one).
pub const HTTP_METHOD_MAX_BYTES: usize = 16;
/// Most headers an HTTP check sends.
pub const HTTP_HEADERS_MAX: usize = 8;

/// [`Check`]'s layout, as its derived `Encode` writes it: decoded first, then validated.
#[derive(Decode)]
enum CheckOnWire {
    None,
    Ttl { ttl_ms: u64 },
    Http(Box<HttpCheck>),
    Tcp(Box<TcpCheck>),
    Request(Box<HttpRequest>),
}

impl<C> Decode<C> for Check {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let check = match CheckOnWire::decode(d)? {
            CheckOnWire::None => Check::None,
            CheckOnWire::Ttl { ttl_ms } => Check::Ttl { ttl_ms },
            CheckOnWire::Http(http) => Check::Http(http),
            CheckOnWire::Tcp(tcp) => Check::Tcp(tcp),
            CheckOnWire::Request(request) => Check::Request(request),
        };
        check
            .validate()
            .map_err(bincode::error::DecodeError::Other)?;
        Ok(check)
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Check {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Self::decode(d)
    }
}

fn period_and_timeout(interval_ms: u64, timeout_ms: u64) -> Result<(), &'static str> {
    if !(1..=CHECK_PERIOD_MS_MAX).contains(&interval_ms) {
        return Err("a check interval is zero or longer than a day");
    }
    if timeout_ms > CHECK_TIMEOUT_MS_MAX {
        return Err("a check timeout is longer than 300 s");
    }
    Ok(())
}

/// Why a TCP check address is refused: it must be `host:port` (`[v6]:port`), a port above 0.
pub fn check_tcp_address_shape(address: &str) -> Result<(), &'static str> {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a TCP check address holds a space or a control character");
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("a TCP check address must be host:port")?;
    if host.is_empty() || host == "[]" {
        return Err("a TCP check address must name a host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("a TCP check address must end with a port from 1 to 65535"),
    }
}

/// Why a check URL is refused: it must be `http://` or `https://`, then a host (with an
/// optional port), then an optional path, with no space or control character anywhere.
pub fn check_url_shape(url: &str) -> Result<(), &'static str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a check URL holds a space or a control character");
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("a check URL must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("a check URL must not carry credentials");
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("a check URL must name a host");
    }
    Ok(())
}

impl Check {
    /// Within the bounds a registration is held to: a TTL and an interval above zero and at
    /// most [`CHECK_PERIOD_MS_MAX`], a timeout at most [`CHECK_TIMEOUT_MS_MAX`], an http(s)
    /// URL with a host. (The API's lower bounds are stricter; entries written by older
    /// versions may hold shorter periods, which only their owner, holding the registration,
    /// ever acts on.)
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Check::None => Ok(()),
            Check::Ttl { ttl_ms } => {
                if !(1..=CHECK_PERIOD_MS_MAX).contains(ttl_ms) {
                    return Err("a check TTL is zero or longer than a day");
                }
                Ok(())
            }
            Check::Http(http) => {
                period_and_timeout(http.interval_ms, http.timeout_ms)?;
                check_url_shape(&http.url.0)
            }
            Check::Tcp(tcp) => {
                period_and_timeout(tcp.interval_ms, tcp.timeout_ms)?;
                check_tcp_address_shape(&tcp.address.0)
            }
            Check::Request(request) => {
                period_and_timeout(request.interval_ms, request.timeout_ms)?;
                let method = &request.method.0;
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err("a check method is not an upper-case HTTP method");
                }
                check_url_shape(&request.url.0)
            }
        }
    }

    /// A kind every version can read in [`Instance::check`] (TCP and HTTP with a method or
    /// headers came with the check list).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Check::None | Check::Ttl { .. } | Check::Http(_))
    }

    /// How often the owner runs it, for the kinds it runs.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Check::Http(http) => Some(Duration::from_millis(http.interval_ms)),
            Check::Tcp(tcp) => Some(Duration::from_millis(tcp.interval_ms)),
            Check::Request(request) => Some(Duration::from_millis(request.interval_ms)),
            Check::None | Check::Ttl { .. } => None,
        }
    }

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

/// One start of a node's process: a number each boot draws ([`BootId::of_seed`]). Two
/// processes under one name (a cloned VM, two halves of a partition each with a node started
/// under the same name) are told apart by it, so neither takes the other's entries for its own
/// deleted ones (issue 14, finding 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BootId(pub u64);

impl BootId {
    /// Not said: an entry from a version of hera before boots were marked (wire minor 0).
    pub const UNKNOWN: BootId = BootId(0);

    /// The boot a node started with `rng_seed` is: a hash of the seed, so that drawing it
    /// leaves the node's random sequence as it was, and never [`BootId::UNKNOWN`].
    pub fn of_seed(rng_seed: u64) -> BootId {
        let mut h = crate::stable_hash::StableHash::default();
        h.eat(b"boot");
        h.eat(&rng_seed.to_le_bytes());
        BootId(h.finish().max(1))
    }

    pub fn is_known(self) -> bool {
        self != BootId::UNKNOWN
    }
}

/// An instance's tags, shared: the instances of a service mostly carry the same ones, and the
/// registry keeps one copy of equal lists (`Registry::apply`). Replaced whole, never changed
/// in place. Encoded as the list itself.
pub type InstanceTags = Arc<BoundedVec<BoundedString<TAG_MAX_BYTES>, TAGS_MAX>>;

/// An instance's meta pairs, shared as [`InstanceTags`] are.
pub type InstanceMeta = Arc<BoundedVec<MetaPair, META_MAX>>;

/// A service instance.
///
/// Encoded field by field in the order of its wire layout: `service`, `id`, `address`,
/// `port`, `tags`, `meta`, `body`, `check`, `liveness_ms`, `deregister_critical_after_ms`,
/// `owner`, `health`, `output`, `health_since_ms`, `online`, `maintenance_reason`, `checks`.
/// `owner_boot` travels after the entry that carries the instance ([`Entry`]'s encoding), a
/// field appended in wire minor 1, so nodes of minor 0 still read the entry and ignore it.
///
/// The fields nearly every instance leaves empty (`body`, `liveness_ms`,
/// `deregister_critical_after_ms`, `output`, `maintenance_reason`) are in
/// [`InstanceExtras`], boxed only when one of them is set, and read and written as the
/// instance's own (`instance.output`) through `Deref`: 104 B of an instance that is not
/// set apart for the common one (issue 17, `tests/memory.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub service: ServiceName,
    pub id: InstanceId,
    pub address: BoundedString<ADDRESS_MAX_BYTES>,
    pub port: u16,
    pub tags: InstanceTags,
    pub meta: InstanceMeta,
    pub check: Check,
    /// The node that enforces its TTL and runs its checks: where it last registered or renewed.
    pub owner: NodeName,
    /// Which boot of `owner` last wrote it as its own ([`BootId::UNKNOWN`] from older nodes).
    pub owner_boot: BootId,
    pub health: Health,
    /// Wall milliseconds when `health` last changed.
    pub health_since_ms: u64,
    /// False while in maintenance (off-line).
    pub online: bool,
    /// Every check, when one plain check does not say it all ([`CheckList`]). Last: older
    /// versions stop reading before it.
    pub checks: CheckList,
    /// The rarely set fields; read them through the instance (`instance.body`).
    pub extras: Extras,
}

/// The fields of an [`Instance`] that nearly every instance leaves empty. An instance with
/// any of them set holds all of them in one allocation (8 B and one allocation more than
/// inline, the price of the common instance's 96 B less).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceExtras {
    /// The seed API's free-form JSON object, as text.
    pub body: Option<BoundedString<BODY_MAX_BYTES>>,
    /// Seed API: deregistered this long after the last write or renewal.
    pub liveness_ms: Option<u64>,
    /// Consul: deregistered after being critical this long.
    pub deregister_critical_after_ms: Option<u64>,
    /// What the worst check last said.
    pub output: BoundedString<OUTPUT_MAX_BYTES>,
    /// Why it is off-line, while in maintenance.
    pub maintenance_reason: Option<BoundedString<OUTPUT_MAX_BYTES>>,
}

/// What an instance without extras reads: every field empty.
static NO_EXTRAS: InstanceExtras = InstanceExtras {
    body: None,
    liveness_ms: None,
    deregister_critical_after_ms: None,
    output: BoundedString(String::new()),
    maintenance_reason: None,
};

/// An instance's [`InstanceExtras`]: none held while every one is empty. Compared and shown
/// as the fields it stands for, so an instance whose extras were boxed and emptied again
/// equals one that never had any.
#[derive(Clone, Default)]
pub struct Extras(Option<Box<InstanceExtras>>);

impl Extras {
    /// The fields, held or empty.
    pub fn get(&self) -> &InstanceExtras {
        self.0.as_deref().unwrap_or(&NO_EXTRAS)
    }

    /// The fields to change: boxed on the first change.
    pub fn get_mut(&mut self) -> &mut InstanceExtras {
        self.0.get_or_insert_with(Box::default)
    }

    /// Hold `extras`, or nothing if every field is empty.
    pub fn of(extras: InstanceExtras) -> Extras {
        let mut held = Extras(Some(Box::new(extras)));
        held.compact();
        held
    }

    /// Let go of the box if every field is empty again (the registry stores an instance so).
    pub fn compact(&mut self) {
        if self.0.as_deref() == Some(&NO_EXTRAS) {
            self.0 = None;
        }
    }

    /// Whether any field is set (so held in a box of its own).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

impl PartialEq for Extras {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Extras {}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl std::ops::Deref for Instance {
    type Target = InstanceExtras;

    fn deref(&self) -> &InstanceExtras {
        self.extras.get()
    }
}

impl std::ops::DerefMut for Instance {
    fn deref_mut(&mut self) -> &mut InstanceExtras {
        self.extras.get_mut()
    }
}

impl Encode for Instance {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        let extras = self.extras.get();
        self.service.encode(e)?;
        self.id.encode(e)?;
        self.address.encode(e)?;
        self.port.encode(e)?;
        self.tags.encode(e)?;
        self.meta.encode(e)?;
        extras.body.encode(e)?;
        self.check.encode(e)?;
        extras.liveness_ms.encode(e)?;
        extras.deregister_critical_after_ms.encode(e)?;
        self.owner.encode(e)?;
        self.health.encode(e)?;
        extras.output.encode(e)?;
        self.health_since_ms.encode(e)?;
        self.online.encode(e)?;
        extras.maintenance_reason.encode(e)?;
        self.checks.encode(e)
    }
}

impl<C> Decode<C> for Instance {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let service = Decode::decode(d)?;
        let id = Decode::decode(d)?;
        let address = Decode::decode(d)?;
        let port = Decode::decode(d)?;
        let tags = Decode::decode(d)?;
        let meta = Decode::decode(d)?;
        let body = Decode::decode(d)?;
        let check = Decode::decode(d)?;
        let liveness_ms = Decode::decode(d)?;
        let deregister_critical_after_ms = Decode::decode(d)?;
        let owner = Decode::decode(d)?;
        let health = Decode::decode(d)?;
        let output = Decode::decode(d)?;
        let health_since_ms = Decode::decode(d)?;
        let online = Decode::decode(d)?;
        let maintenance_reason = Decode::decode(d)?;
        let checks = Decode::decode(d)?;
        Ok(Instance {
            service,
            id,
            address,
            port,
            tags,
            meta,
            check,
            owner,
            owner_boot: BootId::UNKNOWN,
            health,
            health_since_ms,
            online,
            checks,
            extras: Extras::of(InstanceExtras {
                body,
                liveness_ms,
                deregister_critical_after_ms,
                output,
                maintenance_reason,
            }),
        })
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Instance {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Self::decode(d)
    }
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
///
/// Its encoding is the three fields, then (wire minor 1) the fields appended since, which
/// only a live entry has: its owner's boot. An entry is always the whole payload of its frame,
/// so what follows the three fields is known to be the appendix ([`Entry::decode_frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: InstanceId,
    pub version: Hlc,
    pub instance: Option<Box<Instance>>,
}

impl Encode for Entry {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.id.encode(e)?;
        self.version.encode(e)?;
        self.instance.encode(e)?;
        if let Some(instance) = &self.instance {
            instance.owner_boot.0.encode(e)?;
        }
        Ok(())
    }
}

/// The three fields every minor writes, in order.
#[derive(Decode)]
struct EntryHead {
    id: InstanceId,
    version: Hlc,
    instance: Option<Box<Instance>>,
}

impl Entry {
    /// Decode an entry that is the whole of `payload`: the three fields, then what a minor
    /// appended, each read only while bytes remain (a minor-0 sender wrote none), anything
    /// after them ignored (a newer minor's).
    pub fn decode_frame<C: bincode::config::Config>(
        payload: &[u8],
        config: C,
    ) -> Result<Entry, bincode::error::DecodeError> {
        let (head, used) = bincode::decode_from_slice::<EntryHead, C>(payload, config)?;
        // The id is said twice; indexes go by both, so they must agree.
        if head.instance.as_ref().is_some_and(|i| i.id != head.id) {
            return Err(bincode::error::DecodeError::Other(
                "an entry's instance names another id",
            ));
        }
        let mut entry = Entry {
            id: head.id,
            version: head.version,
            instance: head.instance,
        };
        let rest = payload.get(used..).unwrap_or_default();
        if let (Some(instance), false) = (entry.instance.as_deref_mut(), rest.is_empty()) {
            let (boot, _) = bincode::decode_from_slice::<u64, C>(rest, config)?;
            instance.owner_boot = BootId(boot);
        }
        Ok(entry)
    }
}

/// Truncate `text` to at most `max` bytes (and the type's limit) on a character boundary.
pub fn clip<const MAX: usize>(text: &str, max: usize) -> BoundedString<MAX> {
    let mut end = text.len().min(MAX).min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    BoundedString(text[..end].to_string())
}
