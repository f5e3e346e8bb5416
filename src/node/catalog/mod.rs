//! The catalog: the node's half that keeps the service registry. It owns the replicated
//! registry and what only this node knows about it (the deadlines of the instances it owns,
//! the orphan clock, the syncs it owes, the graves, the grave replies), and writes through the
//! node's [`Io`](super::io::Io). Membership reaches it only as a [`MembershipView`]: the state of an owner,
//! the counts behind quorum, the cluster size. No membership code touches these fields.
//!
//! - the instances this node owns and the commands that write them: [`ops`];
//! - writing entries and merging what peers gossip: [`merge`];
//! - the owner's tick (TTLs, checks due, tombstones) and failed owners' instances: [`tick`];
//! - registry anti-entropy (hash, origin digests, bucket digests): [`sync`], its pace after
//!   an exchange that brought news: [`resync`], and the pushes it owes peers: [`push`];
//! - the bounds on what it holds (`instances_owned_max`, `registry_entries_max`): [`bounds`].

mod bounds;
mod checks;
mod journal;
mod merge;
mod ops;
mod owned;
mod push;
mod resync;
mod sync;
mod tick;

use std::collections::BTreeSet;

pub use journal::{OwnedChanges, OWNED_CHANGES_MAX};
pub use resync::RESYNCS_PER_INTERVAL_MAX;

use super::Quorum;
use crate::names::{InstanceId, NodeName};
use crate::registry::{BootId, Entry, Hlc, Registry};
use crate::swim::members::{Members, State, StateCounts};
use crate::time::Instant;

/// What the catalog may know of membership: read-only, and only what registry decisions need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MembershipView<'a> {
    pub(crate) members: &'a Members,
    /// This node takes part in the protocol (not leaving, not stopped).
    pub(crate) active: bool,
    /// A join is under way: no seed has answered yet, so whether our name is ours to use in
    /// this cluster is not known (`Event::NameTaken`).
    pub(crate) joining: bool,
    /// The configured cluster size, if any (quorum counts at least this many).
    pub(crate) expected_members: Option<usize>,
}

