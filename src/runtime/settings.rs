//! Runtime settings: the config file, command-line overrides, and the defaults that let
//! `hera run` start with neither.
//!
//! A bad file is refused at start with its path, the line and what is wrong.
//!
//! Over 600 lines: nearly half is the tests, which exercise the file, the flags and the schema
//! together; splitting them by source is the next step if this grows.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::bounded::BoundedString;
use crate::config::schema::{self, Field, Kind, Meta, Naming, Raw, Section, Value};
use crate::config::{Config, Preset};
use crate::duration::Bounds;
use crate::names::{Label, NodeName};
use crate::runtime::dns::{Domain, DEFAULT_DNS};
use crate::runtime::http::guard::{Access, Token};
use crate::wire::{ClusterLabel, Key, Tag, TAGS_MAX, TAG_VALUE_MAX_BYTES};

pub const DEFAULT_BIND: &str = "127.0.0.1:7946";
pub const DEFAULT_HTTP: &str = "127.0.0.1:8500";
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
pub const DEFAULT_DC: &str = "dc1";
/// The seed registry's example: five minutes without a PUT and an instance expires.
pub const DEFAULT_LIVENESS: Duration = Duration::from_secs(300);

/// The config file as written. Every field is optional; unknown fields are errors. The knobs
/// of the schema (`liveness`, `expect`, `[protocol]`) are read and range-checked on parsing, so
/// their errors carry the line.
#[derive(Debug, Default, Clone)]
pub struct FileSettings {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub http: Option<String>,
    pub join: Vec<String>,
    pub dc: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub preset: Option<String>,
    pub log_level: Option<String>,
    /// Gossip encryption: the cluster key, base64 of 32 bytes (`hera keygen`).
    pub encrypt: Option<String>,
    /// A name every datagram carries: nodes with another label (or none) are refused.
    pub cluster_label: Option<String>,
    /// HTTP API token: required for writes (and for reads with `token_reads`).
    pub token: Option<String>,
    pub token_reads: bool,
    /// The schema's knobs, read and checked, with the line each was on.
    pub knobs: Vec<FileKnob>,
    /// DNS face: the address for UDP and TCP ("" turns it off).
    pub dns: Option<String>,
    /// DNS face: the zone answered ("consul").
    pub dns_domain: Option<String>,
    /// DNS face: the TTL of answers ("0s", "30s").
    pub dns_ttl: Option<String>,
    /// Where the node keeps its state between runs (`runtime::store`); none: nothing is kept.
    pub data_dir: Option<PathBuf>,
}

/// One knob from the file: which, its value, and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKnob {
    pub knob: Knob,
    pub value: Value,
    pub line: usize,
}

/// The file as TOML reads it: the knobs still raw, with their spans.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    name: Option<String>,
    bind: Option<String>,
    advertise: Option<String>,
    http: Option<String>,
    #[serde(default)]
    join: Vec<String>,
    dc: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    preset: Option<String>,
    log_level: Option<String>,
    expect: Option<Spanned<toml::Value>>,
    liveness: Option<Spanned<toml::Value>>,
    blocking_waiters_max: Option<Spanned<toml::Value>>,
    encrypt: Option<String>,
    token: Option<String>,
    #[serde(default)]
    token_reads: bool,
    dns: Option<String>,
    dns_domain: Option<String>,
    dns_ttl: Option<String>,
    data_dir: Option<PathBuf>,
    cluster_label: Option<String>,
    #[serde(default)]
    protocol: BTreeMap<String, Spanned<toml::Value>>,
}

/// The deployment's knobs of the schema: those marked `runtime` change on a running node
/// (`PUT /v1/hera/config`), the rest with a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    /// Seed API: instances expire this long after their last PUT.
    pub liveness: Duration,
    /// HTTP: blocking queries waiting at once; more are refused with 429.
    pub blocking_waiters_max: usize,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            liveness: DEFAULT_LIVENESS,
            blocking_waiters_max: crate::runtime::http::blocking::WAITERS_MAX,
        }
    }
}

