//! Plain counters kept by the core. Only the shell exports them (to Prometheus).

use std::collections::VecDeque;
use std::time::Duration;

use crate::wire::{DecodeErrorKind, MessageKind};

/// Probe round trips kept for the shell to drain into a histogram.
const RTT_SAMPLES_MAX: usize = 1_024;

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages received and sent, by kind (indexed by `MessageKind::index`).
    pub messages_in: [u64; MessageKind::ALL.len()],
    pub messages_out: [u64; MessageKind::ALL.len()],
    /// Rejected datagrams, by error kind (indexed by `DecodeErrorKind::index`).
    pub decode_errors: [u64; DecodeErrorKind::ALL.len()],
    /// Messages of kinds this node does not know (a newer minor's), skipped in datagrams that
    /// were otherwise applied.
    pub messages_skipped: u64,
    pub probes_sent: u64,
    pub probes_failed: u64,
    pub indirect_probes_sent: u64,
    /// Reports from the network that a datagram found no process at its address (ICMP port
    /// unreachable), as the shell read them.
    pub port_unreachable_reports: u64,
    /// Probes that asked their helpers before the direct ping's timeout because such a report
    /// named the target's address.
    pub probes_cut_short: u64,
    pub nacks_sent: u64,
    pub suspicions_raised: u64,
    /// Suspicions of others that ended with the member refuting (it was alive all along).
    pub suspicions_refuted: u64,
    pub suspicions_confirmed: u64,
    /// Times this node refuted a suspicion or failure about itself.
    pub refutations: u64,
    pub name_conflicts: u64,
    pub sync_rounds: u64,
    pub push_pulls_sent: u64,
    pub members_reaped: u64,
    /// Registry entries sent by anti-entropy (not counting gossip).
    pub entries_pushed: u64,
    /// Passes over the registry to find the entries anti-entropy pushes: one per peer for every
    /// origin it asked for within `PUSH_BATCH_DELAY` (`node/catalog/sync.rs`), made a datagram
    /// at a time as the shell takes them (`node/catalog/push.rs`); a restart counts again.
    pub push_passes: u64,
    /// Registry entries dropped from the gossip queue before their last retransmission, to keep
    /// it within its bound (`swim::gossip::INSTANCE_UPDATES_MAX`); anti-entropy delivers them
    /// instead.
    pub gossip_instances_dropped: u64,
    /// Entries anti-entropy could not send: larger than this node's datagram budget.
    pub entries_unsendable: u64,
    /// Entries we own that a peer sent back after we deleted them, deleted again.
    pub zombies_deleted: u64,
    /// Entries under our name that another live process under it (a twin) wrote as its own,
    /// left alone: neither deleted as zombies nor enforced.
    pub twin_entries: u64,
    /// Old versions of entries deleted here refused because a grave remembers the deletion
    /// (a member cut off for longer than the grace sent them back), answered with tombstones.
    pub zombies_refused: u64,
    /// Registry versions refused because their wall part was further ahead of our wall clock
    /// than `max_clock_offset` (a bad clock, or a poisoning attempt).
    pub clock_rejections: u64,
    /// Registrations through our API (or adoptions of our forgotten instances) of ids new to
    /// us refused because we own `instances_owned_max` already.
    pub refused_owned_max: u64,
    /// Entries of ids new to us refused because the registry holds `registry_entries_max`:
    /// from peers (gossip, anti-entropy) and from our own API.
    pub refused_entries_max: u64,
    /// Third-party claims refused because they moved a member's incarnation implausibly far
    /// (`swim::members::INCARNATION_JUMP_MAX`).
    pub implausible_claims: u64,
    pub registry_syncs: u64,
    /// Early registry comparisons started because the last exchange brought news
    /// (`node::catalog::resync`), beside the regular one per `sync_interval`.
    pub registry_resyncs: u64,
    /// Registry hashes that differed from ours and were not answered because another peer's
    /// push was still arriving (`node::catalog::resync`, `Resync::receiving`).
    pub registry_syncs_declined: u64,
    pub checks_started: u64,
    pub checks_failed: u64,
    pub instances_expired: u64,
    /// Answers not sent, by reason (indexed by `Refusal::index`, see `node::replies`).
    pub replies_refused: [u64; Refusal::ALL.len()],
    rtt_samples: VecDeque<Duration>,
}

impl Stats {
    pub fn reply_refused(&mut self, reason: Refusal) {
        self.replies_refused[reason.index()] += 1;
    }

    pub fn message_in(&mut self, kind: MessageKind) {
        self.messages_in[kind.index()] += 1;
    }

    /// `count` messages of `kind` sent.
    pub fn messages_out(&mut self, kind: MessageKind, count: u64) {
        self.messages_out[kind.index()] += count;
    }

    pub fn decode_error(&mut self, kind: DecodeErrorKind) {
        self.decode_errors[kind.index()] += 1;
    }

    /// Datagrams rejected with errors of `kind`.
    pub fn decode_errors_of(&self, kind: DecodeErrorKind) -> u64 {
        self.decode_errors[kind.index()]
    }

    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors.iter().sum()
    }

    pub fn record_rtt(&mut self, rtt: Duration) {
        if self.rtt_samples.len() == RTT_SAMPLES_MAX {
            self.rtt_samples.pop_front();
        }
        self.rtt_samples.push_back(rtt);
    }

    /// Probe round trips since the last call.
    pub fn take_rtt_samples(&mut self) -> Vec<Duration> {
        self.rtt_samples.drain(..).collect()
    }
}

/// Why a node did not send an answer (`node::replies`): the label of
/// `hera_replies_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A bulk answer asked for by a stranger.
    Stranger,
    /// The node-wide rate of answers to strangers is spent.
    StrangerRate,
    /// A second message of a kind already answered in the same datagram.
    RepeatedKind,
    /// The member's token bucket is empty.
    PeerRate,
    /// Too many bytes already wait to be sent.
    Outbox,
    /// Too many peers hold a token bucket.
    Peers,
    /// A query whose asker is not a live member here: not applied, not answered.
    QueryAsker,
    /// A query over its asker's answer rate: not applied, not answered.
    QueryRate,
    /// A query while this node already remembers `node::query::SEEN_MAX` others: not applied.
    QueryBacklog,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::Stranger,
        Refusal::StrangerRate,
        Refusal::RepeatedKind,
        Refusal::PeerRate,
        Refusal::Outbox,
        Refusal::Peers,
        Refusal::QueryAsker,
        Refusal::QueryRate,
        Refusal::QueryBacklog,
    ];

    pub fn index(self) -> usize {
        match self {
            Refusal::Stranger => 0,
            Refusal::StrangerRate => 1,
            Refusal::RepeatedKind => 2,
            Refusal::PeerRate => 3,
            Refusal::Outbox => 4,
            Refusal::Peers => 5,
            Refusal::QueryAsker => 6,
            Refusal::QueryRate => 7,
            Refusal::QueryBacklog => 8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Stranger => "stranger",
            Refusal::StrangerRate => "stranger_rate",
            Refusal::RepeatedKind => "repeated_kind",
            Refusal::PeerRate => "peer_rate",
            Refusal::Outbox => "outbox",
            Refusal::Peers => "peers",
            Refusal::QueryAsker => "query_asker",
            Refusal::QueryRate => "query_rate",
            Refusal::QueryBacklog => "query_backlog",
        }
    }
}
