//! Rotate: the bundle re-encrypted and uploaded (harmless until named), then the
//! pointer swapped — T0. A swap whose answer was lost is read back, never retried.

use super::context::Ctx;
use super::events::{JournalEvent, Step, VaultFacts};
use super::failure::Failure;
use super::journal::Phase;
use super::pointer::{self, PointerState};
use super::preflight::Ready;
use super::stage::Stop;
use super::{interrupt, lock::Keeper};
use crate::vault::crypto::Key;
use crate::vault::{Prepared, Vault};
use std::time::{Instant, SystemTime};

/// T0, as this run knows it.
pub(super) struct Swapped {
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

pub(super) async fn run(
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
    super::crash_point("committing");
    let before_swap = |failure| Stop {
        failure,
        swap_sent: false,
        new_stamp: Some(prepared.new_stamp.clone()),
    };
    if let Err(e) = saved {
        return Err(before_swap(Failure::Stage(format!(
            "cannot write the journal before the pointer swap ({e})"
        ))));
    }
    if interrupt::requested() {
        return Err(before_swap(Failure::Interrupted(
            "interrupted before the pointer swap".into(),
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
        Err(failure) => {
            drop(window);
            return Err(Stop {
                failure,
                swap_sent: true,
                new_stamp: Some(prepared.new_stamp.clone()),
            });
        }
    };
    cx.emit(super::events::Event::Timing {
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

/// The pointer swap. An error is followed by reading the pointer: the answer may
/// be lost, not the write.
async fn swap(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    prepared: &Prepared,
    sent: Instant,
) -> Result<(Instant, String, bool, (String, std::time::Duration)), Failure> {
    match vault.commit(prepared).await {
        Ok(c) => {
            let row = (
                format!(
                    "{} → {} (If-Match) — T0",
                    prepared.old_stamp, prepared.new_stamp
                ),
                c.t0.duration_since(sent),
            );
            Ok((c.t0, c.rotated_at, false, row))
        }
        Err(e) => {
            let state = pointer::read(
                vault,
                prepared.layout,
                &prepared.old_stamp,
                Some(&prepared.new_stamp),
            )
            .await;
            if state != PointerState::New {
                cx.row(
                    Step::Rotate,
                    "pointer",
                    "",
                    None,
                    false,
                    e.to_string(),
                    sent.elapsed(),
                );
                return Err(Failure::Vault(e));
            }
            let row = (
                format!(
                    "{} → {} — T0 (the swap's answer was lost: {e}; reading the pointer shows it took effect)",
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
    }
}
