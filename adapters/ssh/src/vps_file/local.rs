//! The `vps_file` store on this host: the same protocol as over SSH (stage
//! `<path>.new`, rename it over `<path>`, keep `<path>.prev`), done by the one
//! implementation the `file` store uses too ([`StagedFile`]) instead of running the
//! shell scripts here. One implementation means one meaning of "already staged"
//! and "replaced since" on this host.

use serde_json::json;
use std::path::Path;
use vsync_orchestrate_api::{Error, Passphrase, Preflight, Result, RunId, Staged, Target};
use vsync_orchestrate_local::staged_file::{self, Discarded, StagedFile, Staging};

/// How the local transport is named in messages and in [`Staged::extra`].
pub(crate) const LABEL: &str = "localhost";

pub(crate) struct LocalFile {
    file: StagedFile,
}

/// Whether this process can do what `sudo` would: it writes the file itself, so
/// only as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl LocalFile {
    /// `sudo = true` cannot be honoured by a store that writes from this process
    /// (unless it already runs as root): refused rather than silently ignored, so a
    /// plan that expects root-owned files never gets files owned by someone else.
    pub(crate) fn new(
        path: &str,
        mode: u32,
        owner: Option<&str>,
        group: Option<&str>,
        sudo: bool,
    ) -> Result<Self> {
        if sudo && !is_root() {
            return Err(Error::invalid_config(format!(
                "sudo = true cannot be honoured on the local transport: {path} is written by this process, \
                 which is not root; run the tool as a user who can write {}, or as root",
                Path::new(path)
                    .parent()
                    .map_or_else(|| "its directory".to_owned(), |d| d.display().to_string())
            )));
        }
        let uid = owner.map(staged_file::resolve_user).transpose()?;
        let gid = group.map(staged_file::resolve_group).transpose()?;
        Ok(LocalFile {
            file: StagedFile::new(path, mode).with_owner(uid, gid),
        })
    }

    fn recorded(staged: &Staged) -> Option<&str> {
        staged
            .extra
            .get("hosts")?
            .get(LABEL)?
            .get("fingerprint")?
            .as_str()
    }

    fn on_host(e: Error) -> Error {
        e.context(format!("on {LABEL}"))
    }

    pub(crate) fn preflight(&self) -> Result<Preflight> {
        let path = self.file.path();
        self.file.check_writable_dir().map_err(Self::on_host)?;
        let mut warnings = Vec::new();
        let present = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => {
                self.file.read_current().map_err(Self::on_host)?;
                true
            }
            Ok(_) => {
                return Err(Error::unsupported(format!(
                    "{} on {LABEL} is not a regular file",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warnings.push(format!(
                    "{} does not exist yet on {LABEL} (activate will create it)",
                    path.display()
                ));
                false
            }
            Err(e) => return Err(Self::on_host(staged_file::io_error("checking", path, e))),
        };
        if self.file.staged_path().exists() {
            warnings.push(format!(
                "{} already exists on {LABEL} (left by an earlier run?); stage will replace it",
                self.file.staged_path().display()
            ));
        }
        Ok(Preflight {
            detail: format!(
                "{} on 1 host: present on {}",
                path.display(),
                u8::from(present)
            ),
            warnings,
            ..Default::default()
        })
    }

    pub(crate) fn read_current(&self) -> Result<Passphrase> {
        let p = self.file.read_current().map_err(Self::on_host)?;
        if p.is_empty() {
            return Err(Error::failed(format!(
                "the passphrase file on {LABEL} is empty"
            )));
        }
        Ok(p)
    }

    pub(crate) fn stage(&self, new: &Passphrase, run: &RunId, target: Target) -> Result<Staged> {
        let staging = self.file.stage(new).map_err(Self::on_host)?;
        let result = match staging {
            Staging::Written { .. } => "written",
            Staging::Unchanged { .. } => "unchanged",
        };
        Ok(Staged {
            target,
            run: run.clone(),
            version: self.file.staged_path().display().to_string(),
            previous: None,
            extra: json!({
                "path": self.file.path().display().to_string(),
                "hosts": { LABEL: { "result": result, "fingerprint": staging.fingerprint() } },
            }),
        })
    }

    pub(crate) fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        self.file
            .read_staged(Self::recorded(staged))
            .map_err(Self::on_host)
    }

    pub(crate) fn activate(&self, staged: &Staged) -> Result<()> {
        self.file
            .activate(Self::recorded(staged))
            .map(|_| ())
            .map_err(Self::on_host)
    }

    /// As over SSH: a `.new` staged again since is left in place, and that is a
    /// conflict (the other run's stage is not ours to remove).
    pub(crate) fn discard(&self, staged: &Staged) -> Result<()> {
        match self.file.discard(Self::recorded(staged)) {
            Ok(Discarded::Removed | Discarded::Absent) => Ok(()),
            Ok(Discarded::NotOurs) => Err(Error::conflict(format!(
                "{} on {LABEL} is not the file this run staged (staged again since); left in place",
                self.file.staged_path().display()
            ))),
            Err(e) => Err(Self::on_host(e)),
        }
    }

    pub(crate) fn tidy(&self) {
        self.file.remove_leftovers();
    }

    pub(crate) fn activate_hint(&self) -> String {
        self.file.activate_hint()
    }
}
