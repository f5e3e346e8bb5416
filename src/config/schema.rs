// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! The one definition of every protocol knob: its name in the config file, in the JSON API and
//! on the command line, its type, its range, whether it can change on a running node, and why
//! it exists. The file parser, the flags and `PUT /v1/hera/config` all read values through
//! [`Meta::read`], and [`validate`] is the one check of a whole [`Config`] (ranges and the rules
//! between fields). Presets give the defaults; [`FIELDS`] gives everything else.
//!
//! Every range has a reason, written beside it. Together the upper bounds keep all arithmetic on
//! the values far from overflow: the longest timer the core arms is a suspicion, at most
//! `suspicion_base · log10(N) · suspicion_max_mult` = 10 min · 6 · 16 = 16 h, and a probe timer
//! stretched by Lifeguard is at most 1 min · 17; both are added to an `Instant` that saturates.
//!
//! Over 600 lines on purpose: most of it is the table, one row and one reason per knob, which
//! reads best in one place.

use std::fmt;
use std::time::Duration;

use super::Config;
use crate::duration::{self, Bounds};

/// What kind of value a field holds, with its range (both ends allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Duration(Bounds),
    Count {
        min: u64,
        max: u64,
    },
    /// A count that may be left unset (`expect`).
    OptionalCount {
        min: u64,
        max: u64,
    },
}

/// A field's value, as every source produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Duration(Duration),
    Count(u64),
    Unset,
}

/// A value as a source wrote it, before it is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// A string (a duration is always one: `"2s"`).
    Text(&'a str),
    Integer(i64),
    /// Anything else, by its type's name (`"float"`, `"boolean"`, ...).
    Other(&'static str),
}

/// Where a field sits in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// At the top of the file.
    Top,
    /// Under `[protocol]`.
    Protocol,
}

/// Which of a field's names an error shows: the file's (and the flags') or the JSON API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    File,
    Json,
}

/// Everything about a field but how to reach it in its struct.
#[derive(Debug, PartialEq, Eq)]
pub struct Meta {
    /// The key in the config file (in `section`): `probe_interval`.
    pub name: &'static str,
    pub section: Section,
    /// The key in `GET`/`PUT /v1/hera/config`: `ProbeInterval`.
    pub json: &'static str,
    /// The command-line flag, without `--`.
    pub flag: Option<&'static str>,
    pub kind: Kind,
    /// Changeable on a running node (`PUT /v1/hera/config`); the rest needs a restart.
    pub runtime: bool,
    /// One line: what it does.
    pub why: &'static str,
}

/// A field of the struct `C`: its [`Meta`], and how to read and write it there.
pub struct Field<C: 'static> {
    pub meta: Meta,
    pub get: fn(&C) -> Value,
    /// Writes a value of the field's kind; one of another kind (never produced by
    /// [`Meta::read`]) is ignored.
    pub set: fn(&mut C, Value),
}

impl<C> fmt::Debug for Field<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.meta.name)
    }
}

/// Fields are told apart by name (their accessors are plain functions, not comparable).
impl<C> PartialEq for Field<C> {
    fn eq(&self, other: &Self) -> bool {
        self.meta.name == other.meta.name
    }
}

impl<C> Eq for Field<C> {}