/// The most blocking queries a node may be set to hold: each holds a connection (a file
/// descriptor, a task, buffers) for up to 10 minutes, and the bound on open connections is
/// twice the requests in flight; 65,536 is a common hard limit on a process's descriptors.
const BLOCKING_WAITERS_RANGE_MAX: u64 = 65_536;

/// The deployment's knobs, described as the protocol's are (`config::schema`).
pub static TUNABLE_FIELDS: [Field<Tunables>; 2] = [
    // 1 s: the seed API's unit, and a PUT must have time to arrive; 30 days: an instance
    // silent for a month is not live, and the value stays far inside the millisecond counter
    // the HTTP layer keeps it in.
    Field {
        meta: Meta {
            name: "liveness",
            section: Section::Top,
            json: "Liveness",
            flag: Some("liveness"),
            kind: Kind::Duration(Bounds::new(
                Duration::from_secs(1),
                Duration::from_secs(30 * 24 * 3_600),
            )),
            runtime: true,
            why: "seed API: an instance expires this long after its last PUT",
        },
        get: |t| Value::Duration(t.liveness),
        set: |t, v| {
            if let Value::Duration(d) = v {
                t.liveness = d;
            }
        },
    },
    // At least one, or no watcher could ever wait; at most BLOCKING_WAITERS_RANGE_MAX (its
    // reason is there). The default holds issue 17's thousand watchers on one node.
    Field {
        meta: Meta {
            name: "blocking_waiters_max",
            section: Section::Top,
            json: "BlockingWaitersMax",
            flag: Some("blocking-waiters-max"),
            kind: Kind::Count {
                min: 1,
                max: BLOCKING_WAITERS_RANGE_MAX,
            },
            runtime: false,
            why:
                "HTTP: blocking queries waiting at once; more are refused with 429 and Retry-After",
        },
        get: |t| Value::Count(t.blocking_waiters_max as u64),
        set: |t, v| {
            if let Value::Count(n) = v {
                t.blocking_waiters_max = usize::try_from(n).unwrap_or(usize::MAX);
            }
        },
    },
];

/// A knob of either table: the protocol's or the deployment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    Protocol(&'static Field<Config>),
    Deployment(&'static Field<Tunables>),
}

impl Knob {
    pub fn meta(self) -> &'static Meta {
        match self {
            Knob::Protocol(f) => &f.meta,
            Knob::Deployment(f) => &f.meta,
        }
    }

    /// Every knob: the protocol's, then the deployment's.
    pub fn all() -> impl Iterator<Item = Knob> {
        schema::FIELDS
            .iter()
            .map(Knob::Protocol)
            .chain(TUNABLE_FIELDS.iter().map(Knob::Deployment))
    }

    /// The knob written `name` in the file's `section`.
    pub fn in_file(section: Section, name: &str) -> Option<Knob> {
        Knob::all().find(|k| k.meta().section == section && k.meta().name == name)
    }

    /// The knob with the flag `--flag`.
    pub fn by_flag(flag: &str) -> Option<Knob> {
        Knob::all().find(|k| k.meta().flag == Some(flag))
    }

    /// The knob named `name` in the JSON API, in any case.
    pub fn by_json(name: &str) -> Option<Knob> {
        Knob::all().find(|k| k.meta().json.eq_ignore_ascii_case(name))
    }

    fn apply(self, config: &mut Config, tunables: &mut Tunables, value: Value) {
        match self {
            Knob::Protocol(f) => (f.set)(config, value),
            Knob::Deployment(f) => (f.set)(tunables, value),
        }
    }
}

