//! Writing a file whole or not at all.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `dest` through a temporary file of this write's own in
/// the same folder, then renames it over `dest`: a reader sees the old
/// content or the new, never half of it, and two writers never share a
/// temporary name.
pub(crate) fn write(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut partial = tempfile::NamedTempFile::new_in(dir)?;
    partial.write_all(bytes)?;
    partial.persist(dest).map_err(|e| e.error)?;
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