/// Why a value or a whole configuration was refused. Field names are as the source wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// No field has this name.
    Unknown { name: String },
    /// The field exists but changes only with a restart.
    NotAtRuntime { name: String },
    /// A number where a duration string belongs, and so on.
    WrongType {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    /// An unreadable duration, or one out of range.
    Duration(duration::FieldError),
    CountOutOfRange {
        name: String,
        value: i128,
        min: u64,
        max: u64,
    },
    /// Two fields that are each in range but not together.
    Inconsistent { rule: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unknown { name } => write!(f, "{name}: no such setting"),
            ConfigError::NotAtRuntime { name } => {
                write!(
                    f,
                    "{name} cannot be changed at runtime (it needs a restart)"
                )
            }
            ConfigError::WrongType {
                name,
                expected,
                found,
            } => write!(f, "{name}: expected {expected}, found {found}"),
            ConfigError::Duration(e) => e.fmt(f),
            ConfigError::CountOutOfRange {
                name,
                value,
                min,
                max,
            } => write!(
                f,
                "{name}: {value} is outside the allowed range {min} to {max}"
            ),
            ConfigError::Inconsistent { rule } => f.write_str(rule),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Several problems, reported together so an operator can fix them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Meta {
    /// The name errors show, in `naming`.
    pub fn label(&self, naming: Naming) -> &'static str {
        match naming {
            Naming::File => self.name,
            Naming::Json => self.json,
        }
    }

    /// The allowed range, as the README and errors write it: `10ms to 1m`.
    pub fn range(&self) -> String {
        match self.kind {
            Kind::Duration(b) => format!(
                "{} to {}",
                duration::display(b.min),
                duration::display(b.max)
            ),
            Kind::Count { min, max } | Kind::OptionalCount { min, max } => {
                format!("{min} to {max}")
            }
        }
    }

    /// Read a value from a typed source (a TOML or JSON value), checked against the range.
    pub fn read(&self, naming: Naming, raw: Raw<'_>) -> Result<Value, ConfigError> {
        let name = self.label(naming);
        let wrong = |found| ConfigError::WrongType {
            name: name.to_string(),
            expected: match self.kind {
                Kind::Duration(_) => "a duration string like \"2s\"",
                Kind::Count { .. } | Kind::OptionalCount { .. } => "a whole number",
            },
            found,
        };
        match (self.kind, raw) {
            (Kind::Duration(bounds), Raw::Text(text)) => bounds
                .parse(name, text)
                .map(Value::Duration)
                .map_err(ConfigError::Duration),
            (Kind::Duration(_), Raw::Integer(_)) => Err(wrong("a number")),
            (Kind::Count { .. } | Kind::OptionalCount { .. }, Raw::Text(_)) => {
                Err(wrong("a string"))
            }
            (Kind::Count { min, max } | Kind::OptionalCount { min, max }, Raw::Integer(n)) => {
                match u64::try_from(n) {
                    Ok(v) if (min..=max).contains(&v) => Ok(Value::Count(v)),
                    _ => Err(ConfigError::CountOutOfRange {
                        name: name.to_string(),
                        value: i128::from(n),
                        min,
                        max,
                    }),
                }
            }
            (_, Raw::Other(found)) => Err(wrong(found)),
        }
    }

    /// Read a value from a command-line flag, where everything is text.
    pub fn read_text(&self, naming: Naming, text: &str) -> Result<Value, ConfigError> {
        match self.kind {
            Kind::Duration(_) => self.read(naming, Raw::Text(text)),
            Kind::Count { .. } | Kind::OptionalCount { .. } => match text.trim().parse::<i64>() {
                Ok(n) => self.read(naming, Raw::Integer(n)),
                Err(_) => Err(ConfigError::WrongType {
                    name: self.label(naming).to_string(),
                    expected: "a whole number",
                    found: "text",
                }),
            },
        }
    }

    /// Whether `value` is of this field's kind and in its range.
    pub fn check(&self, naming: Naming, value: Value) -> Result<(), ConfigError> {
        let name = self.label(naming);
        match (self.kind, value) {
            (Kind::Duration(bounds), Value::Duration(d)) => bounds
                .check(name, d)
                .map(|_| ())
                .map_err(|e| ConfigError::Duration(duration::FieldError::OutOfRange(e))),
            (Kind::Count { min, max } | Kind::OptionalCount { min, max }, Value::Count(n)) => {
                if (min..=max).contains(&n) {
                    Ok(())
                } else {
                    Err(ConfigError::CountOutOfRange {
                        name: name.to_string(),
                        value: i128::from(n),
                        min,
                        max,
                    })
                }
            }
            (Kind::OptionalCount { .. }, Value::Unset) => Ok(()),
            _ => Err(ConfigError::Inconsistent {
                rule: format!("{name}: a value of the wrong kind"),
            }),
        }
    }
}

/// A value as the config file and the JSON API write it.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Duration(d) => f.write_str(&duration::display(*d)),
            Value::Count(n) => write!(f, "{n}"),
            Value::Unset => f.write_str("unset"),
        }
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// One row of [`FIELDS`]: a duration or count field of [`Config`] with its range.
macro_rules! field {
    ($name:tt, $json:literal, runtime: $runtime:literal,
     duration!($field:ident, $min:expr, $max:expr), $why:literal) => {
        Field {
            meta: meta!(
                $name,
                $json,
                $runtime,
                Kind::Duration(Bounds::new($min, $max)),
                $why
            ),
            get: |c| Value::Duration(c.$field),
            set: |c, v| {
                if let Value::Duration(d) = v {
                    c.$field = d;
                }
            },
        }
    };
    ($name:tt, $json:literal, runtime: $runtime:literal,
     count!($field:ident, $min:expr, $max:expr), $why:literal) => {
        Field {
            meta: meta!(
                $name,
                $json,
                $runtime,
                Kind::Count {
                    min: $min,
                    max: $max
                },
                $why
            ),
            // Every count field is a u32 or a usize: both fit a u64.
            get: |c| Value::Count(c.$field as u64),
            set: |c, v| {
                if let Value::Count(n) = v {
                    if let Ok(n) = n.try_into() {
                        c.$field = n;
                    }
                }
            },
        }
    };
}

