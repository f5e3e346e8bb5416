//! What the registry holds, as data: one service instance, its checks, the hybrid logical
//! clock version it was written at, and the entry (an instance at a version, or its tombstone)
//! that nodes gossip.
//!
//! Vocabulary, below the wire and the state machines: these types know their own bounds and
//! encodings and nothing of the protocol. The merge rule, the store and the digests are
//! `registry`; when and why entries are written is the node's `catalog`.

mod checks;
mod entry;
mod hlc;

pub use checks::{
    default_check_id, worst, CheckList, CheckState, NodeVerdict, CHECKS_MAX, CHECK_ID_MAX_BYTES,
    CHECK_OUTPUT_MAX_BYTES, CHECK_TEXT_MAX_BYTES,
};
pub use entry::{
    check_tcp_address_shape, check_url_shape, clip, BootId, Check, Entry, Extras, Health,
    HttpCheck, HttpRequest, Instance, InstanceExtras, InstanceMeta, InstanceTags, MetaPair,
    TcpCheck, ADDRESS_MAX_BYTES, BODY_MAX_BYTES, CHECK_PERIOD_MS_MAX, CHECK_TIMEOUT_MS_MAX,
    HTTP_HEADERS_MAX, HTTP_METHOD_MAX_BYTES, META_KEY_MAX_BYTES, META_MAX, META_VALUE_MAX_BYTES,
    OUTPUT_MAX_BYTES, TAGS_MAX, TAG_MAX_BYTES, URL_MAX_BYTES,
};
pub use hlc::{newer, Hlc, HlcClock};
