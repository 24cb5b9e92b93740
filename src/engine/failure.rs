//! Why a command stopped, typed. [`Failure::exit`] is the one place a failure is
//! mapped onto an exit code; phases return failures, never codes. Each variant
//! keeps what caused it (the adapter's [`Error`] with its kind, the I/O error, the
//! lock's state) instead of a sentence, so the summary's failure report and any
//! caller can tell failures apart without reading their words.

use crate::engine::build::BuildError;
use crate::engine::exit::Exit;
use crate::engine::infra::lock::LockError;
use crate::engine::secrets::SourceError;
use crate::vault::RotateError;
use std::path::PathBuf;
use vsync_orchestrate_api::{Error, Target};

#[derive(Debug)]
pub(crate) enum Failure {
    /// The plan says something that cannot work (a bad `min_age`, say).
    Plan(PlanProblem),
    /// Bad input: a passphrase source, equal old and new passphrases, a changed plan.
    Input(InputProblem),
    /// The plan could not be turned into working parts.
    Build(BuildError),
    /// Taking the lock failed: held by another run, or not writable.
    Lock(LockError),
    /// Another run took the lock while this one held it (it expired); the keeper's
    /// account of how.
    LockLost(String),
    /// Another run rotated the vault while this one was reading it: a lost race,
    /// not a wrong passphrase or a tampered bundle.
    Raced(Raced),
    /// A read-only check failed: a store, restarter, credential, the state directory.
    Preflight(PreflightProblem),
    /// The vault refused: the runbook's own codes (1, 2, 3, 5).
    Vault(RotateError),
    /// A store refused the staged version, or the journal could not record it.
    Stage(StageProblem),
    /// A signal asked the run to stop; when.
    Interrupted(&'static str),
    /// The operator answered no at the confirmation prompt.
    Declined,
    /// T0 passed (or may have) and a store still serves the old passphrase.
    WindowOpen(WindowOpen),
    /// A failure and what the run did about it (discarded, kept, …).
    Then(Box<Failure>, String),
}

/// The plan's own values that cannot work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanProblem {
    /// `[schedule] min_age` does not parse; the parser's reason.
    #[error("{0}")]
    MinAge(String),
}

/// Input that is wrong, not a service that is down.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputProblem {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the new passphrase equals the old one")]
    SamePassphrase,
    #[error(transparent)]
    PlanChanged(Box<PlanChanged>),
}

/// `resume` with a plan whose tables no longer name what the run used.
#[derive(Debug, thiserror::Error)]
#[error("the plan changed since run {run}: [[{table}]] #{} was {was}, it is now {}; resume with the plan that run used ({})", .slot + 1, .now.as_deref().unwrap_or("missing"), .plan.display())]
pub(crate) struct PlanChanged {
    pub run: String,
    pub table: &'static str,
    pub slot: usize,
    pub was: Target,
    pub now: Option<String>,
    pub plan: PathBuf,
}

/// A read-only check that failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightProblem {
    #[error("reading the vault's lock failed: {0}")]
    LockUnreadable(LockError),
    #[error("{0}")]
    StateDir(String),
    /// The first journal could not be written (before the lock).
    #[error("cannot write the journal in {} ({source}); nothing was written. Fix the state directory (--state-dir) and run again", .dir.display())]
    Journal {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// `--clean-stale` could not remove a store's stale version.
    #[error("{target}: clean-up failed: {}", .source.chain())]
    CleanUp { target: Target, source: Error },
    /// Adapters' own checks refused, each with its error.
    #[error("preflight failed: {}", adapters_list(.0))]
    Adapters(Vec<(Target, Error)>),
    #[error("reading the current passphrase from {target}: {}", .source.chain())]
    ReadCurrent { target: Target, source: Error },
    #[error("{0} holds a different passphrase than the old one this plan uses; fix the store (or the plan's passphrase.old) first")]
    OldMismatch(Target),
    /// The escrow copy could not be sealed or written; nothing was staged.
    #[error(transparent)]
    Escrow(EscrowProblem),
    /// `resume` could not tell where the pointer is, and no swap was prepared.
    #[error("{seen}; nothing was changed and every staged version was kept")]
    PointerUnknown { seen: String },
}

/// Why the escrow copy was not written; nothing was staged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EscrowProblem {
    /// An `age_recipients` entry does not parse; the parser's reason.
    #[error("escrow: {0}")]
    Recipient(String),
    #[error("escrow: {0}")]
    Seal(String),
    #[error("cannot write the journal ({0}); nothing was staged")]
    Journal(std::io::Error),
    #[error("escrow: writing {}: {source}; nothing was staged", .path.display())]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("escrow: writing {key}: {why}; nothing was staged")]
    Remote { key: String, why: String },
}

/// Another run's rotation, seen while this one was reading.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Raced {
    #[error("run {run} of {owner} holds the vault's lock and rotated it while this run was reading it; nothing was written. Run again once it has finished (its lock lasts until {until})")]
    LockHolder {
        run: String,
        owner: String,
        until: String,
    },
    #[error("{0} serves another passphrase than it did a moment ago: another run rotated the vault while this run was reading it; nothing was written. Check `vsync-orchestrate status`, then run again if a rotation is still wanted")]
    StoreChanged(Target),
}

