//! What the engine says while it runs.
//!
//! The runbook never prints, never fills in the summary and never edits the journal
//! directly: it emits events, and the human display, the JSON summary and the journal
//! are renderers of the same events (`report::Human`, `report::Summary::apply`,
//! `Journal::apply`), so they cannot disagree about what happened.

use super::journal::{Phase, RolloutEntry, StagedEntry};
use crate::engine::health::UrlResult;
use crate::report::TargetResult;
use crate::vault::Prepared;
use std::time::Duration;

/// The phases of the runbook, as the operator reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Preflight,
    Plan,
    Stage,
    Rotate,
    Activate,
    Restart,
    Verify,
    Resume,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Plan => "plan",
            Step::Stage => "stage",
            Step::Rotate => "rotate",
            Step::Activate => "activate",
            Step::Restart => "restart",
            Step::Verify => "verify",
            Step::Resume => "resume",
        }
    }
}

/// What preflight and rotate learned about the vault.
#[derive(Debug, Clone, Default)]
pub struct VaultFacts {
    pub layout: Option<String>,
    pub gen_before: Option<u64>,
    pub gen_after: Option<u64>,
    pub old_stamp: Option<String>,
    pub new_stamp: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// The command's first line.
    Header(String),
    /// The vault the run is about.
    Vault(String),
    Phase {
        step: Step,
        what: String,
    },
    /// One result: a store, a restarter, the vault, a health URL.
    Row(TargetResult),
    Warning(String),
    /// A progress line that is not a result (the window, "not due").
    Note(String),
    NextStep(String),
    Timing {
        step: Step,
        took: Duration,
    },
    /// T0 → T1.
    Window(Duration),
    /// T0 → every rollout reported done.
    T2(Duration),
    Facts(VaultFacts),
    Health(Vec<UrlResult>),
    PlannedWrites(Vec<String>),
    /// The audit row the operator must append by hand (exit 4).
    ManualAuditRow(String),
    /// The audit row this rotation appended (or found already there).
    AuditRow(String),
    Journal(JournalEvent),
}

/// Changes to the run's journal: the state `resume` starts from.
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
    Escrow(super::escrow::EscrowRecord),
}