/// Command-line values; each one given overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub http: Option<String>,
    pub join: Vec<String>,
    pub dc: Option<String>,
    pub preset: Option<String>,
    pub log_level: Option<String>,
    pub encrypt: Option<String>,
    pub cluster_label: Option<String>,
    pub token: Option<String>,
    /// Knob flags (`--probe-interval 2s`): the flag without `--`, and its text.
    pub knobs: Vec<(String, String)>,
    pub dns: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Everything a node needs to start, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: NodeName,
    pub bind: SocketAddr,
    pub advertise: SocketAddr,
    pub http: SocketAddr,
    /// Seed addresses as given (host:port or ip:port), resolved when joining.
    pub join: Vec<String>,
    pub dc: Label,
    pub tags: Vec<Tag>,
    pub preset: Preset,
    pub config: Config,
    pub log_level: String,
    /// Seed API: instances expire this long after their last PUT.
    pub liveness: Duration,
    /// HTTP: blocking queries waiting at once (`blocking_waiters_max`).
    pub blocking_waiters_max: usize,
    /// Whether the file or a flag set `blocking_waiters_max`: a bound asked for that the
    /// descriptor limit cannot hold is refused at start, the default lowered to fit
    /// (`runtime::descriptors`).
    pub blocking_waiters_asked: bool,
    /// The cluster key: with one, every datagram is sealed and plain ones are refused.
    pub encrypt: Option<Key>,
    /// Carried by every datagram; datagrams of another label (or none) are refused.
    pub cluster_label: Option<ClusterLabel>,
    /// Who may use the HTTP API.
    pub access: Access,
    /// Where the DNS face listens.
    pub dns: DnsListen,
    pub dns_domain: Domain,
    /// The TTL of DNS answers (whole seconds).
    pub dns_ttl: Duration,
    /// Where the node keeps its state between runs; None keeps nothing (`runtime::store`).
    pub data_dir: Option<PathBuf>,
}

/// The TTL of DNS answers: 0 (Consul's default: resolvers ask again every time) to a day.
const DNS_TTL_BOUNDS: crate::duration::Bounds =
    crate::duration::Bounds::new(Duration::ZERO, Duration::from_secs(86_400));

/// Where the DNS face listens, and how firmly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsListen {
    /// `dns = ""`.
    Off,
    /// Nothing configured: 127.0.0.1:8600 if free. A second node on one machine finds it taken
    /// and runs without DNS (with a warning) rather than not at all.
    Default(SocketAddr),
    /// Asked for: a node that cannot bind it does not start.
    At(SocketAddr),
}

/// Why the settings were refused.
#[derive(Debug)]
pub struct SettingsError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{}: {}", file.display(), line, self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, _) => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for SettingsError {}

fn problem(message: impl Into<String>) -> SettingsError {
    SettingsError {
        file: None,
        line: None,
        message: message.into(),
    }
}

/// The largest config file read: the commented example (`node.toml`) is a few KiB, and every
/// key, a full keyring and a few hundred `join` addresses fit in far less than this. A larger
/// one (`-c /dev/zero`, a log file given by mistake) is refused unread.
pub const CONFIG_FILE_MAX_BYTES: u64 = 1 << 20;

