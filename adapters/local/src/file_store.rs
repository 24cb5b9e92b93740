//! The `file` store: the passphrase as a file on this host (what
//! `VSYNC_PASSPHRASE_FILE` names).

use crate::staged_file::{io_error, Discarded, StagedFile};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use vsync_orchestrate_api::{
    async_trait, Passphrase, Preflight, Result, RunId, SecretStore, Staged, StoreCapabilities,
    Target,
};

/// The plan's `type` tag.
pub const KIND: &str = "file";

/// Stage writes `<path>.new`; activate keeps the old value as `<path>.prev` and
/// renames `.new` over `<path>`, so a booting app reads the old or the new file,
/// never a torn one. The staged file's fingerprint, recorded in the journal, tells
/// "already activated" apart from "staged file replaced since".
#[derive(Debug, Clone)]
pub struct FileStore {
    file: StagedFile,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>, mode: u32) -> FileStore {
        FileStore {
            file: StagedFile::new(path, mode),
        }
    }

    fn recorded(staged: &Staged) -> Option<&str> {
        staged.extra.get("fingerprint").and_then(|v| v.as_str())
    }
}

#[async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> Target {
        Target::new(KIND, self.file.path().display().to_string())
    }

    /// A file reads back whatever was written.
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }

    async fn preflight(&self) -> Result<Preflight> {
        let path = self.file.path();
        let meta = fs::metadata(path).map_err(|e| io_error("checking", path, e))?;
        self.file.check_writable_dir()?;
        let mode = meta.permissions().mode() & 0o777;
        let mut warnings = Vec::new();
        if mode & 0o007 != 0 {
            warnings.push(format!(
                "{} is readable by others (mode {mode:04o})",
                path.display()
            ));
        }
        Ok(Preflight {
            detail: format!("mode {mode:04o}"),
            warnings,
            ..Default::default()
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        self.file.read_current().map(Some)
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        let staging = self.file.stage(new)?;
        Ok(Staged {
            target: self.describe(),
            run: run.clone(),
            version: self.file.staged_path().display().to_string(),
            previous: None,
            extra: serde_json::json!({ "fingerprint": staging.fingerprint() }),
        })
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        self.file.read_staged(Self::recorded(staged))
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        self.file.activate(Self::recorded(staged)).map(|_| ())
    }

    /// A `<path>.new` no journal knows (a crash mid-stage). The engine calls this
    /// only after proving the vault does not need it.
    async fn clean_stale(&self) -> Result<Option<String>> {
        let p = self.file.staged_path();
        Ok(match self.file.discard(None)? {
            Discarded::Removed => Some(format!("removed the abandoned {}", p.display())),
            _ => None,
        })
    }

    async fn tidy(&self, _staged: &Staged) -> Result<()> {
        self.file.remove_leftovers();
        Ok(())
    }

    /// A `.new` staged again since (by someone else) is left in place and is not an
    /// error: this run's stage is gone either way, which is all discard promises.
    async fn discard(&self, staged: &Staged) -> Result<()> {
        self.file.discard(Self::recorded(staged)).map(|_| ())
    }

    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        Some(self.file.activate_hint())
    }
}
