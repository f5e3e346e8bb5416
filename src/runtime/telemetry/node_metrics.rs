//! The core's counters and views as Prometheus metrics.
//!
//! The core keeps plain cumulative counters ([`Stats`]) and cheap views (state counts, quorum,
//! Lifeguard score, queue depth). Many of them move without a visible state change (every
//! datagram bumps a counter, not the node's version), so the published snapshot can be stale
//! for them. The driver therefore hands the `Node` itself to [`NodeMetrics::observe`] after
//! every turn of its loop. Every handle is registered once, and only the values that moved are
//! stored ([`Mirror`]), so an observation is a hundred-odd compares, a few stores and no lookups.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram};

use crate::node::{HeldBound, Lifecycle, Node, Refusal};
use crate::stats::Stats;
use crate::wire::{DecodeErrorKind, MessageKind};

/// Bucket bounds for the probe round trip, in seconds: from a loopback ack (~100 µs) to a
/// probe answered just inside the wan preset's timeout.
pub const RTT_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Metric names shared with the descriptions, the tests and the docs.
pub mod names {
    pub const MEMBERS: &str = "hera_members";
    pub const QUORUM: &str = "hera_quorum";
    pub const QUORUM_REACHABLE: &str = "hera_quorum_reachable_members";
    pub const QUORUM_KNOWN: &str = "hera_quorum_known_members";
    pub const QUORUM_EXPECTED: &str = "hera_quorum_expected_members";
    pub const QUORUM_NEEDED: &str = "hera_quorum_needed_members";
    pub const HEALTH_SCORE: &str = "hera_health_score";
    pub const QUEUE: &str = "hera_dissemination_queue_length";
    pub const PROBES: &str = "hera_probes_total";
    pub const PROBES_FAILED: &str = "hera_probes_failed_total";
    pub const PROBES_INDIRECT: &str = "hera_probes_indirect_total";
    pub const NACKS: &str = "hera_nacks_sent_total";
    pub const PORT_UNREACHABLE: &str = "hera_port_unreachable_reports_total";
    pub const PROBES_CUT_SHORT: &str = "hera_probes_cut_short_total";
    pub const SUSPICIONS_RAISED: &str = "hera_suspicions_raised_total";
    pub const SUSPICIONS_REFUTED: &str = "hera_suspicions_refuted_total";
    pub const SUSPICIONS_CONFIRMED: &str = "hera_suspicions_confirmed_total";
    pub const REFUTATIONS: &str = "hera_refutations_total";
    pub const NAME_CONFLICTS: &str = "hera_name_conflicts_total";
    pub const TWIN_ENTRIES: &str = "hera_registry_twin_entries_total";
    pub const MESSAGES_SKIPPED: &str = "hera_messages_skipped_total";
    pub const REAPED: &str = "hera_members_reaped_total";
    pub const DATAGRAMS: &str = "hera_gossip_datagrams_total";
    pub const BYTES: &str = "hera_gossip_bytes_total";
    pub const MESSAGES: &str = "hera_gossip_messages_total";
    pub const DECODE_ERRORS: &str = "hera_decode_errors_total";
    pub const REPLIES_REFUSED: &str = "hera_replies_refused_total";
    pub const SYNC_ROUNDS: &str = "hera_anti_entropy_rounds_total";
    pub const PUSH_PULLS: &str = "hera_anti_entropy_push_pulls_sent_total";
    pub const PROBE_RTT: &str = "hera_probe_rtt_seconds";
    pub const START_TIME: &str = "hera_start_time_seconds";
    pub const REGISTRY_INSTANCES: &str = "hera_registry_instances";
    pub const REGISTRY_OFFLINE: &str = "hera_registry_instances_offline";
    pub const REGISTRY_TOMBSTONES: &str = "hera_registry_tombstones";
    pub const REGISTRY_INDEX: &str = "hera_registry_index";
    pub const CHECKS_STARTED: &str = "hera_health_checks_started_total";
    pub const CHECKS_SKIPPED: &str = "hera_health_checks_skipped_total";
    pub const CHECKS_FAILED: &str = "hera_health_checks_failed_total";
    pub const PACED_BACKLOG: &str = "hera_paced_backlog_bytes";
    pub const PACED_DROPPED: &str = "hera_paced_dropped_total";
    pub const GOSSIP_DROPPED: &str = "hera_gossip_dropped_total";
    pub const ENTRIES_PUSHED: &str = "hera_registry_entries_pushed_total";
    pub const REGISTRY_SYNCS: &str = "hera_registry_syncs_total";
    pub const REGISTRY_RESYNCS: &str = "hera_registry_resyncs_total";
    pub const REGISTRY_SYNCS_DECLINED: &str = "hera_registry_syncs_declined_total";
    pub const INSTANCES_EXPIRED: &str = "hera_registry_instances_expired_total";
    pub const CLOCK_REJECTIONS: &str = "hera_registry_clock_rejections_total";
    pub const IMPLAUSIBLE_CLAIMS: &str = "hera_implausible_claims_total";
    pub const REGISTRY_REFUSED: &str = "hera_registry_refused_total";
}

