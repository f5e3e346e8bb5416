//! Wire format v1: the envelope, the messages and their decoder. See `docs/wire.md`.

pub mod bounded;
mod decode;
mod envelope;
mod error;
mod message;
pub mod seal;

pub use decode::{decode_body, decode_body_reference};
pub use envelope::{
    decode_datagram, encode_message, flags, open_envelope, wire_config, DatagramBuilder,
    WireConfig, CHECKSUM_BYTES, DATAGRAM_MAX_BYTES, DECODE_MEMORY_MAX_BYTES, HEADER_BYTES, MAGIC,
    MESSAGES_MAX, OVERHEAD_BYTES, VERSION,
};
pub use error::{DecodeError, DecodeErrorKind};
pub use message::*;
pub use seal::{Key, Keyring, KeyringError, Sealer, SEALED_OVERHEAD_BYTES};

#[cfg(test)]
mod tests;
