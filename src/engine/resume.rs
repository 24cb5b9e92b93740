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
//!
//! What resume decides is where the runbook's state machine picks the run up
//! ([`entry`]): a fresh `Preflight` after discarding, `Activate` once T0 is known
//! to have passed, or the end when nothing can be decided.

use crate::engine::build;
use crate::engine::context::Ctx;
use crate::engine::events::Subscriber;
use crate::engine::events::{JournalEvent, Step, VaultFacts};
use crate::engine::failure::{Failure, InputProblem, PlanChanged, PreflightProblem, WindowOpen};
use crate::engine::infra::journal::Inspected;
use crate::engine::infra::journal::{Journal, Phase};
use crate::engine::infra::lock::{Keeper, Lock, LockError, Takeover};
use crate::engine::infra::pointer::{self, PointerState, Settled};
use crate::engine::infra::run_id::new_run_id;
use crate::engine::options::RunOptions;
use crate::engine::phases::stage;
use crate::engine::runbook::{close_all, drive, unbuildable, Committed, State};
use crate::engine::summary::Summary;
use crate::plan::LoadedPlan;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::{Passphrase, Target};

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
    let vault = parts.vault.describe();
    let found = Journal::find_unfinished(&opts.state_dir, &vault);
    let run = found
        .as_ref()
        .map(|(_, j)| j.run_id.clone())
        .unwrap_or_else(new_run_id);
    let mut cx = Ctx::new(loaded, opts, p, "resume", run.clone());
    cx.vault(vault.clone());
    let summary = match found {
        None => {
            cx.note(format!("nothing to resume for {vault}"));
            cx.nothing_to_do("nothing to resume: no unfinished run for this vault")
        }
        Some((_, journal)) => {
            cx.header(format!(
                "vsync-orchestrate resume {} — run {run} stopped at phase {:?}",
                loaded.path.display(),
                journal.phase
            ));
            let state = entry(&mut cx, parts, journal).await;
            drive(&mut cx, state).await
        }
    };
    close_all(&stores, &restarters).await;
    summary
}

/// Where the runbook picks the journaled run up. Only the pointer says whether T0
/// passed; the journal's phase says whether a swap may still be in flight.
async fn entry(cx: &mut Ctx<'_>, parts: build::Parts, journal: Journal) -> State {
    let run = journal.run_id.clone();
    if let Err(f) = same_plan(&parts, &journal) {
        return State::Ended(Box::new(cx.fail(f)));
    }
    cx.open_journal(journal.clone());

    let opts = cx.opts;
    let vault = &parts.vault;
    let takeover = Takeover {
        run: Some(run.clone()),
        finished: Journal::finished_runs(&opts.state_dir, &vault.describe()),
    };
    let acquired = Lock::acquire(vault, &run, opts.lock_ttl, &takeover).await;
    let Some(inspected) = journal.inspected.clone() else {
        return before_staging(cx, parts, acquired).await;
    };
    let new_stamp = journal.prepared.as_ref().map(|pr| pr.new_stamp.clone());
    let t = Instant::now();
    let mut state = locate(cx, &parts, &journal, &inspected, acquired.is_ok()).await;
    // A pointer naming neither bundle after a swap may have been sent: the staged
    // passphrase is still needed if it opens what the vault serves now.
    let mut staged_pass: Option<Passphrase> = None;
    if let (PointerState::Other(_), Some(_)) = (&state, &new_stamp) {
        staged_pass = read_staged(cx, &parts, &journal).await;
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
        PointerState::New => committed(cx, parts, journal, acquired, staged_pass, &seen).await,
        PointerState::Unknown(_) => {
            State::Ended(Box::new(unknown(cx, acquired, new_stamp.is_some(), &seen)))
        }
        PointerState::Old | PointerState::Other(_) => {
            let someone_else = !matches!(state, PointerState::Old);
            discard(
                cx,
                parts,
                journal,
                &inspected,
                acquired,
                someone_else,
                &seen,
            )
            .await
        }
    }
}

/// The plan must still name, at each journaled position, what the run used.
fn same_plan(parts: &build::Parts, journal: &Journal) -> Result<(), Failure> {
    let changed = |table: &'static str, slot: usize, was: &Target, now: Option<Target>| {
        Failure::Input(InputProblem::PlanChanged(Box::new(PlanChanged {
            run: journal.run_id.to_string(),
            table,
            slot,
            was: was.clone(),
            now: now.map(|t| t.to_string()),
            plan: journal.plan.clone(),
        })))
    };
    for e in &journal.staged {
        let now = parts.stores.get(e.slot).map(|s| s.describe());
        if now.as_ref() != Some(&e.staged.target) {
            return Err(changed("store", e.slot, &e.staged.target, now));
        }
    }
    for e in &journal.rollouts {
        let now = parts.restarters.get(e.slot).map(|(r, _)| r.describe());
        if now.as_ref() != Some(&e.rollout.target) {
            return Err(changed("restart", e.slot, &e.rollout.target, now));
        }
    }
    Ok(())
}

/// Stopped before it recorded what it read: nothing was staged, so the run is
/// closed and a fresh one starts.
async fn before_staging(
    cx: &mut Ctx<'_>,
    parts: build::Parts,
    acquired: Result<Lock, LockError>,
) -> State {
    let lock = match acquired {
        Ok(l) => l,
        Err(e) => return State::Ended(Box::new(cx.fail(Failure::Lock(e)))),
    };
    cx.reach(Phase::Aborted);
    cx.record(JournalEvent::Note("resumed: stopped before staging".into()));
    stage::release(cx, &parts.vault, lock).await;
    cx.checkpoint_or_warn();
    cx.next_run(new_run_id());
    State::Preflight {
        parts,
        command: "run",
    }
}

