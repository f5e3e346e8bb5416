//! Crash-safe replacement of whole files: write a temporary file beside the target, fsync it,
//! rename it over the target, then fsync the directory so the rename itself is durable. A kill
//! at any instant leaves each file either wholly old or wholly new, never torn.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::StoreError;

/// Suffix of the temporary files; leftovers of a crash are ignored and overwritten.
pub const TMP_SUFFIX: &str = ".tmp";

/// Replace each `(name, bytes)` in `dir`, with one directory fsync for the batch.
pub fn replace_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
    for (name, bytes) in files {
        write_and_rename(dir, name, |out| out.write_all(bytes))?;
    }
    if !files.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Replace `name` in `dir` with what `write` writes into it, as [`replace_files`] does, but
/// without the content ever whole in memory: `write` streams it through a buffer of
/// [`STREAM_BUFFER_BYTES`]. Returns what `write` returns.
pub fn replace_file_streamed<T>(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> std::io::Result<T>,
) -> Result<T, StoreError> {
    let mut written = None;
    write_and_rename(dir, name, |file| {
        let mut out = BufWriter::with_capacity(STREAM_BUFFER_BYTES, file);
        written = Some(write(&mut out)?);
        out.flush()
    })?;
    sync_dir(dir)?;
    written.ok_or_else(|| StoreError::Write {
        file: dir.join(name),
        source: std::io::Error::other("nothing was written"),
    })
}

/// The buffer a streamed file is written through: large enough that a write system call
/// carries many records (an instance record is ~500 B), small beside the file.
pub const STREAM_BUFFER_BYTES: usize = 64 << 10;

/// Write `name`'s temporary file with `write`, fsync it, and rename it over `name` (the
/// directory is synced by the caller).
fn write_and_rename(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let fail = |source| StoreError::Write {
        file: target.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(fail)?;
    write(&mut file).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, &target).map_err(fail)?;
    Ok(())
}

/// Make renames and creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Write {
            file: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        replace_files(dir.path(), &[("a.json", b"one".to_vec())]).unwrap();
        replace_files(dir.path(), &[("a.json", b"two".to_vec())]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"two");
        assert!(!dir.path().join("a.json.tmp").exists());
    }
}
