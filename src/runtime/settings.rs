//! Runtime settings: the config file, command-line overrides, and the defaults that let
//! `hera run` start with neither.
//!
//! A bad file is refused at start with its path, the line and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, Preset};
use crate::names::{Label, NodeName};
use crate::runtime::http::guard::{Access, Token};
use crate::wire::bounded::BoundedString;
use crate::wire::{ClusterLabel, Key, Tag, TAGS_MAX, TAG_VALUE_MAX_BYTES};

pub const DEFAULT_BIND: &str = "127.0.0.1:7946";
pub const DEFAULT_HTTP: &str = "127.0.0.1:8500";
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
pub const DEFAULT_DC: &str = "dc1";
/// The seed registry's example: five minutes without a PUT and an instance expires.
pub const DEFAULT_LIVENESS: Duration = Duration::from_secs(300);

/// The config file as written. Every field is optional; unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub http: Option<String>,
    #[serde(default)]
    pub join: Vec<String>,
    pub dc: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub preset: Option<String>,
    pub log_level: Option<String>,
    pub expect: Option<usize>,
    /// Seed API: instances expire this long after their last PUT ("300s", "5m").
    pub liveness: Option<String>,
    /// Gossip encryption: the cluster key, base64 of 32 bytes (`hera keygen`).
    pub encrypt: Option<String>,
    /// A name every datagram carries: nodes with another label (or none) are refused.
    pub cluster_label: Option<String>,
    /// HTTP API token: required for writes (and for reads with `token_reads`).
    pub token: Option<String>,
    #[serde(default)]
    pub token_reads: bool,
    #[serde(default)]
    pub protocol: ProtocolOverrides,
}

/// Protocol knobs that override the preset, as durations like "500ms", "2s", "1h".
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProtocolOverrides {
    pub probe_interval: Option<String>,
    pub probe_timeout: Option<String>,
    pub indirect_checks: Option<usize>,
    pub suspicion_base: Option<String>,
    pub suspicion_max_mult: Option<u32>,
    pub gossip_interval: Option<String>,
    pub gossip_fanout: Option<usize>,
    pub retransmit_mult: Option<u32>,
    pub packet_bytes_max: Option<usize>,
    pub sync_interval: Option<String>,
    pub reconnect_interval: Option<String>,
    pub failed_reap_after: Option<String>,
    pub left_reap_after: Option<String>,
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
    /// The cluster key: with one, every datagram is sealed and plain ones are refused.
    pub encrypt: Option<Key>,
    /// Carried by every datagram; datagrams of another label (or none) are refused.
    pub cluster_label: Option<ClusterLabel>,
    /// Who may use the HTTP API.
    pub access: Access,
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

/// Parse a duration in the one grammar (`crate::duration`): `250ms`, `2s`, `1m30s`, `24h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<FileSettings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
            file: Some(path.to_path_buf()),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        FileSettings::parse(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    pub fn parse(text: &str) -> Result<FileSettings, SettingsError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            SettingsError {
                file: None,
                line,
                message: e.message().to_string(),
            }
        })
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
        apply_overrides(&mut config, &file.protocol)?;
        config.expected_members = file.expect;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problem(format!("protocol: {}", problems.join("; "))));
        }
        let liveness = match &file.liveness {
            Some(text) => parse_duration(text).map_err(|e| problem(format!("liveness: {e}")))?,
            None => DEFAULT_LIVENESS,
        };
        if liveness.is_zero() {
            return Err(problem("liveness must be above zero"));
        }
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
            encrypt,
            cluster_label,
            access,
        })
    }
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

fn apply_overrides(config: &mut Config, o: &ProtocolOverrides) -> Result<(), SettingsError> {
    let duration =
        |field: &str, value: &Option<String>, slot: &mut Duration| -> Result<(), SettingsError> {
            if let Some(text) = value {
                *slot =
                    parse_duration(text).map_err(|e| problem(format!("protocol.{field}: {e}")))?;
            }
            Ok(())
        };
    duration(
        "probe_interval",
        &o.probe_interval,
        &mut config.probe_interval,
    )?;
    duration("probe_timeout", &o.probe_timeout, &mut config.probe_timeout)?;
    duration(
        "suspicion_base",
        &o.suspicion_base,
        &mut config.suspicion_base,
    )?;
    duration(
        "gossip_interval",
        &o.gossip_interval,
        &mut config.gossip_interval,
    )?;
    duration("sync_interval", &o.sync_interval, &mut config.sync_interval)?;
    duration(
        "reconnect_interval",
        &o.reconnect_interval,
        &mut config.reconnect_interval,
    )?;
    duration(
        "failed_reap_after",
        &o.failed_reap_after,
        &mut config.failed_reap_after,
    )?;
    duration(
        "left_reap_after",
        &o.left_reap_after,
        &mut config.left_reap_after,
    )?;
    if let Some(v) = o.indirect_checks {
        config.indirect_checks = v;
    }
    if let Some(v) = o.suspicion_max_mult {
        config.suspicion_max_mult = v;
    }
    if let Some(v) = o.gossip_fanout {
        config.gossip_fanout = v;
    }
    if let Some(v) = o.retransmit_mult {
        config.retransmit_mult = v;
    }
    if let Some(v) = o.packet_bytes_max {
        config.packet_bytes_max = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            let file = FileSettings::parse(toml).unwrap();
            Settings::resolve(Some((Path::new("n.toml"), file)), Overrides::default())
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

    #[test]
    fn durations_parse() {
        let table = [
            ("500ms", 500),
            ("2s", 2_000),
            ("2", 2_000),
            ("1.5s", 1_500),
            ("3m", 180_000),
            ("1h", 3_600_000),
        ];
        for (text, ms) in table {
            assert_eq!(parse_duration(text).unwrap().as_millis(), ms, "{text}");
        }
        for bad in ["", "s", "-1s", "1d", "fast"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
