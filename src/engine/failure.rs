//! Why a command stopped, typed. [`Failure::exit`] is the one place a failure is
//! mapped onto an exit code; phases return failures, never codes.

use crate::engine::build::BuildError;
use crate::engine::exit::Exit;
use crate::engine::infra::lock::LockError;
use crate::vault::RotateError;

#[derive(Debug)]
pub(crate) enum Failure {
    /// The plan says something that cannot work (a bad `min_age`, say).
    Plan(String),
    /// Bad input: a passphrase source, equal old and new passphrases.
    Input(String),
    /// The plan could not be turned into working parts.
    Build(BuildError),
    /// Taking the lock failed: held by another run, or not writable.
    Lock(LockError),
    /// Another run took the lock while this one held it (it expired).
    LockLost(String),
    /// Another run rotated the vault while this one was reading it: a lost race,
    /// not a wrong passphrase or a tampered bundle.
    Raced(String),
    /// A read-only check failed: a store, restarter, credential, the state directory.
    Preflight(String),
    /// The vault refused: the runbook's own codes (1, 2, 3, 5).
    Vault(RotateError),
    /// A store refused the staged version.
    Stage(String),
    /// A signal asked the run to stop.
    Interrupted(String),
    /// T0 passed (or may have) and a store still serves the old passphrase.
    WindowOpen(String),
    /// A failure and what the run did about it (discarded, kept, …).
    Then(Box<Failure>, String),
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
            Failure::Interrupted(_) => Exit::Interrupted,
            Failure::WindowOpen(_) => Exit::WindowOpen,
            Failure::Then(f, _) => f.exit(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Plan(m)
            | Failure::Input(m)
            | Failure::LockLost(m)
            | Failure::Raced(m)
            | Failure::Preflight(m)
            | Failure::Stage(m)
            | Failure::Interrupted(m)
            | Failure::WindowOpen(m) => m.clone(),
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