/// Staging did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageProblem {
    /// Stores that refused the staged version, each with its error.
    #[error("stage failed ({})", adapters_list(.0))]
    Refused(Vec<(Target, Error)>),
    /// The journal could not record a step; `when` names the step.
    #[error("cannot write the journal {when} ({source})")]
    Journal {
        when: &'static str,
        source: std::io::Error,
    },
}

/// The vault needs (or may need) the new passphrase and a store may still serve
/// the old one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WindowOpen {
    /// These stores' activation failed.
    #[error("URGENT — WINDOW OPEN: the vault needs the new passphrase but {} still serve(s) the old one; apps that boot now fail with WrongPassphraseError", names(.0))]
    Stores(Vec<Target>),
    /// The swap was sent without a final answer; `cause` is why the run stopped.
    #[error("URGENT — outcome unknown: {cause}; {seen}. The vault may already need the new passphrase, which every store holds only as a staged version; nothing was discarded")]
    SwapUnsettled { cause: String, seen: String },
    /// `resume` could not read the pointer after a swap was prepared.
    #[error("URGENT — outcome unknown: {seen}. The swap may have taken effect, so nothing was discarded and nothing was activated")]
    PointerUnknown { seen: String },
    /// T0 passed but another run holds the lock.
    #[error("URGENT — {seen}, but {lock}; the stores may still serve the old passphrase")]
    LockHeld { seen: String, lock: LockError },
}

fn adapters_list(failed: &[(Target, Error)]) -> String {
    failed
        .iter()
        .map(|(t, e)| format!("{t}: {}", e.chain()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn names(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Plan(_) => Exit::PlanInvalid,
            Failure::Input(_) => Exit::BadInput,
            Failure::Build(e) if e.is_unavailable() => Exit::PreflightFailed,
            Failure::Build(_) => Exit::BadInput,
            Failure::Lock(LockError::Held { .. } | LockError::Unparsable { .. })
            | Failure::LockLost(_)
            | Failure::Raced(_) => Exit::LockHeld,
            Failure::Lock(_) | Failure::Preflight(_) => Exit::PreflightFailed,
            Failure::Vault(e) => e.refusal().into(),
            Failure::Stage(_) => Exit::StageFailed,
            Failure::Interrupted(_) | Failure::Declined => Exit::Interrupted,
            Failure::WindowOpen(_) => Exit::WindowOpen,
            Failure::Then(f, _) => f.exit(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Plan(p) => p.to_string(),
            Failure::Input(p) => p.to_string(),
            Failure::LockLost(m) => m.clone(),
            Failure::Raced(r) => r.to_string(),
            Failure::Preflight(p) => p.to_string(),
            Failure::Stage(p) => p.to_string(),
            Failure::Interrupted(when) => (*when).to_owned(),
            Failure::Declined => "not confirmed at the prompt; nothing was written".to_owned(),
            Failure::WindowOpen(w) => w.to_string(),
            Failure::Build(e) => e.to_string(),
            Failure::Lock(e) => e.to_string(),
            Failure::Vault(e) => e.to_string(),
            Failure::Then(f, more) => format!("{}; {more}", f.message()),
        }
    }

    /// The same failure (and exit code), with what happened next appended.
    pub fn and(self, more: impl Into<String>) -> Failure {
        Failure::Then(Box::new(self), more.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsync_orchestrate_api::ErrorKind;

    fn target(name: &str) -> Target {
        Target {
            kind: "memory".into(),
            name: name.into(),
        }
    }

    #[test]
    fn adapter_failures_keep_their_errors_and_read_as_before() {
        let f = Failure::Stage(StageProblem::Refused(vec![(
            target("a"),
            Error::permission("no"),
        )]));
        assert_eq!(f.exit(), Exit::StageFailed);
        assert_eq!(
            f.message(),
            "stage failed (memory a: permission denied: no)"
        );
        let Failure::Stage(StageProblem::Refused(failed)) = &f else {
            unreachable!()
        };
        assert_eq!(failed[0].1.kind(), ErrorKind::Permission);
    }

    #[test]
    fn the_window_names_every_store_left_open() {
        let f = Failure::WindowOpen(WindowOpen::Stores(vec![target("a"), target("b")]));
        assert_eq!(f.exit(), Exit::WindowOpen);
        assert!(
            f.message()
                .contains("but memory a, memory b still serve(s)"),
            "{}",
            f.message()
        );
    }

    #[test]
    fn a_failure_followed_by_what_was_done_keeps_its_exit() {
        let f = Failure::Input(InputProblem::SamePassphrase).and("nothing was written");
        assert_eq!(f.exit(), Exit::BadInput);
        assert_eq!(
            f.message(),
            "the new passphrase equals the old one; nothing was written"
        );
    }
}
