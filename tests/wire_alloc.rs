//! The decoder allocates no more than a datagram's own bytes can justify, whatever its length
//! prefixes claim.
//!
//! A counting global allocator (`tests/support/peak_alloc.rs`) sees every allocation of this
//! test binary; that is why this test lives in its own binary rather than in `src/wire/tests.rs`.

use hera::wire::{decode_datagram, DecodeError, MAGIC, VERSION};

/// Peak bytes a ~20-byte hostile datagram may make the decoder hold at once. A decoded message
/// of a few small fields needs far less; a capacity reserved from a hostile length would not fit.
const PEAK_MAX_BYTES: usize = 4 * 1024;

#[path = "support/peak_alloc.rs"]
mod peak_alloc;
use peak_alloc::PeakCounting;

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

/// Peak bytes held by `f` on this thread beyond what was live when it started.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (out, peak, _) = peak_alloc::peak(f);
    (out, peak)
}

fn envelope(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn u64_len(n: u64) -> Vec<u8> {
    [&[253][..], &n.to_le_bytes()].concat()
}

fn u16_len(n: u16) -> Vec<u8> {
    [&[251][..], &n.to_le_bytes()].concat()
}

/// A member update (kind 4) about "a" up to its data-centre label "d"; tags come next.
fn member_to_tags() -> Vec<u8> {
    vec![4, 1, b'a', 0, 0, 0, 10, 0, 0, 1, 5, 1, b'd']
}

#[test]
fn hostile_length_prefixes_allocate_almost_nothing() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("name of 2^60 bytes", [vec![4], u64_len(1 << 60)].concat()),
        ("name of 2^32 bytes", [vec![4], u64_len(1 << 32)].concat()),
        ("name of 60,000 bytes", [vec![4], u16_len(60_000)].concat()),
        ("2^60 members", [vec![5, 1], u64_len(1 << 60)].concat()),
        ("2^32 members", [vec![5, 1], u64_len(1 << 32)].concat()),
        ("60,000 members", [vec![5, 1], u16_len(60_000)].concat()),
        (
            "256 members, none present",
            [vec![5, 1], u16_len(256)].concat(),
        ),
        ("2^60 tags", [member_to_tags(), u64_len(1 << 60)].concat()),
        ("60,000 tags", [member_to_tags(), u16_len(60_000)].concat()),
        (
            "16 tags, none present",
            [member_to_tags(), vec![16]].concat(),
        ),
        (
            "256 members of 16 tags, one present",
            [
                vec![5, 1],
                u16_len(256),
                member_to_tags()[1..].to_vec(),
                vec![16],
            ]
            .concat(),
        ),
    ];
    for (what, body) in cases {
        let bytes = envelope(&body);
        assert!(bytes.len() <= 32, "{what}: {} bytes", bytes.len());
        let (result, peak) = measure(|| decode_datagram(&bytes));
        assert!(
            matches!(
                result,
                Err(DecodeError::Oversized | DecodeError::Truncated { .. })
            ),
            "{what}: {result:?}"
        );
        assert!(peak < PEAK_MAX_BYTES, "{what}: peak {peak} bytes allocated");
    }
}
