//! Framing of `instances.log`: each record is its payload's length (u32, little-endian), the
//! payload's CRC-32 (u32, little-endian), then the payload (JSON). Appends are fsynced before
//! anything they carry is acknowledged, so only the last append can be incomplete after a
//! crash: a record that runs past the end of the file, or whose checksum fails with nothing but
//! zeros after it (a file system that extended the file before its data reached the disk), is
//! a torn tail and is dropped. Any other bad record is corruption, refused with its offset.

/// Length and checksum before each payload.
pub const HEADER_BYTES: usize = 8;

/// A payload at most. An instance record is at most `ENTRY_MAX_BYTES` (1,300) of text, which
/// JSON escaping can grow six-fold (`\u0000`), plus its field names: 64 KiB leaves room. The
/// writer never appends a larger one (it writes a fresh `instances.json` instead).
pub const RECORD_MAX_BYTES: usize = 64 * 1024;

/// Records in one log at most, header included. The writer compacts at half of it.
pub const RECORDS_MAX: usize = 1 << 22;

/// Append one framed payload to `out`; false (nothing appended) if it is empty or larger than
/// [`RECORD_MAX_BYTES`].
pub fn push(payload: &[u8], out: &mut Vec<u8>) -> bool {
    let len = match u32::try_from(payload.len()) {
        Ok(len) if len > 0 && payload.len() <= RECORD_MAX_BYTES => len,
        _ => return false,
    };
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    true
}

/// The records of a log, each with its offset, and the torn tail dropped if there was one.
#[derive(Debug, Default)]
pub struct Scanned<'a> {
    pub records: Vec<(u64, &'a [u8])>,
    /// Offset of the torn last record and what was wrong with it.
    pub torn: Option<(u64, String)>,
}

/// A record in the middle of the log that is not what was written: its offset and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub offset: u64,
    pub detail: String,
}

pub fn scan(bytes: &[u8]) -> Result<Scanned<'_>, Corrupt> {
    let mut scanned = Scanned::default();
    let mut at = 0;
    while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
        let offset = at as u64;
        let zeros = |from: usize| rest.get(from..).unwrap_or_default().iter().all(|b| *b == 0);
        let corrupt = |detail: String| Corrupt { offset, detail };
        let (Some(len), Some(crc)) = (le_u32(rest, 0), le_u32(rest, 4)) else {
            scanned.torn = Some((offset, format!("{} bytes of a record header", rest.len())));
            break;
        };
        let len = len as usize;
        if len == 0 || len > RECORD_MAX_BYTES {
            if zeros(0) {
                scanned.torn = Some((offset, "zeros to the end of the file".into()));
                break;
            }
            return Err(corrupt(format!(
                "record length {len} is outside 1..={RECORD_MAX_BYTES}"
            )));
        }
        let end = HEADER_BYTES + len;
        let Some(payload) = rest.get(HEADER_BYTES..end) else {
            scanned.torn = Some((
                offset,
                format!(
                    "a record of {len} bytes cut at {} bytes",
                    rest.len() - HEADER_BYTES
                ),
            ));
            break;
        };
        if crc32fast::hash(payload) != crc {
            if zeros(end) {
                scanned.torn = Some((offset, "the last record's checksum does not match".into()));
                break;
            }
            return Err(corrupt("checksum does not match".into()));
        }
        if scanned.records.len() >= RECORDS_MAX {
            return Err(corrupt(format!("more than {RECORDS_MAX} records")));
        }
        scanned.records.push((offset, payload));
        at += end;
    }
    Ok(scanned)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let four: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(four))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            assert!(push(p, &mut out));
        }
        out
    }

    fn payloads(bytes: &[u8]) -> Vec<&[u8]> {
        scan(bytes).unwrap().records.iter().map(|r| r.1).collect()
    }

    #[test]
    fn records_come_back_with_their_offsets() {
        let bytes = log(&[b"one", b"second"]);
        let scanned = scan(&bytes).unwrap();
        assert_eq!(scanned.records, [(0, &b"one"[..]), (11, &b"second"[..])]);
        assert!(scanned.torn.is_none());
    }

    #[test]
    fn empty_and_oversized_payloads_are_never_framed() {
        let mut out = Vec::new();
        assert!(!push(b"", &mut out));
        assert!(!push(&vec![b'x'; RECORD_MAX_BYTES + 1], &mut out));
        assert!(out.is_empty());
        assert!(push(&vec![b'x'; RECORD_MAX_BYTES], &mut out));
    }

    /// A crash mid-append leaves a prefix of the append: cut anywhere in the last record, the
    /// records before it come back and the cut one is reported torn.
    #[test]
    fn a_log_cut_at_any_byte_of_its_last_record_keeps_the_ones_before() {
        let bytes = log(&[b"first", b"second-record"]);
        let second = 8 + 5;
        for cut in second..bytes.len() {
            let scanned = scan(&bytes[..cut]).unwrap();
            assert_eq!(payloads(&bytes[..cut]), [b"first"], "cut at {cut}");
            assert_eq!(scanned.torn.map(|t| t.0), (cut > second).then_some(13));
        }
    }

    /// Some file systems extend the file before its data lands: the tail reads as zeros.
    #[test]
    fn a_zero_filled_or_unwritten_last_record_is_a_torn_tail() {
        let good = log(&[b"first"]);
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(payloads(&zeros), [b"first"]);
        let mut half = log(&[b"first", b"second"]);
        let at = half.len() - 3;
        half[at..].fill(0);
        let scanned = scan(&half).unwrap();
        assert_eq!(scanned.records.len(), 1);
        assert!(scanned.torn.unwrap().1.contains("checksum"));
    }

    #[test]
    fn a_bad_record_followed_by_others_is_corruption_at_its_offset() {
        let mut bytes = log(&[b"first", b"second", b"third"]);
        bytes[13 + 8] ^= 1; // a bit of "second"
        assert_eq!(
            scan(&bytes).unwrap_err(),
            Corrupt {
                offset: 13,
                detail: "checksum does not match".into()
            }
        );
        let mut bytes = log(&[b"first", b"second"]);
        bytes[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = scan(&bytes).unwrap_err();
        assert_eq!(err.offset, 13);
        assert!(err.detail.contains("record length 4294967295"), "{err:?}");
    }
}
