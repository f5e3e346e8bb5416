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

/// A record in the middle of the log that is not what was written: its offset and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub offset: u64,
    pub detail: String,
}

/// Why a log could not be read to its end.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(std::io::Error),
    Corrupt(Corrupt),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// A log's records, read one at a time: at most one payload ([`RECORD_MAX_BYTES`]) is held,
/// so a log is never read whole, whatever its size.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    /// Offset of the next record.
    offset: u64,
    records: usize,
    payload: Vec<u8>,
    done: bool,
    /// Once the end is reached: the torn last record's offset and what was wrong with it.
    pub torn: Option<(u64, String)>,
}

impl<R: std::io::Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            offset: 0,
            records: 0,
            payload: Vec::new(),
            done: false,
            torn: None,
        }
    }

    /// The next record and its offset; None at the end of the log (a torn tail is then in
    /// [`Reader::torn`]).
    pub fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let offset = self.offset;
        let corrupt = |detail: String| ReadError::Corrupt(Corrupt { offset, detail });
        let mut header = [0u8; HEADER_BYTES];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        if got < HEADER_BYTES {
            return self.torn(offset, format!("{got} bytes of a record header"));
        }
        let (Some(len), Some(crc)) = (le_u32(&header, 0), le_u32(&header, 4)) else {
            return self.torn(offset, format!("{got} bytes of a record header"));
        };
        let len = len as usize;
        if len == 0 || len > RECORD_MAX_BYTES {
            if header.iter().all(|b| *b == 0) && self.rest_is_zeros()? {
                return self.torn(offset, "zeros to the end of the file".into());
            }
            return Err(corrupt(format!(
                "record length {len} is outside 1..={RECORD_MAX_BYTES}"
            )));
        }
        self.payload.resize(len, 0);
        let got = read_full(&mut self.inner, &mut self.payload)?;
        if got < len {
            return self.torn(
                offset,
                format!("a record of {len} bytes cut at {got} bytes"),
            );
        }
        if crc32fast::hash(&self.payload) != crc {
            if self.rest_is_zeros()? {
                return self.torn(offset, "the last record's checksum does not match".into());
            }
            return Err(corrupt("checksum does not match".into()));
        }
        if self.records >= RECORDS_MAX {
            return Err(corrupt(format!("more than {RECORDS_MAX} records")));
        }
        self.records += 1;
        self.offset = offset.saturating_add((HEADER_BYTES + len) as u64);
        Ok(Some((offset, self.payload.as_slice())))
    }

    fn torn(&mut self, offset: u64, why: String) -> Result<Option<(u64, &[u8])>, ReadError> {
        self.done = true;
        self.torn = Some((offset, why));
        Ok(None)
    }

    /// Whether everything left to read is zeros (a file system that extended the file before
    /// its data reached the disk). Reads in chunks.
    fn rest_is_zeros(&mut self) -> Result<bool, ReadError> {
        let mut chunk = [0u8; 8 * 1024];
        loop {
            let got = read_full(&mut self.inner, &mut chunk)?;
            let read = chunk.get(..got).unwrap_or_default();
            if !read.iter().all(|b| *b == 0) {
                return Ok(false);
            }
            if got < chunk.len() {
                return Ok(true);
            }
        }
    }
}

/// Fill `buf` from `r` as far as it goes; the bytes read (fewer only at the end).
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let four: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(four))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of a log, each with its offset, and the torn tail dropped if there was one.
    #[derive(Debug, Default)]
    struct Scanned {
        records: Vec<(u64, Vec<u8>)>,
        torn: Option<(u64, String)>,
    }

    fn scan(bytes: &[u8]) -> Result<Scanned, Corrupt> {
        let mut reader = Reader::new(bytes);
        let mut records = Vec::new();
        loop {
            match reader.next_record() {
                Ok(Some((offset, payload))) => records.push((offset, payload.to_vec())),
                Ok(None) => break,
                Err(ReadError::Corrupt(c)) => return Err(c),
                Err(ReadError::Io(e)) => panic!("reading a slice: {e}"),
            }
        }
        Ok(Scanned {
            records,
            torn: reader.torn,
        })
    }

    fn log(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            assert!(push(p, &mut out));
        }
        out
    }

    fn payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
        scan(bytes)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.1)
            .collect()
    }

    #[test]
    fn records_come_back_with_their_offsets() {
        let bytes = log(&[b"one", b"second"]);
        let scanned = scan(&bytes).unwrap();
        assert_eq!(
            scanned.records,
            [(0, b"one".to_vec()), (11, b"second".to_vec())]
        );
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