macro_rules! meta {
    ($name:tt, $json:literal, $runtime:literal, $kind:expr, $why:literal) => {
        Meta {
            name: $name,
            section: Section::Protocol,
            json: $json,
            flag: Some(flag_of!($name)),
            kind: $kind,
            runtime: $runtime,
            why: $why,
        }
    };
}

/// The flag of a field: its file name with dashes.
macro_rules! flag_of {
    ("probe_interval") => {
        "probe-interval"
    };
    ("probe_timeout") => {
        "probe-timeout"
    };
    ("indirect_checks") => {
        "indirect-checks"
    };
    ("awareness_max") => {
        "awareness-max"
    };
    ("suspicion_base") => {
        "suspicion-base"
    };
    ("suspicion_max_mult") => {
        "suspicion-max-mult"
    };
    ("suspicion_confirmations") => {
        "suspicion-confirmations"
    };
    ("confirm_probes") => {
        "confirm-probes"
    };
    ("gossip_interval") => {
        "gossip-interval"
    };
    ("gossip_fanout") => {
        "gossip-fanout"
    };
    ("eager_push_spacing") => {
        "eager-push-spacing"
    };
    ("retransmit_mult") => {
        "retransmit-mult"
    };
    ("packet_bytes_max") => {
        "packet-bytes-max"
    };
    ("sync_interval") => {
        "sync-interval"
    };
    ("reconnect_interval") => {
        "reconnect-interval"
    };
    ("failed_reap_after") => {
        "failed-reap-after"
    };
    ("left_reap_after") => {
        "left-reap-after"
    };
    ("join_retry_interval") => {
        "join-retry-interval"
    };
    ("join_retry_max") => {
        "join-retry-max"
    };
    ("leave_propagate") => {
        "leave-propagate"
    };
    ("registry_tick") => {
        "registry-tick"
    };
    ("tombstone_grace") => {
        "tombstone-grace"
    };
    ("max_clock_offset") => {
        "max-clock-offset"
    };
    ("instances_owned_max") => {
        "instances-owned-max"
    };
    ("registry_entries_max") => {
        "registry-entries-max"
    };
    ("expect") => {
        "expect"
    };
}

