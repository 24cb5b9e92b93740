//! The runbook as one state machine: preflight → stage → rotate (T0) → activate
//! (T1) → finish (bookkeeping, restart, verify). Each [`State`] holds what the
//! phase before it handed over, and its step says where the run goes next, so a
//! phase never reaches back for what it needs. `run` enters at
//! [`State::Preflight`]; `resume` enters wherever its journal and the pointer say
//! the run stopped (`resume.rs`), and from there both are the same code.

use crate::engine::build;
use crate::engine::context::Ctx;
use crate::engine::events::Subscriber;
use crate::engine::events::{JournalEvent, Step};
use crate::engine::exit::Exit;
use crate::engine::failure::{Failure, PreflightProblem};
use crate::engine::infra::crash::crash_point;
use crate::engine::infra::interrupt;
use crate::engine::infra::journal::{Inspected, Journal, Phase, StagedEntry};
use crate::engine::infra::lock::{Keeper, Lock, LockError, Takeover};
use crate::engine::infra::retry;
use crate::engine::infra::run_id::new_run_id;
use crate::engine::options::RunOptions;
use crate::engine::phases::activate;
use crate::engine::phases::delivery;
use crate::engine::phases::escrow;
use crate::engine::phases::preflight::{self, Preflighted, Ready};
use crate::engine::phases::restart;
use crate::engine::phases::rotate;
use crate::engine::phases::stage::{self, Stop};
use crate::engine::phases::verify;
use crate::engine::summary::Summary;
use crate::plan::LoadedPlan;
use crate::vault::{Prepared, Vault};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Passphrase, Restarter, SecretStore};

/// Where the run is, with what it carries into the next step.
pub(super) enum State {
    /// Read-only checks on the plan's parts. `command` is what the header calls
    /// the run (`resume` starts a fresh `run` after discarding).
    Preflight {
        parts: build::Parts,
        command: &'static str,
    },
    /// Preflight passed: journal, lock, escrow and staging — all before T0.
    Stage(Box<Ready>),
    /// Staged under the lock: the pointer swap, T0.
    Rotate {
        r: Box<Ready>,
        staged: Vec<StagedEntry>,
        keeper: Keeper,
    },
    /// T0 passed: every store switches to what it staged.
    Activate(Box<Committed>),
    /// T1 passed: counters, audit row, restarts, verify.
    Finish(Box<Committed>),
    /// The run is over.
    Ended(Box<Summary>),
}

/// A vault that needs the new passphrase (T0 passed), and what closes the window
/// and finishes the run. Built by the swap in `run`, or by `resume` from the
/// journal once the pointer shows the swap landed.
pub(super) struct Committed {
    pub vault: Vault,
    pub stores: Vec<Arc<dyn SecretStore>>,
    pub restarters: Vec<(Arc<dyn Restarter>, Duration)>,
    pub staged: Vec<StagedEntry>,
    pub prepared: Prepared,
    pub rotated_at: String,
    pub keeper: Keeper,
    /// The new passphrase, when this process holds it (`run`, or a `resume` that
    /// read it back from a store): activation checks read-backs against it.
    pub new: Option<Passphrase>,
    /// T0 as this process measured it, for T2; `resume` has none.
    pub t0: Option<Instant>,
    /// T1, once activation answered.
    pub t1: Option<Instant>,
    /// The window as the swap left it, for activation to close and report.
    pub window: Option<activate::Window>,
    /// Signals held from the swap until every store is activated.
    pub guard: Option<interrupt::WindowGuard>,
}

/// Runs the machine from `state` until the run is over.
pub(super) async fn drive(cx: &mut Ctx<'_>, mut state: State) -> Summary {
    loop {
        state = match state {
            State::Preflight { parts, command } => preflight(cx, parts, command).await,
            State::Stage(r) => stage(cx, r).await,
            State::Rotate { r, staged, keeper } => rotate(cx, r, staged, keeper).await,
            State::Activate(c) => activate(cx, c).await,
            State::Finish(c) => State::Ended(Box::new(finish(cx, *c).await)),
            State::Ended(summary) => return *summary,
        };
    }
}

/// The summary of a command whose plan could not be turned into working parts.
pub(super) fn unbuildable(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    p: &dyn Subscriber,
    command: &str,
    e: build::BuildError,
) -> Summary {
    let mut cx = Ctx::new(loaded, opts, p, command, new_run_id());
    // Credentials that cannot be loaded are preflight's finding, with their fix.
    if e.is_unavailable() {
        cx.phase(Step::Preflight, "read-only checks");
    }
    if let Some(fix) = e.next_step() {
        cx.next_step(fix);
    }
    cx.fail(Failure::Build(e))
}

