//! The runbook as code: preflight → stage → rotate → activate → restart → verify.
//!
//! The engine never names a cloud: it drives `SecretStore`s and `Restarter`s, the
//! vault, a journal and a lock. What it optimises is the window between the
//! pointer swap (T0) and the last store's activation (T1): everything slow (key
//! derivation, uploads, connection set-up) happens before T0, and activation is
//! one concurrent round of already-warm requests.
//!
//! What it never does is guess. A write whose answer was lost may have happened,
//! so before anything staged is thrown away the pointer is read, and only a read
//! that shows the vault does not need the new passphrase allows it (`stage.rs`,
//! `pointer.rs`). Every step is journaled before it is taken, so `resume` (in
//! `resume.rs`) can finish from wherever a crash or a signal stopped the run.

mod activate;
pub mod build;
#[cfg(feature = "aws")]
mod context;
pub mod exit;
pub mod health;
pub mod interrupt;
pub mod journal;
pub mod lock;
mod pointer;
mod preflight;
mod restart;
mod resume;
pub mod secrets;
mod stage;
mod verify;

use crate::plan::LoadedPlan;
use crate::report::{ms, Progress, Summary};
use crate::vault::{Prepared, Vault};
use context::{Ctx, Step};
pub use exit::Exit;
use futures_util::future::join_all;
use journal::{Inspected, Journal, Phase, StagedEntry};
use lock::{Lock, LockError, Takeover};
use pointer::PointerState;
use preflight::Ready;
pub use resume::{resume, resume_with};
use stage::Stop;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::{Restarter, RunId, SecretStore};

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
}

impl RunOptions {
    pub fn new(state_dir: PathBuf) -> Self {
        RunOptions {
            yes: false,
            state_dir,
            force: false,
            lock_ttl: Duration::from_secs(3600),
            clean_stale: false,
        }
    }
}

/// Fault injection for the crash tests: `VSYNC_ORCHESTRATE_CRASH_AT=<point>` ends
/// the process abruptly right after the journal records that point (`staged`,
/// `committing`: bundle uploaded and swap about to be sent, `committed`,
/// `activated`, `restarting`: a rollout started and its wait not finished,
/// `restarted`), the way a kill -9 would.
fn crash_point(point: &str) {
    static WANT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(want) = WANT.get_or_init(|| std::env::var("VSYNC_ORCHESTRATE_CRASH_AT").ok()) {
        if want == point {
            eprintln!("VSYNC_ORCHESTRATE_CRASH_AT={want}: crashing on purpose");
            std::process::abort();
        }
    }
}