/// Every knob of [`Config`], in the order the README lists them. The range's reason follows
/// each row.
pub static FIELDS: [Field<Config>; 26] = [
    // 10 ms: a period shorter than a few loopback round trips only adds traffic (one ping per
    // node per period). 1 min: a crash would go unseen for minutes; SWIM's period is seconds.
    field!("probe_interval", "ProbeInterval", runtime: true,
        duration!(probe_interval, ms(10), secs(MINUTE)),
        "how often the next member is probed (SWIM's protocol period)"),
    // Below `probe_interval` (a rule in `validate`), so indirect probes fit in the period.
    field!("probe_timeout", "ProbeTimeout", runtime: true,
        duration!(probe_timeout, ms(1), secs(30)),
        "how long a direct ping waits for its ack before indirect probes"),
    // At least one, or a lossy link alone condemns a member; more than 16 multiplies traffic
    // per probe for no gain in certainty.
    field!("indirect_checks", "IndirectChecks", runtime: false,
        count!(indirect_checks, 1, 16),
        "members asked to ping a silent target for us (SWIM's k)"),
    // Timeouts stretch by score + 1: 16 keeps a stretched probe period under 17 min.
    field!("awareness_max", "AwarenessMax", runtime: false,
        count!(awareness_max, 0, 16),
        "upper bound of Lifeguard's local health score"),
    // 10 ms: less than that is always a false failure; 10 min: times log10(N) and the
    // multiplier, a suspicion still ends within a day.
    field!("suspicion_base", "SuspicionBase", runtime: true,
        duration!(suspicion_base, ms(10), secs(10 * MINUTE)),
        "minimum suspicion timeout for up to 10 members, scaled by log10(N)"),
    field!("suspicion_max_mult", "SuspicionMaxMult", runtime: false,
        count!(suspicion_max_mult, 1, 16),
        "an unconfirmed suspicion lasts this many times the minimum (Lifeguard's alpha)"),
    field!("suspicion_confirmations", "SuspicionConfirmations", runtime: false,
        count!(suspicion_confirmations, 0, 32),
        "independent confirmations that shrink a suspicion to its minimum (Lifeguard's K)"),
    field!("confirm_probes", "ConfirmProbes", runtime: false,
        count!(confirm_probes, 0, 16),
        "members that probe a suspect at once on hearing of the suspicion"),
    // 1 ms: a zero interval would spin the timer loop; 1 min: slower gossip leaves updates
    // to anti-entropy.
    field!("gossip_interval", "GossipInterval", runtime: true,
        duration!(gossip_interval, ms(1), secs(MINUTE)),
        "how often queued updates go out in their own datagrams"),
    field!("gossip_fanout", "GossipFanout", runtime: false,
        count!(gossip_fanout, 1, 16),
        "members each gossip round and eager push goes to"),
    // 1 ms: zero would push once per update with nothing shared; 1 s: a new update waits
    // at most this long for its first push.
    field!("eager_push_spacing", "EagerPushSpacing", runtime: false,
        duration!(eager_push_spacing, ms(1), secs(1)),
        "least time between two eager pushes, so a burst shares datagrams"),
    field!("retransmit_mult", "RetransmitMult", runtime: true,
        count!(retransmit_mult, 1, 32),
        "each update is sent about retransmit_mult * ceil(log10(N + 1)) times"),
    // 512: room for the largest single message; the maximum is the decoder's own limit.
    field!("packet_bytes_max", "PacketBytesMax", runtime: false,
        count!(packet_bytes_max, 512, crate::wire::DATAGRAM_MAX_BYTES as u64),
        "byte budget of every datagram, envelope included"),
    // 100 ms: zero spins the timer loop, and each round sends a digest; 1 h: divergence
    // that gossip missed lasts at most this long.
    field!("sync_interval", "SyncInterval", runtime: true,
        duration!(sync_interval, ms(100), secs(HOUR)),
        "how often membership digests are compared with a random member (anti-entropy)"),
    // 100 ms: zero spins the timer loop; 1 h: a healed partition finds itself within this.
    field!("reconnect_interval", "ReconnectInterval", runtime: true,
        duration!(reconnect_interval, ms(100), secs(HOUR)),
        "how often one failed member is tried again, so partitions heal by themselves"),
    // 1 s: members must outlive a suspicion; 30 days: longer keeps retrying nodes long gone.
    field!("failed_reap_after", "FailedReapAfter", runtime: false,
        duration!(failed_reap_after, secs(1), secs(30 * DAY)),
        "failed members are retried and remembered this long"),
    field!("left_reap_after", "LeftReapAfter", runtime: false,
        duration!(left_reap_after, secs(1), secs(30 * DAY)),
        "members that left are remembered this long"),
    // 10 ms: zero would resend the join in a loop; at most `join_retry_max` (a rule).
    field!("join_retry_interval", "JoinRetryInterval", runtime: false,
        duration!(join_retry_interval, ms(10), secs(MINUTE)),
        "first retry of an unanswered join; doubles up to join_retry_max"),
    field!("join_retry_max", "JoinRetryMax", runtime: false,
        duration!(join_retry_max, ms(10), secs(HOUR)),
        "longest wait between two join attempts"),
    // 1 min: a leave must not hold up a shutdown for long.
    field!("leave_propagate", "LeavePropagate", runtime: false,
        duration!(leave_propagate, ms(1), secs(MINUTE)),
        "a leaving node keeps gossiping its departure this long"),
    // 10 ms: a tick looks at what is due; 1 min: a failed owner's instances, graves and a
    // passed deadline are looked at again this late at most.
    field!("registry_tick", "RegistryTick", runtime: false,
        duration!(registry_tick, ms(10), secs(MINUTE)),
        "how often the owner's tick looks again while work without a deadline waits (a failed member, graves, a gone owner's instances) or a deadline stays passed; TTLs, liveness and checks are met when they fall"),
    // 1 s: must outlast gossip reaching every node; 7 days: tombstones are gossiped and kept.
    field!("tombstone_grace", "TombstoneGrace", runtime: false,
        duration!(tombstone_grace, secs(1), secs(7 * DAY)),
        "deleted instances are remembered this long, so slow peers cannot resurrect them"),
    // 100 ms: NTP keeps LAN clocks within a few ms, and a tighter bound would refuse honest
    // writes from a clock mid-correction. 1 h: beyond it a poisoned version outlives any
    // tombstone grace worth having, and whole-hour offsets are time-zone bugs, not drift.
    field!("max_clock_offset", "MaxClockOffset", runtime: true,
        duration!(max_clock_offset, ms(100), secs(HOUR)),
        "registry versions further ahead of the local wall clock are refused"),
    // 1: a node that may own nothing is no registry; 10,000,000: about 10 GiB at the ~1 KiB
    // per owned instance measured at 100,000 (docs/scale.md), past any machine hera targets.
    // Runtime: lowering it keeps what is owned and refuses new ids, as a restart would.
    field!("instances_owned_max", "InstancesOwnedMax", runtime: true,
        count!(instances_owned_max, 1, 10_000_000),
        "instances this node may own at once; a new id past it is refused (HTTP 507)"),
    // At least `instances_owned_max` (a rule in `validate`); 10,000,000: about 13 GiB of RSS
    // at the 1.3 KiB per entry measured at 100,000. Runtime, like the owned bound.
    field!("registry_entries_max", "RegistryEntriesMax", runtime: true,
        count!(registry_entries_max, 1, 10_000_000),
        "registry entries (all owners, tombstones included) held at most; new ids past it are refused"),
    // Quorum is a majority of max(expect, known): 1,000,000 is beyond any cluster hera serves.
    Field {
        meta: Meta {
            name: "expect",
            section: Section::Top,
            json: "ExpectedMembers",
            flag: Some(flag_of!("expect")),
            kind: Kind::OptionalCount {
                min: 1,
                max: 1_000_000,
            },
            runtime: false,
            why: "expected cluster size: quorum is a majority of max(expect, members known)",
        },
        get: |c| match c.expected_members {
            Some(n) => Value::Count(n as u64),
            None => Value::Unset,
        },
        set: |c, v| match v {
            Value::Count(n) => c.expected_members = usize::try_from(n).ok(),
            Value::Unset => c.expected_members = None,
            Value::Duration(_) => {}
        },
    },
];

