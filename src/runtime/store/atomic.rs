//! Crash-safe replacement of whole files: write a temporary file beside the target, fsync it,
//! rename it over the target, then fsync the directory so the rename itself is durable. A kill
//! at any instant leaves each file either wholly old or wholly new, never torn.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::StoreError;

/// Suffix of the temporary files; leftovers of a crash are ignored and overwritten.
pub const TMP_SUFFIX: &str = ".tmp";

/// Replace each `(name, bytes)` in `dir`, with one directory fsync for the batch.
pub fn replace_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
    for (name, bytes) in files {
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
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, &target).map_err(fail)?;
    }
    if !files.is_empty() {
        sync_dir(dir)?;
    }
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
