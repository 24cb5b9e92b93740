//! Stage: the new passphrase to every store as a version apps do not see yet; and
//! the way back, which is only ever taken after reading the pointer.

use crate::engine::context::{store_slot, Ctx};
use crate::engine::events::{JournalEvent, Step};
use crate::engine::failure::{Failure, StageProblem, WindowOpen};
use crate::engine::infra::journal::{Phase, StagedEntry};
use crate::engine::infra::lock::Lock;
use crate::engine::infra::pointer::{self, PointerState};
use crate::engine::infra::retry;
use crate::engine::summary::Summary;
use crate::vault::{Stamp, Vault};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Instant;
use vsync_orchestrate_api::{Passphrase, SecretStore};

/// Stages `new` on every store concurrently, journals what was staged, and
/// returns it; or the failure and whatever was staged before it.
pub(crate) async fn run(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    new: &Passphrase,
) -> Result<Vec<StagedEntry>, (Vec<StagedEntry>, Failure)> {
    let began = Instant::now();
    cx.phase(
        Step::Stage,
        &format!(
            "new passphrase to {} store(s), not yet visible to apps",
            stores.len()
        ),
    );
    let run = cx.run.clone();
    let results = join_all(stores.iter().enumerate().map(|(slot, s)| {
        let run = &run;
        async move {
            let t = Instant::now();
            let res = retry::idempotent(retry::STEADY, || s.stage(new, run)).await;
            (slot, s.describe(), res, t.elapsed())
        }
    }))
    .await;
    let mut staged = Vec::new();
    let mut failed = Vec::new();
    for (slot, t, res, took) in results {
        match res {
            Ok(st) => {
                cx.target(
                    Step::Stage,
                    &t,
                    store_slot(slot),
                    true,
                    format!("staged as {}", st.version),
                    took,
                );
                staged.push(StagedEntry { slot, staged: st });
            }
            Err(e) => {
                cx.target_failed(Step::Stage, &t, store_slot(slot), e.kind(), e.chain(), took);
                failed.push((t, e));
            }
        }
    }
    cx.record(JournalEvent::Staged(staged.clone()));
    cx.reach(Phase::Staged);
    let saved = cx.checkpoint();
    crate::engine::infra::crash::crash_point("staged");
    cx.phase_done(Step::Stage, began);
    if !failed.is_empty() {
        return Err((staged, Failure::Stage(StageProblem::Refused(failed))));
    }
    if let Err(e) = saved {
        return Err((
            staged,
            Failure::Stage(StageProblem::Journal {
                when: "after staging",
                source: e,
            }),
        ));
    }
    Ok(staged)
}

/// Discards each staged version. Only called once the pointer was read and the
/// vault does not need them.
pub(crate) async fn discard(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
) -> bool {
    let results = join_all(staged.iter().filter_map(|e| {
        stores.get(e.slot).map(|s| async move {
            let t = Instant::now();
            let res = retry::idempotent(retry::STEADY, || s.discard(&e.staged)).await;
            (e.slot, s.describe(), res, t.elapsed())
        })
    }))
    .await;
    let mut all_ok = true;
    for (slot, t, r, took) in results {
        match r {
            Ok(()) => cx.target(
                Step::Stage,
                &t,
                store_slot(slot),
                true,
                "staged version discarded",
                took,
            ),
            Err(e) => {
                all_ok = false;
                cx.target(
                    Step::Stage,
                    &t,
                    store_slot(slot),
                    false,
                    format!("discard failed: {}", e.chain()),
                    took,
                );
                cx.next_step(format!(
                    "remove the staged version from {t} by hand ({})",
                    e.chain()
                ));
            }
        }
    }
    all_ok
}

/// Removes staged versions the journal does not know about (a stage whose answer
/// was lost, a crash mid-stage). Only called once the pointer was read and shows
/// the vault does not need them.
pub(crate) async fn clean_stale(cx: &mut Ctx<'_>, stores: &[Arc<dyn SecretStore>]) -> bool {
    let mut all_ok = true;
    for (slot, s) in stores.iter().enumerate() {
        let t = Instant::now();
        match retry::idempotent(retry::STEADY, || s.clean_stale()).await {
            Ok(Some(what)) => cx.target(
                Step::Stage,
                &s.describe(),
                store_slot(slot),
                true,
                what,
                t.elapsed(),
            ),
            Ok(None) => {}
            Err(e) => {
                all_ok = false;
                cx.target(
                    Step::Stage,
                    &s.describe(),
                    store_slot(slot),
                    false,
                    format!("clean-up failed: {}", e.chain()),
                    t.elapsed(),
                );
                cx.next_step(format!(
                    "remove any staged version from {} by hand ({})",
                    s.describe(),
                    e.chain()
                ));
            }
        }
    }
    all_ok
}