/// `run`: the whole rotation. `dry_run` stops after preflight and lists the writes.
pub async fn run(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    p: &dyn Subscriber,
    dry_run: bool,
) -> Summary {
    match build::parts(loaded).await {
        Ok(parts) => run_with(loaded, parts, opts, p, dry_run).await,
        Err(e) => unbuildable(loaded, opts, p, if dry_run { "plan" } else { "run" }, e),
    }
}

/// `run` with parts built elsewhere: tests inject in-memory stores and restarters.
pub async fn run_with(
    loaded: &LoadedPlan,
    parts: build::Parts,
    opts: &RunOptions,
    p: &dyn Subscriber,
    dry_run: bool,
) -> Summary {
    let command = if dry_run { "plan" } else { "run" };
    let mut cx = Ctx::new(loaded, opts, p, command, new_run_id());
    cx.dry_run = dry_run;
    // Preflight opens connections (SSH masters, SFTP sessions): whichever way the
    // run ends, they are closed together at the end.
    let (stores, restarters) = (parts.stores.clone(), parts.restarters.clone());
    let summary = drive(&mut cx, State::Preflight { parts, command }).await;
    close_all(&stores, &restarters).await;
    summary
}

/// Ends every adapter's connections at once: an SSH master closed on drop blocks
/// until it has exited, one host after another.
pub(super) async fn close_all(
    stores: &[Arc<dyn SecretStore>],
    restarters: &[(Arc<dyn Restarter>, Duration)],
) {
    let stores = join_all(stores.iter().map(|s| s.close()));
    let restarters = join_all(restarters.iter().map(|(r, _)| r.close()));
    tokio::join!(stores, restarters);
}

/// Preflight: read-only checks; a dry run ends here.
async fn preflight(cx: &mut Ctx<'_>, parts: build::Parts, command: &str) -> State {
    let header = format!(
        "vsync-orchestrate {command} {} — env {}, run {}",
        cx.loaded.path.display(),
        cx.loaded.plan.env,
        cx.run
    );
    cx.header(header);
    State::Ended(Box::new(match preflight::run(cx, parts).await {
        Ok(Preflighted::Ready(_)) if cx.dry_run && interrupt::requested() => cx.fail(
            Failure::Interrupted("interrupted during the dry run; nothing was written"),
        ),
        Ok(Preflighted::Ready(r)) if cx.dry_run => {
            preflight::planned_writes(cx, &r);
            delivery::plan(cx, &r.stores, &r.restarters);
            cx.end(Exit::Ok, "dry run: preflight passed; nothing was written")
        }
        Ok(Preflighted::Ready(r)) => return State::Stage(r),
        Ok(Preflighted::NotDue(why)) => cx.nothing_to_do(why),
        Err(f) => cx.fail(f),
    }))
}

/// Journal, lock, escrow copy, then every store stages the new passphrase.
async fn stage(cx: &mut Ctx<'_>, r: Box<Ready>) -> State {
    if interrupt::requested() {
        return State::Ended(Box::new(cx.fail(Failure::Interrupted(
            "interrupted before anything was written",
        ))));
    }
    if let Some(confirm) = cx.opts.confirm.clone() {
        let what = format!(
            "rotate {} now: stage on {} store(s), swap the pointer, activate, then restart {} target(s)",
            r.vault.describe(),
            r.stores.len(),
            r.restarters.len()
        );
        // The prompt blocks on a person: off the runtime's workers.
        let yes = tokio::task::spawn_blocking(move || (confirm.0)(&what))
            .await
            .unwrap_or(false);
        if !yes {
            return State::Ended(Box::new(cx.fail(Failure::Declined)));
        }
    }
    let keeper = match lock_and_journal(cx, &r).await {
        Ok(k) => k,
        Err(f) => return State::Ended(Box::new(cx.fail(f))),
    };
    if let Some(section) = cx.loaded.plan.escrow.clone() {
        if section.vault_copy {
            for w in escrow::sweep(&r.vault, &cx.opts.state_dir).await {
                cx.warn(w);
            }
        }
        if let Err(f) = escrow::write(cx, &r.vault, &r.new, &section, r.inspection.next_gen).await {
            cx.reach(Phase::Aborted);
            let lock = keeper.stop().await;
            stage::release(cx, &r.vault, lock).await;
            return State::Ended(Box::new(cx.fail(f)));
        }
    }
    let staged = match stage::run(cx, &r.stores, &r.new).await {
        Ok(staged) => staged,
        Err((staged, failure)) => {
            return stop(cx, &r, &staged, keeper, Stop::before_swap(failure)).await
        }
    };
    if let Some(f) = should_stop(&keeper, "interrupted before the vault was touched") {
        return stop(cx, &r, &staged, keeper, Stop::before_swap(f)).await;
    }
    State::Rotate { r, staged, keeper }
}

