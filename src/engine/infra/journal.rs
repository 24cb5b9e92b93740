//! The per-run journal: written (atomically, 0600) before every step that changes
//! something, so `resume` knows exactly where a crashed run stopped. It never holds
//! a passphrase.
//!
//! `resume` trusts a journal only as far as it can check it: files are recognised
//! by name (`<run id>.json`), never by being in the directory — a kill during a save
//! leaves a temp file that must not pass for a journal —, a finished run is never
//! reopened, and whether T0 passed is always read from the vault's pointer, not
//! from the journal's phase.

use crate::vault::{Layout, Prepared, Stamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vsync_orchestrate_api::{Rollout, RunId, Staged};

/// Bumped when a field changes meaning; `resume` refuses journals it cannot read.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Preflight,
    /// The lock is held; stage requests are about to be sent.
    Staging,
    Staged,
    /// New bundle uploaded; the pointer swap is about to be sent. Whether it took
    /// effect is only known by reading the pointer.
    Committing,
    /// The pointer names the new bundle: T0 passed.
    Committed,
    Activated,
    /// Every restart was started (each rollout is journaled as `restart` returns).
    Restarting,
    Restarted,
    Verified,
    /// Ended before T0 with everything undone.
    Aborted,
    Done,
}

/// A store's staged version, tied to the store's position in the plan: two tables
/// can describe themselves alike (one secret id in two regions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedEntry {
    /// 0-based index of the `[[store]]` table.
    pub slot: usize,
    #[serde(flatten)]
    pub staged: Staged,
}

/// A restart that was started, by `[[restart]]` position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutEntry {
    pub slot: usize,
    #[serde(flatten)]
    pub rollout: Rollout,
    /// Set once `wait` returned: `resume` does not wait again.
    #[serde(default)]
    pub finished: Option<bool>,
}

/// What preflight read, recorded before anything is written: `resume` compares the
/// pointer with it before it discards anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inspected {
    pub layout: Layout,
    pub old_stamp: Stamp,
    pub gen: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    #[serde(default)]
    pub format: u32,
    pub run_id: RunId,
    pub plan: PathBuf,
    pub env: String,
    pub vault: String,
    pub started_at: String,
    pub updated_at: String,
    pub phase: Phase,
    #[serde(default)]
    pub inspected: Option<Inspected>,
    #[serde(default)]
    pub staged: Vec<StagedEntry>,
    pub prepared: Option<Prepared>,
    pub rotated_at: Option<String>,
    /// Store slots activated so far.
    #[serde(default)]
    pub activated: Vec<usize>,
    #[serde(default)]
    pub rollouts: Vec<RolloutEntry>,
    /// Milliseconds per phase, and the window.
    #[serde(default)]
    pub timings_ms: BTreeMap<String, f64>,
    pub exit_code: Option<u8>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// Where the sealed copy of this run's new passphrase went, if the plan asks.
    #[serde(default)]
    pub escrow: Option<EscrowRecord>,
}

/// Changes to the run's journal: the state `resume` starts from. The journal's own
/// vocabulary; the engine emits them as `Event::Journal`.
#[derive(Debug, Clone)]
pub enum JournalEvent {
    Phase(Phase),
    Staged(Vec<StagedEntry>),
    Prepared(Box<Prepared>),
    RotatedAt(String),
    Activated(usize),
    RolloutStarted(RolloutEntry),
    RolloutFinished { slot: usize, ok: bool },
    Note(String),
    Escrow(EscrowRecord),
}

/// Where one generation's sealed break-glass copies went (never the passphrase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowRecord {
    /// The generation the sealed passphrase opens (the one this run writes).
    pub generation: u64,
    pub local: PathBuf,
    /// The object key under the vault, with `vault_copy`.
    pub remote: Option<String>,
    pub recipients: usize,
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

/// A temp file older than this was left by a process that died while saving.
const STALE_TEMP: Duration = Duration::from_secs(600);

impl Journal {
    pub fn new(run_id: RunId, plan: PathBuf, env: String, vault: String) -> Journal {
        Journal {
            format: FORMAT,
            run_id,
            plan,
            env,
            vault,
            started_at: crate::vault::stamp::iso_millis(SystemTime::now()),
            updated_at: String::new(),
            phase: Phase::Preflight,
            inspected: None,
            staged: vec![],
            prepared: None,
            rotated_at: None,
            activated: vec![],
            rollouts: vec![],
            timings_ms: Default::default(),
            exit_code: None,
            notes: vec![],
            escrow: None,
        }
    }

    pub fn path_in(dir: &Path, run: &RunId) -> PathBuf {
        dir.join("runs").join(format!("{run}.json"))
    }

    /// Atomic replace, 0600, directories 0700.
    pub fn save(&mut self, dir: &Path) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        self.updated_at = crate::vault::stamp::iso_millis(SystemTime::now());
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