/// The bounds a registry entry can be refused by; `hera_registry_refused_total` labels each
/// with its config field.
const REFUSED_BY: [HeldBound; 2] = HeldBound::ALL;

/// The member states, as labelled.
const STATES: [&str; 4] = ["alive", "suspect", "failed", "left"];
const DIRECTIONS: [&str; 2] = ["in", "out"];

/// Help text for every metric this module exports; called once per recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_gauge!(
        MEMBERS,
        "Cluster members by state as this node sees them, this node included."
    );
    describe_gauge!(
        QUORUM,
        "1 when this node sees a majority (of the members it knows of, or of the configured \
         expected size when larger), else 0."
    );
    describe_gauge!(
        QUORUM_REACHABLE,
        "Members this node can reach (alive or suspect, itself included)."
    );
    describe_gauge!(
        QUORUM_KNOWN,
        "Members not gone gracefully: reachable plus failed."
    );
    describe_gauge!(
        QUORUM_EXPECTED,
        "The configured expected cluster size (0 when not configured)."
    );
    describe_gauge!(QUORUM_NEEDED, "Reachable members needed for a majority.");
    describe_gauge!(
        HEALTH_SCORE,
        "Lifeguard local health score: 0 is healthy; higher means this node doubts its own \
         timeliness and stretches its probe timeouts."
    );
    describe_gauge!(
        QUEUE,
        "Updates waiting in the dissemination (piggyback) queue."
    );
    describe_counter!(PROBES, "Direct probes (pings) this node started.");
    describe_counter!(
        PROBES_FAILED,
        "Probes that got no ack, directly or through helpers."
    );
    describe_counter!(
        PROBES_INDIRECT,
        "Indirect probe requests (ping-req) this node sent to helpers."
    );
    describe_counter!(
        NACKS,
        "Nacks sent while relaying indirect probes (Lifeguard)."
    );
    describe_counter!(
        PORT_UNREACHABLE,
        "ICMP port-unreachable reports read from the gossip socket: a datagram found no \
         process at its address."
    );
    describe_counter!(
        PROBES_CUT_SHORT,
        "Probes that asked their helpers before the direct ping's timeout, because the \
         target's port was reported closed."
    );
    describe_counter!(SUSPICIONS_RAISED, "Members this node started to suspect.");
    describe_counter!(
        SUSPICIONS_REFUTED,
        "Suspicions of other members that ended with the member refuting them (false \
         suspicions)."
    );
    describe_counter!(
        SUSPICIONS_CONFIRMED,
        "Suspicions that timed out and marked the member failed."
    );
    describe_counter!(
        REFUTATIONS,
        "Times this node refuted a suspicion or failure about itself."
    );
    describe_counter!(
        NAME_CONFLICTS,
        "Claims to a live member's name from another address, refused."
    );
    describe_counter!(
        TWIN_ENTRIES,
        "Entries received under this node's name that another process under the same name \
         wrote as its own, left alone."
    );
    describe_counter!(
        MESSAGES_SKIPPED,
        "Messages of kinds this node does not know (a newer minor version's), skipped."
    );
    describe_counter!(
        REAPED,
        "Failed or left members forgotten after the reap delay."
    );
    describe_counter!(DATAGRAMS, "Gossip datagrams received (in) and sent (out).");
    describe_counter!(
        BYTES,
        "Gossip bytes received (in) and sent (out), envelopes included."
    );
    describe_counter!(
        MESSAGES,
        "Protocol messages received (in) and sent (out) by kind; a datagram carries several."
    );
    describe_counter!(
        DECODE_ERRORS,
        "Datagrams rejected before they changed anything, by reason."
    );
    describe_counter!(
        REPLIES_REFUSED,
        "Answers not sent, by reason: to a stranger, over a rate, or with the send queue full."
    );
    describe_counter!(SYNC_ROUNDS, "Anti-entropy (push-pull) rounds started.");
    describe_counter!(PUSH_PULLS, "Push-pull datagrams sent for anti-entropy.");
    describe_histogram!(
        PROBE_RTT,
        metrics::Unit::Seconds,
        "Round trip of successful direct probes."
    );
    describe_gauge!(
        START_TIME,
        metrics::Unit::Seconds,
        "When this node started, in seconds since the Unix epoch."
    );
    describe_gauge!(
        REGISTRY_INSTANCES,
        "Registered instances by health (passing, warning, critical), off-line ones included."
    );
    describe_gauge!(
        REGISTRY_OFFLINE,
        "Registered instances in maintenance (off-line), whatever their health."
    );
    describe_gauge!(
        REGISTRY_TOMBSTONES,
        "Deleted instances still remembered so the deletion wins over older copies."
    );
    describe_gauge!(
        REGISTRY_INDEX,
        "The registry's change index here (X-Consul-Index of registry queries)."
    );
    describe_counter!(
        CHECKS_STARTED,
        "HTTP health checks this node started for the instances it owns."
    );
    describe_counter!(
        CHECKS_SKIPPED,
        "HTTP health checks due while the instance's last one had not finished."
    );
    describe_counter!(
        CHECKS_FAILED,
        "HTTP health checks run by this node whose result was not passing."
    );
    describe_gauge!(
        PACED_BACKLOG,
        metrics::Unit::Bytes,
        "Anti-entropy datagrams waiting to leave at the paced rate."
    );
    describe_counter!(
        PACED_DROPPED,
        "Anti-entropy datagrams dropped because the paced backlog was full (a later exchange \
         sends their entries again)."
    );
    describe_counter!(
        GOSSIP_DROPPED,
        "Updates dropped from the dissemination queue before their last retransmission, past \
         its bound, by kind (only registry entries are bounded; anti-entropy delivers them \
         instead)."
    );
    describe_counter!(
        ENTRIES_PUSHED,
        "Registry entries sent by anti-entropy (gossiped ones not counted)."
    );
    describe_counter!(
        REGISTRY_SYNCS,
        "Registry digests from peers that differed from this node's (each starts a repair)."
    );
    describe_counter!(
        REGISTRY_RESYNCS,
        "Early registry comparisons started because the last exchange brought news (beside \
         the regular one per sync_interval)."
    );
    describe_counter!(
        REGISTRY_SYNCS_DECLINED,
        "Peers' differing registry hashes left unanswered while another peer was filling this \
         node in (a late joiner's transfer), so that two peers do not push the same entries."
    );
    describe_counter!(
        INSTANCES_EXPIRED,
        "Instances this node owned and deregistered when they expired."
    );
    describe_counter!(
        CLOCK_REJECTIONS,
        "Registry versions refused: stamped further ahead of this node's wall clock than max_clock_offset."
    );
    describe_counter!(
        REGISTRY_REFUSED,
        "Entries of ids new to this node refused at a bound, by the bound's config field: \
         registrations past instances_owned_max, and entries (from peers or the API) past \
         registry_entries_max."
    );
    describe_counter!(
        IMPLAUSIBLE_CLAIMS,
        "Third-party member claims refused for moving a member's incarnation implausibly far."
    );
}