/// Releases the lock; a release that keeps failing is printed with the command
/// that removes it.
pub(crate) async fn release(cx: &mut Ctx<'_>, vault: &Vault, lock: Lock) {
    if let Err(e) = lock.release(vault).await {
        cx.warn(e.to_string());
        cx.next_step(format!("remove the lock by hand: {}", e.remove));
    }
}

/// Where the pointer swap stood when the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swap {
    /// Never sent: a read of the pointer is the whole truth.
    NotSent,
    /// Sent, and answered for good: the ETag it was conditioned on is gone, so no
    /// attempt can land any more. A pointer naming someone else's bundle is still
    /// checked against the new passphrase before anything goes.
    Settled,
    /// Sent without a final answer: an attempt may still land, whatever a read
    /// shows now. Nothing staged goes.
    InFlight,
}

/// How a run that did not reach (or did not know it reached) T0 stops.
pub(crate) struct Stop {
    pub failure: Failure,
    pub swap: Swap,
    pub new_stamp: Option<Stamp>,
}

impl Stop {
    pub fn before_swap(failure: Failure) -> Stop {
        Stop {
            failure,
            swap: Swap::NotSent,
            new_stamp: None,
        }
    }
}

/// Stops before T0. Staged versions are discarded only when the pointer was read
/// and shows the vault does not need them; otherwise they are kept, the journal
/// stays open and the lock stays held, and the summary says to `resume`.
pub(crate) async fn stop_before_t0(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    new: &Passphrase,
    lock: Lock,
    stop: Stop,
) -> Summary {
    let inspected = cx
        .journal()
        .inspected
        .clone()
        .expect("inspected is journaled before staging");
    let t = Instant::now();
    let state = pointer::read(
        vault,
        inspected.layout,
        &inspected.old_stamp,
        stop.new_stamp.as_ref(),
    )
    .await;
    let seen = state.describe(&inspected.old_stamp, stop.new_stamp.as_ref());
    let may_discard = match (&state, stop.swap) {
        // A swap of ours may still land: what the pointer shows now proves nothing.
        (_, Swap::InFlight) => None,
        (PointerState::Old, _) => Some(true),
        (PointerState::Other(_), Swap::NotSent) => Some(true),
        (PointerState::Other(_), Swap::Settled) => {
            pointer::opens_with(vault, new).await.map(|opens| !opens)
        }
        (PointerState::New | PointerState::Unknown(_), _) => None,
    };
    let seen = if stop.swap == Swap::InFlight {
        format!("{seen} for now, but a swap of this run's may still land")
    } else {
        seen
    };
    cx.row(
        Step::Rotate,
        "vault",
        "pointer",
        None,
        may_discard.is_some(),
        seen.clone(),
        t.elapsed(),
    );
    if may_discard == Some(true) {
        let mut clean = discard(cx, stores, staged).await;
        // A stage whose answer was lost may have left a version the journal never
        // got: the pointer shows none is needed, so each store drops what it has.
        clean &= clean_stale(cx, stores).await;
        if let Some(record) = cx.journal().escrow.clone() {
            for w in crate::engine::phases::escrow::withdraw(vault, &record).await {
                cx.warn(w);
            }
        }
        cx.reach(Phase::Aborted);
        release(cx, vault, lock).await;
        let tail = if clean {
            "staged versions discarded"
        } else {
            "some staged versions could not be discarded (see next steps)"
        };
        return cx.fail(stop.failure.and(format!("{seen}; {tail}")));
    }
    // Not proven unneeded: keep every staged version, the journal and the lock.
    cx.record(JournalEvent::Note(format!(
        "stopped before T0 was confirmed: {seen}; staged versions kept"
    )));
    let path = cx.loaded.path.display().to_string();
    cx.next_step(if stop.swap == Swap::NotSent {
        format!("`vsync-orchestrate resume {path}` reads the pointer again and then discards the staged versions or activates them")
    } else {
        format!("`vsync-orchestrate resume {path}` sends the same conditional swap again until it is answered, then activates the staged versions (or discards them if someone else's swap won)")
    });
    drop(lock);
    if stop.swap != Swap::NotSent {
        return cx.fail(Failure::WindowOpen(WindowOpen::SwapUnsettled {
            cause: stop.failure.message(),
            seen,
        }));
    }
    cx.fail(stop.failure.and(format!(
        "{seen}, so the staged versions were kept rather than discarded on a guess"
    )))
}
