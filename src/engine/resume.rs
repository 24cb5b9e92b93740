//! `resume`: finish the newest unfinished run on this plan's vault.
//!
//! The journal says what the run did; only the pointer says whether T0 passed.
//! So resume reads the pointer first — with retries — and then either activates
//! what was staged (T0 passed), or discards it and starts over (the pointer names
//! the old bundle), or, when the pointer cannot be read, changes nothing and says
//! so.

use super::context::{Ctx, Step};
use super::journal::{Journal, Phase};
use super::lock::{Lock, LockError, Takeover};
use super::pointer::{self, PointerState};
use super::{activate, after_t1, build, new_run_id, stage, unbuildable, Exit, RunOptions};
use crate::plan::LoadedPlan;
use crate::report::{Progress, Summary};
use std::time::{Instant, SystemTime};
use vsync_orchestrate_api::Passphrase;

/// `resume`: finish the newest unfinished run on this plan's vault.
pub async fn resume(loaded: &LoadedPlan, opts: &RunOptions, p: &Progress) -> Summary {
    match build::parts(loaded).await {
        Ok(parts) => resume_with(loaded, parts, opts, p).await,
        Err(e) => unbuildable(loaded, opts, p, "resume", e),
    }
}

/// `resume` with parts built elsewhere (tests).
pub async fn resume_with(
    loaded: &LoadedPlan,
    parts: build::Parts,
    opts: &RunOptions,
    p: &Progress,
) -> Summary {
    let mut cx = Ctx::new(loaded, opts, p, "resume", new_run_id());
    let vault = &parts.vault;
    cx.s.vault = vault.describe();
    let Some((_, journal)) = Journal::find_unfinished(&opts.state_dir, &vault.describe()) else {
        p.line(format!("nothing to resume for {}", vault.describe()));
        cx.s.outcome = "nothing to resume: no unfinished run for this vault".into();
        return cx.s;
    };
    let run = journal.run_id.clone();
    cx.run = run.clone();
    cx.s.run_id = run.to_string();
    p.line(format!(
        "vsync-orchestrate resume {} — run {run} stopped at phase {:?}",
        loaded.path.display(),
        journal.phase
    ));

    // The plan must still name, at each journaled position, what the run used.
    for e in &journal.staged {
        let now = parts.stores.get(e.slot).map(|s| s.describe());
        if now.as_ref() != Some(&e.staged.target) {
            return cx.end(
                Exit::BadInput,
                format!(
                    "the plan changed since run {run}: [[store]] #{} was {}, it is now {}; resume with the plan that run used ({})",
                    e.slot + 1,
                    e.staged.target,
                    now.map(|t| t.to_string()).unwrap_or_else(|| "missing".into()),
                    journal.plan.display()
                ),
            );
        }
    }
    for e in &journal.rollouts {
        let now = parts.restarters.get(e.slot).map(|(r, _)| r.describe());
        if now.as_ref() != Some(&e.rollout.target) {
            return cx.end(
                Exit::BadInput,
                format!(
                    "the plan changed since run {run}: [[restart]] #{} was {}, it is now {}; resume with the plan that run used ({})",
                    e.slot + 1,
                    e.rollout.target,
                    now.map(|t| t.to_string()).unwrap_or_else(|| "missing".into()),
                    journal.plan.display()
                ),
            );
        }
    }
    cx.journal = Some(journal.clone());

    let takeover = Takeover {
        run: Some(run.clone()),
        finished: Journal::finished_runs(&opts.state_dir, &vault.describe()),
    };
    let acquired = Lock::acquire(vault, &run, opts.lock_ttl, &takeover).await;
    // Reading decides; the lock is needed only to change something.
    let Some(inspected) = journal.inspected.clone() else {
        let lock = match acquired {
            Ok(l) => l,
            Err(e @ LockError::Held { .. }) => return cx.end(Exit::LockHeld, e.to_string()),
            Err(e) => return cx.end(Exit::PreflightFailed, e.to_string()),
        };
        // Crashed before it recorded what it read: nothing was staged yet.
        cx.journal().phase = Phase::Aborted;
        cx.journal()
            .notes
            .push("resumed: stopped before staging".into());
        stage::release(&mut cx, vault, lock).await;
        cx.save_or_warn();
        return super::run_with(loaded, parts, opts, p, false).await;
    };
    let new_stamp = journal.prepared.as_ref().map(|pr| pr.new_stamp.clone());
    let t = Instant::now();
    let mut state = pointer::read(
        vault,
        inspected.layout,
        &inspected.old_stamp,
        new_stamp.as_ref(),
    )
    .await;
    // A pointer naming neither bundle after a swap may have been sent: the staged
    // passphrase is still needed if it opens what the vault serves now.
    let mut staged_pass: Option<Passphrase> = None;
    if let (PointerState::Other(_), Some(_)) = (&state, &new_stamp) {
        staged_pass = read_staged(&mut cx, &parts, &journal).await;
        state = match &staged_pass {
            Some(pass) => match pointer::opens_with(vault, pass).await {
                Some(true) => PointerState::New,
                Some(false) => state,
                None => PointerState::Unknown("the live bundle could not be read".into()),
            },
            None => PointerState::Unknown(
                "no store's staged value could be read back to test against the live bundle".into(),
            ),
        };
    }
    let seen = state.describe(&inspected.old_stamp, new_stamp.as_ref());
    cx.row(
        Step::Resume,
        "vault",
        "pointer",
        None,
        !matches!(state, PointerState::Unknown(_)),
        seen.clone(),
        t.elapsed(),
    );

    match state {
        PointerState::New => {}
        PointerState::Unknown(_) => {
            cx.journal()
                .notes
                .push(format!("resume changed nothing: {seen}"));
            cx.next_step(format!(
                "run `vsync-orchestrate resume {}` again once the vault can be read; every staged version was kept",
                loaded.path.display()
            ));
            return if new_stamp.is_some() {
                cx.end(
                    Exit::WindowOpen,
                    format!("URGENT — outcome unknown: {seen}. The swap may have taken effect, so nothing was discarded and nothing was activated"),
                )
            } else {
                cx.end(
                    Exit::PreflightFailed,
                    format!("{seen}; nothing was changed and every staged version was kept"),
                )
            };
        }
        PointerState::Old | PointerState::Other(_) => {
            let lock = match acquired {
                Ok(l) => l,
                Err(e @ LockError::Held { .. }) => return cx.end(Exit::LockHeld, e.to_string()),
                Err(e) => {
                    return cx.end(
                        Exit::PreflightFailed,
                        format!("{e}; {seen}, and nothing was changed (the staged versions stay until a resume can take the lock)"),
                    )
                }
            };
            // The vault does not need the new passphrase: undo and start over.
            cx.phase(
                Step::Resume,
                "the vault was never swapped to this run's bundle: discarding what was staged, then starting over",
            );
            let staged = journal.staged.clone();
            stage::discard(&mut cx, &parts.stores, &staged).await;
            // A crash mid-stage can leave versions the journal never recorded; the
            // pointer names a bundle their passphrase does not open.
            stage::clean_stale(&mut cx, &parts.stores).await;
            cx.journal().phase = Phase::Aborted;
            cx.journal()
                .notes
                .push(format!("resumed: {seen}; discarded before T0"));
            cx.save_or_warn();
            stage::release(&mut cx, vault, lock).await;
            if !matches!(state, PointerState::Old) {
                return cx.end(
                    Exit::PointerSwap,
                    format!("{seen}: someone else rotated meanwhile; this run's staged versions were discarded"),
                );
            }
            return super::run_with(loaded, parts, opts, p, false).await;
        }
    }

    // T0 passed: closing the window matters more than refreshing the lock.
    let lock = match acquired {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => {
            return cx.end(
                Exit::WindowOpen,
                format!("URGENT — {seen}, but {e}; the stores may still serve the old passphrase"),
            )
        }
        Err(e) => {
            cx.warn(format!(
                "{e}; activating anyway under run {run}'s lock, since the vault already needs the new passphrase"
            ));
            Lock::assume(vault, &run, opts.lock_ttl)
        }
    };
    let prepared = journal
        .prepared
        .clone()
        .expect("the pointer names the new bundle, so it was prepared");
    cx.s.gen_before = Some(prepared.gen_before);
    cx.s.gen_after = Some(prepared.gen_after);
    cx.s.old_stamp = Some(prepared.old_stamp.to_string());
    cx.s.new_stamp = Some(prepared.new_stamp.to_string());
    cx.s.layout = Some(prepared.layout.name().into());
    cx.phase(
        Step::Resume,
        "the vault was swapped (T0 passed): activating what was staged",
    );
    if staged_pass.is_none() {
        staged_pass = read_staged(&mut cx, &parts, &journal).await;
    }
    match &staged_pass {
        Some(pass) if pointer::opens_with(vault, pass).await == Some(true) => {
            p.ok(
                "staged passphrase",
                "opens the live bundle",
                std::time::Duration::ZERO,
            );
        }
        _ => cx.warn("no store's staged value could be read back and checked against the bundle (write-only stores?); activating anyway"),
    }
    let done = journal.activated.clone();
    let results = activate::all(&parts.stores, &journal.staged, &done, staged_pass.as_ref()).await;
    let rotated_at = journal
        .rotated_at
        .clone()
        .unwrap_or_else(|| crate::vault::stamp::iso_millis(SystemTime::now()));
    cx.journal().rotated_at = Some(rotated_at.clone());
    if let Some(summary) = super::activated(&mut cx, results, &parts.stores, &journal.staged, None)
    {
        drop(lock);
        return summary;
    }
    after_t1(
        &mut cx,
        vault,
        &parts.stores,
        &journal.staged,
        &parts.restarters,
        &prepared,
        &rotated_at,
        lock,
        None,
    )
    .await
}

/// The new passphrase, read back from the first store that can.
async fn read_staged(
    cx: &mut Ctx<'_>,
    parts: &build::Parts,
    journal: &Journal,
) -> Option<Passphrase> {
    for e in &journal.staged {
        if let Some(s) = parts.stores.get(e.slot) {
            match s.read_staged(&e.staged).await {
                Ok(p) => return Some(p),
                Err(err) => cx.p.warn(&format!("{}: {}", s.describe(), err.chain())),
            }
        }
    }
    None
}
