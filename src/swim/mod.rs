//! SWIM with the Lifeguard extensions, as pure parts the [`crate::Node`] composes:
//!
//! - [`members`]: the member table and the merge rule (SWIM §4.2);
//! - [`probe`]: randomised round-robin target selection and in-flight probes (SWIM §3.1, §4.3);
//! - [`suspicion`]: Lifeguard's dynamic suspicion timeout (Lifeguard §4.2);
//! - [`awareness`]: Lifeguard's local health multiplier (Lifeguard §4.1);
//! - [`gossip`]: the piggyback queue with its retransmit limit (SWIM §4.1).

pub mod awareness;
pub mod gossip;
pub mod members;
pub mod probe;
pub mod suspicion;

pub use members::{Member, MemberId, Members, State};

/// Make room for one more item, growing by a sixteenth rather than doubling: the member table
/// and its side lists hold one entry per member, and at 10,000 members a doubled vector leaves
/// up to half its capacity (up to 50 B per member) unused. Still amortised O(1) per push; large
/// vectors are grown in place by the system allocator (`mremap`) rather than copied.
fn reserve_gently<T>(items: &mut Vec<T>) {
    if items.len() == items.capacity() {
        items.reserve_exact((items.len() / 16).max(16));
    }
}