impl FileSettings {
    pub fn load(path: &Path) -> Result<FileSettings, SettingsError> {
        use std::io::Read;
        let refused = |message: String| SettingsError {
            file: Some(path.to_path_buf()),
            line: None,
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| refused(format!("cannot read: {e}")))?;
        let max = CONFIG_FILE_MAX_BYTES;
        let too_large = |bytes: u64| {
            refused(format!(
                "{bytes} bytes or more, over the {max} a config file may hold: not a config file"
            ))
        };
        let bytes = file
            .metadata()
            .map_err(|e| refused(format!("cannot read: {e}")))?
            .len();
        if bytes > max {
            return Err(too_large(bytes));
        }
        // A device or a pipe reports 0 bytes: the read stops past the bound all the same.
        let mut text = String::new();
        file.take(max.saturating_add(1))
            .read_to_string(&mut text)
            .map_err(|e| refused(format!("cannot read: {e}")))?;
        if text.len() as u64 > max {
            return Err(too_large(text.len() as u64));
        }
        FileSettings::parse(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    pub fn parse(text: &str) -> Result<FileSettings, SettingsError> {
        let line_of = |offset: usize| {
            text.get(..offset)
                .map_or(1, |before| before.matches('\n').count() + 1)
        };
        let toml: FileToml = toml::from_str(text).map_err(|e| SettingsError {
            file: None,
            line: e.span().map(|span| line_of(span.start)),
            message: e.message().to_string(),
        })?;
        let mut raw_knobs: Vec<(Section, String, Spanned<toml::Value>)> = Vec::new();
        if let Some(v) = toml.expect {
            raw_knobs.push((Section::Top, "expect".to_string(), v));
        }
        if let Some(v) = toml.liveness {
            raw_knobs.push((Section::Top, "liveness".to_string(), v));
        }
        if let Some(v) = toml.blocking_waiters_max {
            raw_knobs.push((Section::Top, "blocking_waiters_max".to_string(), v));
        }
        for (name, v) in toml.protocol {
            raw_knobs.push((Section::Protocol, name, v));
        }
        let mut knobs = Vec::with_capacity(raw_knobs.len());
        for (section, name, spanned) in raw_knobs {
            let line = line_of(spanned.span().start);
            let at_line = |message: String| SettingsError {
                file: None,
                line: Some(line),
                message,
            };
            let shown = match section {
                Section::Top => name.clone(),
                Section::Protocol => format!("protocol.{name}"),
            };
            let knob = Knob::in_file(section, &name)
                .ok_or_else(|| at_line(format!("{shown}: no such setting")))?;
            let value = knob
                .meta()
                .read(Naming::File, raw(spanned.get_ref()))
                .map_err(|e| at_line(e.to_string()))?;
            knobs.push(FileKnob { knob, value, line });
        }
        Ok(FileSettings {
            name: toml.name,
            bind: toml.bind,
            advertise: toml.advertise,
            http: toml.http,
            join: toml.join,
            dc: toml.dc,
            tags: toml.tags,
            preset: toml.preset,
            log_level: toml.log_level,
            encrypt: toml.encrypt,
            token: toml.token,
            token_reads: toml.token_reads,
            dns: toml.dns,
            dns_domain: toml.dns_domain,
            dns_ttl: toml.dns_ttl,
            data_dir: toml.data_dir,
            cluster_label: toml.cluster_label,
            knobs,
        })
    }
}

/// A TOML value as the schema reads it.
fn raw(value: &toml::Value) -> Raw<'_> {
    match value {
        toml::Value::String(s) => Raw::Text(s),
        toml::Value::Integer(n) => Raw::Integer(*n),
        toml::Value::Float(_) => Raw::Other("a float"),
        toml::Value::Boolean(_) => Raw::Other("a boolean"),
        toml::Value::Datetime(_) => Raw::Other("a date"),
        toml::Value::Array(_) => Raw::Other("an array"),
        toml::Value::Table(_) => Raw::Other("a table"),
    }
}

/// A name for this node when none is configured: the host name, made valid.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let cleaned: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(NodeName::MAX_BYTES)
        .collect();
    if cleaned.is_empty() {
        "hera-1".to_string()
    } else {
        cleaned
    }
}

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, SettingsError> {
    text.parse().map_err(|_| {
        problem(format!(
            "{what} {text:?} is not an address like 127.0.0.1:7946 or [::1]:7946"
        ))
    })
}

impl Settings {
    /// Merge the file (if any) and the command line over the defaults, and check the result.
    pub fn resolve(
        file: Option<(&Path, FileSettings)>,
        cli: Overrides,
    ) -> Result<Settings, SettingsError> {
        let path = file.as_ref().map(|(p, _)| p.to_path_buf());
        let file_settings = file.map(|(_, f)| f).unwrap_or_default();
        Settings::merge(file_settings, cli).map_err(|mut e| {
            e.file = e.file.or(path);
            e
        })
    }

