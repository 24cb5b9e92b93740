//! Activate: every store switches staged → current, concurrently, over connections
//! preflight opened. Between T0 and T1 this is all that happens.

use super::context::{store_slot, Ctx, Step};
use super::journal::StagedEntry;
use crate::report::fmt_ms;
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Error, ErrorKind, Passphrase, SecretStore, Target};

/// How long one store may take to activate, retries and read-back included. The
/// window is open meanwhile, so a store that hangs is reported, not waited on.
const DEADLINE: Duration = Duration::from_secs(60);

pub(super) struct Activated {
    pub slot: usize,
    pub target: Target,
    pub result: Result<(), Error>,
    /// The activate call failed, but reading the store showed the new value is
    /// current: its answer was lost after it took effect.
    pub read_back: bool,
    pub took: Duration,
}

/// Activates every staged entry not in `done`, concurrently. A store whose call
/// fails is read back before the failure is believed.
pub(super) async fn all(
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    done: &[usize],
    new: Option<&Passphrase>,
) -> Vec<Activated> {
    join_all(
        staged
            .iter()
            .filter(|e| !done.contains(&e.slot))
            .filter_map(|e| stores.get(e.slot).map(|s| (e, s)))
            .map(|(e, s)| async move {
                let t = Instant::now();
                let attempt = async {
                    let mut res = s.activate(&e.staged).await;
                    for backoff in [50, 250] {
                        match &res {
                            Err(err) if err.is_temporary() => {
                                tokio::time::sleep(Duration::from_millis(backoff)).await;
                                res = s.activate(&e.staged).await;
                            }
                            _ => break,
                        }
                    }
                    res
                };
                let res = match tokio::time::timeout(DEADLINE, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::temporary(format!(
                        "no answer within {}",
                        humantime::format_duration(DEADLINE)
                    ))),
                };
                let (result, read_back) = match res {
                    Ok(()) => (Ok(()), false),
                    Err(err) => match (new, s.read_current().await) {
                        (Some(new), Ok(Some(cur))) if cur.same_as(new) => (Ok(()), true),
                        _ => (Err(err), false),
                    },
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

/// A store still serving the old passphrase, with what to do about it by hand.
pub(super) struct StillOpen {
    pub target: Target,
    pub kind: ErrorKind,
    pub hint: Option<String>,
}

/// Prints one row per store and records the activated slots in the journal.
/// Returns the stores whose activation failed: with the vault rotated, the window
/// is still open for them.
pub(super) fn report(
    cx: &mut Ctx<'_>,
    results: Vec<Activated>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
) -> Vec<StillOpen> {
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
                if !cx.journal().activated.contains(&a.slot) {
                    cx.journal().activated.push(a.slot);
                }
            }
            Err(e) => {
                cx.target(
                    Step::Activate,
                    &a.target,
                    store_slot(a.slot),
                    false,
                    e.chain(),
                    a.took,
                );
                let hint = staged
                    .iter()
                    .find(|s| s.slot == a.slot)
                    .and_then(|st| stores.get(a.slot).and_then(|s| s.activate_hint(&st.staged)));
                open.push(StillOpen {
                    target: a.target,
                    kind: e.kind(),
                    hint,
                });
            }
        }
    }
    open
}

/// The URGENT outcome: what is open and the exact way to close it.
pub(super) fn window_open(cx: &mut Ctx<'_>, open: &[StillOpen]) -> String {
    let names: Vec<String> = open.iter().map(|o| o.target.to_string()).collect();
    let run = cx.journal().run_id.clone();
    cx.next_step(format!(
        "close the window now: `vsync-orchestrate resume {}` (activates what run {run} staged), or by hand:",
        cx.loaded.path.display(),
    ));
    for o in open {
        cx.next_step(match &o.hint {
            Some(h) => format!("{} ({}): {h}", o.target, o.kind),
            None => format!(
                "{} ({}): make its staged version current in the platform's console",
                o.target, o.kind
            ),
        });
    }
    format!(
        "URGENT — WINDOW OPEN: the vault needs the new passphrase but {} still serve(s) the old one; apps that boot now fail with WrongPassphraseError",
        names.join(", ")
    )
}

/// Prints the window line.
pub(super) fn window_line(cx: &mut Ctx<'_>, window: Duration, t0_uncertain: bool) {
    let note = if t0_uncertain {
        " (T0 taken as the moment the swap was sent: its answer was lost)"
    } else {
        ""
    };
    cx.p.line(format!(
        "            window T0 → T1: {}{note}",
        fmt_ms(window)
    ));
}
