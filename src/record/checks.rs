// Reads values from outside the process: arithmetic is checked (issue 12).
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! Several checks per instance (issue 18), each with its own Consul `CheckID`, name, notes,
//! status, output and time of its last change.
//!
//! An instance with one check of its default id (`service:<id>`), no name or notes, whose
//! status is the instance's, is held as before: the check in [`Instance::check`], its status
//! in [`Instance::health`]. Only when that does not say it all (several checks, an id of the
//! client's own, a TCP check, a node-level check overriding the status) does the instance
//! carry a [`CheckList`], appended after every field an older version knows: older nodes skip
//! it (a frame's unread tail is ignored). An entry with one plain check costs no allocation
//! more than it did, one pointer in memory and one byte on the wire (the empty list's length,
//! always written, so that fields a newer version appends after it are never taken for a
//! list). The list is in the entry, so it is gossiped only when the entry is, that is when
//! something in it changed.

use bincode::de::read::Reader;
use bincode::de::{Decode, Decoder};
use bincode::enc::{Encode, Encoder};
use bincode::error::{DecodeError, EncodeError};

use super::entry::{clip, Check, Health, Instance, OUTPUT_MAX_BYTES};
use crate::bounded::{BoundedString, BoundedVec};

/// Most checks one instance may carry: an entry must fit one datagram, and 8 covers a
/// service's liveness, readiness and dependencies with room to spare.
pub const CHECKS_MAX: usize = 8;
/// Longest `CheckID`: room for Consul's default of the longest instance id,
/// `service:<id>:<n>`.
pub const CHECK_ID_MAX_BYTES: usize = crate::names::InstanceId::MAX_BYTES + 16;
/// Longest check `Name` and `Notes`.
pub const CHECK_TEXT_MAX_BYTES: usize = 64;
/// Bytes of each listed check's output kept in the entry; the instance's own output (the worst
/// check's) keeps up to [`OUTPUT_MAX_BYTES`].
pub const CHECK_OUTPUT_MAX_BYTES: usize = 64;

/// One check of an instance, as the registry holds and gossips it.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CheckState {
    pub id: BoundedString<CHECK_ID_MAX_BYTES>,
    /// Empty: Consul's default name (`Service '<name>' check`).
    pub name: BoundedString<CHECK_TEXT_MAX_BYTES>,
    pub notes: BoundedString<CHECK_TEXT_MAX_BYTES>,
    pub check: Check,
    pub status: Health,
    pub output: BoundedString<CHECK_OUTPUT_MAX_BYTES>,
    /// Wall milliseconds when `status` last changed.
    pub since_ms: u64,
    /// Consul's per-check `DeregisterCriticalServiceAfter`.
    pub deregister_critical_after_ms: Option<u64>,
}

/// The checks of an instance when one plain check does not say it all (see the module doc).
/// Encoded as an empty list when absent; decoded as absent when empty, or when the frame ends
/// before it (an entry from a version that predates it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckList(pub Option<Box<BoundedVec<CheckState, CHECKS_MAX>>>);

impl Encode for CheckList {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match &self.0 {
            Some(list) => list.encode(e),
            None => 0u64.encode(e),
        }
    }
}

impl<C> Decode<C> for CheckList {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        // Entries are decoded from a frame's slice, which can tell its end: nothing left is an
        // entry from a version before the list (or with one plain check).
        if d.reader().peek_read(1).is_none() {
            return Ok(CheckList(None));
        }
        let list = BoundedVec::<CheckState, CHECKS_MAX>::decode(d)?;
        if list.0.is_empty() {
            return Ok(CheckList(None));
        }
        Ok(CheckList(Some(Box::new(list))))
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for CheckList {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        Self::decode(d)
    }
}

/// Consul's id for the `n`th (from 0) of `count` checks a service registration defines
/// without ids of their own: `service:<id>`, or `service:<id>:<n+1>` when there are several.
pub fn default_check_id(instance: &str, n: usize, count: usize) -> String {
    if count > 1 {
        format!("service:{instance}:{}", n.saturating_add(1))
    } else {
        format!("service:{instance}")
    }
}

/// Consul's aggregation: critical over warning over passing.
pub fn worst(statuses: impl IntoIterator<Item = Health>) -> Health {
    statuses.into_iter().max().unwrap_or(Health::Passing)
}

