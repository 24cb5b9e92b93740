//! Exit codes: the upstream runbook's 0–5 keep their meaning; 10 and up are ours,
//! one meaning each. `--help` and the README print this table.

use crate::vault::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Rotated, activated, restarted, verified (or: not due, or a clean dry run).
    Ok,
    /// Bad input, or the old passphrase does not decrypt the live bundle. Vault untouched.
    BadInput,
    /// Re-encryption or bundle upload failed. Vault untouched (an orphan bundle is harmless).
    UploadFailed,
    /// Pointer swap refused (someone else rotated) or failed, or a malformed counter. Vault untouched.
    PointerSwap,
    /// Rotation live and activated, but the audit row or a counter cell was not written; the manual row is printed.
    AuditFailed,
    /// Vault not found: no pointer at the prefix.
    VaultNotFound,
    /// The plan is invalid (file:line:column printed).
    PlanInvalid,
    /// Another run holds the vault's lock.
    LockHeld,
    /// Preflight failed: a store, restarter or credential is not usable. Nothing written.
    PreflightFailed,
    /// Staging failed; every staged version was discarded. Vault untouched.
    StageFailed,
    /// URGENT: the vault is rotated but a store still serves the old passphrase. Booting apps fail until it is activated.
    WindowOpen,
    /// Passphrase rotated and active everywhere, but a restart failed or timed out.
    RestartFailed,
    /// Verify found stragglers: an app or counter not on the new generation.
    VerifyFailed,
    /// Interrupted (signal); the journal says where; `vsync-orchestrate resume` finishes it.
    Interrupted,
    /// The command line is wrong (an unknown flag, a missing argument). Nothing was
    /// read or touched. 64 is sysexits' EX_USAGE: clap's own 2 already means
    /// "upload failed" here.
    Usage,
}

impl Exit {
    pub const ALL: [Exit; 15] = [
        Exit::Ok,
        Exit::BadInput,
        Exit::UploadFailed,
        Exit::PointerSwap,
        Exit::AuditFailed,
        Exit::VaultNotFound,
        Exit::PlanInvalid,
        Exit::LockHeld,
        Exit::PreflightFailed,
        Exit::StageFailed,
        Exit::WindowOpen,
        Exit::RestartFailed,
        Exit::VerifyFailed,
        Exit::Interrupted,
        Exit::Usage,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::BadInput => 1,
            Exit::UploadFailed => 2,
            Exit::PointerSwap => 3,
            Exit::AuditFailed => 4,
            Exit::VaultNotFound => 5,
            Exit::PlanInvalid => 10,
            Exit::LockHeld => 11,
            Exit::PreflightFailed => 12,
            Exit::StageFailed => 13,
            Exit::WindowOpen => 14,
            Exit::RestartFailed => 15,
            Exit::VerifyFailed => 16,
            Exit::Interrupted => 17,
            Exit::Usage => 64,
        }
    }

    /// How urgent an outcome is, most urgent first: when several runs (or several
    /// things in one run) end differently, the most urgent code is the one reported.
    pub fn urgency(self) -> u8 {
        match self {
            Exit::WindowOpen => 0,
            Exit::Interrupted => 1,
            Exit::RestartFailed => 2,
            Exit::VerifyFailed => 3,
            Exit::AuditFailed => 4,
            Exit::StageFailed => 5,
            Exit::PointerSwap => 6,
            Exit::UploadFailed => 7,
            Exit::PreflightFailed => 8,
            Exit::LockHeld => 9,
            Exit::BadInput => 10,
            Exit::VaultNotFound => 11,
            Exit::PlanInvalid => 12,
            Exit::Usage => 13,
            Exit::Ok => 14,
        }
    }

    /// The more urgent of two outcomes: the one ranking every caller uses (a run's
    /// own phases, a fleet of runs).
    pub fn most_urgent(self, other: Exit) -> Exit {
        if other.urgency() < self.urgency() {
            other
        } else {
            self
        }
    }

    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "rotated, activated, restarted and verified",
            Exit::BadInput => "bad input, or the old passphrase does not decrypt the live bundle; vault untouched",
            Exit::UploadFailed => "re-encryption or bundle upload failed; vault untouched (an orphan bundle is harmless)",
            Exit::PointerSwap => "pointer swap refused (someone else rotated) or failed, or a malformed counter cell; vault untouched",
            Exit::AuditFailed => "rotation live and activated, but the audit row or a counter cell was not written; the manual row is printed",
            Exit::VaultNotFound => "vault not found: no pointer at the prefix; vault untouched",
            Exit::PlanInvalid => "the plan is invalid; nothing was touched",
            Exit::LockHeld => "another run holds the vault's lock; nothing was touched",
            Exit::PreflightFailed => "preflight failed (a store, restarter, credential or health URL); nothing was written",
            Exit::StageFailed => "staging failed and every staged version was discarded; vault untouched",
            Exit::WindowOpen => "URGENT: vault rotated but a store still serves the old passphrase; run the printed command or `resume`",
            Exit::RestartFailed => "passphrase rotated and active everywhere, but a restart failed or timed out",
            Exit::VerifyFailed => "verify found stragglers (an app or counter not on the new generation)",
            Exit::Interrupted => "interrupted; `vsync-orchestrate resume PLAN` finishes the run from its journal",
            Exit::Usage => "usage error: the command line is wrong (unknown flag, missing argument); nothing was touched",
        }
    }

    /// The table for `--help`.
    pub fn help_table() -> String {
        let mut s = String::from("Exit codes (0 also: not due yet, or a clean dry run):\n");
        for e in Exit::ALL {
            s.push_str(&format!("  {:>2}  {}\n", e.code(), e.meaning()));
        }
        s
    }
}

impl From<Refusal> for Exit {
    fn from(r: Refusal) -> Exit {
        match r {
            Refusal::BadInput => Exit::BadInput,
            Refusal::Upload => Exit::UploadFailed,
            Refusal::Pointer => Exit::PointerSwap,
            Refusal::NotFound => Exit::VaultNotFound,
        }
    }
}
