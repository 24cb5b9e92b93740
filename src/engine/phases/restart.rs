//! Restart: every restarter rolls its apps, concurrently. Each rollout is journaled
//! the moment `restart` returns, before its (possibly long) wait, so a crash or a
//! signal during the wait leaves `resume` a rollout to wait on instead of a reason
//! to start a second one.

use crate::engine::context::{restart_slot, Ctx};
use crate::engine::events::{Event, JournalEvent, RolloutEnd, RowError, Step};
use crate::engine::infra::interrupt;
use crate::engine::infra::journal::{Phase, RolloutEntry, StagedEntry};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vsync_orchestrate_api::{
    ActivatedVersion, Delivers, RestartContext, Restarter, Rollout, RolloutOutcome, Target,
};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    AllDone,
    SomeFailed,
    Interrupted,
}

struct Outcome {
    slot: usize,
    target: Target,
    result: Result<String, (RowError, String)>,
    took: Duration,
    delivered: Option<Delivered>,
}

/// A rollout on the passphrase's way into new processes, and when it got there
/// (`None`: it never did — its restart or rollout failed).
pub(crate) struct Delivered {
    pub slot: usize,
    pub target: Target,
    pub delivers: Delivers,
    pub at: Option<Instant>,
}

pub(crate) async fn all(
    cx: &mut Ctx<'_>,
    restarters: &[(Arc<dyn Restarter>, Duration)],
    staged: &[StagedEntry],
    t0: Option<Instant>,
) -> (Ended, Vec<Delivered>) {
    if restarters.is_empty() {
        return (Ended::AllDone, Vec::new());
    }
    let began = Instant::now();
    cx.phase(
        Step::Restart,
        &format!("{} restarter(s), concurrently", restarters.len()),
    );
    let activated = cx.journal().activated.clone();
    let ctx = RestartContext::new(cx.run.clone()).with_activated(
        staged
            .iter()
            .filter(|e| activated.contains(&e.slot))
            .map(|e| ActivatedVersion {
                target: e.staged.target.clone(),
                version: e.staged.version.clone(),
            })
            .collect(),
    );
    let journaled: Vec<RolloutEntry> = cx.journal().rollouts.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Rollout)>();
    let futs: Vec<_> = restarters
        .iter()
        .enumerate()
        .map(|(slot, (r, timeout))| {
            let tx = tx.clone();
            let prior = journaled.iter().find(|e| e.slot == slot).cloned();
            let ctx = &ctx;
            async move {
                let t = Instant::now();
                let target = r.describe();
                let rollout = match prior {
                    Some(e) if e.finished.is_some() => {
                        return Some(Outcome {
                            slot,
                            target,
                            result: Ok("finished before this resume (journaled)".into()),
                            took: Duration::ZERO,
                            delivered: None,
                        });
                    }
                    // Resumed: wait on the rollout the crashed run started.
                    Some(e) => e.rollout,
                    None => match r.restart(ctx).await {
                        Ok(ro) => {
                            let _ = tx.send((slot, ro.clone()));
                            ro
                        }
                        Err(e) => {
                            let delivers = r.capabilities().delivers;
                            return Some(Outcome {
                                slot,
                                delivered: (delivers != Delivers::Nothing).then(|| Delivered {
                                    slot,
                                    target: target.clone(),
                                    delivers,
                                    at: None,
                                }),
                                target,
                                result: Err((e.kind().into(), e.chain())),
                                took: t.elapsed(),
                            });
                        }
                    },
                };
                let started = Instant::now();
                let result = match r.wait(&rollout, Instant::now() + *timeout).await {
                    Ok(RolloutOutcome::Done { detail }) => Ok(detail),
                    Ok(RolloutOutcome::Failed { reason }) => {
                        Err((RowError::Rollout(RolloutEnd::Failed), reason))
                    }
                    Ok(RolloutOutcome::TimedOut { detail }) => Err((
                        RowError::Rollout(RolloutEnd::TimedOut),
                        format!("timed out: {detail}"),
                    )),
                    Ok(other) => Err((
                        RowError::Rollout(RolloutEnd::Unknown),
                        format!("ended in a state this build does not know: {other:?}"),
                    )),
                    Err(e) => Err((e.kind().into(), e.chain())),
                };
                let at = match rollout.delivers {
                    Delivers::Nothing => None,
                    Delivers::WhenStarted => Some(started),
                    Delivers::WhenDone => result.is_ok().then(Instant::now),
                };
                Some(Outcome {
                    slot,
                    delivered: (rollout.delivers != Delivers::Nothing).then(|| Delivered {
                        slot,
                        target: target.clone(),
                        delivers: rollout.delivers,
                        at,
                    }),
                    target,
                    result,
                    took: t.elapsed(),
                })
            }
        })
        .collect();
    drop(tx);
    let waiting = crate::engine::events::waiting(cx.p, "waiting for rollouts", join_all(futs));
    tokio::pin!(waiting);
    let mut crashed_once = false;
    let results = loop {
        tokio::select! {
            Some((slot, ro)) = rx.recv() => {
                record(cx, slot, ro);
                if !crashed_once {
                    crashed_once = true;
                    crate::engine::infra::crash::crash_point("restarting");
                }
            }
            res = &mut waiting => break Some(res),
            _ = interrupt::requested_async() => break None,
        }
    };
    // Rollouts whose `restart` returned just before the wait ended.
    while let Ok((slot, ro)) = rx.try_recv() {
        record(cx, slot, ro);
    }
    let Some(results) = results else {
        cx.record(JournalEvent::Note(
            "interrupted while waiting for rollouts".into(),
        ));
        cx.checkpoint_or_warn();
        cx.phase_done(Step::Restart, began);
        return (Ended::Interrupted, Vec::new());
    };
    let mut failed = false;
    let mut delivered = Vec::new();
    for mut o in results.into_iter().flatten() {
        delivered.extend(o.delivered.take());
        cx.record(JournalEvent::RolloutFinished {
            slot: o.slot,
            ok: o.result.is_ok(),
        });
        match o.result {
            Ok(d) => cx.target(
                Step::Restart,
                &o.target,
                restart_slot(o.slot),
                true,
                d,
                o.took,
            ),
            Err((why, e)) => {
                failed = true;
                cx.next_step(format!("restart {} by hand: {e}", o.target));
                cx.target_failed(
                    Step::Restart,
                    &o.target,
                    restart_slot(o.slot),
                    why,
                    e,
                    o.took,
                );
            }
        }
    }
    cx.reach(Phase::Restarted);
    cx.checkpoint_or_warn();
    cx.phase_done(Step::Restart, began);
    // T2 is "every rollout reported done": a failed one has no T2.
    if let (Some(t0), false) = (t0, failed) {
        cx.emit(Event::T2(t0.elapsed()));
    }
    let ended = if failed {
        Ended::SomeFailed
    } else {
        Ended::AllDone
    };
    (ended, delivered)
}

/// Journals a rollout the moment its `restart` returned, before any wait.
fn record(cx: &mut Ctx<'_>, slot: usize, rollout: Rollout) {
    cx.record(JournalEvent::RolloutStarted(RolloutEntry {
        slot,
        rollout,
        finished: None,
    }));
    cx.checkpoint_or_warn();
}
