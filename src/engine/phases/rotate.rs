//! Rotate: the bundle re-encrypted and uploaded (harmless until named), then the
//! pointer swapped — T0. A swap whose answer was not a 200 is rolled forward until
//! an answer is final (`pointer::settle`); a read alone never decides.

use crate::engine::context::Ctx;
use crate::engine::events::{JournalEvent, Step, VaultFacts};
use crate::engine::failure::{Failure, StageProblem};
use crate::engine::infra::interrupt;
use crate::engine::infra::journal::Phase;
use crate::engine::infra::lock::Keeper;
use crate::engine::infra::pointer::{self, Settled};
use crate::engine::phases::preflight::Ready;
use crate::engine::phases::stage::{Stop, Swap};
use crate::vault::crypto::Key;
use crate::vault::{Prepared, Vault};
use std::time::{Instant, SystemTime};

/// T0, as this run knows it.
pub(crate) struct Swapped {
    pub prepared: Prepared,
    pub t0: Instant,
    pub rotated_at: String,
    /// The swap's answer was lost: T0 is taken as the moment it was sent.
    pub uncertain: bool,
    /// Held from the swap until every store is activated.
    pub window: interrupt::WindowGuard,
    /// The pointer's result row, printed only once the window is closed: nothing
    /// but activation requests happen between T0 and T1, not even a write to stderr.
    pub row: (String, std::time::Duration),
}

pub(crate) async fn run(
    cx: &mut Ctx<'_>,
    r: &Ready,
    new_key: Option<tokio::task::JoinHandle<Key>>,
    keeper: &Keeper,
) -> Result<Swapped, Stop> {
    let began = Instant::now();
    cx.phase(
        Step::Rotate,
        "re-encrypt under the new passphrase, upload, swap the pointer",
    );
    let t = Instant::now();
    // Usually derived during preflight already.
    let key = match new_key {
        Some(task) => match task.await {
            Ok(k) => k,
            Err(_) => r.vault.derive(&r.new).await,
        },
        None => r.vault.derive(&r.new).await,
    };
    let prepared = match r.vault.prepare_with_key(&r.inspection, &key).await {
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
            return Err(Stop::before_swap(Failure::Vault(e)));
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
    cx.record(JournalEvent::Prepared(Box::new(prepared.clone())));
    cx.reach(Phase::Committing);
    let saved = cx.checkpoint();
    crate::engine::infra::crash::crash_point("committing");
    let before_swap = |failure| Stop {
        failure,
        swap: Swap::NotSent,
        new_stamp: Some(prepared.new_stamp.clone()),
    };
    if let Err(e) = saved {
        return Err(before_swap(Failure::Stage(StageProblem::Journal {
            when: "before the pointer swap",
            source: e,
        })));
    }
    if interrupt::requested() {
        return Err(before_swap(Failure::Interrupted(
            "interrupted before the pointer swap",
        )));
    }
    if let Some(why) = keeper.lost() {
        return Err(before_swap(Failure::LockLost(why)));
    }

    // From here until every store is activated, signals wait.
    let window = interrupt::enter_window();
    let t = Instant::now();
    let swapped = match swap(cx, &r.vault, &prepared, t).await {
        Ok((t0, rotated_at, uncertain, row)) => Swapped {
            prepared,
            t0,
            rotated_at,
            uncertain,
            window,
            row,
        },
        Err(stop) => {
            drop(window);
            return Err(stop);
        }
    };
    cx.emit(crate::engine::events::Event::Timing {
        step: Step::Rotate,
        took: swapped.t0.duration_since(began),
    });
    cx.facts(VaultFacts {
        new_stamp: Some(swapped.prepared.new_stamp.to_string()),
        gen_after: Some(swapped.prepared.gen_after),
        ..Default::default()
    });
    cx.record(JournalEvent::RotatedAt(swapped.rotated_at.clone()));
    Ok(swapped)
}

/// The pointer swap. A first answer other than a 200 is rolled forward
/// (`pointer::settle`): only a final answer decides, never a read alone.
async fn swap(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    prepared: &Prepared,
    sent: Instant,
) -> Result<(Instant, String, bool, (String, std::time::Duration)), Stop> {
    let first = match vault.commit(prepared).await {
        Ok(c) => {
            let row = (
                format!(
                    "{} → {} (If-Match) — T0",
                    prepared.old_stamp, prepared.new_stamp
                ),
                sent.elapsed(),
            );
            return Ok((c.t0, c.rotated_at, false, row));
        }
        Err(e) => e,
    };
    let first_error = first.to_string();
    match pointer::settle(vault, prepared, Some(first), cx.opts.commit_deadline).await {
        Settled::Ours { committed: Some(c) } => {
            let row = (
                format!(
                    "{} → {} (If-Match) — T0 (sent again after: {first_error})",
                    prepared.old_stamp, prepared.new_stamp
                ),
                sent.elapsed(),
            );
            // The first request may have been the one that landed: the window
            // apps could feel began when it was sent.
            Ok((sent, c.rotated_at, false, row))
        }
        Settled::Ours { committed: None } => {
            let row = (
                format!(
                    "{} → {} — T0 (the swap's answer was lost: {first_error}; reading the pointer shows it took effect)",
                    prepared.old_stamp, prepared.new_stamp
                ),
                sent.elapsed(),
            );
            Ok((
                sent,
                crate::vault::stamp::iso_millis(SystemTime::now()),
                true,
                row,
            ))
        }
        Settled::Theirs(state) => {
            let seen = state.describe(&prepared.old_stamp, Some(&prepared.new_stamp));
            cx.row(
                Step::Rotate,
                "pointer",
                "",
                None,
                false,
                format!("{first_error}; {seen}"),
                sent.elapsed(),
            );
            Err(Stop {
                failure: Failure::Vault(crate::vault::RotateError::PointerConflict {
                    key: prepared.pointer_key.clone(),
                }),
                swap: Swap::Settled,
                new_stamp: Some(prepared.new_stamp.clone()),
            })
        }
        Settled::InFlight(why) => {
            cx.row(
                Step::Rotate,
                "pointer",
                "",
                None,
                false,
                format!(
                    "no final answer to the swap within {}: {why}",
                    humantime::format_duration(cx.opts.commit_deadline)
                ),
                sent.elapsed(),
            );
            Err(Stop {
                failure: Failure::Vault(crate::vault::RotateError::PointerFailed(
                    crate::vault::storage::StorageError::new(
                        crate::vault::storage::StorageErrorKind::Unavailable,
                        "PUT",
                        &prepared.pointer_key,
                        why,
                    ),
                )),
                swap: Swap::InFlight,
                new_stamp: Some(prepared.new_stamp.clone()),
            })
        }
    }
}
