//! The runbook as code: preflight → stage → rotate → activate → restart → verify,
//! phase after phase, and the way each stops. `resume` enters it after T1
//! (`after_t1`) or starts a fresh run in its own output (`run_in`).

use crate::engine::build;
use crate::engine::context::Ctx;
use crate::engine::events::JournalEvent;
use crate::engine::events::Subscriber;
use crate::engine::exit::Exit;
use crate::engine::failure::Failure;
use crate::engine::infra::crash::crash_point;
use crate::engine::infra::interrupt;
use crate::engine::infra::journal::{Inspected, Journal, Phase, StagedEntry};
use crate::engine::infra::lock::{Keeper, Lock, LockError, Takeover};
use crate::engine::infra::retry;
use crate::engine::infra::run_id::new_run_id;
use crate::engine::options::RunOptions;
use crate::engine::phases::activate;
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
use vsync_orchestrate_api::{Restarter, SecretStore};

/// The summary of a command whose plan could not be turned into working parts.
pub(super) fn unbuildable(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    p: &dyn Subscriber,
    command: &str,
    e: build::BuildError,
) -> Summary {
    let mut cx = Ctx::new(loaded, opts, p, command, new_run_id());
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
    run_in(&mut cx, parts, command).await
}

/// A run in an existing context: `resume` continues its own output with the
/// fresh run it starts after discarding, so one summary holds both.
pub(super) async fn run_in(cx: &mut Ctx<'_>, parts: build::Parts, command: &str) -> Summary {
    let header = format!(
        "vsync-orchestrate {command} {} — env {}, run {}",
        cx.loaded.path.display(),
        cx.loaded.plan.env,
        cx.run
    );
    cx.header(header);
    // Preflight already opened connections (SSH masters, SFTP sessions): whichever
    // way the run ends, they are closed together at the end.
    let (stores, restarters) = (parts.stores.clone(), parts.restarters.clone());
    let summary = match preflight::run(cx, parts).await {
        Ok(Preflighted::Ready(_)) if cx.dry_run && interrupt::requested() => cx.fail(
            Failure::Interrupted("interrupted during the dry run; nothing was written".into()),
        ),
        Ok(Preflighted::Ready(r)) if cx.dry_run => {
            preflight::planned_writes(cx, &r);
            cx.end(Exit::Ok, "dry run: preflight passed; nothing was written")
        }
        Ok(Preflighted::Ready(r)) => runbook(cx, *r).await,
        Ok(Preflighted::NotDue(why)) => cx.nothing_to_do(why),
        Err(f) => cx.fail(f),
    };
    close_all(&stores, &restarters).await;
    summary
}

/// The README's phase table, as code: lock, stage, rotate (T0), activate (T1),
/// then restart and verify.
async fn runbook(cx: &mut Ctx<'_>, mut r: Ready) -> Summary {
    if interrupt::requested() {
        return cx.fail(Failure::Interrupted(
            "interrupted before anything was written".into(),
        ));
    }
    let keeper = match lock_and_journal(cx, &r).await {
        Ok(k) => k,
        Err(f) => return cx.fail(f),
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
            return cx.fail(f);
        }
    }
    let new_key = r.new_key.take();
    let staged = match stage::run(cx, &r.stores, &r.new).await {
        Ok(staged) => staged,
        Err((staged, failure)) => {
            return stop(cx, &r, &staged, keeper, Stop::before_swap(failure)).await
        }
    };
    if let Some(f) = should_stop(&keeper, "before the vault was touched") {
        return stop(cx, &r, &staged, keeper, Stop::before_swap(f)).await;
    }
    let swapped = match rotate::run(cx, &r, new_key, &keeper).await {
        Ok(s) => s,
        Err(why) => return stop(cx, &r, &staged, keeper, why).await,
    };
    // ---- T0: apps that boot now need the new passphrase. Activate at once. ----
    crash_point("committed");
    let window = activate::Window {
        t0: swapped.t0,
        uncertain: swapped.uncertain,
        pointer_row: Some(swapped.row.clone()),
    };
    let activated = activate::run(cx, &r.stores, &staged, Some(&r.new), Some(window)).await;
    drop(swapped.window);
    if let Err(window_open) = activated {
        // Keep the lock: nobody else may rotate while the window is open.
        keeper.stop().await;
        return window_open;
    }
    after_t1(
        cx,
        &r.vault,
        &r.stores,
        &staged,
        &r.restarters,
        &swapped.prepared,
        &swapped.rotated_at,
        keeper,
        Some(swapped.t0),
    )
    .await
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
        return Err(Failure::Preflight(format!(
            "cannot write the journal in {} ({e}); nothing was written. Fix the state directory (--state-dir) and run again",
            cx.opts.state_dir.display()
        )));
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
fn should_stop(keeper: &Keeper, when: &str) -> Option<Failure> {
    if interrupt::requested() {
        return Some(Failure::Interrupted(format!("interrupted {when}")));
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
) -> Summary {
    let lock = keeper.stop().await;
    stage::stop_before_t0(cx, &r.vault, &r.stores, staged, &r.new, lock, why).await
}

/// After T1 (from `run` and from `resume`): tidy, bookkeeping, restart, verify.
/// Every store already serves the new passphrase, so a signal or a lost lock stops
/// the run where it is and `resume` finishes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_t1(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    restarters: &[(Arc<dyn Restarter>, Duration)],
    prepared: &Prepared,
    rotated_at: &str,
    keeper: Keeper,
    t0: Option<Instant>,
) -> Summary {
    if let Some(f) = should_stop(&keeper, "after every store was activated") {
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
    let (ended, tidied, ((audit, audit_row), took)) = tokio::join!(
        restart::all(cx, restarters, staged, t0),
        tidy(stores, staged),
        audit
    );
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
            let f = Failure::Interrupted("interrupted while waiting for rollouts".into());
            return stopped_after_t1(cx, keeper, f).await;
        }
        restart::Ended::SomeFailed => exit = exit.most_urgent(Exit::RestartFailed),
        restart::Ended::AllDone => {}
    }
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
            let f = Failure::Interrupted("interrupted while verifying".into());
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