/// Where the pointer is: always read, never taken from the journal's phase. A run
/// stopped at Committing may have sent its swap, and an attempt it gave up on can
/// still land whatever the pointer shows now: under the lock, the same swap (the
/// same body, the same If-Match) is rolled forward to a final answer first.
/// Another run's rotation is not ours to race.
async fn locate(
    cx: &mut Ctx<'_>,
    parts: &build::Parts,
    journal: &Journal,
    inspected: &Inspected,
    locked: bool,
) -> PointerState {
    let vault = &parts.vault;
    let new_stamp = journal.prepared.as_ref().map(|pr| pr.new_stamp.clone());
    let state = pointer::read(
        vault,
        inspected.layout,
        &inspected.old_stamp,
        new_stamp.as_ref(),
    )
    .await;
    let (Phase::Committing, Some(pr), true) = (
        journal.phase,
        journal.prepared.as_ref(),
        locked && state != PointerState::New,
    ) else {
        return state;
    };
    let t = Instant::now();
    let settled = pointer::settle(vault, pr, None, cx.opts.commit_deadline).await;
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
    match settled {
        Settled::Ours { .. } => PointerState::New,
        Settled::Theirs(s) => s,
        Settled::InFlight(why) => PointerState::Unknown(format!(
            "a pointer swap of run {} may still land ({why})",
            journal.run_id
        )),
    }
}

/// The pointer could not be read (or a swap may still land): nothing changes.
fn unknown(
    cx: &mut Ctx<'_>,
    acquired: Result<Lock, LockError>,
    swap_prepared: bool,
    seen: &str,
) -> Summary {
    if let Ok(lock) = acquired {
        // Leave it in the resumed run's name, as it was.
        drop(lock);
    }
    cx.record(JournalEvent::Note(format!(
        "resume changed nothing: {seen}"
    )));
    let path = cx.loaded.path.display().to_string();
    cx.next_step(format!(
        "run `vsync-orchestrate resume {path}` again once the vault can be read; every staged version was kept"
    ));
    cx.fail(if swap_prepared {
        Failure::WindowOpen(WindowOpen::PointerUnknown { seen: seen.into() })
    } else {
        Failure::Preflight(PreflightProblem::PointerUnknown { seen: seen.into() })
    })
}

/// The vault does not need the new passphrase: undo what was staged, then start
/// over — unless someone else rotated meanwhile, which ends it.
async fn discard(
    cx: &mut Ctx<'_>,
    parts: build::Parts,
    journal: Journal,
    inspected: &Inspected,
    acquired: Result<Lock, LockError>,
    someone_else: bool,
    seen: &str,
) -> State {
    let vault = &parts.vault;
    let lock = match acquired {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => return State::Ended(Box::new(cx.fail(Failure::Lock(e)))),
        Err(e) => {
            return State::Ended(Box::new(cx.fail(Failure::Lock(e).and(format!(
                "{seen}, and nothing was changed (the staged versions stay until a resume can take the lock)"
            )))))
        }
    };
    cx.phase(
        Step::Resume,
        "the vault was never swapped to this run's bundle: discarding what was staged, then starting over",
    );
    stage::discard(cx, &parts.stores, &journal.staged).await;
    // A crash mid-stage can leave versions the journal never recorded; the
    // pointer names a bundle their passphrase does not open.
    stage::clean_stale(cx, &parts.stores).await;
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
    stage::release(cx, vault, lock).await;
    if someone_else {
        let e = crate::vault::RotateError::PointerConflict {
            key: vault.key(inspected.layout.pointer_name()),
        };
        return State::Ended(Box::new(cx.fail(Failure::Vault(e).and(format!(
            "{seen}: someone else rotated meanwhile; this run's staged versions were discarded"
        )))));
    }
    cx.next_run(new_run_id());
    State::Preflight {
        parts,
        command: "run",
    }
}

/// T0 passed: activate what was staged, then finish. Closing the window matters
/// more than refreshing the lock.
async fn committed(
    cx: &mut Ctx<'_>,
    parts: build::Parts,
    journal: Journal,
    acquired: Result<Lock, LockError>,
    mut staged_pass: Option<Passphrase>,
    seen: &str,
) -> State {
    let run = journal.run_id.clone();
    let vault = &parts.vault;
    let lock = match acquired {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => {
            return State::Ended(Box::new(cx.fail(Failure::WindowOpen(
                WindowOpen::LockHeld {
                    seen: seen.into(),
                    lock: e,
                },
            ))))
        }
        Err(e) => {
            cx.warn(format!(
                "{e}; activating anyway under run {run}'s lock, since the vault already needs the new passphrase"
            ));
            Lock::assume(vault, &run, cx.opts.lock_ttl)
        }
    };
    let keeper = Keeper::start(vault, lock, cx.opts.lock_ttl);
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
        staged_pass = read_staged(cx, &parts, &journal).await;
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
    let rotated_at = journal
        .rotated_at
        .clone()
        .unwrap_or_else(|| crate::vault::stamp::iso_millis(SystemTime::now()));
    cx.record(JournalEvent::RotatedAt(rotated_at.clone()));
    let build::Parts {
        vault,
        stores,
        restarters,
        ..
    } = parts;
    State::Activate(Box::new(Committed {
        vault,
        stores,
        restarters,
        staged: journal.staged,
        prepared,
        rotated_at,
        keeper,
        new: staged_pass,
        t0: None,
        t1: None,
        window: None,
        guard: None,
    }))
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
