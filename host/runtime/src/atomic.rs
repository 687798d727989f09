//! Writing a file whole or not at all.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `dest` through a temporary file of this write's own in
/// the same folder, flushed to disk, then renames it over `dest` and flushes
/// the folder: a reader sees the old content or the new, never half of it,
/// a crash or a power cut leaves one or the other (never an empty file),
/// and two writers never share a temporary name.
pub fn write(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut partial = tempfile::NamedTempFile::new_in(dir)?;
    partial.write_all(bytes)?;
    partial.as_file().sync_all()?;
    partial.persist(dest).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename, a new file) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        super::write(&file, b"old").unwrap();
        super::write(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