/// Handles for everything [`NodeMetrics::observe`] updates, registered once.
/// A handle and the last value given to it. The driver observes after every turn of its loop,
/// and a turn moves a few of the hundred-odd values (a datagram in: its count, its bytes, its
/// kind); an unchanged one costs a compare here instead of the registry's two atomic updates,
/// which were 6% of a node's CPU while a cluster of 64 formed (issue 17, perf). Written by the
/// driver's task alone, so a plain load and store keep `last` right. It assumes nothing else
/// stores into these handles, and that the recorder forgets no series left unchanged (no
/// `idle_timeout`: an unchanged value is not stored again, so it would look idle).
#[derive(Debug)]
struct Mirror<H> {
    handle: H,
    /// Bits of the last value given; `u64::MAX` before the first (no counter reaches it, and
    /// as f64 bits it is a NaN no gauge is set to).
    last: AtomicU64,
}

fn mirror<H>(handle: H) -> Mirror<H> {
    Mirror {
        handle,
        last: AtomicU64::new(u64::MAX),
    }
}

impl<H> Mirror<H> {
    /// Whether `bits` differ from the last value given, remembering them.
    fn moved(&self, bits: u64) -> bool {
        let moved = self.last.load(Ordering::Relaxed) != bits;
        if moved {
            self.last.store(bits, Ordering::Relaxed);
        }
        moved
    }
}

