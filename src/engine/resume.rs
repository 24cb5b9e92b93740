//! `resume`: finish the newest unfinished run on this plan's vault.
//!
//! The journal says what the run did; only the pointer says whether T0 passed.
//! So resume reads the pointer first — with retries — and then either activates
//! what was staged (T0 passed), or discards it and starts over (the pointer names
//! the old bundle), or, when the pointer cannot be read, changes nothing and says
//! so. A run stopped while its swap may have been in flight is different: a read
//! of the old pointer proves nothing while an attempt can still land, so resume
//! first rolls the swap forward to a final answer (`pointer::settle`). The lock is
//! taken only to change something.

use crate::engine::build;
use crate::engine::context::Ctx;
use crate::engine::events::Subscriber;
use crate::engine::events::{JournalEvent, Step, VaultFacts};
use crate::engine::failure::Failure;
use crate::engine::infra::journal::{Journal, Phase};
use crate::engine::infra::lock::{Keeper, Lock, LockError, Takeover};
use crate::engine::infra::pointer::{self, PointerState, Settled};
use crate::engine::infra::run_id::new_run_id;
use crate::engine::options::RunOptions;
use crate::engine::phases::activate;
use crate::engine::phases::stage;
use crate::engine::runbook::{after_t1, close_all, run_in, unbuildable};
use crate::engine::summary::Summary;
use crate::plan::LoadedPlan;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::Passphrase;

/// `resume`: finish the newest unfinished run on this plan's vault.
pub async fn resume(loaded: &LoadedPlan, opts: &RunOptions, p: &dyn Subscriber) -> Summary {
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
    p: &dyn Subscriber,
) -> Summary {
    let (stores, restarters) = (parts.stores.clone(), parts.restarters.clone());
    let summary = resume_parts(loaded, parts, opts, p).await;
    close_all(&stores, &restarters).await;
    summary
}

