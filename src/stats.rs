//! Plain counters kept by the core. Only the shell exports them (to Prometheus).

use std::collections::VecDeque;
use std::time::Duration;

/// Message kinds, in wire order, for per-kind counters.
pub const MESSAGE_KINDS: [&str; 11] = [
    "ping",
    "ack",
    "ping_req",
    "nack",
    "member",
    "push_pull",
    "sync_probe",
    "entry",
    "registry_sync",
    "registry_digest",
    "registry_buckets",
];

/// Decode error kinds, for per-kind counters.
pub const DECODE_ERROR_KINDS: [&str; 16] = [
    "too_short",
    "too_long",
    "bad_magic",
    "unsupported_version",
    "unknown_flags",
    "truncated",
    "trailing_bytes",
    "checksum",
    "authentication",
    "unsealed",
    "oversized",
    "unknown_kind",
    "too_many_messages",
    "invalid_field",
    "label_mismatch",
    "replayed",
];

/// Probe round trips kept for the shell to drain into a histogram.
const RTT_SAMPLES_MAX: usize = 1_024;

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages received and sent, by kind (indexed as `MESSAGE_KINDS`).
    pub messages_in: [u64; MESSAGE_KINDS.len()],
    pub messages_out: [u64; MESSAGE_KINDS.len()],
    /// Rejected datagrams, by error kind (indexed as `DECODE_ERROR_KINDS`).
    pub decode_errors: [u64; DECODE_ERROR_KINDS.len()],
    /// Messages of kinds this node does not know (a newer minor's), skipped in datagrams that
    /// were otherwise applied.
    pub messages_skipped: u64,
    pub probes_sent: u64,
    pub probes_failed: u64,
    pub indirect_probes_sent: u64,
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
    /// Entries anti-entropy could not send: larger than this node's datagram budget.
    pub entries_unsendable: u64,
    /// Entries we own that a peer sent back after we deleted them, deleted again.
    pub zombies_deleted: u64,
    /// Old versions of entries deleted here refused because a grave remembers the deletion
    /// (a member cut off for longer than the grace sent them back), answered with tombstones.
    pub zombies_refused: u64,
    pub registry_syncs: u64,
    pub checks_started: u64,
    pub checks_failed: u64,
    pub instances_expired: u64,
    rtt_samples: VecDeque<Duration>,
}

impl Stats {
    pub fn message_in(&mut self, kind: &str) {
        if let Some(i) = MESSAGE_KINDS.iter().position(|k| *k == kind) {
            self.messages_in[i] += 1;
        }
    }

    pub fn message_out(&mut self, kind: &str) {
        if let Some(i) = MESSAGE_KINDS.iter().position(|k| *k == kind) {
            self.messages_out[i] += 1;
        }
    }

    pub fn decode_error(&mut self, kind: &str) {
        if let Some(i) = DECODE_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.decode_errors[i] += 1;
        }
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
