//! The `vps_file` secret store: the passphrase as a file (default mode 0600) on one or
//! more hosts, staged as `<path>.new` and switched with one rename per host.
//!
//! One protocol, two transports: [`remote`] runs fixed scripts over each host's
//! shell and renames over SFTP, [`local`] does the same in this process. This module
//! owns what they share: the configuration's checks and the dispatch, so neither
//! transport can accept a plan the other would refuse.

mod armed_sftp;
mod local;
mod remote;
mod scripts;
#[cfg(test)]
mod tests;

use crate::config::{Transport, VpsFileConfig};
use crate::shell::{self, RemoteShell};
use local::LocalFile;
use remote::Remote;
use std::sync::Arc;
use vsync_orchestrate_api::{
    Error, Passphrase, Preflight, Result, RunId, SecretStore, Staged, Target,
};
// What a passphrase file can hold and give back unchanged: one rule for the `file`
// store and both transports of this one.
use vsync_orchestrate_local::staged_file::check_value;

/// The plan's `type` tag.
pub const KIND: &str = "vps_file";

/// A passphrase file on one or more hosts (or on this host).
///
/// * `stage` writes `<path>.new` on every host: a temp file in the same directory
///   (mktemp, umask 077), the value from stdin, its SHA-256 checked before anything
///   is renamed, chmod (default 0600), chown, sync, `mv` to `.new`. Re-staging the
///   same value is a no-op.
/// * `activate` is one SFTP `posix-rename@openssh.com` per host, sent to an SFTP
///   server that preflight started and stage armed, on all hosts concurrently: no
///   process starts, locally or remotely, inside the window. The directory's fsync
///   travels in the same message; its answer is read after T1. Where SFTP is not
///   available (no subsystem, an instance that did not preflight, a channel that
///   failed) a fixed script checks the fingerprint and renames; either way hosts
///   where it failed are named in the error.
/// * The old file is kept as `<path>.prev`: stage hard-links it under a run-specific
///   name, `tidy` moves that link into place after T1.
/// * Reads strip trailing CR, LF, TAB and space, as the vsync runtimes do for `_FILE`.
///
/// The value only ever travels on stdin and stdout; [`Staged::extra`] holds each
/// host's fingerprint of the staged file (`device:inode:mtime`), never a value or a hash.
pub struct VpsFileStore {
    path: String,
    via: Via,
}

enum Via {
    /// The file is handled in this process by the staged-file core the `file`
    /// store uses, not by the scripts.
    Local(LocalFile),
    /// The scripts and the SFTP rename, on every host (also this machine's shell,
    /// in tests that need a shell without SSH).
    Remote(Remote),
}

impl VpsFileStore {
    /// Validates `cfg` and prepares (does not open) the connections.
    ///
    /// With [`Transport::Local`], `sudo = true` is an `InvalidConfig` error unless
    /// this process is root: the file is written from here, not by `sudo`.
    pub fn new(cfg: VpsFileConfig) -> Result<Self> {
        if cfg.transport == Transport::Local {
            let mode = checked_mode(&cfg)?;
            let local = LocalFile::new(
                &cfg.path,
                mode,
                cfg.owner.as_deref(),
                cfg.group.as_deref(),
                cfg.sudo,
            )?;
            return Ok(VpsFileStore {
                path: cfg.path,
                via: Via::Local(local),
            });
        }
        let shells = shell::shells(&cfg.transport, &cfg.ssh)?;
        Self::with_shells(cfg, shells)
    }

    /// The scripted transport over `hosts`, whatever `cfg.transport` says.
    pub(crate) fn with_shells(
        cfg: VpsFileConfig,
        hosts: Vec<Arc<dyn RemoteShell>>,
    ) -> Result<Self> {
        let mode = checked_mode(&cfg)?;
        Ok(VpsFileStore {
            path: cfg.path.clone(),
            via: Via::Remote(Remote::new(cfg, mode, hosts)),
        })
    }

