//! The node's contract with its callers: who it is, what it is asked ([`Command`]), what it
//! answers ([`Reply`], [`CommandError`]), what it reports ([`Event`]), what it sends
//! ([`Transmit`], drained into a [`Sink`]), and the read-only views of its state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::Tuning;
use crate::names::{InstanceId, Label, NodeName, ServiceName};
use crate::registry::{CheckSpec, Health, InstanceSpec};
use crate::swim::members::State;
use crate::time::Instant;
use crate::wire::{self, DecodeError, Incarnation, Profile, Tag};

/// Who this node is, as it introduces itself to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: NodeName,
    /// The address others should send to (may differ from the bound one: NAT, 0.0.0.0).
    pub addr: SocketAddr,
    pub dc: Label,
    pub tags: Vec<Tag>,
}

/// Requests from the operator or the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Join the cluster through any of these addresses; retried until one answers.
    Join { seeds: Vec<SocketAddr> },
    /// Leave gracefully: announce it, keep answering for a moment, then stop.
    Leave,
    /// Register (or re-register) a service instance; this node becomes its owner.
    Register(InstanceSpec),
    /// Heartbeat: resets the instance's liveness and TTL; moves ownership here.
    Renew { id: InstanceId },
    /// Delete an instance everywhere (a tombstone).
    Deregister { id: InstanceId },
    /// A TTL check's report (pass / warn / fail / update), or an HTTP check's result.
    SetHealth {
        id: InstanceId,
        health: Health,
        output: String,
    },
    /// A report of one check by its Consul `CheckID` (an instance's or the node's): pass,
    /// warn, fail, update, or the result of a probe the shell ran.
    SetCheck {
        check: String,
        health: Health,
        output: String,
    },
    /// Add (or replace) a check of an instance this node owns, or of the node itself (None):
    /// Consul's `PUT /v1/agent/check/register`.
    RegisterCheck {
        service: Option<InstanceId>,
        spec: CheckSpec,
    },
    /// Remove a check by its id.
    DeregisterCheck { check: String },
    /// Take an instance off-line (maintenance) or back on-line.
    SetMaintenance {
        id: InstanceId,
        enable: bool,
        reason: Option<String>,
    },
    /// Take every instance this node owns off-line (Consul's node maintenance, the
    /// `_node_maintenance` check) or back on-line; instances registered meanwhile start
    /// off-line. Instances in their own (service) maintenance are left as they are.
    SetNodeMaintenance {
        enable: bool,
        reason: Option<String>,
    },
    /// Run the HTTP checks of the instances this node owns now (optionally one service or
    /// one instance).
    RunChecks {
        service: Option<ServiceName>,
        id: Option<InstanceId>,
    },
    /// List or change the gossip keyring (only on a node started with a cluster key).
    Keyring(KeyringCommand),
    /// Ask every member (a cluster-wide operation, `node::query`); answered at once with
    /// [`Reply::QueryStarted`], the answers come in [`Event::QueryDone`].
    Query(super::QueryRequest),
    /// Change protocol timings on the running node (`PUT /v1/hera/config`).
    Configure(Tuning),
    /// Consul's force-leave: declare a failed member gone for good (left), so that its
    /// instances go and nobody waits for it to come back.
    ForceLeave { name: NodeName },
    /// Take back what this node kept across a restart (its own instances, the incarnation and
    /// registry clock floors): given once, before the first join.
    Restore(Box<super::Restored>),
}

/// What the shell runs for a due check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// 2xx passing, 429 warning, anything else critical (as Consul).
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection within the timeout is passing.
    Tcp { address: String },
}