    /// Every journal in `dir/runs`, recognised by name: `<run id>.json` whose
    /// content carries that same run id. Temp files a killed save left behind are
    /// removed once they are old enough not to belong to a save in progress.
    pub fn all(dir: &Path) -> Vec<(PathBuf, Journal)> {
        let Ok(entries) = std::fs::read_dir(dir.join("runs")) else {
            return vec![];
        };
        let mut out = Vec::new();
        for e in entries.filter_map(|e| e.ok()) {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".vsync-tmp-") {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP);
                if old {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.starts_with('.') {
                continue;
            }
            if let Ok(j) = Journal::load(&path) {
                if j.run_id.as_str() == stem {
                    out.push((path, j));
                }
            }
        }
        out.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at));
        out
    }

    /// The newest unfinished journal for this vault, if any.
    pub fn find_unfinished(dir: &Path, vault: &str) -> Option<(PathBuf, Journal)> {
        Self::all(dir)
            .into_iter()
            .rfind(|(_, j)| j.vault == vault && !j.is_finished())
    }

    /// The newest journal of any state for this vault (for `status`).
    pub fn latest(dir: &Path, vault: &str) -> Option<Journal> {
        Self::all(dir)
            .into_iter()
            .filter(|(_, j)| j.vault == vault)
            .map(|(_, j)| j)
            .next_back()
    }

    /// Run ids of this vault's finished runs: a lock one of them left behind (its
    /// release failed) may be taken over.
    pub fn finished_runs(dir: &Path, vault: &str) -> Vec<String> {
        Self::all(dir)
            .into_iter()
            .filter(|(_, j)| j.vault == vault && j.is_finished())
            .map(|(_, j)| j.run_id.0)
            .collect()
    }

    /// The journal is a renderer of the engine's events: these are the ones that
    /// change the state `resume` starts from.
    pub fn apply(&mut self, e: &JournalEvent) {
        match e {
            JournalEvent::Phase(p) => self.phase = *p,
            JournalEvent::Staged(s) => self.staged = s.clone(),
            JournalEvent::Prepared(p) => self.prepared = Some((**p).clone()),
            JournalEvent::RotatedAt(r) => self.rotated_at = Some(r.clone()),
            JournalEvent::Activated(slot) => {
                if !self.activated.contains(slot) {
                    self.activated.push(*slot);
                }
            }
            JournalEvent::RolloutStarted(r) => {
                if !self.rollouts.iter().any(|e| e.slot == r.slot) {
                    self.rollouts.push(r.clone());
                }
                self.phase = Phase::Restarting;
            }
            JournalEvent::RolloutFinished { slot, ok } => {
                if let Some(r) = self.rollouts.iter_mut().find(|r| r.slot == *slot) {
                    r.finished = Some(*ok);
                }
            }
            JournalEvent::Note(n) => self.notes.push(n.clone()),
            JournalEvent::Escrow(r) => self.escrow = Some(r.clone()),
        }
    }

    pub fn staged_for(&self, slot: usize) -> Option<&Staged> {
        self.staged
            .iter()
            .find(|e| e.slot == slot)
            .map(|e| &e.staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(run: &str, phase: Phase) -> Journal {
        let mut j = Journal::new(
            RunId(run.into()),
            "/p.toml".into(),
            "prod".into(),
            "dir:/v/".into(),
        );
        j.phase = phase;
        j
    }

    #[test]
    fn only_files_named_after_their_run_are_journals() {
        let dir = tempfile::tempdir().unwrap();
        let mut done = journal("20260101T000000Z-aaaaaa", Phase::Done);
        done.save(dir.path()).unwrap();
        // A kill during a save leaves a copy under a temp name; it must not be
        // mistaken for an unfinished run.
        let runs = dir.path().join("runs");
        let half = journal("20260101T000000Z-aaaaaa", Phase::Committed);
        std::fs::write(
            runs.join(".vsync-tmp-0011223344556677"),
            serde_json::to_vec(&half).unwrap(),
        )
        .unwrap();
        // A journal copied under another name is not that run's journal either.
        std::fs::write(runs.join("copy.json"), serde_json::to_vec(&half).unwrap()).unwrap();
        assert!(Journal::find_unfinished(dir.path(), "dir:/v/").is_none());
        assert_eq!(Journal::all(dir.path()).len(), 1);
        assert_eq!(
            Journal::finished_runs(dir.path(), "dir:/v/"),
            vec!["20260101T000000Z-aaaaaa".to_owned()]
        );

        let mut open = journal("20260102T000000Z-bbbbbb", Phase::Committing);
        open.started_at = "2026-01-02T00:00:00.000Z".into();
        open.save(dir.path()).unwrap();
        let (_, found) = Journal::find_unfinished(dir.path(), "dir:/v/").unwrap();
        assert_eq!(found.run_id.as_str(), "20260102T000000Z-bbbbbb");
    }

    #[test]
    fn old_temp_files_are_removed_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let old = runs.join(".vsync-tmp-old");
        let fresh = runs.join(".vsync-tmp-fresh");
        std::fs::write(&old, b"{}").unwrap();
        std::fs::write(&fresh, b"{}").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        Journal::all(dir.path());
        assert!(!old.exists());
        assert!(fresh.exists(), "a save in progress keeps its temp file");
    }
}
