//! The one implementation of "stage `<path>.new`, rename it over `<path>`, keep
//! `<path>.prev`" on this host. The `file` store is built on it, and so is the
//! `vps_file` store's local transport: the two used to be separate copies (Rust
//! here, shell scripts there) that drifted in what they called "already staged".
//!
//! A staged file is identified by its fingerprint, `inode:mtime_s:mtime_ns`, which
//! `rename(2)` keeps: it tells the file this run wrote from one written since,
//! without recording anything derived from the value. The mtime gets a random
//! sub-second part, so a file system that reuses a freed inode still gives a new
//! fingerprint.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vsync_orchestrate_api::{shell_quote, AtomicFile, Error, Passphrase, Result};
use zeroize::Zeroizing;

/// A passphrase file and its `.new` / `.prev` siblings.
#[derive(Debug, Clone)]
pub struct StagedFile {
    path: PathBuf,
    mode: u32,
    owner: Option<u32>,
    group: Option<u32>,
}

/// What `stage` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staging {
    /// A new `.new` was written.
    Written { fingerprint: String },
    /// `.new` already held this value with this mode and owner (a retried stage).
    Unchanged { fingerprint: String },
}

impl Staging {
    pub fn fingerprint(&self) -> &str {
        match self {
            Staging::Written { fingerprint } | Staging::Unchanged { fingerprint } => fingerprint,
        }
    }
}

/// Where the staged value was found by [`StagedFile::read_staged_raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// In `<path>.new`: not activated yet.
    New,
    /// `.new` is gone; this is `<path>` (activated, if the fingerprint matches).
    Current,
}

/// What `discard` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    Removed,
    /// Nothing staged: a repeated discard.
    Absent,
    /// `.new` is a different file from the one recorded (staged again since); left
    /// in place. Whether that is an error is the caller's policy.
    NotOurs,
}

/// What `activate` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activated {
    Now,
    /// `.new` is gone and `<path>` is the recorded file: a repeated activate.
    Already,
}

/// An I/O error as an error of the right kind, naming the path, never the value.
pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    let msg = format!("{what} {}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(msg),
        std::io::ErrorKind::PermissionDenied => Error::permission(msg),
        _ => Error::failed(msg),
    }
}

/// What a passphrase file can hold and give back unchanged: readers strip trailing
/// CR, LF, TAB and space (the vsync runtimes' rule for `VSYNC_PASSPHRASE_FILE`).
pub fn check_value(p: &Passphrase) -> Result<()> {
    let s = p.expose();
    if s.is_empty() {
        return Err(Error::invalid_config(
            "refusing to stage an empty passphrase",
        ));
    }
    if s.ends_with(['\r', '\n', '\t', ' ']) || s.contains('\0') {
        return Err(Error::invalid_config(
            "the passphrase ends with whitespace or contains NUL, which readers of the file would not get back",
        ));
    }
    Ok(())
}

