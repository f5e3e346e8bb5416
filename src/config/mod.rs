//! Protocol configuration and the deployment presets.
//!
//! Each preset is a complete, consistent set of numbers; the comments say why each number is
//! what it is. Every knob's names, range and reason are in [`schema`], with the one validator;
//! the deployment's settings (addresses, names, the config file) live in `runtime::settings`.

pub mod schema;

use std::time::Duration;

pub use schema::{ConfigError, ConfigErrors, Tuning};

/// The knobs of the protocol core.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How often a node probes the next member of its round-robin list (SWIM's protocol period).
    /// Lifeguard stretches it by the local health score.
    pub probe_interval: Duration,
    /// How long a direct ping waits for its ack before indirect probes are sent; stretched by
    /// the local health score. Must be under `probe_interval`.
    pub probe_timeout: Duration,
    /// How many members are asked to ping a silent target on our behalf (SWIM's k).
    pub indirect_checks: usize,
    /// Upper bound of the Lifeguard local health score; timeouts stretch by `score + 1`.
    pub awareness_max: u32,
    /// Minimum suspicion timeout for clusters up to 10 members; scales with `log10(N)`.
    pub suspicion_base: Duration,
    /// An unconfirmed suspicion lasts this many times the minimum (Lifeguard's α/β).
    pub suspicion_max_mult: u32,
    /// Independent confirmations that shrink a suspicion to its minimum (Lifeguard's K).
    pub suspicion_confirmations: u32,
    /// On hearing a suspicion, about this many members in all probe the suspect at once.
    /// The probe carries the suspicion (buddy system), so a live suspect refutes within one
    /// round trip, and a dead one collects confirmations within one probe timeout.
    pub confirm_probes: u32,
    /// How often queued updates are gossiped in their own datagrams when nothing else carries them.
    pub gossip_interval: Duration,
    /// How many random members each gossip round (and each eager push) goes to.
    pub gossip_fanout: usize,
    /// A new update is pushed at once, but pushes are spaced at least this far apart so that a
    /// burst of updates shares datagrams.
    pub eager_push_spacing: Duration,
    /// Each update is sent about `retransmit_mult * ceil(log10(N + 1))` times.
    pub retransmit_mult: u32,
    /// Byte budget of every datagram, envelope included: stays under a 1,500-byte Ethernet MTU
    /// with IP and UDP headers and some tunnel overhead.
    pub packet_bytes_max: usize,
    /// How often a node compares a membership digest with one random member (anti-entropy).
    pub sync_interval: Duration,
    /// How often a node tries to reach one failed member again, so that healed partitions
    /// find each other without an operator.
    pub reconnect_interval: Duration,
    /// Failed members are retried and kept this long, then forgotten.
    pub failed_reap_after: Duration,
    /// Members that left gracefully are kept (as `left`) this long, then forgotten.
    pub left_reap_after: Duration,
    /// First retry of an unanswered join; doubles up to `join_retry_max`.
    pub join_retry_interval: Duration,
    pub join_retry_max: Duration,
    /// A leaving node keeps answering and gossiping its departure this long before it stops.
    pub leave_propagate: Duration,
    /// How often the owner of instances checks their TTLs, liveness and due health checks:
    /// the granularity of expiry.
    pub registry_tick: Duration,
    /// Tombstones of deleted instances are kept (and gossiped) this long after the deletion's
    /// version, so that a slow peer's old version cannot bring a deleted instance back; then
    /// every node collects them at about the same time. Must exceed how long gossip and a few
    /// anti-entropy rounds take to reach every node. While a member is held failed, and for
    /// this long after, a collected tombstone leaves its version behind (a grave, not gossiped):
    /// a member cut off for longer that sends the old instance back is refused and answered
    /// with the tombstone, whoever deleted it, so deletions outlast partitions that heal within
    /// `failed_reap_after`.
    pub tombstone_grace: Duration,
    /// A registry version whose wall part is further ahead of this node's wall clock than this
    /// is refused (not merged, not forwarded). Hybrid logical clocks follow the highest version
    /// seen, so one version stamped far in the future (a bad clock, or a crafted datagram)
    /// would drag every node's clock there, and every later write would lose to it or tie
    /// (issue 14). A few seconds covers NTP-disciplined clocks with room to spare; a node whose
    /// clock is further off has its writes refused until its clock is fixed, which is the
    /// failure we want to see (counted, logged).
    pub max_clock_offset: Duration,
    /// Instances this node may own (registered through its API) at once: a registration of a
    /// new id past it is refused (`CommandError::Full`, HTTP 507), while updates, renewals and
    /// deregistrations of what it owns always go through. SPEC §11: a client, or anyone where
    /// no token is set, must not be able to register until the node runs out of memory. An owned
    /// instance costs ~640 B of core heap on top of its ~293 B registry entry (tests/memory.rs),
    /// so 100,000 owned is ~90 MB of heap: a scale measured (nodes of a 5-node cluster held
    /// 100,000 entries in 89-96 MiB of RSS, owning 20,000 each, docs/scale.md); raise it
    /// knowingly. Restoring more
    /// than this from the data_dir keeps them all (only new ids are refused).
    pub instances_owned_max: usize,
    /// Registry entries (live instances and tombstones, every owner's) this node holds at
    /// most: a new id past it is refused (counted, `hera_registry_refused_total`), whether a
    /// peer gossips or pushes it or our own API registers it; updates and deletions of held
    /// ids always apply. A member with the cluster key (buggy, or compromised) could otherwise
    /// make every node store any number of entries. 1,000,000: ten times the 100,000 measured
    /// on a real cluster (89-96 MiB of RSS per node holding them, docs/scale.md), so about
    /// 1 GiB at that rate. A deletion keeps its tombstone for `tombstone_grace`, and a
    /// tombstone counts: deregistering makes room only once it is collected.
    pub registry_entries_max: usize,
    /// Expected cluster size, if known: quorum is then a majority of the larger of this and
    /// the number of members known.
    pub expected_members: Option<usize>,
}

