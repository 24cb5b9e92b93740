//! Activate: every store switches staged → current, concurrently, over connections
//! preflight opened. Between T0 and T1 this is all that happens.

use crate::engine::context::{store_slot, Ctx};
use crate::engine::events::{Event, JournalEvent, Step};
use crate::engine::failure::{Failure, WindowOpen};
use crate::engine::infra::journal::{Phase, StagedEntry};
use crate::engine::infra::retry;
use crate::engine::summary::Summary;
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Error, ErrorKind, Passphrase, SecretStore, Target};

struct Activated {
    slot: usize,
    target: Target,
    result: Result<(), Error>,
    /// The activate call failed, but reading the store showed the new value is
    /// current: its answer was lost after it took effect.
    read_back: bool,
    took: Duration,
}

/// The window as it was measured, for the run (not for `resume`, which has none).
pub(crate) struct Window {
    pub t0: Instant,
    /// T0 is the moment the swap was sent (its answer was lost).
    pub uncertain: bool,
    /// The swap's own row, held back until the window is closed.
    pub pointer_row: Option<(String, Duration)>,
}

/// Activates every staged entry not already activated, reports it, journals it;
/// T1, the moment the last answer came back. `Err(summary)`: a store still serves
/// the old passphrase — the run ends, URGENT.
pub(crate) async fn run(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    new: Option<&Passphrase>,
    window: Option<Window>,
) -> Result<Instant, Summary> {
    let done = cx.journal().activated.clone();
    let limits = Limits {
        attempt: cx.opts.activate_attempt,
        deadline: cx.opts.activate_deadline,
    };
    let results = all(stores, staged, &done, new, limits).await;
    let t1 = Instant::now();
    if let Some(Window {
        pointer_row: Some((detail, took)),
        ..
    }) = &window
    {
        cx.row(
            Step::Rotate,
            "pointer",
            "",
            None,
            true,
            detail.clone(),
            *took,
        );
    }
    cx.phase(
        Step::Activate,
        &format!("{} store(s): staged → current", results.len()),
    );
    let mut open = Vec::new();
    for a in results {
        match a.result {
            Ok(()) => {
                let detail = if a.read_back {
                    "its answer was lost; reading it back shows the new value is current"
                } else {
                    ""
                };
                cx.target(
                    Step::Activate,
                    &a.target,
                    store_slot(a.slot),
                    true,
                    detail,
                    a.took,
                );
                cx.record(JournalEvent::Activated(a.slot));
            }
            Err(e) => {
                cx.target_failed(
                    Step::Activate,
                    &a.target,
                    store_slot(a.slot),
                    e.kind(),
                    e.chain(),
                    a.took,
                );
                let hint = staged
                    .iter()
                    .find(|s| s.slot == a.slot)
                    .and_then(|st| stores.get(a.slot).and_then(|s| s.activate_hint(&st.staged)));
                open.push((a.target, e.kind(), hint));
            }
        }
    }
    cx.reach(if open.is_empty() {
        Phase::Activated
    } else {
        Phase::Committed
    });
    cx.checkpoint_or_warn();
    if !open.is_empty() {
        return Err(window_open(cx, &open));
    }
    crate::engine::infra::crash::crash_point("activated");
    if let Some(w) = window {
        let took = t1.duration_since(w.t0);
        if w.uncertain {
            cx.note("T0 taken as the moment the swap was sent: its answer was lost");
        }
        cx.emit(Event::Window(took));
        cx.emit(Event::Timing {
            step: Step::Activate,
            took,
        });
    }
    Ok(t1)
}

/// Every activation request has an attempt timeout (a request that stalls is
/// given up and sent again: activation is idempotent) and every store a deadline
/// (after which it is read back, and reported if still old). A store that hangs
/// therefore keeps the window open for the deadline at most, not for ever.
#[derive(Debug, Clone, Copy)]
struct Limits {
    attempt: Duration,
    deadline: Duration,
}

/// One concurrent round; a store whose call fails is read back before the failure
/// is believed.
async fn all(
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    done: &[usize],
    new: Option<&Passphrase>,
    limits: Limits,
) -> Vec<Activated> {
    join_all(
        staged
            .iter()
            .filter(|e| !done.contains(&e.slot))
            .filter_map(|e| stores.get(e.slot).map(|s| (e, s)))
            .map(|(e, s)| async move {
                let t = Instant::now();
                let attempts = retry::idempotent(retry::WINDOW, || async {
                    match tokio::time::timeout(limits.attempt, s.activate(&e.staged)).await {
                        Ok(r) => r,
                        Err(_) => Err(Error::temporary(format!(
                            "no answer within {} (attempt timeout)",
                            humantime::format_duration(limits.attempt)
                        ))),
                    }
                });
                let res = match tokio::time::timeout(limits.deadline, attempts).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::temporary(format!(
                        "not activated within {} (deadline)",
                        humantime::format_duration(limits.deadline)
                    ))),
                };
                let (result, read_back) = match res {
                    Ok(()) => (Ok(()), false),
                    Err(err) => {
                        // The answers were lost, not necessarily the writes: read back,
                        // itself bounded by one attempt.
                        let read = tokio::time::timeout(limits.attempt, s.read_current()).await;
                        match (new, read) {
                            (Some(new), Ok(Ok(Some(cur)))) if cur.same_as(new) => (Ok(()), true),
                            _ => (Err(err), false),
                        }
                    }
                };
                Activated {
                    slot: e.slot,
                    target: s.describe(),
                    result,
                    read_back,
                    took: t.elapsed(),
                }
            }),
    )
    .await
}

/// The URGENT outcome: what is open and the exact way to close it.
fn window_open(cx: &mut Ctx<'_>, open: &[(Target, ErrorKind, Option<String>)]) -> Summary {
    let run = cx.journal().run_id.clone();
    let path = cx.loaded.path.display().to_string();
    cx.next_step(format!(
        "close the window now: `vsync-orchestrate resume {path}` (activates what run {run} staged), or by hand:"
    ));
    for (t, kind, hint) in open {
        cx.next_step(match hint {
            Some(h) => format!("{t} ({kind}): {h}"),
            None => {
                format!("{t} ({kind}): make its staged version current in the platform's console")
            }
        });
    }
    cx.fail(Failure::WindowOpen(WindowOpen::Stores(
        open.iter().map(|(t, _, _)| t.clone()).collect(),
    )))
}