fn fingerprint_of(m: &fs::Metadata) -> String {
    format!("{}:{}:{}", m.ino(), m.mtime(), m.mtime_nsec())
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

impl StagedFile {
    pub fn new(path: impl Into<PathBuf>, mode: u32) -> Self {
        StagedFile {
            path: path.into(),
            mode,
            owner: None,
            group: None,
        }
    }

    /// The staged file is `chown`ed to these ids before it is renamed into place.
    pub fn with_owner(mut self, owner: Option<u32>, group: Option<u32>) -> Self {
        self.owner = owner;
        self.group = group;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn staged_path(&self) -> PathBuf {
        suffixed(&self.path, ".new")
    }

    pub fn previous_path(&self) -> PathBuf {
        suffixed(&self.path, ".prev")
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }

    fn fingerprint(path: &Path) -> Option<String> {
        fs::metadata(path).ok().map(|m| fingerprint_of(&m))
    }

    /// The current value, trailing whitespace stripped; `NotFound` when absent.
    pub fn read_current(&self) -> Result<Passphrase> {
        read_value(&self.path)
    }

    /// Whether the file's directory exists and this process can create files in it
    /// (by creating and removing a probe file: permission bits do not tell root's
    /// story, nor a read-only mount's).
    pub fn check_writable_dir(&self) -> Result<()> {
        let dir = self.dir();
        if !dir.is_dir() {
            return Err(Error::not_found(format!(
                "directory {} does not exist",
                dir.display()
            )));
        }
        let probe = dir.join(format!(".vsync-orchestrate-probe-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|e| io_error("cannot create files in", dir, e))?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// Writes `<path>.new` (same-directory temp file, mode, owner, fsync, rename),
    /// unless it already holds this value with this mode and owner.
    pub fn stage(&self, value: &Passphrase) -> Result<Staging> {
        check_value(value)?;
        self.remove_leftovers();
        let staged = self.staged_path();
        if let Ok(meta) = fs::symlink_metadata(&staged) {
            let same_attrs = meta.file_type().is_file()
                && meta.permissions().mode() & 0o7777 == self.mode
                && self.owner.is_none_or(|u| meta.uid() == u)
                && self.group.is_none_or(|g| meta.gid() == g);
            if same_attrs && read_value(&staged).is_ok_and(|p| p.same_as(value)) {
                return Ok(Staging::Unchanged {
                    fingerprint: fingerprint_of(&meta),
                });
            }
        }
        let fingerprint = self.write(&staged, value.expose().as_bytes(), self.mode)?;
        Ok(Staging::Written { fingerprint })
    }

    /// Same-directory temp file (`.<name>.tmp-…`) created with `mode`, set to exactly
    /// `mode` (whatever the umask took) and the owner, the value, the mtime jitter;
    /// then fsync, rename over `dest`, directory fsync ([`AtomicFile`]).
    fn write(&self, dest: &Path, value: &[u8], mode: u32) -> Result<String> {
        let dir = self.dir();
        if !dir.is_dir() {
            return Err(Error::not_found(format!(
                "directory {} does not exist",
                dir.display()
            )));
        }
        let prefix = format!(
            ".{}.tmp-",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("passphrase")
        );
        let res = (|| {
            let mut tmp = AtomicFile::new(dest, &prefix, mode)?;
            let f = tmp.file();
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            if self.owner.is_some() || self.group.is_some() {
                std::os::unix::fs::fchown(&*f, self.owner, self.group)?;
            }
            f.write_all(value)?;
            let mut ns = [0u8; 4];
            getrandom::fill(&mut ns).map_err(std::io::Error::other)?;
            let jitter =
                std::time::Duration::from_nanos(u64::from(u32::from_le_bytes(ns) % 1_000_000_000));
            f.set_modified(std::time::SystemTime::now() - jitter)?;
            let fp = fingerprint_of(&f.metadata()?);
            tmp.commit()?;
            Ok(fp)
        })();
        res.map_err(|e| io_error("writing", dest, e))
    }

    /// What is staged, wherever it is now: `.new`, or `<path>` once `.new` is gone.
    /// Returns where it was found, that file's fingerprint and its value.
    pub fn read_staged_raw(&self) -> Result<(Found, String, Passphrase)> {
        let staged = self.staged_path();
        for (found, p) in [(Found::New, &staged), (Found::Current, &self.path)] {
            if let Some(fp) = Self::fingerprint(p) {
                return Ok((found, fp, read_value(p)?));
            }
        }
        Err(Error::not_found(format!(
            "neither {} nor {} exists",
            staged.display(),
            self.path.display()
        )))
    }

    /// The value staged as `recorded` (a fingerprint from [`StagedFile::stage`]):
    /// still in `.new`, or already activated. `None` accepts whatever `.new` holds
    /// (a record made without fingerprints).
    pub fn read_staged(&self, recorded: Option<&str>) -> Result<Passphrase> {
        let (found, fp, value) = self.read_staged_raw()?;
        match (found, recorded) {
            (Found::New, None) => Ok(value),
            (Found::New, Some(r)) if r == fp => Ok(value),
            (Found::New, Some(_)) => Err(Error::conflict(format!(
                "{} was replaced after staging",
                self.staged_path().display()
            ))),
            (Found::Current, Some(r)) if r == fp => Ok(value),
            (Found::Current, _) => Err(Error::not_found(format!(
                "nothing staged: {} does not exist",
                self.staged_path().display()
            ))),
        }
    }

    /// Renames `.new` over `<path>` after keeping the current file as `.prev`.
    /// Refuses a `.new` that is not the recorded file; a repeat is [`Activated::Already`].
    pub fn activate(&self, recorded: Option<&str>) -> Result<Activated> {
        let staged = self.staged_path();
        match Self::fingerprint(&staged) {
            Some(fp) if recorded.is_none_or(|r| r == fp) => {
                if self.path.exists() {
                    self.keep_previous()?;
                }
                fs::rename(&staged, &self.path).map_err(|e| io_error("activating", &staged, e))?;
                sync_dir(self.dir());
                Ok(Activated::Now)
            }
            Some(_) => Err(Error::conflict(format!(
                "{} is not the file this run staged (replaced since)",
                staged.display()
            ))),
            None if recorded.is_some() && Self::fingerprint(&self.path).as_deref() == recorded => {
                Ok(Activated::Already)
            }
            None => Err(Error::not_found(format!(
                "nothing staged: {} does not exist and {} is not the staged file",
                staged.display(),
                self.path.display()
            ))),
        }
    }

    /// The current file becomes `.prev` by a hard link (metadata only: no copy of
    /// the value, nothing to fsync but the directory), so activation stays one
    /// rename; where links are refused, a copy.
    fn keep_previous(&self) -> Result<()> {
        let prev = self.previous_path();
        let tmp = suffixed(&self.path, ".prev.tmp");
        let _ = fs::remove_file(&tmp);
        match fs::hard_link(&self.path, &tmp) {
            Ok(()) => fs::rename(&tmp, &prev).map_err(|e| io_error("keeping", &prev, e)),
            Err(_) => {
                let meta =
                    fs::metadata(&self.path).map_err(|e| io_error("reading", &self.path, e))?;
                let old = Zeroizing::new(
                    fs::read(&self.path).map_err(|e| io_error("reading", &self.path, e))?,
                );
                self.write(&prev, &old, meta.permissions().mode() & 0o7777)
                    .map(|_| ())
            }
        }
    }

    /// Removes `.new` if it is the recorded file (or, with `None`, whatever it is).
    pub fn discard(&self, recorded: Option<&str>) -> Result<Discarded> {
        self.remove_leftovers();
        let staged = self.staged_path();
        match Self::fingerprint(&staged) {
            None => Ok(Discarded::Absent),
            Some(fp) if recorded.is_some_and(|r| r != fp) => Ok(Discarded::NotOurs),
            Some(_) => {
                fs::remove_file(&staged).map_err(|e| io_error("removing", &staged, e))?;
                sync_dir(self.dir());
                Ok(Discarded::Removed)
            }
        }
    }

    /// A kill inside `keep_previous` leaves `<path>.prev.tmp`, a copy of the old
    /// passphrase under a name nothing else cleans: stage, tidy and discard do.
    pub fn remove_leftovers(&self) {
        let _ = fs::remove_file(suffixed(&self.path, ".prev.tmp"));
    }

    /// The command an operator runs to activate by hand.
    pub fn activate_hint(&self) -> String {
        format!(
            "cp -p {0} {0}.prev && mv -f {1} {0}",
            shell_quote(&self.path.display().to_string()),
            shell_quote(&self.staged_path().display().to_string())
        )
    }
}

fn read_value(path: &Path) -> Result<Passphrase> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| io_error("reading", path, e))?);
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Passphrase::from_file_contents(s.to_owned())),
        Err(_) => Err(Error::failed(format!("{} is not UTF-8", path.display()))),
    }
}

/// A user name or numeric id as a uid, through the system's user database (NSS).
pub fn resolve_user(name: &str) -> Result<u32> {
    resolve(name, "user", |c, buf| {
        // SAFETY: every pointer is valid for the call; `out` is set only on success.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        (rc == 0 && !out.is_null()).then_some(pw.pw_uid)
    })
}

/// A group name or numeric id as a gid.
pub fn resolve_group(name: &str) -> Result<u32> {
    resolve(name, "group", |c, buf| {
        // SAFETY: as in `resolve_user`.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        (rc == 0 && !out.is_null()).then_some(gr.gr_gid)
    })
}

fn resolve(
    name: &str,
    what: &str,
    lookup: impl Fn(&std::ffi::CStr, &mut [libc::c_char]) -> Option<u32>,
) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::invalid_config(format!("invalid {what} name {name:?}")))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    lookup(&c, &mut buf)
        .ok_or_else(|| Error::invalid_config(format!("no {what} {name:?} on this host")))
}
