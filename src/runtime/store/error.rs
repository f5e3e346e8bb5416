//! Why the data directory could not be used. Each names the file and what is wrong with it,
//! so an operator can fix or move it: a node never starts from empty over a state it could not
//! read.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum StoreError {
    /// The directory does not exist and could not be created, or is not a directory.
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the lock: two nodes must never share one state.
    Locked { lock: PathBuf },
    /// The lock file could not be opened or locked.
    Lock {
        lock: PathBuf,
        source: std::io::Error,
    },
    /// A state file exists but cannot be read.
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A state file was read but its content is wrong: empty, truncated, not JSON, of an
    /// unknown format, or with a value out of range.
    Corrupt { file: PathBuf, detail: String },
    /// A state file is larger than any this hera writes ([`super::format::file_max_bytes`]):
    /// refused unread, since reading it would allocate all of it.
    TooLarge { file: PathBuf, bytes: u64, max: u64 },
    /// A state file could not be written (or the directory synced).
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Dir { dir, source } => {
                write!(f, "data_dir {}: cannot use it: {source}", dir.display())
            }
            StoreError::Locked { lock } => write!(
                f,
                "data_dir is in use by another hera process ({} is locked): two nodes must not \
                 share one data_dir",
                lock.display()
            ),
            StoreError::Lock { lock, source } => {
                write!(f, "{}: cannot lock: {source}", lock.display())
            }
            StoreError::Read { file, source } => {
                write!(f, "{}: cannot read: {source}", file.display())
            }
            StoreError::Corrupt { file, detail } => write!(
                f,
                "{}: {detail}; refusing to start without it (fix the file, or move it away \
                 to start without what it held)",
                file.display()
            ),
            StoreError::TooLarge { file, bytes, max } => write!(
                f,
                "{}: {bytes} bytes, over the {max} this file can hold; refusing to read it (a \
                 corrupt or foreign file: move it away to start without what it held)",
                file.display()
            ),
            StoreError::Write { file, source } => {
                write!(f, "{}: cannot write: {source}", file.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}