    fn merge(file: FileSettings, cli: Overrides) -> Result<Settings, SettingsError> {
        let name_text = cli.name.or(file.name).unwrap_or_else(default_name);
        let name = NodeName::new(&name_text).map_err(|e| problem(format!("name: {e}")))?;
        let bind_text = cli
            .bind
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_string());
        let bind = parse_addr("bind", &bind_text)?;
        let advertise = match cli.advertise.or(file.advertise) {
            Some(text) => parse_addr("advertise", &text)?,
            None if bind.ip().is_unspecified() => {
                return Err(problem(format!(
                    "bind {bind} listens on every interface: set `advertise` to the address other nodes should use"
                )))
            }
            None => bind,
        };
        let http_text = cli
            .http
            .or(file.http)
            .unwrap_or_else(|| DEFAULT_HTTP.to_string());
        let http = parse_addr("http", &http_text)?;
        let dc_text = cli.dc.or(file.dc).unwrap_or_else(|| DEFAULT_DC.to_string());
        let dc = Label::new(&dc_text).map_err(|e| problem(format!("dc: {e}")))?;
        if file.tags.len() > TAGS_MAX {
            return Err(problem(format!("at most {TAGS_MAX} tags")));
        }
        let mut tags = Vec::new();
        for (key, value) in file.tags {
            let key = Label::new(&key).map_err(|e| problem(format!("tag key: {e}")))?;
            if value.len() > TAG_VALUE_MAX_BYTES {
                return Err(problem(format!(
                    "tag {key}: value longer than {TAG_VALUE_MAX_BYTES} bytes"
                )));
            }
            tags.push(Tag {
                key,
                value: BoundedString(value),
            });
        }
        let preset_text = cli
            .preset
            .or(file.preset)
            .unwrap_or_else(|| "lan".to_string());
        let preset = Preset::parse(&preset_text).ok_or_else(|| {
            problem(format!(
                "preset {preset_text:?} is not one of lan, wan, local"
            ))
        })?;
        let mut config = preset.config();
        let mut tunables = Tunables::default();
        // The file's knobs, then the flags', each read and range-checked; then the one
        // validator over the whole, for the rules between fields.
        for k in &file.knobs {
            k.knob.apply(&mut config, &mut tunables, k.value);
        }
        for (flag, text) in &cli.knobs {
            let knob =
                Knob::by_flag(flag).ok_or_else(|| problem(format!("--{flag}: no such setting")))?;
            let value = knob
                .meta()
                .read_text(Naming::File, text)
                .map_err(|e| problem(format!("--{flag}: {e}")))?;
            knob.apply(&mut config, &mut tunables, value);
        }
        schema::validate(&config, Naming::File).map_err(|e| problem(e.to_string()))?;
        let liveness = tunables.liveness;
        let waiters = Knob::in_file(Section::Top, "blocking_waiters_max");
        let blocking_waiters_asked = file.knobs.iter().any(|k| Some(k.knob) == waiters)
            || cli
                .knobs
                .iter()
                .any(|(flag, _)| Knob::by_flag(flag).is_some_and(|k| Some(k) == waiters));
        let mut join = file.join;
        join.extend(cli.join);
        join.dedup();
        let encrypt = match cli.encrypt.or(file.encrypt) {
            Some(text) => Some(parse_key(&text).map_err(|e| problem(format!("encrypt: {e}")))?),
            None => None,
        };
        let cluster_label = match cli.cluster_label.or(file.cluster_label) {
            Some(text) => {
                Some(ClusterLabel::new(&text).map_err(|e| problem(format!("cluster_label: {e}")))?)
            }
            None => None,
        };
        let token = match cli.token.or(file.token) {
            Some(text) => Some(Token::new(&text).map_err(|e| problem(format!("token: {e}")))?),
            None => None,
        };
        if file.token_reads && token.is_none() {
            return Err(problem("token_reads needs a token"));
        }
        let access = Access {
            token,
            token_reads: file.token_reads,
        };
        let dns = match cli.dns.or(file.dns) {
            None => DnsListen::Default(parse_addr("dns", DEFAULT_DNS)?),
            Some(text) if text.is_empty() => DnsListen::Off,
            Some(text) => DnsListen::At(parse_addr("dns", &text)?),
        };
        let dns_domain = match &file.dns_domain {
            Some(text) => Domain::new(text).map_err(|e| problem(format!("dns_domain: {e}")))?,
            None => Domain::default(),
        };
        let dns_ttl = match &file.dns_ttl {
            // Whole seconds on the wire; a day is far longer than any cache should hold a
            // registry's answer.
            Some(text) => DNS_TTL_BOUNDS
                .parse("dns_ttl", text)
                .map_err(|e| problem(e.to_string()))?,
            None => Duration::ZERO,
        };
        let data_dir = cli.data_dir.or(file.data_dir);
        if data_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(problem(
                "data_dir must not be empty (leave it out to keep nothing)",
            ));
        }
        Ok(Settings {
            name,
            bind,
            advertise,
            http,
            join,
            dc,
            tags,
            preset,
            config,
            log_level: cli
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_string()),
            liveness,
            blocking_waiters_max: tunables.blocking_waiters_max,
            blocking_waiters_asked,
            encrypt,
            cluster_label,
            access,
            dns,
            dns_domain,
            dns_ttl,
            data_dir,
        })
    }
}