/// A node-level check's verdict over every instance of its node: the worst status of the
/// node's checks, and the output of the worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVerdict {
    pub status: Health,
    pub output: String,
}

impl Instance {
    /// Every check of the instance (one, of kind `None`, for an instance registered without).
    pub fn checks(&self) -> Vec<CheckState> {
        if let Some(list) = &self.checks.0 {
            return list.0.clone();
        }
        vec![CheckState {
            id: clip(&default_check_id(self.id.as_str(), 0, 1), usize::MAX),
            name: BoundedString::default(),
            notes: BoundedString::default(),
            check: self.check.clone(),
            status: self.health,
            output: clip(&self.output.0, usize::MAX),
            since_ms: self.health_since_ms,
            deregister_critical_after_ms: self.deregister_critical_after_ms,
        }]
    }

    /// How many checks the instance has.
    pub fn check_count(&self) -> usize {
        self.checks.0.as_ref().map_or(1, |l| l.0.len())
    }

    /// Store `checks` and set the instance's health to the worst of them and of the node's
    /// checks (`node`), its output to the worst one's, its `health_since_ms` to `now_ms` if
    /// the health changed. One plain check of the default id is stored as before (the module
    /// doc); `checks` empty stands for no check.
    pub fn set_checks(
        &mut self,
        mut checks: Vec<CheckState>,
        node: Option<&NodeVerdict>,
        now_ms: u64,
    ) {
        checks.truncate(CHECKS_MAX);
        let own = worst(checks.iter().map(|c| c.status));
        let mut health = own;
        let mut output = checks
            .iter()
            .find(|c| c.status == own && own != Health::Passing)
            .or(checks.first())
            .map_or(String::new(), |c| c.output.0.clone());
        if let Some(verdict) = node.filter(|v| v.status > own) {
            health = verdict.status;
            output.clone_from(&verdict.output);
        }
        if self.health != health {
            self.health_since_ms = now_ms;
        }
        self.health = health;
        let plain = match checks.as_slice() {
            [] => true,
            [only] => {
                only.id.0 == default_check_id(self.id.as_str(), 0, 1)
                    && only.name.0.is_empty()
                    && only.notes.0.is_empty()
                    && only.check.is_legacy()
                    && only.status == health
            }
            _ => false,
        };
        if plain {
            let only = checks.pop();
            self.check = only.as_ref().map_or(Check::None, |c| c.check.clone());
            self.deregister_critical_after_ms =
                only.as_ref().and_then(|c| c.deregister_critical_after_ms);
            // The plain form keeps the whole output, not the list's clipped one.
            self.output = clip::<OUTPUT_MAX_BYTES>(&output, usize::MAX);
            self.checks = CheckList(None);
        } else {
            // Readers of the plain fields (older nodes) see the worst status and no check.
            self.check = Check::None;
            self.deregister_critical_after_ms = None;
            self.output = clip::<OUTPUT_MAX_BYTES>(&output, usize::MAX);
            // Held as long as the entry: no spare room (a Vec grown by pushes or a filtered
            // collect has room for four checks at least).
            checks.shrink_to_fit();
            self.checks = CheckList(Some(Box::new(BoundedVec::new(checks))));
        }
        // Writing the fields above boxed the extras even when they stay empty.
        self.extras.compact();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{InstanceId, NodeName, ServiceName};
    use crate::registry::InstanceSpec;

    fn instance() -> Instance {
        InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.1", 5432)
            .into_instance(
                InstanceId::new("db-1").unwrap(),
                NodeName::new("n0").unwrap(),
                1,
            )
            .unwrap()
    }

    fn state(id: &str, status: Health) -> CheckState {
        CheckState {
            id: BoundedString(id.to_string()),
            name: BoundedString::default(),
            notes: BoundedString::default(),
            check: Check::Ttl { ttl_ms: 1_000 },
            status,
            output: BoundedString(format!("{id} is {}", status.as_str())),
            since_ms: 1,
            deregister_critical_after_ms: None,
        }
    }

    /// The list costs an entry with one plain check one pointer, and the kinds with a text
    /// nothing: `Check` is two words (the kind and a TTL, or a box), whatever the kind.
    #[test]
    fn the_list_and_the_new_kinds_cost_a_plain_entry_one_pointer() {
        use std::mem::size_of;
        assert_eq!(size_of::<CheckList>(), size_of::<usize>());
        assert_eq!(size_of::<Check>(), 2 * size_of::<u64>());
    }

    #[test]
    fn a_stored_list_keeps_no_spare_room() {
        let mut i = instance();
        let mut checks = Vec::with_capacity(CHECKS_MAX);
        checks.push(state("a", Health::Passing));
        checks.push(state("b", Health::Warning));
        i.set_checks(checks, None, 5);
        let list = i.checks.0.as_ref().expect("two checks are held as a list");
        assert_eq!(list.0.capacity(), 2);
    }

    #[test]
    fn default_ids_are_numbered_as_consul_numbers_them() {
        assert_eq!(default_check_id("db-1", 0, 1), "service:db-1");
        assert_eq!(default_check_id("db-1", 0, 2), "service:db-1:1");
        assert_eq!(default_check_id("db-1", 1, 2), "service:db-1:2");
    }

    #[test]
    fn health_is_the_worst_check() {
        let mut i = instance();
        i.set_checks(
            vec![
                state("a", Health::Passing),
                state("b", Health::Warning),
                state("c", Health::Critical),
            ],
            None,
            5,
        );
        assert_eq!(i.health, Health::Critical);
        assert_eq!(i.output.0, "c is critical");
        assert_eq!(i.health_since_ms, 5);
        assert_eq!(i.check_count(), 3);
        assert_eq!(i.checks()[1].status, Health::Warning);
        i.set_checks(
            vec![state("a", Health::Passing), state("b", Health::Warning)],
            None,
            6,
        );
        assert_eq!(i.health, Health::Warning);
    }

    #[test]
    fn a_critical_node_check_makes_the_instance_critical() {
        let mut i = instance();
        let verdict = NodeVerdict {
            status: Health::Critical,
            output: "disk full".into(),
        };
        i.set_checks(
            vec![state("service:db-1", Health::Passing)],
            Some(&verdict),
            9,
        );
        assert_eq!(i.health, Health::Critical);
        assert_eq!(i.output.0, "disk full");
        // The check's own status is kept, in the list: it no longer says it all.
        assert_eq!(i.checks()[0].status, Health::Passing);
        assert!(i.checks.0.is_some());
    }

    #[test]
    fn one_plain_check_is_held_as_before() {
        let mut i = instance();
        let before = i.clone();
        i.set_checks(i.checks(), None, 1);
        assert_eq!(i, before);
        assert!(i.checks.0.is_none());
    }

    #[test]
    fn the_list_round_trips_and_an_entry_without_it_still_decodes() {
        use crate::record::{Entry, Hlc};
        use crate::wire::{decode_body, encode_message, Message};
        let mut i = instance();
        i.set_checks(
            vec![
                state("db-ttl", Health::Passing),
                state("db-http", Health::Critical),
            ],
            None,
            2,
        );
        let entry = |i: Instance| Entry {
            id: i.id.clone(),
            version: Hlc {
                wall_ms: 1,
                counter: 0,
                node: NodeName::new("n0").unwrap(),
            },
            instance: Some(Box::new(i)),
        };
        let with_list = Message::Entry(entry(i.clone()));
        assert_eq!(
            decode_body(&encode_message(&with_list)).unwrap(),
            vec![with_list]
        );
        let plain = Message::Entry(entry(instance()));
        let bytes = encode_message(&plain);
        assert_eq!(decode_body(&bytes).unwrap(), vec![plain.clone()]);
        // As a version before the list wrote it: without the empty list's length byte (and
        // the frame's length one less).
        let mut older = bytes[..bytes.len() - 1].to_vec();
        assert_eq!(
            older[1] as usize,
            bytes.len() - 2,
            "a one-byte frame length"
        );
        older[1] -= 1;
        assert_eq!(decode_body(&older).unwrap(), vec![plain.clone()]);
        // As a newer version writes it: fields appended after the list are skipped.
        let mut newer = [&bytes[..], &[0xee, 0xff][..]].concat();
        newer[1] += 2;
        assert_eq!(decode_body(&newer).unwrap(), vec![plain]);
    }
}
