//! The window apps feel. The store window (T0 → T1) is what a process that reads
//! the store when it starts feels. Elsewhere the passphrase travels further: a
//! store whose value reaches only new deployments (Vercel) leaves every process
//! that starts after T0 on the old passphrase until a restart has delivered a new
//! deployment; a Kubernetes Secret filled by External Secrets holds the old value
//! until it is synced; a Cloud Run revision pinned to a version number serves the
//! old one until the new revision takes the traffic. Each store says which it is
//! (`StoreCapabilities::delivery`), each rollout whether it is on the way
//! (`Rollout::delivers`); this reports every path's T0 → the moment a starting
//! process can get the new passphrase through it — and, for `plan`, what that will
//! be before anything is written.

use crate::engine::context::{restart_slot, store_slot, Ctx};
use crate::engine::events::{DeliveryPath, DeliveryWindow, Event};
use crate::engine::infra::journal::StagedEntry;
use crate::engine::phases::restart::Delivered;
use crate::engine::summary::ms;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Delivery, Restarter, SecretStore};

/// After the restarts: each path's delivery window, measured from this run's T0.
/// `restarted`: when every rollout reported done (none when one failed, or no
/// restarter ran); `delivered`: the rollouts on the way and when they got there.
/// Without a T0 of its own (`resume`) nothing is measured.
pub(crate) fn report(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    (t0, t1): (Option<Instant>, Option<Instant>),
    restarted: Option<Instant>,
    delivered: &[Delivered],
) {
    let since_t0 = |at: Option<Instant>| t0.zip(at).map(|(t0, at)| ms(at.duration_since(t0)));
    let mut windows: Vec<DeliveryWindow> = staged
        .iter()
        .filter_map(|e| {
            let s = stores.get(e.slot)?;
            let path = s.capabilities().delivery;
            let until = match path {
                Delivery::AtBoot => t1,
                Delivery::OnRedeploy => restarted,
            };
            Some(DeliveryWindow {
                slot: store_slot(e.slot),
                target: s.describe().to_string(),
                path: path.into(),
                window_ms: since_t0(until),
            })
        })
        .collect();
    for w in &windows {
        if let (DeliveryPath::OnRedeploy, None, Some(_)) = (w.path, w.window_ms, t0) {
            cx.warn(format!(
                "{}: its value reaches new deployments only, and no restart delivered one: processes that start now still get the old passphrase until the next deployment",
                w.target
            ));
        }
    }
    for d in delivered {
        let Some(path) = DeliveryPath::of_restart(d.delivers) else {
            continue;
        };
        if d.at.is_none() && t0.is_some() {
            cx.warn(format!(
                "{}: new processes get the new passphrase through this restart, and it did not get there: processes that start now may still get the old passphrase",
                d.target
            ));
        }
        windows.push(DeliveryWindow {
            slot: restart_slot(d.slot),
            target: d.target.to_string(),
            path,
            window_ms: since_t0(d.at),
        });
    }
    cx.emit(Event::Delivery(windows));
}

/// For `plan`: what each path's apps will feel, before anything is written.
pub(crate) fn plan(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    restarters: &[(Arc<dyn Restarter>, Duration)],
) {
    let mut windows: Vec<DeliveryWindow> = stores
        .iter()
        .enumerate()
        .map(|(slot, s)| {
            let path = s.capabilities().delivery;
            let target = s.describe().to_string();
            cx.note(match path {
                Delivery::AtBoot => format!(
                    "delivery  {target}: read by processes as they start, so apps that read it feel the store window (T0 → T1, one round of requests)"
                ),
                Delivery::OnRedeploy if !restarters.is_empty() => format!(
                    "delivery  {target}: reaches new deployments only, so apps feel T0 → the restart done (a build: minutes)"
                ),
                Delivery::OnRedeploy => format!(
                    "delivery  {target}: reaches new deployments only and the plan restarts nothing: processes keep getting the old passphrase until the next deployment"
                ),
            });
            DeliveryWindow {
                slot: store_slot(slot),
                target,
                path: path.into(),
                window_ms: None,
            }
        })
        .collect();
    for (slot, (r, _)) in restarters.iter().enumerate() {
        let Some(path) = DeliveryPath::of_restart(r.capabilities().delivers) else {
            continue;
        };
        let target = r.describe().to_string();
        cx.note(match path {
            DeliveryPath::Synced => format!(
                "delivery  {target}: its pods read a Secret the restart syncs after T1, so they feel T0 → that sync (seconds), not the store window"
            ),
            _ => format!(
                "delivery  {target}: new processes get the new passphrase from what its rollout brings, so they feel T0 → the rollout done"
            ),
        });
        windows.push(DeliveryWindow {
            slot: restart_slot(slot),
            target,
            path,
            window_ms: None,
        });
    }
    cx.emit(Event::Delivery(windows));
}