/// The field whose name in `naming` is `name` (the JSON name in any case).
pub fn find(naming: Naming, name: &str) -> Option<&'static Field<Config>> {
    FIELDS.iter().find(|f| match naming {
        Naming::File => f.meta.name == name,
        Naming::Json => f.meta.json.eq_ignore_ascii_case(name),
    })
}

/// The one check of a whole configuration: every field in its range, and the rules between
/// fields. Errors name fields as `naming` does.
pub fn validate(config: &Config, naming: Naming) -> Result<(), ConfigErrors> {
    let mut errors: Vec<ConfigError> = FIELDS
        .iter()
        .filter_map(|f| f.meta.check(naming, (f.get)(config)).err())
        .collect();
    let name =
        |field: &'static str| find(Naming::File, field).map_or(field, |f| f.meta.label(naming));
    // SWIM: the indirect probes start at the timeout and must be answered within the period.
    if config.probe_timeout >= config.probe_interval {
        errors.push(ConfigError::Inconsistent {
            rule: format!(
                "{} must be shorter than {}",
                name("probe_timeout"),
                name("probe_interval")
            ),
        });
    }
    // What this node owns is held in its registry too: an owned bound above the total one
    // would promise registrations the registry then refuses.
    if config.instances_owned_max > config.registry_entries_max {
        errors.push(ConfigError::Inconsistent {
            rule: format!(
                "{} must not exceed {}",
                name("instances_owned_max"),
                name("registry_entries_max")
            ),
        });
    }
    if config.join_retry_interval > config.join_retry_max {
        errors.push(ConfigError::Inconsistent {
            rule: format!(
                "{} must not exceed {}",
                name("join_retry_interval"),
                name("join_retry_max")
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Protocol knobs to change on a running node, each already read and range-checked; only
/// fields with [`Meta::runtime`] can be in it. Applied with [`Config::tuned`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    changes: Vec<(&'static Field<Config>, Value)>,
}

impl Tuning {
    /// Add a change: `value` is read from `raw` and checked; the field must be changeable at
    /// runtime.
    pub fn read(
        &mut self,
        field: &'static Field<Config>,
        naming: Naming,
        raw: Raw<'_>,
    ) -> Result<(), ConfigError> {
        if !field.meta.runtime {
            return Err(ConfigError::NotAtRuntime {
                name: field.meta.label(naming).to_string(),
            });
        }
        let value = field.meta.read(naming, raw)?;
        self.changes.retain(|(f, _)| *f != field);
        self.changes.push((field, value));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes, in the order given.
    pub fn changes(&self) -> impl Iterator<Item = (&'static Field<Config>, Value)> + '_ {
        self.changes.iter().copied()
    }
}

impl Config {
    /// This config with `tuning` applied, or every reason the result is refused (errors name
    /// fields as the JSON API does, which is where tunings come from).
    pub fn tuned(&self, tuning: &Tuning) -> Result<Config, ConfigErrors> {
        let mut c = self.clone();
        for (field, value) in tuning.changes() {
            (field.set)(&mut c, value);
        }
        validate(&c, Naming::Json)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for preset in [
            super::super::Preset::Lan,
            super::super::Preset::Wan,
            super::super::Preset::Local,
        ] {
            let c = preset.config();
            assert_eq!(validate(&c, Naming::File), Ok(()), "{preset:?}");
        }
    }

    #[test]
    fn names_are_unique_and_every_field_round_trips() {
        let c = Config::wan();
        for (i, f) in FIELDS.iter().enumerate() {
            for g in &FIELDS[..i] {
                assert_ne!(f.meta.name, g.meta.name);
                assert_ne!(f.meta.json, g.meta.json);
            }
            assert_eq!(find(Naming::File, f.meta.name), Some(f));
            assert_eq!(find(Naming::Json, &f.meta.json.to_lowercase()), Some(f));
            // Set each field of the lan preset to the wan value through its accessors.
            let mut lan = Config::lan();
            (f.set)(&mut lan, (f.get)(&c));
            assert_eq!((f.get)(&lan), (f.get)(&c), "{}", f.meta.name);
        }
    }

    #[test]
    fn every_duration_is_bounded_and_at_least_a_millisecond() {
        for f in &FIELDS {
            if let Kind::Duration(b) = f.meta.kind {
                assert!(b.min >= ms(1), "{}", f.meta.name);
                assert!(b.max <= secs(30 * DAY), "{}", f.meta.name);
            }
        }
    }

    /// The longest timers the bounds allow do not overflow the arithmetic that uses them.
    #[test]
    fn the_largest_values_keep_arithmetic_in_range() {
        let mut c = Config::lan();
        for f in &FIELDS {
            let largest = match f.meta.kind {
                Kind::Duration(b) => Value::Duration(b.max),
                Kind::Count { max, .. } | Kind::OptionalCount { max, .. } => Value::Count(max),
            };
            (f.set)(&mut c, largest);
        }
        let awareness = crate::swim::awareness::Awareness::new(c.awareness_max);
        let _ = awareness.scale(c.probe_interval);
        let stretched = c.probe_interval.checked_mul(c.awareness_max + 1);
        assert!(stretched.is_some());
        let (_, max) =
            crate::swim::suspicion::bounds(c.suspicion_base, c.suspicion_max_mult, 1_000_000);
        assert!(max < secs(DAY), "{max:?}");
        assert!(u64::try_from(c.failed_reap_after.as_millis()).is_ok());
    }

    #[test]
    fn values_are_read_typed_and_in_range() {
        let f = find(Naming::File, "probe_interval").unwrap();
        assert_eq!(
            f.meta.read(Naming::File, Raw::Text("2s")),
            Ok(Value::Duration(secs(2)))
        );
        for bad in [
            Raw::Text("0s"),
            Raw::Text("0.5ms"),
            Raw::Text("2m"),
            Raw::Integer(2),
        ] {
            assert!(f.meta.read(Naming::File, bad).is_err(), "{bad:?}");
        }
        let e = f.meta.read(Naming::Json, Raw::Text("0.5ms")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ProbeInterval: 500us is outside the allowed range 10ms to 1m"
        );
        let n = find(Naming::File, "gossip_fanout").unwrap();
        assert_eq!(n.meta.read_text(Naming::File, "4"), Ok(Value::Count(4)));
        for bad in [
            Raw::Integer(0),
            Raw::Integer(-1),
            Raw::Integer(17),
            Raw::Text("4"),
        ] {
            assert!(n.meta.read(Naming::File, bad).is_err(), "{bad:?}");
        }
    }

    /// An owned bound above the total one would promise registrations the registry refuses.
    #[test]
    fn the_owned_bound_may_not_exceed_the_registry_bound() {
        let mut c = Config::lan();
        c.instances_owned_max = 1_000;
        c.registry_entries_max = 999;
        let e = validate(&c, Naming::File).unwrap_err().to_string();
        assert_eq!(
            e,
            "instances_owned_max must not exceed registry_entries_max"
        );
        c.registry_entries_max = 1_000;
        assert_eq!(validate(&c, Naming::File), Ok(()));
    }

    #[test]
    fn tuning_changes_only_runtime_fields_and_keeps_the_config_consistent() {
        let lan = Config::lan();
        let field = |name| find(Naming::Json, name).unwrap();
        let mut faster = Tuning::default();
        faster
            .read(field("ProbeInterval"), Naming::Json, Raw::Text("500ms"))
            .unwrap();
        let tuned = lan.tuned(&faster).unwrap();
        assert_eq!(tuned.probe_interval, ms(500));
        assert_eq!(tuned.probe_timeout, lan.probe_timeout);
        let mut t = Tuning::default();
        assert!(t
            .read(field("PacketBytesMax"), Naming::Json, Raw::Integer(900))
            .is_err());
        t.read(field("ProbeTimeout"), Naming::Json, Raw::Text("2s"))
            .unwrap();
        let e = lan.tuned(&t).unwrap_err().to_string();
        assert_eq!(e, "ProbeTimeout must be shorter than ProbeInterval");
    }
}
