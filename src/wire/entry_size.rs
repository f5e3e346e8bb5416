//! The registry's size rule, in wire terms: every entry, at its fullest, fits one datagram.
//!
//! An instance is checked against this at registration and again whenever something in it grows
//! (health output, maintenance reason, a node check listing its plain check), so it can always
//! be gossiped, alone if need be. The rule lives with the encoder it measures.

use crate::bounded::BoundedString;
use crate::bounded::BoundedVec;
use crate::names::NodeName;
use crate::record::{
    clip, BootId, Check, CheckList, Entry, Hlc, Instance, CHECK_OUTPUT_MAX_BYTES, OUTPUT_MAX_BYTES,
};

/// The most a gossiped entry (`Message::Entry`) may encode to at its fullest: health output
/// and maintenance reason at their limits, the longest node names as owner and writer, the
/// largest version ([`worst_case_entry_bytes`]). The 100 bytes left of a default 1,400-byte
/// datagram hold the envelope's header and its checksum or AEAD trailer, so every entry can
/// always be gossiped, alone if need be, whatever happens to it after registration. Larger
/// registrations are refused at the API.
pub const ENTRY_MAX_BYTES: usize = 1_300;

// The header and a trailer of up to 64 bytes (a checksum, or an AEAD nonce and tag) fit beside
// the largest entry in the default datagram.
const _: () = assert!(ENTRY_MAX_BYTES + super::HEADER_BYTES + 64 <= 1_400);

/// Room always kept for the health output and for the maintenance reason: an instance at the
/// size limit can still report why it is critical or off-line. Longer texts are clipped to the
/// room the entry has left ([`fit_texts`]).
pub const TEXT_RESERVE_BYTES: usize = 64;

/// What `instance` would encode to as a `Message::Entry` once every field that can grow after
/// registration has grown: the owner's and writer's names (ownership moves) and the version's
/// numbers to their limits, the health output and maintenance reason to at least
/// [`TEXT_RESERVE_BYTES`], and one plain check listed (as a failing node check lists it).
pub fn worst_case_entry_bytes(instance: &Instance) -> usize {
    worst_case_bytes(instance, true)
}

/// [`worst_case_entry_bytes`] as versions before 3 December counted it, without listing a
/// plain check: the bound an instance saved by such a version was taken under, so that a
/// restart after the upgrade keeps it rather than skipping it as too large.
pub fn worst_case_entry_bytes_unlisted(instance: &Instance) -> usize {
    worst_case_bytes(instance, false)
}

fn worst_case_bytes(instance: &Instance, list_plain: bool) -> usize {
    // A constant name of the longest allowed length: valid by construction.
    #[allow(clippy::expect_used)]
    let longest_name = NodeName::new(&"n".repeat(NodeName::MAX_BYTES)).expect("a valid name");
    let at_least = |text: &str| {
        let mut grown = text.to_string();
        while grown.len() < TEXT_RESERVE_BYTES {
            grown.push('x');
        }
        BoundedString::<OUTPUT_MAX_BYTES>(grown)
    };
    let mut grown = instance.clone();
    grown.owner = longest_name.clone();
    grown.owner_boot = BootId(u64::MAX);
    grown.output = at_least(&instance.output.0);
    grown.maintenance_reason = Some(at_least(
        instance
            .maintenance_reason
            .as_ref()
            .map_or("", |r| r.0.as_str()),
    ));
    grown.health_since_ms = u64::MAX;
    if list_plain && grown.checks.0.is_none() {
        // A failing node check turns the plain form into the list ([`Instance::set_checks`]):
        // the one check then travels as a listed one, with its id.
        grown.checks = CheckList(Some(Box::new(BoundedVec::new(grown.checks()))));
        grown.check = Check::None;
        grown.deregister_critical_after_ms = None;
    }
    if let Some(list) = &mut grown.checks.0 {
        for check in &mut list.0 {
            while check.output.0.len() < CHECK_OUTPUT_MAX_BYTES {
                check.output.0.push('x');
            }
            check.since_ms = u64::MAX;
        }
    }
    let entry = Entry {
        id: instance.id.clone(),
        version: Hlc {
            wall_ms: u64::MAX,
            counter: u32::MAX,
            node: longest_name,
        },
        instance: Some(Box::new(grown)),
    };
    super::encode_message(&super::Message::Entry(entry)).len()
}

/// Clip the health output, then the maintenance reason, until the entry is within
/// [`ENTRY_MAX_BYTES`] at its worst case (never below [`TEXT_RESERVE_BYTES`], which the
/// registration check left room for).
pub fn fit_texts(instance: &mut Instance) {
    let excess = worst_case_entry_bytes(instance).saturating_sub(ENTRY_MAX_BYTES);
    if excess == 0 {
        return;
    }
    let output = &instance.output.0;
    let keep = output.len().saturating_sub(excess).max(TEXT_RESERVE_BYTES);
    if keep < output.len() {
        instance.output = clip(output, keep);
    }
    let excess = worst_case_entry_bytes(instance).saturating_sub(ENTRY_MAX_BYTES);
    if let (Some(reason), true) = (&instance.maintenance_reason, excess > 0) {
        let keep = reason
            .0
            .len()
            .saturating_sub(excess)
            .max(TEXT_RESERVE_BYTES);
        instance.maintenance_reason = Some(clip(&reason.0, keep));
    }
}