/// The README's table of every knob, generated from the schema (a test keeps the README's copy
/// equal): file key, flag, JSON key, default per preset, range, changeable at runtime, why.
pub fn knob_table() -> String {
    let mut out = String::from(
        "| file key | flag | `/v1/hera/config` | lan / wan / local | range | runtime | what it does |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let tunables = Tunables::default();
    for knob in Knob::all() {
        let meta = knob.meta();
        let key = match meta.section {
            Section::Top => format!("`{}`", meta.name),
            Section::Protocol => format!("`[protocol]` `{}`", meta.name),
        };
        let flag = meta.flag.map_or(String::new(), |f| format!("`--{f}`"));
        let defaults = match knob {
            Knob::Protocol(f) => [Preset::Lan, Preset::Wan, Preset::Local]
                .map(|p| (f.get)(&p.config()).to_string())
                .join(" / "),
            Knob::Deployment(f) => (f.get)(&tunables).to_string(),
        };
        let runtime = if meta.runtime { "yes" } else { "restart" };
        out.push_str(&format!(
            "| {key} | {flag} | `{}` | {defaults} | {} | {runtime} | {} |\n",
            meta.json,
            meta.range(),
            meta.why
        ));
    }
    out
}

/// A cluster key as operators write it: standard base64 of 32 bytes (what `hera keygen` and
/// `consul keygen` print).
pub fn parse_key(text: &str) -> Result<Key, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "not base64: a key looks like the output of `hera keygen`".to_string())?;
    Key::from_slice(&bytes).map_err(|e| e.to_string())
}