/// The new bundle uploaded and the pointer swapped: T0. Apps that boot from here
/// on need the new passphrase, so activation follows at once.
async fn rotate(
    cx: &mut Ctx<'_>,
    mut r: Box<Ready>,
    staged: Vec<StagedEntry>,
    keeper: Keeper,
) -> State {
    let new_key = r.new_key.take();
    let swapped = match rotate::run(cx, &r, new_key, &keeper).await {
        Ok(s) => s,
        Err(why) => return stop(cx, &r, &staged, keeper, why).await,
    };
    crash_point("committed");
    let Ready {
        vault,
        stores,
        restarters,
        new,
        ..
    } = *r;
    State::Activate(Box::new(Committed {
        vault,
        stores,
        restarters,
        staged,
        prepared: swapped.prepared,
        rotated_at: swapped.rotated_at,
        keeper,
        new: Some(new),
        t0: Some(swapped.t0),
        t1: None,
        window: Some(activate::Window {
            t0: swapped.t0,
            uncertain: swapped.uncertain,
            pointer_row: Some(swapped.row),
        }),
        guard: Some(swapped.window),
    }))
}

/// Every store switches staged → current: T1. A store left on the old passphrase
/// ends the run URGENT, the lock kept so nobody else rotates meanwhile.
async fn activate(cx: &mut Ctx<'_>, mut c: Box<Committed>) -> State {
    let activated = activate::run(cx, &c.stores, &c.staged, c.new.as_ref(), c.window.take()).await;
    drop(c.guard.take());
    match activated {
        Ok(t1) => {
            c.t1 = Some(t1);
            State::Finish(c)
        }
        Err(window_open) => {
            c.keeper.stop().await;
            State::Ended(Box::new(window_open))
        }
    }
}

/// Writes the first journal, then takes the vault's lock (renewed for as long as
/// the run holds it). In that order: a run killed right after its lock landed
/// leaves a journal naming it, so `resume` takes the lock over instead of finding
/// a lock nobody owns. A journal that cannot be written stops the run here.
async fn lock_and_journal(cx: &mut Ctx<'_>, r: &Ready) -> Result<Keeper, Failure> {
    let mut j = Journal::new(
        cx.run.clone(),
        cx.loaded
            .path
            .canonicalize()
            .unwrap_or_else(|_| cx.loaded.path.clone()),
        cx.loaded.plan.env.clone(),
        r.vault.describe(),
    );
    j.inspected = Some(Inspected {
        layout: r.inspection.layout,
        old_stamp: r.inspection.stamp.clone(),
        gen: r.inspection.gen,
    });
    j.phase = Phase::Staging;
    cx.open_journal(j);
    if let Err(e) = cx.checkpoint() {
        cx.drop_journal();
        return Err(Failure::Preflight(PreflightProblem::Journal {
            dir: cx.opts.state_dir.clone(),
            source: e,
        }));
    }
    let takeover = Takeover {
        run: None,
        finished: Journal::finished_runs(&cx.opts.state_dir, &r.vault.describe()),
    };
    match Lock::acquire(&r.vault, &cx.run, cx.opts.lock_ttl, &takeover).await {
        Ok(lock) => Ok(Keeper::start(&r.vault, lock, cx.opts.lock_ttl)),
        Err(e) => {
            let mut ours_left = false;
            if let Some(r) = e.remedy() {
                cx.next_step(r);
            }
            if !matches!(e, LockError::Held { .. } | LockError::Unparsable { .. }) {
                if let Err(left) = Lock::release_if_ours(&r.vault, &cx.run).await {
                    cx.warn(left.to_string());
                    cx.next_step(format!("remove the lock by hand: {}", left.remove));
                    ours_left = true;
                }
            }
            if !ours_left {
                // Nothing was written under this run: its journal is closed, and
                // `resume` will not pick it up.
                cx.reach(Phase::Aborted);
                cx.checkpoint_or_warn();
            }
            cx.drop_journal();
            Err(Failure::Lock(e))
        }
    }
}

/// A signal or a lost lock, checked between phases.
fn should_stop(keeper: &Keeper, when: &'static str) -> Option<Failure> {
    if interrupt::requested() {
        return Some(Failure::Interrupted(when));
    }
    keeper.lost().map(Failure::LockLost)
}

/// Stops before T0 (see `stage::stop_before_t0`).
async fn stop(
    cx: &mut Ctx<'_>,
    r: &Ready,
    staged: &[StagedEntry],
    keeper: Keeper,
    why: Stop,
) -> State {
    let lock = keeper.stop().await;
    State::Ended(Box::new(
        stage::stop_before_t0(cx, &r.vault, &r.stores, staged, &r.new, lock, why).await,
    ))
}