/// Everything `resume` does; its connections are closed by the caller, whichever
/// way it ends.
async fn resume_parts(
    loaded: &LoadedPlan,
    parts: build::Parts,
    opts: &RunOptions,
    p: &dyn Subscriber,
) -> Summary {
    let vault = &parts.vault;
    let found = Journal::find_unfinished(&opts.state_dir, &vault.describe());
    let run = found
        .as_ref()
        .map(|(_, j)| j.run_id.clone())
        .unwrap_or_else(new_run_id);
    let mut cx = Ctx::new(loaded, opts, p, "resume", run.clone());
    cx.vault(vault.describe());
    let Some((_, journal)) = found else {
        cx.note(format!("nothing to resume for {}", vault.describe()));
        return cx.nothing_to_do("nothing to resume: no unfinished run for this vault");
    };
    cx.header(format!(
        "vsync-orchestrate resume {} — run {run} stopped at phase {:?}",
        loaded.path.display(),
        journal.phase
    ));

    // The plan must still name, at each journaled position, what the run used.
    for e in &journal.staged {
        let now = parts.stores.get(e.slot).map(|s| s.describe());
        if now.as_ref() != Some(&e.staged.target) {
            return cx.fail(Failure::Input(format!(
                "the plan changed since run {run}: [[store]] #{} was {}, it is now {}; resume with the plan that run used ({})",
                e.slot + 1,
                e.staged.target,
                now.map(|t| t.to_string()).unwrap_or_else(|| "missing".into()),
                journal.plan.display()
            )));
        }
    }
    for e in &journal.rollouts {
        let now = parts.restarters.get(e.slot).map(|(r, _)| r.describe());
        if now.as_ref() != Some(&e.rollout.target) {
            return cx.fail(Failure::Input(format!(
                "the plan changed since run {run}: [[restart]] #{} was {}, it is now {}; resume with the plan that run used ({})",
                e.slot + 1,
                e.rollout.target,
                now.map(|t| t.to_string()).unwrap_or_else(|| "missing".into()),
                journal.plan.display()
            )));
        }
    }
    cx.open_journal(journal.clone());

    let takeover = Takeover {
        run: Some(run.clone()),
        finished: Journal::finished_runs(&opts.state_dir, &vault.describe()),
    };
    let acquired = Lock::acquire(vault, &run, opts.lock_ttl, &takeover).await;
    let Some(inspected) = journal.inspected.clone() else {
        // Stopped before it recorded what it read: nothing was staged yet.
        let lock = match acquired {
            Ok(l) => l,
            Err(e) => return cx.fail(Failure::Lock(e)),
        };
        cx.reach(Phase::Aborted);
        cx.record(JournalEvent::Note("resumed: stopped before staging".into()));
        stage::release(&mut cx, vault, lock).await;
        cx.checkpoint_or_warn();
        cx.next_run(new_run_id());
        return run_in(&mut cx, parts, "run").await;
    };

    // Where is the pointer? Always read, never taken from the journal's phase.
    let new_stamp = journal.prepared.as_ref().map(|pr| pr.new_stamp.clone());
    let t = Instant::now();
    let mut state = pointer::read(
        vault,
        inspected.layout,
        &inspected.old_stamp,
        new_stamp.as_ref(),
    )
    .await;
    // A run stopped at Committing may have sent its swap, and an attempt it gave up
    // on can still land whatever the pointer shows now: roll it forward (the same
    // body, the same If-Match) to a final answer before deciding anything. Only
    // under the lock: another run's rotation is not ours to race.
    if let (Phase::Committing, Some(pr), true) = (
        journal.phase,
        journal.prepared.as_ref(),
        acquired.is_ok() && state != PointerState::New,
    ) {
        let t = Instant::now();
        let settled = pointer::settle(vault, pr, None, opts.commit_deadline).await;
        let (ok, detail) = match &settled {
            Settled::Ours { committed: Some(_) } => (
                true,
                format!(
                    "{} → {} (If-Match) — T0: the interrupted swap, sent again",
                    pr.old_stamp, pr.new_stamp
                ),
            ),
            Settled::Ours { committed: None } => (
                true,
                format!(
                    "{} → {}: an earlier attempt of the interrupted swap had landed",
                    pr.old_stamp, pr.new_stamp
                ),
            ),
            Settled::Theirs(s) => (
                true,
                format!(
                    "the swap was answered for good: {}",
                    s.describe(&pr.old_stamp, Some(&pr.new_stamp))
                ),
            ),
            Settled::InFlight(why) => (false, format!("no final answer to the swap: {why}")),
        };
        cx.row(Step::Resume, "vault", "swap", None, ok, detail, t.elapsed());
        state = match settled {
            Settled::Ours { .. } => PointerState::New,
            Settled::Theirs(s) => s,
            Settled::InFlight(why) => PointerState::Unknown(format!(
                "a pointer swap of run {run} may still land ({why})"
            )),
        };
    }
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
            if let Ok(lock) = acquired {
                // Leave it in the resumed run's name, as it was.
                drop(lock);
            }
            cx.record(JournalEvent::Note(format!(
                "resume changed nothing: {seen}"
            )));
            let path = loaded.path.display().to_string();
            cx.next_step(format!(
                "run `vsync-orchestrate resume {path}` again once the vault can be read; every staged version was kept"
            ));
            return cx.fail(if new_stamp.is_some() {
                Failure::WindowOpen(format!("URGENT — outcome unknown: {seen}. The swap may have taken effect, so nothing was discarded and nothing was activated"))
            } else {
                Failure::Preflight(format!(
                    "{seen}; nothing was changed and every staged version was kept"
                ))
            });
        }
        PointerState::Old | PointerState::Other(_) => {
            let lock = match acquired {
                Ok(l) => l,
                Err(e @ LockError::Held { .. }) => return cx.fail(Failure::Lock(e)),
                Err(e) => {
                    return cx.fail(Failure::Lock(e).and(format!(
                        "{seen}, and nothing was changed (the staged versions stay until a resume can take the lock)"
                    )))
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
            if let Some(record) = &journal.escrow {
                for w in crate::engine::phases::escrow::withdraw(vault, record).await {
                    cx.warn(w);
                }
            }
            cx.reach(Phase::Aborted);
            cx.record(JournalEvent::Note(format!(
                "resumed: {seen}; discarded before T0"
            )));
            cx.checkpoint_or_warn();
            stage::release(&mut cx, vault, lock).await;
            if !matches!(state, PointerState::Old) {
                let e = crate::vault::RotateError::PointerConflict {
                    key: vault.key(inspected.layout.pointer_name()),
                };
                return cx.fail(Failure::Vault(e).and(format!(
                    "{seen}: someone else rotated meanwhile; this run's staged versions were discarded"
                )));
            }
            cx.next_run(new_run_id());
            return run_in(&mut cx, parts, "run").await;
        }
    }

    // T0 passed: closing the window matters more than refreshing the lock.
    let lock = match acquired {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => {
            return cx.fail(Failure::WindowOpen(format!(
                "URGENT — {seen}, but {e}; the stores may still serve the old passphrase"
            )))
        }
        Err(e) => {
            cx.warn(format!(
                "{e}; activating anyway under run {run}'s lock, since the vault already needs the new passphrase"
            ));
            Lock::assume(vault, &run, opts.lock_ttl)
        }
    };
    let keeper = Keeper::start(vault, lock, opts.lock_ttl);
    let prepared = journal
        .prepared
        .clone()
        .expect("the pointer names the new bundle, so it was prepared");
    cx.facts(VaultFacts {
        layout: Some(prepared.layout.name().into()),
        gen_before: Some(prepared.gen_before),
        gen_after: Some(prepared.gen_after),
        old_stamp: Some(prepared.old_stamp.to_string()),
        new_stamp: Some(prepared.new_stamp.to_string()),
    });
    cx.phase(
        Step::Resume,
        "the vault was swapped (T0 passed): activating what was staged",
    );
    if staged_pass.is_none() {
        staged_pass = read_staged(&mut cx, &parts, &journal).await;
    }
    match &staged_pass {
        Some(pass) if pointer::opens_with(vault, pass).await == Some(true) => {
            cx.row(
                Step::Resume,
                "staged passphrase",
                "",
                None,
                true,
                "opens the live bundle",
                Duration::ZERO,
            );
        }
        _ => cx.warn("no store's staged value could be read back and checked against the bundle (write-only stores?); activating anyway"),
    }
    if let Err(window_open) = activate::run(
        &mut cx,
        &parts.stores,
        &journal.staged,
        staged_pass.as_ref(),
        None,
    )
    .await
    {
        keeper.stop().await;
        return window_open;
    }
    let rotated_at = journal
        .rotated_at
        .clone()
        .unwrap_or_else(|| crate::vault::stamp::iso_millis(SystemTime::now()));
    cx.record(JournalEvent::RotatedAt(rotated_at.clone()));
    after_t1(
        &mut cx,
        vault,
        &parts.stores,
        &journal.staged,
        &parts.restarters,
        &prepared,
        &rotated_at,
        keeper,
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
            if !s.capabilities().read_staged {
                continue;
            }
            match s.read_staged(&e.staged).await {
                Ok(p) => return Some(p),
                Err(err) => cx.warn(format!("{}: {}", s.describe(), err.chain())),
            }
        }
    }
    None
}
