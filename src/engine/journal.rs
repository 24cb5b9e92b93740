//! The per-run journal: written (atomically, 0600) after every step, so `resume`
//! knows exactly where a crashed run stopped. It never holds a passphrase.

use crate::vault::Prepared;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vsync_orchestrate_api::{Rollout, RunId, Staged};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Preflight,
    Staging,
    Staged,
    /// New bundle uploaded; the pointer swap is about to be sent.
    Committing,
    /// The pointer names the new bundle: T0 passed.
    Committed,
    Activated,
    Restarted,
    Verified,
    /// Ended before T0 with everything undone.
    Aborted,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub run_id: RunId,
    pub plan: PathBuf,
    pub env: String,
    pub vault: String,
    pub started_at: String,
    pub updated_at: String,
    pub phase: Phase,
    #[serde(default)]
    pub staged: Vec<Staged>,
    pub prepared: Option<Prepared>,
    pub rotated_at: Option<String>,
    #[serde(default)]
    pub activated: Vec<String>,
    #[serde(default)]
    pub rollouts: Vec<Rollout>,
    /// Milliseconds per phase, and the window.
    #[serde(default)]
    pub timings_ms: BTreeMap<String, f64>,
    pub exit_code: Option<u8>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `$XDG_STATE_HOME/vsync-orchestrate` or `~/.local/state/vsync-orchestrate`.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("vsync-orchestrate");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/vsync-orchestrate")
}

impl Journal {
    pub fn path_in(dir: &Path, run: &RunId) -> PathBuf {
        dir.join("runs").join(format!("{run}.json"))
    }

    /// Atomic replace, 0600, directories 0700.
    pub fn save(&mut self, dir: &Path) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        self.updated_at = crate::vault::stamp::iso_millis(std::time::SystemTime::now());
        let runs = dir.join("runs");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&runs)?;
        let path = Self::path_in(dir, &self.run_id);
        let body = serde_json::to_vec_pretty(self).expect("journal serialises");
        crate::vault::storage::write_atomic_file(&path, &body)?;
        Ok(path)
    }

    pub fn load(path: &Path) -> std::io::Result<Journal> {
        let b = std::fs::read(path)?;
        serde_json::from_slice(&b)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Aborted)
    }

    /// The newest unfinished journal for this vault, if any.
    pub fn find_unfinished(dir: &Path, vault: &str) -> Option<(PathBuf, Journal)> {
        let mut found: Vec<(PathBuf, Journal)> = std::fs::read_dir(dir.join("runs"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| Journal::load(&e.path()).ok().map(|j| (e.path(), j)))
            .filter(|(_, j)| j.vault == vault && !j.is_finished())
            .collect();
        found.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at));
        found.pop()
    }

    /// The newest journal of any state for this vault (for `status`).
    pub fn latest(dir: &Path, vault: &str) -> Option<Journal> {
        let mut all: Vec<Journal> = std::fs::read_dir(dir.join("runs"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| Journal::load(&e.path()).ok())
            .filter(|j| j.vault == vault)
            .collect();
        all.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        all.pop()
    }
}
