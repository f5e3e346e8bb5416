//! Wire format v2: the envelope, the framed messages and their decoder, sealing, replay
//! windows and the cluster label. See `docs/wire.md`.

mod decode;
mod entry_size;
mod envelope;
mod error;
pub mod label;
mod message;
pub mod replay;
pub mod seal;

pub use decode::{
    decode_body, decode_body_reference, decode_frames, decode_frames_reference, Decoded,
};
pub use entry_size::{
    fit_texts, worst_case_entry_bytes, worst_case_entry_bytes_unlisted, ENTRY_MAX_BYTES,
    TEXT_RESERVE_BYTES,
};
pub use envelope::{
    check_label, decode_datagram, decode_plain, encode_frame, encode_message, flags, major_for,
    open_envelope, open_plain, read_header, wire_config, Datagram, DatagramBuilder, Header,
    WireConfig, CHECKSUM_BYTES, DATAGRAM_MAX_BYTES, DECODE_MEMORY_MAX_BYTES, HEADER_BYTES,
    LENGTH_BYTES, MAGIC, MAJOR_MAX, MAJOR_MIN, MESSAGES_MAX, MINOR, OVERHEAD_BYTES, PREFIX_BYTES,
    VERSION,
};
pub use error::{DecodeError, DecodeErrorKind, Replay};
pub use label::{ClusterLabel, LabelError};
pub use message::*;
pub use seal::{Key, Keyring, KeyringError, Sealer, SEALED_OVERHEAD_BYTES};

#[cfg(test)]
mod tests;