/// Keyring operations, in the order a rotation uses them: install the new key on every node,
/// use it on every node, then remove the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringCommand {
    List,
    /// Accept datagrams sealed with this key too.
    Install(wire::Key),
    /// Seal with this (installed) key from now on.
    Use(wire::Key),
    /// Stop accepting this key; refused for the primary.
    Remove(wire::Key),
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Registered {
        id: InstanceId,
    },
    ChecksStarted {
        count: usize,
    },
    /// The keyring after a keyring command.
    Keyring {
        primary: wire::Key,
        /// Every key, the primary first.
        keys: Vec<wire::Key>,
    },
    /// A query is on its way; [`Event::QueryDone`] with this id reports it.
    QueryStarted {
        id: wire::QueryId,
    },
    /// A query's answers (the driver turns `QueryStarted` into this once the query is done).
    Query(Box<super::QueryResult>),
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The node has left (or is leaving) the cluster.
    NotRunning,
    /// A join with no address to join through.
    NoSeeds,
    UnknownInstance {
        id: InstanceId,
    },
    /// No check of this node (or instance anywhere) has this id.
    UnknownCheck {
        check: String,
    },
    /// The id is registered under another service.
    IdInUse {
        id: InstanceId,
        service: ServiceName,
    },
    /// A registration of a new id refused: this node holds as many as `field` allows. Not the
    /// client's mistake, nor one a retry mends: room comes back only with a deregistration, a
    /// lapse, or an operator raising the bound. Updates of what is held never get this.
    Full {
        bound: HeldBound,
        max: usize,
        held: usize,
    },
    /// The registration breaks a limit.
    Invalid {
        detail: String,
    },
    /// A keyring command was refused; the keyring is unchanged.
    Keyring(wire::KeyringError),
    UnknownMember {
        name: NodeName,
    },
    /// Force-leave of a member that is alive or suspect (it would refute), or of this node.
    MemberLive {
        name: NodeName,
    },
    /// Force-leave from a node that does not see a majority: its view may be the stale one
    /// (a minority partition), and the member it holds failed may be alive elsewhere.
    NoQuorum {
        reachable: usize,
        known: usize,
    },
}

/// A bound on what a node holds, past which a new id is refused ([`CommandError::Full`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBound {
    /// Instances this node owns: `instances_owned_max`.
    InstancesOwned,
    /// Registry entries held, live and tombstones: `registry_entries_max`.
    RegistryEntries,
}

impl HeldBound {
    pub const ALL: [HeldBound; 2] = [HeldBound::InstancesOwned, HeldBound::RegistryEntries];

    /// The config field that sets it: what an error, a metric label and `hera status` name.
    pub const fn field(self) -> &'static str {
        match self {
            HeldBound::InstancesOwned => "instances_owned_max",
            HeldBound::RegistryEntries => "registry_entries_max",
        }
    }

    /// New ids it refused since start, as `stats` counts them.
    pub fn refused(self, stats: &crate::stats::Stats) -> u64 {
        match self {
            HeldBound::InstancesOwned => stats.refused_owned_max,
            HeldBound::RegistryEntries => stats.refused_entries_max,
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotRunning => write!(f, "this node is leaving or has left the cluster"),
            CommandError::NoSeeds => write!(f, "no address to join through"),
            CommandError::UnknownInstance { id } => write!(f, "no instance with id {id}"),
            CommandError::UnknownCheck { check } => write!(f, "no check with id {check:?}"),
            CommandError::IdInUse { id, service } => {
                write!(f, "id {id} is already registered for service {service}")
            }
            CommandError::Full { bound, max, held } => {
                let field = bound.field();
                // Tombstones count against the registry's bound until they are collected.
                let room = match bound {
                    HeldBound::RegistryEntries => {
                        "until deleted entries' tombstones are collected (tombstone_grace after \
                         the deletion)"
                    }
                    HeldBound::InstancesOwned => "until some are deregistered",
                };
                write!(
                    f,
                    "this node holds {held} of at most {max} ({field}): new instances are \
                     refused {room} or {field} is raised; updates and deregistrations still work"
                )
            }
            CommandError::Invalid { detail } => write!(f, "{detail}"),
            CommandError::Keyring(e) => write!(f, "{e}"),
            CommandError::UnknownMember { name } => write!(f, "no member named {name}"),
            CommandError::MemberLive { name } => write!(
                f,
                "{name} is not failed; only a failed member can be forced to leave (a live one leaves by itself)"
            ),
            CommandError::NoQuorum { reachable, known } => write!(
                f,
                "this node sees {reachable} of {known} members reachable, not a majority: its view may be stale; force-leave from a node that sees a majority"
            ),
        }
    }
}

impl std::error::Error for CommandError {}

