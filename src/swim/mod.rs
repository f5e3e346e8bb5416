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

pub use members::{Member, Members, State};