impl MembershipView<'_> {
    /// What this node believes of `name` (None for itself and for strangers).
    pub(crate) fn member_state(&self, name: &NodeName) -> Option<State> {
        self.members.get(name).map(|m| m.state)
    }

    /// Other members by state (this node not counted).
    pub(crate) fn counts(&self) -> StateCounts {
        self.members.counts()
    }

    /// Members the retransmit limit and suspicion window are computed for.
    pub(crate) fn cluster_size(&self) -> usize {
        self.members.live().len() + 1
    }

    pub(crate) fn quorum(&self) -> Quorum {
        let counts = self.members.counts();
        let reachable = counts.alive + counts.suspect + 1;
        let known = reachable + counts.failed;
        let of = known.max(self.expected_members.unwrap_or(0));
        Quorum {
            reachable,
            known,
            expected: self.expected_members,
            has_quorum: reachable * 2 > of,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Catalog {
    /// This node's name: the owner of what it registers.
    name: NodeName,
    /// This start of the process: stamped on every instance it writes as its own, so that
    /// what another process under our name writes is told apart from what we deleted.
    boot: BootId,
    /// The first version this boot wrote: the boot's epoch. Our clock only moves forward, so
    /// every version we write this boot is at or above it, and every version an earlier boot
    /// wrote that reached us before it is below (the clock observed it). The zombie rule
    /// compares versions against it, not wall times against the start time: after the
    /// cluster's clocks ran ahead, an entry the previous boot wrote has a wall time past our
    /// start and was taken for one we had deleted (issue 14).
    epoch: Option<Hlc>,
    pub(super) registry: Registry,
    /// Deadlines of the instances this node owns (owner-local: never gossiped), indexed by the
    /// earliest: the registry tick visits only those with something due.
    owned: owned::OwnedSet,
    /// The keys of `owned`, in a persistent set: the driver's snapshot clones it at every
    /// change (O(1), sharing the tree) where collecting the keys copied every owned id
    /// (issue 17). Changed only through [`Catalog::own`] and [`Catalog::disown`].
    owned_ids: imbl::OrdSet<InstanceId>,
    /// Every change to what this node keeps on disk, in order: an id joining or leaving
    /// `owned_ids` ([`Catalog::own`], [`Catalog::disown`]) or its record changing while in it
    /// ([`Catalog::note_if_owned`], after every change to the registry). The store's group
    /// commit reads it instead of comparing registries (issue 17).
    owned_changes: OwnedChanges,
    /// Since when instances of failed or departed owners await the purge decision.
    orphans_since: Option<Instant>,
    /// Members held failed whose entries we refused: compare registries with them when they
    /// come back (at most `sync::OWED_SYNCS_MAX`).
    owed_syncs: BTreeSet<NodeName>,
    /// Collected tombstones are kept as graves until then: a grace after the last registry
    /// tick that saw a member held failed (`Catalog::keeps_graves`).
    graves_until: Option<Instant>,
    /// Why this node is in maintenance, if it is: every instance it owns is off-line with a
    /// reason starting [`ops::NODE_MAINTENANCE`]. Kept on disk through those instances.
    node_maintenance: Option<String>,
    /// The node's own checks (Consul's checks without a `ServiceID`), at most
    /// [`checks::NODE_CHECKS_MAX`]; kept on disk.
    node_checks: Vec<checks::NodeCheck>,
    /// Tombstones to send back to the sender of the datagram being read, which brought old
    /// versions of entries deleted here (at most `ops::GRAVE_REPLIES_MAX`).
    grave_replies: Vec<Entry>,
    /// Entries peers asked for (by origin and buckets) and not sent yet: served together, by
    /// one pass over the registry, when [`crate::timers::Timer::PushDue`] fires (at most
    /// `sync::PUSHES_DUE_MAX`).
    pushes_due: Vec<sync::PushDue>,
    /// Pushes owed to peers, encoded a datagram at a time as the shell takes them
    /// ([`push::Pushes`], at most `push::PUSHES_OWED_MAX` peers).
    pushes: push::Pushes,
    /// Early re-syncs after exchanges that brought news: partners, the ceiling
    /// ([`resync::Resync`]).
    resync: resync::Resync,
}

impl Catalog {
    pub(crate) fn new(name: NodeName, boot: BootId) -> Catalog {
        Catalog {
            name,
            boot,
            epoch: None,
            registry: Registry::default(),
            owned: owned::OwnedSet::default(),
            owned_ids: imbl::OrdSet::new(),
            owned_changes: OwnedChanges::new(boot),
            orphans_since: None,
            owed_syncs: BTreeSet::new(),
            graves_until: None,
            node_maintenance: None,
            node_checks: Vec::new(),
            grave_replies: Vec::new(),
            pushes_due: Vec::new(),
            pushes: push::Pushes::default(),
            resync: resync::Resync::default(),
        }
    }

    /// The registry as this node holds it.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Why this node is in maintenance, if it is.
    pub(crate) fn node_maintenance(&self) -> Option<&str> {
        self.node_maintenance.as_deref()
    }

    /// The instances this node owns and looks after (see [`ops::Owned`]); cloning it is O(1).
    pub(crate) fn owned_ids(&self) -> &imbl::OrdSet<InstanceId> {
        debug_assert_eq!(
            self.owned.len(),
            self.owned_ids.len(),
            "owned outside `own`"
        );
        &self.owned_ids
    }

    /// The changes to the owned instances, in order (see [`OwnedChanges`]); cloning it is O(1).
    pub(crate) fn owned_changes(&self) -> &OwnedChanges {
        &self.owned_changes
    }

    /// Start looking after `id` (or replace what we kept for it). Every insertion into
    /// `owned` goes through here, or the published set and its changes would miss it.
    fn own(&mut self, id: InstanceId, owned: ops::Owned) {
        if self.owned.insert(id.clone(), owned).is_none() {
            self.owned_changes.note(&id);
            self.owned_ids.insert(id);
        }
    }

    /// Stop looking after `id`.
    fn disown(&mut self, id: &InstanceId) {
        if self.owned.remove(id).is_some() {
            self.owned_ids.remove(id);
            self.owned_changes.note(id);
        }
    }

    /// The registry's record of `id` changed: note it if we own it. Called after every change
    /// to the registry that can touch a live entry (`merge`, `purge_orphans`); collecting a
    /// tombstone cannot touch an owned one (a tombstone merged disowns its id).
    fn note_if_owned(&mut self, id: &InstanceId) {
        if self.owned_ids.contains(id) {
            self.owned_changes.note(id);
        }
    }
}