impl Mirror<Counter> {
    fn absolute(&self, value: u64) {
        if self.moved(value) {
            self.handle.absolute(value);
        }
    }
}

impl Mirror<Gauge> {
    fn set(&self, value: f64) {
        if self.moved(value.to_bits()) {
            self.handle.set(value);
        }
    }
}

#[derive(Debug)]
pub struct NodeMetrics {
    members: [Mirror<Gauge>; STATES.len()],
    quorum: Mirror<Gauge>,
    reachable: Mirror<Gauge>,
    known: Mirror<Gauge>,
    expected: Mirror<Gauge>,
    needed: Mirror<Gauge>,
    health_score: Mirror<Gauge>,
    queue: Mirror<Gauge>,
    probes: Mirror<Counter>,
    probes_failed: Mirror<Counter>,
    probes_indirect: Mirror<Counter>,
    nacks: Mirror<Counter>,
    port_unreachable: Mirror<Counter>,
    probes_cut_short: Mirror<Counter>,
    suspicions_raised: Mirror<Counter>,
    suspicions_refuted: Mirror<Counter>,
    suspicions_confirmed: Mirror<Counter>,
    refutations: Mirror<Counter>,
    name_conflicts: Mirror<Counter>,
    twin_entries: Mirror<Counter>,
    messages_skipped: Mirror<Counter>,
    reaped: Mirror<Counter>,
    datagrams: [Mirror<Counter>; 2],
    bytes: [Mirror<Counter>; 2],
    messages_in: [Mirror<Counter>; MessageKind::ALL.len()],
    messages_out: [Mirror<Counter>; MessageKind::ALL.len()],
    decode_errors: [Mirror<Counter>; DecodeErrorKind::ALL.len()],
    replies_refused: [Mirror<Counter>; Refusal::ALL.len()],
    sync_rounds: Mirror<Counter>,
    push_pulls: Mirror<Counter>,
    entries_pushed: Mirror<Counter>,
    gossip_dropped_instances: Mirror<Counter>,
    registry_syncs: Mirror<Counter>,
    registry_resyncs: Mirror<Counter>,
    registry_syncs_declined: Mirror<Counter>,
    instances_expired: Mirror<Counter>,
    clock_rejections: Mirror<Counter>,
    implausible_claims: Mirror<Counter>,
    registry_refused: [Mirror<Counter>; REFUSED_BY.len()],
    rtt: Histogram,
}

