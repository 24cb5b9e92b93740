use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vsync_orchestrate_api::{
    async_trait, Error, Passphrase, Preflight, Result, RunId, SecretStore, Staged, Target,
};

/// The passphrase as a file on this host (what `VSYNC_PASSPHRASE_FILE` names).
///
/// Stage writes `<path>.new`; activate copies the old value to `<path>.prev` and
/// renames `.new` over `<path>`, so a booting app reads the old or the new file,
/// never a torn one. The staged file's fingerprint (inode and a randomised mtime,
/// neither of which a rename changes), recorded in the journal, tells
/// "already activated" apart from "staged file replaced since".
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    mode: u32,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    let msg = format!("{what} {}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(msg),
        std::io::ErrorKind::PermissionDenied => Error::permission(msg),
        _ => Error::failed(msg),
    }
}

fn read_value(path: &Path) -> Result<Passphrase> {
    let text = fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
    Ok(Passphrase::from_file_contents(text))
}

/// Same-directory temp file with `mode`, fsync, rename.
fn write_value(path: &Path, value: &[u8], mode: u32) -> Result<String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(|e| Error::failed(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("passphrase"),
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(value)?;
        f.sync_all()?;
        // A random sub-second mtime makes the fingerprint unique even when the file
        // system reuses the inode of a file someone deleted and rewrote.
        let mut ns = [0u8; 4];
        getrandom::fill(&mut ns).map_err(std::io::Error::other)?;
        let jitter =
            std::time::Duration::from_nanos(u64::from(u32::from_le_bytes(ns) % 1_000_000_000));
        f.set_modified(std::time::SystemTime::now() - jitter)?;
        let ino = fingerprint_of(&f.metadata()?);
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(ino)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| io("writing", path, e))
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>, mode: u32) -> FileStore {
        FileStore {
            path: path.into(),
            mode,
        }
    }

    fn staged_path(&self) -> PathBuf {
        suffixed(&self.path, ".new")
    }

    fn inode(path: &Path) -> Option<String> {
        fs::metadata(path).ok().map(|m| fingerprint_of(&m))
    }

    /// The current file becomes `<path>.prev` by a hard link (metadata only, no
    /// copy of the value, nothing to fsync but the directory), so activation stays
    /// one rename; where links are refused, a copy.
    fn keep_previous(&self) -> Result<()> {
        let prev = suffixed(&self.path, ".prev");
        let tmp = suffixed(&self.path, ".prev.tmp");
        let _ = fs::remove_file(&tmp);
        match fs::hard_link(&self.path, &tmp) {
            Ok(()) => fs::rename(&tmp, &prev).map_err(|e| io("keeping", &prev, e)),
            Err(_) => {
                let old = fs::read(&self.path).map_err(|e| io("reading", &self.path, e))?;
                write_value(&prev, &zeroize::Zeroizing::new(old), self.mode).map(|_| ())
            }
        }
    }

    /// A kill inside `keep_previous` leaves `<path>.prev.tmp`, a copy of the old
    /// passphrase under a name nothing else cleans: stage, tidy and discard do.
    fn remove_leftovers(&self) {
        let _ = fs::remove_file(suffixed(&self.path, ".prev.tmp"));
    }

    fn staged_inode(staged: &Staged) -> Option<String> {
        staged
            .extra
            .get("fingerprint")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }
}

fn fingerprint_of(m: &fs::Metadata) -> String {
    format!("{}:{}:{}", m.ino(), m.mtime(), m.mtime_nsec())
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> Target {
        Target::new("file", self.path.display().to_string())
    }

    async fn preflight(&self) -> Result<Preflight> {
        let meta = fs::metadata(&self.path).map_err(|e| io("checking", &self.path, e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let probe = dir.join(format!(".vsync-orchestrate-probe-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|e| io("cannot create files in", dir, e))?;
        let _ = fs::remove_file(&probe);
        let mode = meta.permissions().mode() & 0o777;
        let mut warnings = Vec::new();
        if mode & 0o077 != 0 && mode & 0o007 != 0 {
            warnings.push(format!(
                "{} is readable by others (mode {mode:04o})",
                self.path.display()
            ));
        }
        Ok(Preflight {
            detail: format!("mode {mode:04o}"),
            warnings,
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        read_value(&self.path).map(Some)
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        self.remove_leftovers();
        let staged_path = self.staged_path();
        let same = read_value(&staged_path)
            .map(|p| p.same_as(new))
            .unwrap_or(false);
        let inode = match (same, Self::inode(&staged_path)) {
            (true, Some(ino)) => ino,
            _ => write_value(&staged_path, new.expose().as_bytes(), self.mode)?,
        };
        Ok(Staged {
            target: self.describe(),
            run: run.clone(),
            version: staged_path.display().to_string(),
            previous: None,
            extra: serde_json::json!({ "fingerprint": inode }),
        })
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        let p = self.staged_path();
        match (Self::inode(&p), Self::staged_inode(staged)) {
            (Some(a), Some(b)) if a == b => read_value(&p),
            (Some(_), Some(_)) => Err(Error::conflict(format!(
                "{} was replaced after staging",
                p.display()
            ))),
            (None, Some(b)) if Self::inode(&self.path).as_ref() == Some(&b) => {
                read_value(&self.path)
            }
            _ => Err(Error::not_found(format!(
                "nothing staged at {}",
                p.display()
            ))),
        }
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        let p = self.staged_path();
        let want = Self::staged_inode(staged);
        match Self::inode(&p) {
            Some(ino) if want.is_none() || want.as_ref() == Some(&ino) => {
                if self.path.exists() {
                    self.keep_previous()?;
                }
                fs::rename(&p, &self.path).map_err(|e| io("activating", &p, e))?;
                if let Some(d) = self.path.parent().and_then(|d| fs::File::open(d).ok()) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
            Some(_) => Err(Error::conflict(format!(
                "{} was replaced after staging",
                p.display()
            ))),
            None if want.is_some() && Self::inode(&self.path) == want => Ok(()),
            None => Err(Error::not_found(format!(
                "{} is gone and {} is not the staged file",
                p.display(),
                self.path.display()
            ))),
        }
    }

    /// A `<path>.new` no journal knows (a crash mid-stage). The engine calls this
    /// only after proving the vault does not need it.
    async fn clean_stale(&self) -> Result<Option<String>> {
        self.remove_leftovers();
        let p = self.staged_path();
        match fs::remove_file(&p) {
            Ok(()) => Ok(Some(format!("removed the abandoned {}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("removing", &p, e)),
        }
    }

    async fn tidy(&self, _staged: &Staged) -> Result<()> {
        self.remove_leftovers();
        Ok(())
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        self.remove_leftovers();
        let p = self.staged_path();
        match (Self::inode(&p), Self::staged_inode(staged)) {
            (Some(a), Some(b)) if a != b => Ok(()), // someone else's stage: not ours to remove
            (Some(_), _) => fs::remove_file(&p).map_err(|e| io("removing", &p, e)),
            (None, _) => Ok(()),
        }
    }

    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        let p = self.staged_path();
        Some(format!(
            "cp -p {0} {0}.prev && mv -f {1} {0}",
            shell_quote(&self.path.display().to_string()),
            shell_quote(&p.display().to_string())
        ))
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