/// After T1: tidy, bookkeeping, restart, verify. Every store already serves the
/// new passphrase, so a signal or a lost lock stops the run where it is and
/// `resume` finishes.
async fn finish(cx: &mut Ctx<'_>, c: Committed) -> Summary {
    let Committed {
        vault,
        stores,
        restarters,
        staged,
        prepared,
        rotated_at,
        keeper,
        t0,
        t1,
        ..
    } = c;
    let (vault, stores, restarters, staged, prepared, rotated_at) = (
        &vault,
        &stores[..],
        &restarters[..],
        &staged[..],
        &prepared,
        &rotated_at,
    );
    if let Some(f) = should_stop(&keeper, "interrupted after every store was activated") {
        return stopped_after_t1(cx, keeper, f).await;
    }
    // Apps report their generation from the counter cells, so those are written
    // first (one concurrent round trip); then the rollouts start, and tidying the
    // stores and appending the audit row happen while the apps restart instead of
    // delaying T2. Both are reported once the rollouts are done.
    let spec = verify::audit_spec(cx);
    let t = Instant::now();
    let counter_errors = vault
        .write_counters(prepared.gen_before, prepared.gen_after, rotated_at)
        .await;
    let audit = async {
        let a = vault
            .append_audit(
                prepared.gen_before,
                prepared.gen_after,
                &prepared.new_stamp,
                spec.as_ref(),
            )
            .await;
        (a, t.elapsed())
    };
    let restart = async {
        let ended = restart::all(cx, restarters, staged, t0).await;
        (ended, Instant::now())
    };
    let (((ended, delivered), restarted_at), tidied, ((audit, audit_row), took)) =
        tokio::join!(restart, tidy(stores, staged), audit);
    for w in tidied {
        cx.warn(w);
    }
    let finished = crate::vault::Finished {
        gen_after: prepared.gen_after,
        audit_row,
        audit,
        counter_errors,
    };
    let mut exit = verify::report_bookkeeping(cx, prepared.gen_before, finished, took);
    match ended {
        restart::Ended::Interrupted => {
            let f = Failure::Interrupted("interrupted while waiting for rollouts");
            return stopped_after_t1(cx, keeper, f).await;
        }
        restart::Ended::SomeFailed => exit = exit.most_urgent(Exit::RestartFailed),
        restart::Ended::AllDone => {}
    }
    let delivered_by_restart =
        (ended == restart::Ended::AllDone && !restarters.is_empty()).then_some(restarted_at);
    delivery::report(
        cx,
        stores,
        staged,
        (t0, t1),
        delivered_by_restart,
        &delivered,
    );
    crash_point("restarted");
    match verify::verify(
        cx,
        vault,
        prepared.gen_after,
        &prepared.new_stamp,
        exit == Exit::AuditFailed,
    )
    .await
    {
        verify::Verified::Interrupted => {
            let f = Failure::Interrupted("interrupted while verifying");
            return stopped_after_t1(cx, keeper, f).await;
        }
        verify::Verified::Stragglers => exit = exit.most_urgent(Exit::VerifyFailed),
        verify::Verified::Ok => {}
    }
    cx.reach(Phase::Done);
    let lock = keeper.stop().await;
    stage::release(cx, vault, lock).await;
    if exit == Exit::Ok {
        cx.next_step("update VSYNC_PASSPHRASE wherever else it is deployed by hand, and every vsync CLI user's keychain value (re-export/import a share)");
    }
    cx.end(exit, String::new())
}

/// A signal or a lost lock after T1: the window is closed; the journal says what
/// is left for `resume`.
async fn stopped_after_t1(cx: &mut Ctx<'_>, keeper: Keeper, why: Failure) -> Summary {
    keeper.stop().await;
    cx.record(JournalEvent::Note(format!(
        "stopped after T1: {}",
        why.message()
    )));
    let path = cx.loaded.path.display().to_string();
    cx.next_step(format!(
        "`vsync-orchestrate resume {path}` finishes the run (bookkeeping, restart, verify); it takes over this run's lock"
    ));
    cx.fail(why.and(
        "every store already serves the new passphrase (the window is closed); `resume` finishes restart and verify",
    ))
}

/// Post-window housekeeping on every store, concurrently; failures come back as
/// warnings.
async fn tidy(stores: &[Arc<dyn SecretStore>], staged: &[StagedEntry]) -> Vec<String> {
    let results = join_all(staged.iter().filter_map(|e| {
        stores.get(e.slot).map(|s| async move {
            let res = retry::idempotent(retry::STEADY, || s.tidy(&e.staged)).await;
            (s.describe(), res)
        })
    }))
    .await;
    results
        .into_iter()
        .filter_map(|(t, r)| {
            r.err()
                .map(|e| format!("{t}: tidying after activation failed: {}", e.chain()))
        })
        .collect()
}
