//! How a run is asked to behave: what the CLI's flags and the plan's defaults set,
//! handed to every phase that needs it.

use crate::engine::events::Subscriber;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Never prompt; fail where a prompt would be needed.
    pub yes: bool,
    pub state_dir: PathBuf,
    /// Ignore `[schedule] min_age`.
    pub force: bool,
    pub lock_ttl: Duration,
    /// Remove staged versions abandoned by an earlier run before preflight.
    pub clean_stale: bool,
    /// Sees every event (the plan's notifications).
    pub observer: Option<Observers>,
    /// How long one activation request may go unanswered before it is given up
    /// and tried again (it is idempotent).
    pub activate_attempt: Duration,
    /// How long one store may take to activate, retries included, before the
    /// store is read back and, if still old, reported: the window is open meanwhile.
    pub activate_deadline: Duration,
    /// How long a pointer swap without a final answer (a 200, or a 412 and a read)
    /// is sent again before the run gives up and keeps everything staged (exit 14).
    pub commit_deadline: Duration,
    /// Asked once preflight passed and before the first write (the journal, the
    /// lock): `false` stops the run with nothing written. Set by the CLI when a
    /// person is at a terminal and `--yes` was not given, as `terraform apply`
    /// asks unless `-auto-approve`.
    pub confirm: Option<Confirm>,
}

/// The question before the first write: gets what is about to happen, in words.
#[derive(Clone)]
pub struct Confirm(pub std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Confirm")
    }
}

/// What else sees the engine's events besides the display (the plan's
/// notifications).
#[derive(Clone)]
pub struct Observers(pub std::sync::Arc<dyn Subscriber>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observers")
    }
}

impl RunOptions {
    pub fn new(state_dir: PathBuf) -> Self {
        RunOptions {
            yes: false,
            state_dir,
            force: false,
            lock_ttl: Duration::from_secs(3600),
            clean_stale: false,
            observer: None,
            activate_attempt: Duration::from_secs(5),
            activate_deadline: Duration::from_secs(20),
            commit_deadline: Duration::from_secs(20),
            confirm: None,
        }
    }
}