/// Default of [`Config::instances_owned_max`], the same in every preset (it bounds memory, which
/// does not depend on the network).
pub const INSTANCES_OWNED_MAX: usize = 100_000;

/// Default of [`Config::registry_entries_max`], the same in every preset.
pub const REGISTRY_ENTRIES_MAX: usize = 1_000_000;

/// A named set of defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Lan,
    Wan,
    Local,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "lan" => Some(Preset::Lan),
            "wan" => Some(Preset::Wan),
            "local" => Some(Preset::Local),
            _ => None,
        }
    }

    pub fn config(self) -> Config {
        match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
            Preset::Local => Config::local(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::lan()
    }
}

impl Config {
    /// One data centre: sub-millisecond round trips, rare loss.
    ///
    /// One probe a second keeps idle traffic at one ping and one ack per node per second. The
    /// 400 ms probe timeout is hundreds of LAN round trips, and Lifeguard stretches it on a
    /// slow node. A crash is suspected within one probe period and, once confirmed by
    /// the members that probe the suspect on hearing of it, declared failed after
    /// 1 s · max(1, log10 N): in the simulator a median of 3.1 s end to end for 32 nodes and
    /// 3.9 s for 128, where memberlist's LAN profile takes 4 s · max(1, log10 N) of suspicion
    /// alone. The short minimum is safe because a live suspect hears of its suspicion within a
    /// round trip (buddy pings, confirmation probes) and refutes at once: the simulator's sweep
    /// (docs/scale.md, "Suspicion base") found no live member declared failed at 1 s any more
    /// than at 1.5 s, under uniform loss up to 30%, churn, or a node losing 80% of its
    /// datagrams. What it gives up is stall tolerance: a process that stops answering for
    /// about 3 s (32 nodes) to 4 s (128) is declared failed in about half the cases, where
    /// 1.5 s tolerated a second more; it refutes when it wakes.
    pub fn lan() -> Config {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(400),
            indirect_checks: 3,
            awareness_max: 8,
            suspicion_base: Duration::from_millis(1_000),
            suspicion_max_mult: 4,
            suspicion_confirmations: 3,
            confirm_probes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            eager_push_spacing: Duration::from_millis(5),
            retransmit_mult: 4,
            packet_bytes_max: 1_400,
            sync_interval: Duration::from_secs(30),
            reconnect_interval: Duration::from_secs(10),
            failed_reap_after: Duration::from_secs(24 * 3600),
            left_reap_after: Duration::from_secs(3600),
            join_retry_interval: Duration::from_secs(1),
            join_retry_max: Duration::from_secs(30),
            leave_propagate: Duration::from_millis(600),
            registry_tick: Duration::from_millis(500),
            tombstone_grace: Duration::from_secs(600),
            max_clock_offset: Duration::from_secs(5),
            instances_owned_max: INSTANCES_OWNED_MAX,
            registry_entries_max: REGISTRY_ENTRIES_MAX,
            expected_members: None,
        }
    }

    /// Across data centres: round trips up to a few hundred milliseconds and bursty loss.
    ///
    /// Timeouts are several WAN round trips; suspicion starts at 6 s so that a burst of loss
    /// on one link is refuted before it becomes a failure; updates go to one more member and
    /// are sent one more time per log10 N; retries are slower to spare the long links.
    pub fn wan() -> Config {
        Config {
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_millis(1_500),
            indirect_checks: 3,
            awareness_max: 8,
            suspicion_base: Duration::from_secs(6),
            suspicion_max_mult: 4,
            suspicion_confirmations: 3,
            confirm_probes: 3,
            gossip_interval: Duration::from_millis(500),
            gossip_fanout: 4,
            eager_push_spacing: Duration::from_millis(20),
            retransmit_mult: 5,
            packet_bytes_max: 1_400,
            sync_interval: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(30),
            failed_reap_after: Duration::from_secs(72 * 3600),
            left_reap_after: Duration::from_secs(3600),
            join_retry_interval: Duration::from_secs(2),
            join_retry_max: Duration::from_secs(60),
            leave_propagate: Duration::from_secs(2),
            registry_tick: Duration::from_secs(1),
            tombstone_grace: Duration::from_secs(1_800),
            max_clock_offset: Duration::from_secs(5),
            instances_owned_max: INSTANCES_OWNED_MAX,
            registry_entries_max: REGISTRY_ENTRIES_MAX,
            expected_members: None,
        }
    }

    /// One machine (tests, development): loopback round trips are microseconds, so every
    /// timeout is short and forgotten members go quickly.
    pub fn local() -> Config {
        Config {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(100),
            indirect_checks: 3,
            awareness_max: 8,
            suspicion_base: Duration::from_millis(1_000),
            suspicion_max_mult: 4,
            suspicion_confirmations: 3,
            confirm_probes: 3,
            gossip_interval: Duration::from_millis(100),
            gossip_fanout: 3,
            eager_push_spacing: Duration::from_millis(2),
            retransmit_mult: 4,
            packet_bytes_max: 1_400,
            sync_interval: Duration::from_secs(10),
            reconnect_interval: Duration::from_secs(2),
            failed_reap_after: Duration::from_secs(120),
            left_reap_after: Duration::from_secs(60),
            join_retry_interval: Duration::from_millis(200),
            join_retry_max: Duration::from_secs(5),
            leave_propagate: Duration::from_millis(300),
            registry_tick: Duration::from_millis(100),
            tombstone_grace: Duration::from_secs(60),
            max_clock_offset: Duration::from_secs(5),
            instances_owned_max: INSTANCES_OWNED_MAX,
            registry_entries_max: REGISTRY_ENTRIES_MAX,
            expected_members: None,
        }
    }
}
