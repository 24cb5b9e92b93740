//! The window apps feel. The store window (T0 → T1) is what a process that reads
//! the store when it starts feels; a store whose value reaches only new deployments
//! (Vercel) leaves every process that starts after T0 on the old passphrase until a
//! restart has delivered a new deployment. Each store says which it is
//! (`StoreCapabilities::delivery`); this reports, per store, T0 → the moment a
//! starting process can get the new passphrase through it — and, for `plan`, what
//! that will be before anything is written.

use crate::engine::context::{store_slot, Ctx};
use crate::engine::events::{DeliveryWindow, Event};
use crate::engine::infra::journal::StagedEntry;
use crate::engine::summary::ms;
use std::sync::Arc;
use std::time::Instant;
use vsync_orchestrate_api::{Delivery, SecretStore};

/// After the restarts: each store's delivery window, measured from this run's T0.
/// `restarted`: when every rollout reported done (none when one failed, or no
/// restarter ran). Without a T0 of its own (`resume`) nothing is measured.
pub(crate) fn report(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[StagedEntry],
    t0: Option<Instant>,
    t1: Option<Instant>,
    restarted: Option<Instant>,
) {
    let windows: Vec<DeliveryWindow> = staged
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
                path,
                window_ms: t0.zip(until).map(|(t0, at)| ms(at.duration_since(t0))),
            })
        })
        .collect();
    for w in &windows {
        if let (Delivery::OnRedeploy, None, Some(_)) = (w.path, w.window_ms, t0) {
            cx.warn(format!(
                "{}: its value reaches new deployments only, and no restart delivered one: processes that start now still get the old passphrase until the next deployment",
                w.target
            ));
        }
    }
    cx.emit(Event::Delivery(windows));
}

/// For `plan`: what each store's apps will feel, before anything is written.
pub(crate) fn plan(cx: &mut Ctx<'_>, stores: &[Arc<dyn SecretStore>], restarters: usize) {
    let windows: Vec<DeliveryWindow> = stores
        .iter()
        .enumerate()
        .map(|(slot, s)| {
            let path = s.capabilities().delivery;
            let target = s.describe().to_string();
            cx.note(match path {
                Delivery::AtBoot => format!(
                    "delivery  {target}: read by processes as they start, so apps feel the store window (T0 → T1, one round of requests)"
                ),
                Delivery::OnRedeploy if restarters > 0 => format!(
                    "delivery  {target}: reaches new deployments only, so apps feel T0 → the restart done (a build: minutes)"
                ),
                Delivery::OnRedeploy => format!(
                    "delivery  {target}: reaches new deployments only and the plan restarts nothing: processes keep getting the old passphrase until the next deployment"
                ),
            });
            DeliveryWindow {
                slot: store_slot(slot),
                target,
                path,
                window_ms: None,
            }
        })
        .collect();
    cx.emit(Event::Delivery(windows));
}