/// Something that happened, for logs, metrics and watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    MemberJoined {
        name: NodeName,
        addr: SocketAddr,
    },
    MemberSuspected {
        name: NodeName,
        by: NodeName,
    },
    /// A suspect refuted its suspicion, or a failed member came back.
    MemberRecovered {
        name: NodeName,
    },
    MemberFailed {
        name: NodeName,
    },
    MemberLeft {
        name: NodeName,
    },
    MemberReaped {
        name: NodeName,
    },
    /// A second node claimed a live member's name from another address; it was refused.
    NameConflict {
        name: NodeName,
        known: SocketAddr,
        claimed: SocketAddr,
    },
    /// This node refuted a suspicion or failure about itself.
    Refuted {
        incarnation: Incarnation,
    },
    /// A seed answered our join.
    Joined {
        via: SocketAddr,
    },
    /// A graceful leave has finished; the node is inert.
    LeaveComplete,
    /// A datagram was rejected; nothing in the node changed.
    Rejected {
        from: SocketAddr,
        error: DecodeError,
    },
    /// An HTTP or TCP check of an instance this node owns, or of the node, is due: the shell
    /// runs it and answers with `Command::SetCheck`.
    CheckDue {
        check: String,
        probe: Probe,
        timeout: Duration,
    },
    /// The registry changed; its index is now `index`.
    RegistryChanged {
        index: u64,
    },
    /// A registry version stamped further ahead of our wall clock than `max_clock_offset` was
    /// refused: `writer`'s clock is wrong, or someone tries to poison the registry's clocks.
    /// Only for the log (rate-limited there); nothing changed.
    ClockRejected {
        writer: NodeName,
        ahead_ms: u64,
    },
    /// A claim by a third party that moved `name`'s incarnation from `known` to `claimed`, too
    /// far to be honest, was refused. Only for the log; nothing changed.
    ImplausibleClaim {
        name: NodeName,
        known: Incarnation,
        claimed: Incarnation,
    },
    /// Our name is held by a live member at another address, `holder`: this node refuses to
    /// join (the shell stops it). Two live processes under one name would each treat the
    /// other's entries as its own.
    NameTaken {
        holder: SocketAddr,
    },
    /// A query this node asked is done: every answer, and who did not answer.
    QueryDone(Box<super::QueryResult>),
}

impl Event {
    /// Does the event report a change readers see through the views? A refusal (a rejected
    /// datagram, a refused name claim) changes nothing, so it must not make the shells
    /// republish: under a flood of junk that would cost a snapshot per datagram.
    pub fn changes_state(&self) -> bool {
        match self {
            Event::Rejected { .. }
            | Event::NameConflict { .. }
            | Event::ClockRejected { .. }
            | Event::ImplausibleClaim { .. }
            | Event::QueryDone(_) => false,
            Event::MemberJoined { .. }
            | Event::MemberSuspected { .. }
            | Event::MemberRecovered { .. }
            | Event::MemberFailed { .. }
            | Event::MemberLeft { .. }
            | Event::MemberReaped { .. }
            | Event::Refuted { .. }
            | Event::Joined { .. }
            | Event::LeaveComplete
            | Event::CheckDue { .. }
            | Event::RegistryChanged { .. }
            // The node stops: its lifecycle is what readers see.
            | Event::NameTaken { .. } => true,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Bytes,
    /// Part of a bulk transfer (registry entries pushed by anti-entropy): a shell may spread
    /// these out over time, so that thousands of them neither overflow the receiver's socket
    /// buffer nor wait ahead of probes and acks. Everything else is sent at once.
    pub paced: bool,
}

/// Where [`Node::drain`](super::Node::drain) puts the outputs.
pub trait Sink {
    fn transmit(&mut self, transmit: Transmit);
    fn event(&mut self, event: Event);
    /// Does the sink take one more datagram of a registry push now
    /// ([`Node::poll_push`](super::Node::poll_push))? A shell that paces bulk sends answers
    /// whether its pacer has room (the push is made as it leaves, not held); one that does not
    /// (the simulator, the tests) takes every one, the default.
    fn takes_push(&mut self) -> bool {
        true
    }
}

/// The plain [`Sink`]: what `drain` produced, in order, for the caller to act on (the driver,
/// the simulator and the node tests all use it). Reuse one and drain its vectors to keep
/// their allocations.
#[derive(Debug, Default)]
pub struct Outputs {
    pub transmits: Vec<Transmit>,
    pub events: Vec<Event>,
}

impl Sink for Outputs {
    fn transmit(&mut self, transmit: Transmit) {
        self.transmits.push(transmit);
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// Whether this node still takes part in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Active,
    /// Announcing its departure; still answers probes, starts none.
    Leaving,
    /// Done: ignores every input.
    Stopped,
}

/// Does this node see a majority?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Alive and suspect members, this node included.
    pub reachable: usize,
    /// Every member not gone gracefully: reachable plus failed.
    pub known: usize,
    pub expected: Option<usize>,
    pub has_quorum: bool,
}

/// One member as the outside world sees it (this node included).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub name: NodeName,
    pub profile: Arc<Profile>,
    pub state: State,
    pub incarnation: Incarnation,
    pub since: Instant,
    pub last_ack: Option<Instant>,
    pub is_self: bool,
}