    /// The hosts, as named in messages (`host`, `host:port` or `localhost`).
    pub fn hosts(&self) -> Vec<String> {
        match &self.via {
            Via::Local(_) => vec![local::LABEL.to_owned()],
            Via::Remote(r) => r.labels(),
        }
    }

    /// Ends the SFTP sessions, then closes the master connections, every host at
    /// once (dropping a session closes its master synchronously, one after another).
    pub async fn close(&self) {
        if let Via::Remote(r) = &self.via {
            r.close().await;
        }
    }
}

/// The file mode `cfg` asks for, once its path, mode and accounts are known to be
/// ones both transports can write.
fn checked_mode(cfg: &VpsFileConfig) -> Result<u32> {
    validate_path(&cfg.path)?;
    let mode = cfg.mode.unwrap_or(0o600);
    if mode > 0o7777 {
        return Err(Error::invalid_config(format!(
            "mode {mode:o} is not a file mode"
        )));
    }
    for (what, v) in [("owner", &cfg.owner), ("group", &cfg.group)] {
        if let Some(v) = v {
            if !valid_account(v) {
                return Err(Error::invalid_config(format!("invalid {what} {v:?}")));
            }
        }
    }
    Ok(mode)
}

/// Also the plan's check, so `plan` refuses what `run` would.
pub(crate) fn validate_path(p: &str) -> Result<()> {
    let name = p.rsplit('/').next().unwrap_or("");
    if !p.starts_with('/')
        || p.ends_with('/')
        || name.is_empty()
        || name == "."
        || name == ".."
        || p.len() > 1024
        || p.chars().any(|c| c.is_control())
    {
        return Err(Error::invalid_config(format!(
            "path {p:?} must be an absolute file path without control characters"
        )));
    }
    Ok(())
}

/// An owner or group that reaches `chown` as an argument: never an option, never
/// anything a shell or `chown` would read as more than a name.
pub(crate) fn valid_account(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('-')
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'))
}

#[async_trait::async_trait]
impl SecretStore for VpsFileStore {
    /// The file is read back over the same connection (`cat`, on stdout).
    fn capabilities(&self) -> vsync_orchestrate_api::StoreCapabilities {
        vsync_orchestrate_api::StoreCapabilities::ALL
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!("{} on {}", self.path, self.hosts().join(", ")),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        match &self.via {
            Via::Local(l) => l.preflight(),
            Via::Remote(r) => r.preflight().await,
        }
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        match &self.via {
            Via::Local(l) => l.read_current().map(Some),
            Via::Remote(r) => r.read_current().await.map(Some),
        }
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        check_value(new)?;
        match &self.via {
            Via::Local(l) => l.stage(new, run, self.describe()),
            Via::Remote(r) => r.stage(new, run, self.describe()).await,
        }
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        match &self.via {
            Via::Local(l) => l.read_staged(staged),
            Via::Remote(r) => r.read_staged(staged).await,
        }
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        match &self.via {
            Via::Local(l) => l.activate(staged),
            Via::Remote(r) => r.activate(staged).await,
        }
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        match &self.via {
            Via::Local(l) => l.discard(staged),
            Via::Remote(r) => r.discard(staged).await,
        }
    }

    /// The kept link becomes `<path>.prev`, the directory's fsync is confirmed and
    /// the SFTP sessions end. On this host: a kill while keeping `.prev` can leave
    /// a temp copy behind, removed here.
    async fn tidy(&self, staged: &Staged) -> Result<()> {
        match &self.via {
            Via::Local(l) => {
                l.tidy();
                Ok(())
            }
            Via::Remote(r) => r.tidy(staged).await,
        }
    }

    async fn close(&self) {
        VpsFileStore::close(self).await;
    }

    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        Some(match &self.via {
            Via::Local(l) => l.activate_hint(),
            Via::Remote(r) => r.activate_hint(),
        })
    }
}