pub fn new_run_id() -> RunId {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut r = [0u8; 3];
    getrandom::fill(&mut r).expect("OS random source");
    RunId(format!(
        "{}-{}",
        compact,
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The summary of a command whose plan could not be turned into working parts.
fn unbuildable(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    p: &Progress,
    command: &str,
    e: build::BuildError,
) -> Summary {
    let mut cx = Ctx::new(loaded, opts, p, command, new_run_id());
    cx.end(Exit::BadInput, e.0)
}

/// `run`: the whole rotation. `dry_run` stops after preflight and lists the writes.
pub async fn run(loaded: &LoadedPlan, opts: &RunOptions, p: &Progress, dry_run: bool) -> Summary {
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
    p: &Progress,
    dry_run: bool,
) -> Summary {
    let command = if dry_run { "plan" } else { "run" };
    let mut cx = Ctx::new(loaded, opts, p, command, new_run_id());
    cx.dry_run = dry_run;
    p.line(format!(
        "vsync-orchestrate {command} {} — env {}, run {}",
        loaded.path.display(),
        loaded.plan.env,
        cx.run
    ));
    let ready = match preflight::run(&mut cx, parts).await {
        Ok(Some(r)) => r,
        Ok(None) => return std::mem::take(&mut cx.s),
        Err((exit, why)) => return cx.end(exit, why),
    };
    if dry_run {
        preflight::planned_writes(&mut cx, &ready);
        return cx.end(Exit::Ok, "dry run: preflight passed; nothing was written");
    }
    runbook(&mut cx, ready).await
}

/// Lock, stage, rotate, activate, then everything after T1.
async fn runbook(cx: &mut Ctx<'_>, r: Ready) -> Summary {
    if interrupt::requested() {
        return cx.end(Exit::Interrupted, "interrupted before anything was written");
    }
    let takeover = Takeover {
        run: None,
        finished: Journal::finished_runs(&cx.opts.state_dir, &r.vault.describe()),
    };
    let lock = match Lock::acquire(&r.vault, &cx.run, cx.opts.lock_ttl, &takeover).await {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => return cx.end(Exit::LockHeld, e.to_string()),
        Err(e) => {
            if let Err(left) = Lock::release_if_ours(&r.vault, &cx.run).await {
                cx.warn(left.to_string());
                cx.next_step(format!("remove the lock by hand: {}", left.remove));
            }
            return cx.end(Exit::PreflightFailed, e.to_string());
        }
    };
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
    cx.journal = Some(j);
    // Nothing may be written that `resume` would not know about.
    if let Err(e) = cx.save() {
        cx.journal = None;
        stage::release(cx, &r.vault, lock).await;
        return cx.end(
            Exit::PreflightFailed,
            format!(
                "cannot write the journal in {} ({e}); nothing was written. Fix the state directory (--state-dir) and run again",
                cx.opts.state_dir.display()
            ),
        );
    }

    // Stage.
    let began = Instant::now();
    cx.phase(
        Step::Stage,
        &format!(
            "new passphrase to {} store(s), not yet visible to apps",
            r.stores.len()
        ),
    );
    let (staged, failed) = stage::all(cx, &r.stores, &r.new).await;
    cx.journal().staged = staged.clone();
    cx.journal().phase = Phase::Staged;
    let saved = cx.save();
    crash_point("staged");
    cx.phase_done(Step::Stage, began);
    let stop = if !failed.is_empty() {
        Some(Stop {
            exit: Exit::StageFailed,
            why: format!("stage failed ({})", failed.join("; ")),
            swap_sent: false,
            new_stamp: None,
        })
    } else if let Err(e) = saved {
        Some(Stop {
            exit: Exit::StageFailed,
            why: format!("cannot write the journal after staging ({e})"),
            swap_sent: false,
            new_stamp: None,
        })
    } else if interrupt::requested() {
        Some(Stop {
            exit: Exit::Interrupted,
            why: "interrupted before the vault was touched".into(),
            swap_sent: false,
            new_stamp: None,
        })
    } else {
        None
    };
    if let Some(stop) = stop {
        return stage::stop_before_t0(cx, &r.vault, &r.stores, &staged, &r.new, lock, stop).await;
    }

    // Rotate: everything slow happens before the swap.
    let began = Instant::now();
    cx.phase(
        Step::Rotate,
        "re-encrypt under the new passphrase, upload, swap the pointer",
    );
    let t = Instant::now();
    let prepared = match r.vault.prepare(&r.inspection, &r.new).await {
        Ok(pr) => pr,
        Err(e) => {
            cx.row(
                Step::Rotate,
                "bundle",
                "",
                None,
                false,
                e.to_string(),
                t.elapsed(),
            );
            let stop = Stop {
                exit: Exit::from_rotate_code(e.exit_code()),
                why: e.to_string(),
                swap_sent: false,
                new_stamp: None,
            };
            return stage::stop_before_t0(cx, &r.vault, &r.stores, &staged, &r.new, lock, stop)
                .await;
        }
    };
    cx.row(
        Step::Rotate,
        "bundle",
        "",
        None,
        true,
        format!("{} uploaded (If-None-Match: *)", prepared.bundle_key),
        t.elapsed(),
    );
    cx.journal().prepared = Some(prepared.clone());
    cx.journal().phase = Phase::Committing;
    let saved = cx.save();
    crash_point("committing");
    let stop = match saved {
        Err(e) => Some(format!(
            "cannot write the journal before the pointer swap ({e})"
        )),
        Ok(()) if interrupt::requested() => Some("interrupted before the pointer swap".into()),
        Ok(()) => None,
    };
    if let Some(why) = stop {
        let stop = Stop {
            exit: if interrupt::requested() {
                Exit::Interrupted
            } else {
                Exit::StageFailed
            },
            why,
            swap_sent: false,
            new_stamp: Some(prepared.new_stamp.clone()),
        };
        return stage::stop_before_t0(cx, &r.vault, &r.stores, &staged, &r.new, lock, stop).await;
    }

    // T0 → T1: signals are held until every store is switched.
    let window = interrupt::enter_window();
    let t = Instant::now();
    let (t0, rotated_at, uncertain) = match r.vault.commit(&prepared).await {
        Ok(c) => {
            cx.row(
                Step::Rotate,
                "pointer",
                "",
                None,
                true,
                format!(
                    "{} → {} (If-Match) — T0",
                    prepared.old_stamp, prepared.new_stamp
                ),
                c.t0.duration_since(t),
            );
            (c.t0, c.rotated_at, false)
        }
        Err(e) => {
            // The answer may be lost, not the write: read before deciding.
            let state = pointer::read(
                &r.vault,
                prepared.layout,
                &prepared.old_stamp,
                Some(&prepared.new_stamp),
            )
            .await;
            if state != PointerState::New {
                drop(window);
                cx.row(
                    Step::Rotate,
                    "pointer",
                    "",
                    None,
                    false,
                    e.to_string(),
                    t.elapsed(),
                );
                let stop = Stop {
                    exit: Exit::from_rotate_code(e.exit_code()),
                    why: e.to_string(),
                    swap_sent: true,
                    new_stamp: Some(prepared.new_stamp.clone()),
                };
                return stage::stop_before_t0(cx, &r.vault, &r.stores, &staged, &r.new, lock, stop)
                    .await;
            }
            cx.row(
                Step::Rotate,
                "pointer",
                "",
                None,
                true,
                format!(
                    "{} → {} — T0 (the swap's answer was lost: {e}; reading the pointer shows it took effect)",
                    prepared.old_stamp, prepared.new_stamp
                ),
                t.elapsed(),
            );
            (t, crate::vault::stamp::iso_millis(SystemTime::now()), true)
        }
    };
    // ---- T0: apps that boot now need the new passphrase. Activate at once. ----
    crash_point("committed");
    let results = activate::all(&r.stores, &staged, &[], Some(&r.new)).await;
    let t1 = Instant::now();
    drop(window);
    cx.s.phases_ms
        .insert(Step::Rotate.as_str().into(), ms(t0.duration_since(began)));
    cx.s.new_stamp = Some(prepared.new_stamp.to_string());
    cx.s.gen_after = Some(prepared.gen_after);
    cx.journal().rotated_at = Some(rotated_at.clone());
    let window = t1.duration_since(t0);
    if let Some(summary) = activated(cx, results, &r.stores, &staged, Some((window, uncertain))) {
        // Keep the lock: nobody else may rotate while the window is open.
        drop(lock);
        return summary;
    }
    after_t1(
        cx,
        &r.vault,
        &r.stores,
        &staged,
        &r.restarters,
        &prepared,
        &rotated_at,
        lock,
        Some(t0),
    )
    .await
}

/// Reports an activation round. `Some(summary)`: the run ends here (the window is
/// still open for a store).
fn activated(
    cx: &mut Ctx<'_>,
    results: Vec<activate::Activated>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    window: Option<(Duration, bool)>,
) -> Option<Summary> {
    cx.phase(
        Step::Activate,
        &format!("{} store(s): staged → current", results.len()),
    );
    let open = activate::report(cx, results, stores, staged);
    cx.journal().phase = if open.is_empty() {
        Phase::Activated
    } else {
        Phase::Committed
    };
    cx.save_or_warn();
    if open.is_empty() {
        crash_point("activated");
    }
    if !open.is_empty() {
        let why = activate::window_open(cx, &open);
        return Some(cx.end(Exit::WindowOpen, why));
    }
    if let Some((w, uncertain)) = window {
        activate::window_line(cx, w, uncertain);
        cx.s.window_ms = Some(ms(w));
        cx.s.phases_ms.insert(Step::Activate.as_str().into(), ms(w));
    }
    None
}

/// The most urgent of two outcomes wins: 14, then 15, 16, 4.
fn worst(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::WindowOpen => 0,
        Exit::RestartFailed => 1,
        Exit::VerifyFailed => 2,
        Exit::AuditFailed => 3,
        _ => 4,
    };
    if rank(b) < rank(a) {
        b
    } else {
        a
    }
}

/// After T1 (from `run` and from `resume`): tidy, bookkeeping, restart, verify.
#[allow(clippy::too_many_arguments)]
async fn after_t1(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    restarters: &[(Arc<dyn Restarter>, Duration)],
    prepared: &Prepared,
    rotated_at: &str,
    lock: Lock,
    t0: Option<Instant>,
) -> Summary {
    if interrupt::requested() {
        return interrupted_after_t1(cx);
    }
    tidy(cx, stores, staged).await;
    let mut exit = verify::bookkeeping(
        cx,
        vault,
        prepared.gen_before,
        prepared.gen_after,
        &prepared.new_stamp,
        rotated_at,
    )
    .await;
    if interrupt::requested() {
        return interrupted_after_t1(cx);
    }
    match restart::all(cx, restarters, staged, t0).await {
        restart::Ended::Interrupted => return interrupted_after_t1(cx),
        restart::Ended::SomeFailed => exit = worst(exit, Exit::RestartFailed),
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
        verify::Verified::Interrupted => return interrupted_after_t1(cx),
        verify::Verified::Stragglers => exit = worst(exit, Exit::VerifyFailed),
        verify::Verified::Ok => {}
    }
    cx.journal().phase = Phase::Done;
    stage::release(cx, vault, lock).await;
    if exit == Exit::Ok {
        cx.next_step("update VSYNC_PASSPHRASE wherever else it is deployed by hand, and every vsync CLI user's keychain value (re-export/import a share)");
    }
    cx.end(exit, String::new())
}

/// A signal after T1: the window is closed; the journal says what is left.
fn interrupted_after_t1(cx: &mut Ctx<'_>) -> Summary {
    cx.journal()
        .notes
        .push("interrupted after T1: every store serves the new passphrase".into());
    cx.next_step(format!(
        "`vsync-orchestrate resume {}` finishes the run (bookkeeping, restart, verify); it takes over this run's lock",
        cx.loaded.path.display()
    ));
    cx.end(
        Exit::Interrupted,
        "interrupted after every store was activated (the window is closed); `resume` finishes restart and verify",
    )
}

/// Post-window housekeeping on every store, concurrently; failures are warnings.
async fn tidy(cx: &mut Ctx<'_>, stores: &[Arc<dyn SecretStore>], staged: &[StagedEntry]) {
    let results = join_all(staged.iter().filter_map(|e| {
        stores
            .get(e.slot)
            .map(|s| async move { (s.describe(), s.tidy(&e.staged).await) })
    }))
    .await;
    for (t, r) in results {
        if let Err(e) = r {
            cx.warn(format!(
                "{t}: tidying after activation failed: {}",
                e.chain()
            ));
        }
    }
}