impl NodeMetrics {
    /// Register every handle with the current recorder (the caller sets a local one).
    pub fn register() -> NodeMetrics {
        use metrics::{counter, gauge, histogram};
        use names::*;
        let directed =
            |name: &'static str| DIRECTIONS.map(|d| mirror(counter!(name, "direction" => d)));
        let messages = |direction: &'static str| {
            MessageKind::ALL
                .map(|k| mirror(counter!(MESSAGES, "direction" => direction, "kind" => k.as_str())))
        };
        NodeMetrics {
            members: STATES.map(|s| mirror(gauge!(MEMBERS, "state" => s))),
            quorum: mirror(gauge!(QUORUM)),
            reachable: mirror(gauge!(QUORUM_REACHABLE)),
            known: mirror(gauge!(QUORUM_KNOWN)),
            expected: mirror(gauge!(QUORUM_EXPECTED)),
            needed: mirror(gauge!(QUORUM_NEEDED)),
            health_score: mirror(gauge!(HEALTH_SCORE)),
            queue: mirror(gauge!(QUEUE)),
            probes: mirror(counter!(PROBES)),
            probes_failed: mirror(counter!(PROBES_FAILED)),
            probes_indirect: mirror(counter!(PROBES_INDIRECT)),
            nacks: mirror(counter!(NACKS)),
            port_unreachable: mirror(counter!(PORT_UNREACHABLE)),
            probes_cut_short: mirror(counter!(PROBES_CUT_SHORT)),
            suspicions_raised: mirror(counter!(SUSPICIONS_RAISED)),
            suspicions_refuted: mirror(counter!(SUSPICIONS_REFUTED)),
            suspicions_confirmed: mirror(counter!(SUSPICIONS_CONFIRMED)),
            refutations: mirror(counter!(REFUTATIONS)),
            name_conflicts: mirror(counter!(NAME_CONFLICTS)),
            twin_entries: mirror(counter!(TWIN_ENTRIES)),
            messages_skipped: mirror(counter!(MESSAGES_SKIPPED)),
            reaped: mirror(counter!(REAPED)),
            datagrams: directed(DATAGRAMS),
            bytes: directed(BYTES),
            messages_in: messages("in"),
            messages_out: messages("out"),
            decode_errors: DecodeErrorKind::ALL
                .map(|k| mirror(counter!(DECODE_ERRORS, "kind" => k.as_str()))),
            replies_refused: Refusal::ALL
                .map(|r| mirror(counter!(REPLIES_REFUSED, "reason" => r.as_str()))),
            sync_rounds: mirror(counter!(SYNC_ROUNDS)),
            push_pulls: mirror(counter!(PUSH_PULLS)),
            entries_pushed: mirror(counter!(ENTRIES_PUSHED)),
            gossip_dropped_instances: mirror(counter!(GOSSIP_DROPPED, "kind" => "instance")),
            registry_syncs: mirror(counter!(REGISTRY_SYNCS)),
            registry_resyncs: mirror(counter!(REGISTRY_RESYNCS)),
            registry_syncs_declined: mirror(counter!(REGISTRY_SYNCS_DECLINED)),
            instances_expired: mirror(counter!(INSTANCES_EXPIRED)),
            clock_rejections: mirror(counter!(CLOCK_REJECTIONS)),
            implausible_claims: mirror(counter!(IMPLAUSIBLE_CLAIMS)),
            registry_refused: REFUSED_BY
                .map(|b| mirror(counter!(REGISTRY_REFUSED, "reason" => b.field()))),
            rtt: histogram!(PROBE_RTT),
        }
    }

    /// Copy the node's counters and views into the handles, and move its probe round trips
    /// into the histogram (draining them: each sample is recorded exactly once).
    pub fn observe(&self, node: &mut Node) {
        let counts = node.counts();
        // `counts` leaves this node out; count it as the status page does.
        let own_alive = node.lifecycle() == Lifecycle::Active;
        let by_state = [
            counts.alive + usize::from(own_alive),
            counts.suspect,
            counts.failed,
            counts.left + usize::from(!own_alive),
        ];
        for (gauge, n) in self.members.iter().zip(by_state) {
            gauge.set(n as f64);
        }
        let q = node.quorum();
        self.quorum.set(if q.has_quorum { 1.0 } else { 0.0 });
        self.reachable.set(q.reachable as f64);
        self.known.set(q.known as f64);
        self.expected.set(q.expected.unwrap_or(0) as f64);
        let of = q.known.max(q.expected.unwrap_or(0));
        self.needed.set((of / 2 + 1) as f64);
        self.health_score.set(f64::from(node.health_score()));
        self.queue.set(node.queue_depth() as f64);
        self.counters(node.stats());
        for rtt in node.stats_mut().take_rtt_samples() {
            self.rtt.record(rtt.as_secs_f64());
        }
    }

    fn counters(&self, s: &Stats) {
        // `absolute` keeps the exported value a true counter: it mirrors the core's cumulative
        // number and never goes down.
        self.probes.absolute(s.probes_sent);
        self.probes_failed.absolute(s.probes_failed);
        self.probes_indirect.absolute(s.indirect_probes_sent);
        self.nacks.absolute(s.nacks_sent);
        self.port_unreachable.absolute(s.port_unreachable_reports);
        self.probes_cut_short.absolute(s.probes_cut_short);
        self.suspicions_raised.absolute(s.suspicions_raised);
        self.suspicions_refuted.absolute(s.suspicions_refuted);
        self.suspicions_confirmed.absolute(s.suspicions_confirmed);
        self.refutations.absolute(s.refutations);
        self.name_conflicts.absolute(s.name_conflicts);
        self.twin_entries.absolute(s.twin_entries);
        self.messages_skipped.absolute(s.messages_skipped);
        self.reaped.absolute(s.members_reaped);
        self.datagrams[0].absolute(s.datagrams_in);
        self.datagrams[1].absolute(s.datagrams_out);
        self.bytes[0].absolute(s.bytes_in);
        self.bytes[1].absolute(s.bytes_out);
        for (c, v) in self.messages_in.iter().zip(s.messages_in) {
            c.absolute(v);
        }
        for (c, v) in self.messages_out.iter().zip(s.messages_out) {
            c.absolute(v);
        }
        for (c, v) in self.decode_errors.iter().zip(s.decode_errors) {
            c.absolute(v);
        }
        for (c, v) in self.replies_refused.iter().zip(s.replies_refused) {
            c.absolute(v);
        }
        self.sync_rounds.absolute(s.sync_rounds);
        self.push_pulls.absolute(s.push_pulls_sent);
        self.entries_pushed.absolute(s.entries_pushed);
        self.gossip_dropped_instances
            .absolute(s.gossip_instances_dropped);
        self.registry_syncs.absolute(s.registry_syncs);
        self.registry_resyncs.absolute(s.registry_resyncs);
        self.registry_syncs_declined
            .absolute(s.registry_syncs_declined);
        self.instances_expired.absolute(s.instances_expired);
        self.clock_rejections.absolute(s.clock_rejections);
        self.implausible_claims.absolute(s.implausible_claims);
        for (counter, bound) in self.registry_refused.iter().zip(REFUSED_BY) {
            counter.absolute(bound.refused(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// Only moved values are stored, and a value that comes back to an earlier one is still
    /// exported: what a scrape reads after each observation is the last value given.
    #[test]
    fn a_mirror_exports_every_change_and_skips_only_repeats() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (gauge, counter) = metrics::with_local_recorder(&recorder, || {
            (
                mirror(metrics::gauge!("m_gauge")),
                mirror(metrics::counter!("m_counter")),
            )
        });
        let reads = |name: &str| -> String {
            let text = handle.render();
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or_default()
                .to_string()
        };
        for (value, expected) in [(3.0, "3"), (3.0, "3"), (4.0, "4"), (3.0, "3"), (0.0, "0")] {
            gauge.set(value);
            assert_eq!(reads("m_gauge"), expected);
        }
        for value in [0, 5, 5, 9] {
            counter.absolute(value);
            assert_eq!(reads("m_counter"), value.to_string());
        }
        // A repeat is not stored again: the handle's own value is left alone.
        gauge.handle.set(7.0);
        gauge.set(0.0);
        assert_eq!(reads("m_gauge"), "7", "a repeated value was stored again");
    }
}