/// A key as [`parse_key`] reads it.
pub fn format_key(key: &Key) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    /// A config file larger than any real one (a sparse 4 GiB file, or an endless device) is
    /// refused unread, naming the file, its size and the bound.
    #[test]
    fn a_config_file_over_its_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        let err = super::FileSettings::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("node.toml") && err.contains("4294967296 bytes"),
            "{err}"
        );
        assert!(
            err.contains(&super::CONFIG_FILE_MAX_BYTES.to_string()),
            "{err}"
        );
        let endless = super::FileSettings::load(std::path::Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(endless.contains("over the"), "{endless}");
    }

    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let s = Settings::resolve(
            None,
            Overrides {
                name: Some("n1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.bind.to_string(), DEFAULT_BIND);
        assert_eq!(s.http.to_string(), DEFAULT_HTTP);
        assert_eq!(s.advertise, s.bind);
        assert_eq!(s.config, Config::lan());
        assert_eq!(s.dns, DnsListen::Default(DEFAULT_DNS.parse().unwrap()));
        assert_eq!(s.dns_domain.to_string(), "consul.");
        assert_eq!(s.dns_ttl, Duration::ZERO);
    }

    #[test]
    fn dns_settings() {
        let file = FileSettings::parse(
            "dns = \"127.0.0.1:8653\"\ndns_domain = \"hera\"\ndns_ttl = \"30s\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default()).unwrap();
        assert_eq!(s.dns, DnsListen::At("127.0.0.1:8653".parse().unwrap()));
        assert_eq!(s.dns_domain.to_string(), "hera.");
        assert_eq!(s.dns_ttl, Duration::from_secs(30));
        let off = Overrides {
            dns: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(None, off).unwrap().dns, DnsListen::Off);
        let bad = |toml: &str| {
            let file = FileSettings::parse(toml).unwrap();
            Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("dns = \"8600\"").contains("dns"));
        assert!(bad("dns_domain = \"a b\"").contains("dns_domain"));
        assert!(bad("dns_ttl = \"soon\"").contains("dns_ttl"));
    }

    #[test]
    fn data_dir_from_file_or_flag_and_never_empty() {
        let file = FileSettings::parse("data_dir = \"/var/lib/hera\"\n").unwrap();
        let s = Settings::resolve(Some((Path::new("x.toml"), file)), Overrides::default()).unwrap();
        assert_eq!(s.data_dir.as_deref(), Some(Path::new("/var/lib/hera")));
        let cli = Overrides {
            data_dir: Some(PathBuf::from("/tmp/h")),
            ..Default::default()
        };
        let s = Settings::resolve(None, cli).unwrap();
        assert_eq!(s.data_dir.as_deref(), Some(Path::new("/tmp/h")));
        assert!(Settings::resolve(None, Overrides::default())
            .unwrap()
            .data_dir
            .is_none());
        let empty = FileSettings::parse("data_dir = \"\"\n").unwrap();
        let err = Settings::resolve(Some((Path::new("x.toml"), empty)), Overrides::default());
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("data_dir must not be empty"));
    }

    #[test]
    fn cli_overrides_file() {
        let file = FileSettings::parse(
            "name = \"from-file\"\nbind = \"127.0.0.1:9000\"\npreset = \"local\"\n",
        )
        .unwrap();
        let cli = Overrides {
            name: Some("from-cli".into()),
            ..Default::default()
        };
        let s = Settings::resolve(Some((Path::new("x.toml"), file)), cli).unwrap();
        assert_eq!(s.name.as_str(), "from-cli");
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.preset, Preset::Local);
    }

    #[test]
    fn bad_file_names_line_and_problem() {
        let err = FileSettings::parse("name = \"a\"\n\nnmae = \"b\"\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("unknown field"), "{}", err.message);
        let err = FileSettings::parse("bind = 7946\n").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn bad_values_are_refused_with_reasons() {
        let bad = |toml: &str| {
            FileSettings::parse(toml)
                .and_then(|file| {
                    Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default())
                })
                .unwrap_err()
                .to_string()
        };
        assert!(bad("name = \"a b\"").contains("n.toml: name"));
        assert!(bad("name = \"a\"\nbind = \"nowhere\"").contains("bind"));
        assert!(bad("name = \"a\"\nbind = \"0.0.0.0:7946\"").contains("advertise"));
        assert!(bad("name = \"a\"\npreset = \"fast\"").contains("preset"));
        assert!(
            bad("name = \"a\"\n[protocol]\nprobe_interval = \"1 fortnight\"")
                .contains("probe_interval")
        );
        assert!(bad("name = \"a\"\n[protocol]\nprobe_timeout = \"5s\"").contains("shorter"));
    }

    /// Issue 12, item 6: intervals that would make the timer loop spin on one instant, or so
    /// long that arithmetic on them overflows, are refused with the file, the line, the field
    /// and its range.
    #[test]
    fn zero_and_absurd_intervals_are_refused_with_the_line_and_range() {
        for (toml, field) in [
            ("[protocol]\nsync_interval = \"0s\"", "sync_interval"),
            (
                "[protocol]\nreconnect_interval = \"0s\"",
                "reconnect_interval",
            ),
            ("[protocol]\nprobe_interval = \"0.5ms\"", "probe_interval"),
            ("[protocol]\nsuspicion_base = \"876000h\"", "suspicion_base"),
            (
                "[protocol]\nfailed_reap_after = \"876000h\"",
                "failed_reap_after",
            ),
            ("[protocol]\ngossip_fanout = 100000", "gossip_fanout"),
        ] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("n.toml");
            std::fs::write(&path, format!("name = \"a\"\n{toml}\n")).expect("written");
            let error = FileSettings::load(&path)
                .and_then(|file| Settings::resolve(Some((&path, file)), Overrides::default()))
                .expect_err(toml)
                .to_string();
            let at = format!("{}:3: {field}: ", path.display());
            assert!(
                error.starts_with(&at) && error.contains("range"),
                "{toml}: {error}"
            );
        }
        let error = Settings::resolve(
            None,
            Overrides {
                name: Some("a".into()),
                knobs: vec![("liveness".into(), "0.5ms".into())],
                ..Overrides::default()
            },
        )
        .expect_err("a sub-millisecond liveness")
        .to_string();
        assert!(
            error.contains("liveness") && error.contains("range"),
            "{error}"
        );
    }

    /// The file and the flags go through the same schema: every knob can be set from either,
    /// the flags win, and an unknown key is refused with its line.
    #[test]
    fn knobs_come_from_the_file_and_the_flags_through_one_schema() {
        let file = FileSettings::parse(
            "expect = 5\nliveness = \"90s\"\n[protocol]\nprobe_interval = \"2s\"\ngossip_fanout = 5\n",
        )
        .unwrap();
        let cli = Overrides {
            knobs: vec![
                ("probe-interval".into(), "3s".into()),
                ("tombstone-grace".into(), "1h".into()),
            ],
            ..Overrides::default()
        };
        let s = Settings::resolve(Some((Path::new("n.toml"), file)), cli).unwrap();
        assert_eq!(s.config.probe_interval, Duration::from_secs(3));
        assert_eq!(s.config.gossip_fanout, 5);
        assert_eq!(s.config.tombstone_grace, Duration::from_secs(3_600));
        assert_eq!(s.config.expected_members, Some(5));
        assert_eq!(s.liveness, Duration::from_secs(90));
        let err = FileSettings::parse("name = \"a\"\n[protocol]\nprobe_intervals = \"2s\"\n")
            .unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(
            err.message.contains("protocol.probe_intervals"),
            "{}",
            err.message
        );
        let err = FileSettings::parse("[protocol]\nprobe_interval = 2\n").unwrap_err();
        assert!(err.message.contains("duration string"), "{}", err.message);
        let flag = |flag: &str, text: &str| {
            Settings::resolve(
                None,
                Overrides {
                    knobs: vec![(flag.into(), text.into())],
                    ..Overrides::default()
                },
            )
            .unwrap_err()
            .to_string()
        };
        assert!(flag("gossip-fanout", "many").contains("--gossip-fanout"));
        assert!(flag("probe-timeout", "2s").contains("must be shorter than probe_interval"));
    }

    /// The README documents every knob with its range, as the schema defines them, and the
    /// example node.toml names every one.
    #[test]
    fn the_readme_and_node_toml_document_every_knob() {
        let readme = include_str!("../../README.md");
        let table = knob_table();
        assert!(
            readme.contains(&table),
            "README.md's configuration table is stale; it should read:\n{table}"
        );
        let example = include_str!("../../node.toml");
        for knob in Knob::all() {
            let name = knob.meta().name;
            assert!(
                example.contains(&format!("{name} = ")),
                "node.toml lacks {name}"
            );
        }
    }

    #[test]
    fn the_example_node_toml_is_valid() {
        let file = FileSettings::parse(include_str!("../../node.toml")).expect("node.toml parses");
        let s = Settings::resolve(Some((Path::new("node.toml"), file)), Overrides::default())
            .expect("node.toml resolves");
        assert_eq!(s.name.as_str(), "n1");
        assert_eq!(s.tags.len(), 1, "tags: {:?}", s.tags);
    }

    #[test]
    fn keys_and_tokens() {
        let key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
        let parsed = parse_key(key).unwrap();
        assert_eq!(format_key(&parsed), key);
        assert!(parse_key("c2hvcnQ=").unwrap_err().contains("32 bytes"));
        assert!(parse_key("not base64!").is_err());
        let file = FileSettings::parse(&format!(
            "encrypt = \"{key}\"\ntoken = \"t\"\ntoken_reads = true\n"
        ))
        .unwrap();
        let s = Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default()).unwrap();
        assert_eq!(s.encrypt, Some(parsed));
        assert!(s.access.token.as_ref().is_some_and(|t| t.matches("t")));
        assert!(s.access.token_reads);
        let bad = |toml: &str| {
            let file = FileSettings::parse(toml).unwrap();
            Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("encrypt = \"c2hvcnQ=\"").contains("encrypt"));
        assert!(bad("token_reads = true").contains("token_reads needs a token"));
        assert!(bad("token = \"\"").contains("token"));
    }
}
