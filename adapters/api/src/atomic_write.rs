//! The one atomic file write of the workspace: a temp file in the target's
//! directory, created with its final mode (never wider and narrowed later), the
//! bytes, `fsync`, `rename(2)` over the target, `fsync` of the directory. A reader
//! sees the old file or the new one, never half of one, and once the call returns
//! the new file survives a crash.
//!
//! Built on `tempfile` (the temp file is removed if anything fails before the
//! rename). [`atomic_write`] is the whole operation; [`AtomicFile`] is the same in
//! two steps for a caller that sets more on the file (owner, mtime) before it
//! appears under its name.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The name prefix of [`atomic_write`]'s temp files: readers that list a directory
/// skip (and may clean up) names that start with it.
pub const TEMP_PREFIX: &str = ".vsync-tmp-";

/// Writes `bytes` to `path` atomically and durably. The temp file is created with
/// `mode` (as `open(2)` does: less the umask), in `path`'s directory, which must
/// exist.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = AtomicFile::new(path, TEMP_PREFIX, mode)?;
    f.file().write_all(bytes)?;
    f.commit()
}

/// A temp file that becomes `path` on [`AtomicFile::commit`], or disappears when
/// dropped uncommitted.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates `<dir of path>/<prefix><random>` with `mode` (less the umask).
    pub fn new(path: &Path, prefix: &str, mode: u32) -> std::io::Result<AtomicFile> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(12)
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir_of(path))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_owned(),
        })
    }

    /// The open temp file, for the bytes and whatever else is set before the rename.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// `fsync` the file, rename it over the target, `fsync` the directory.
    pub fn commit(self) -> std::io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        File::open(dir_of(&self.path))?.sync_all()
    }
}

/// The directory a path's file lives in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_file_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        atomic_write(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn a_file_dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = AtomicFile::new(&p, ".x-", 0o600).unwrap();
        f.file().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = atomic_write(&dir.path().join("no/f"), b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
