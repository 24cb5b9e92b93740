//! After T1: bookkeeping (counter cells, audit row) and verify (the vault and every
//! health URL on the new generation).

use crate::engine::build;
use crate::engine::context::Ctx;
use crate::engine::events::{Event, Step};
use crate::engine::exit::Exit;
use crate::engine::health;
use crate::engine::infra::interrupt;
use crate::vault::{audit, AuditOutcome, AuditSpec, Stamp, Vault};
use futures_util::future::join_all;
use std::time::{Duration, Instant};

/// The audit row's key and metadata, as the plan asks for them.
pub(crate) fn audit_spec(cx: &Ctx<'_>) -> Option<AuditSpec> {
    let plan = &cx.loaded.plan;
    build::audit_key(plan).map(|key| {
        let mut user_meta: Vec<(String, String)> = plan
            .passphrase
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(n) = &plan.passphrase.note {
            user_meta.insert(0, ("note".into(), n.clone()));
        }
        user_meta.push(("run_id".into(), cx.run.to_string()));
        AuditSpec {
            key,
            user_meta,
            origin: audit::Origin::of_this_machine(),
        }
    })
}

/// Reports what [`Vault::finish`] did (its row, warnings, next steps). Returns
/// `AuditFailed` when a counter or the audit row was not written (the rotation is
/// live regardless: exit 4 semantics).
pub(crate) fn report_bookkeeping(
    cx: &mut Ctx<'_>,
    gen_before: u64,
    finished: crate::vault::Finished,
    took: Duration,
) -> Exit {
    let detail = format!(
        "gen {gen_before} → {} in latest.manifest and latest.meta; audit {}",
        finished.gen_after,
        match &finished.audit {
            AuditOutcome::Written => "row appended".to_owned(),
            AuditOutcome::AlreadyPresent => "row already present".to_owned(),
            AuditOutcome::Disabled => "disabled by the plan".to_owned(),
            AuditOutcome::Failed { error, .. } => format!("FAILED: {error}"),
        }
    );
    let ok = finished.bookkeeping_complete();
    if let Some(row) = &finished.audit_row {
        cx.emit(Event::AuditRow(row.trim_end().to_owned()));
    }
    cx.row(Step::Activate, "bookkeeping", "", None, ok, detail, took);
    if ok {
        return Exit::Ok;
    }
    for c in &finished.counter_errors {
        cx.warn(format!("counter cell not written: {c}"));
        cx.next_step(format!("write the counter cell by hand: {c}"));
    }
    if let AuditOutcome::Failed { key, row, .. } = &finished.audit {
        cx.emit(Event::ManualAuditRow(row.clone()));
        cx.next_step(format!(
            "append the manual audit row (printed above) to {key}"
        ));
    }
    Exit::AuditFailed
}

pub(crate) enum Verified {
    Ok,
    /// An app or a counter is not on the new generation.
    Stragglers,
    Interrupted,
}

/// The vault shows gen N+1 under the new stamp, and every health URL answers fresh
/// at N+1 several times in a row.
pub(crate) async fn verify(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    want: u64,
    new_stamp: &Stamp,
    bookkeeping_failed: bool,
) -> Verified {
    let began = Instant::now();
    cx.phase(Step::Verify, &format!("vault and apps on gen {want}"));
    let t = Instant::now();
    let mut stragglers = false;
    // Transient read failures are retried; a vault that cannot be read is reported
    // as that, not as a straggler: every write before this was acknowledged.
    let mut status = vault.status().await;
    for wait in [250, 1000] {
        if status.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
        status = vault.status().await;
    }
    match status {
        Ok(Some(st)) if st.gen == want && st.stamp == new_stamp.as_str() => {
            let cells: Vec<String> = st
                .cells
                .iter()
                .map(|(c, g)| format!("{c}={}", g.unwrap_or(0)))
                .collect();
            cx.row(
                Step::Verify,
                "vault",
                "",
                None,
                true,
                format!("pointer {}, {}", st.stamp, cells.join(" ")),
                t.elapsed(),
            );
        }
        Ok(Some(st)) if st.stamp != new_stamp.as_str() => {
            stragglers = true;
            cx.row(
                Step::Verify,
                "vault",
                "",
                None,
                false,
                format!(
                    "the pointer now names {} (someone rotated after us?)",
                    st.stamp
                ),
                t.elapsed(),
            );
        }
        Ok(other) => {
            if !bookkeeping_failed {
                stragglers = true;
            }
            cx.row(
                Step::Verify,
                "vault",
                "",
                None,
                false,
                format!(
                    "counter shows gen {}, expected {want}",
                    other
                        .map(|s| s.gen.to_string())
                        .unwrap_or_else(|| "none".into())
                ),
                t.elapsed(),
            );
        }
        Err(e) => {
            cx.row(
                Step::Verify,
                "vault",
                "",
                None,
                false,
                format!(
                    "could not be read back to verify ({e}); every write before was acknowledged"
                ),
                t.elapsed(),
            );
            cx.warn(format!("the vault could not be re-read during verify: {e}"));
            cx.next_step(format!(
                "confirm the vault with `vsync-orchestrate status {}`",
                cx.loaded.path.display()
            ));
        }
    }
    let v = cx.loaded.plan.verify.clone();
    if !v.health.is_empty() {
        let deadline = Instant::now() + duration(&v.timeout, Duration::from_secs(120));
        let samples = v.samples.unwrap_or(3);
        let interval = duration(&v.interval, Duration::from_millis(500));
        let http = health::Http::new();
        let futs = v
            .health
            .iter()
            .map(|u| health::wait_fresh(&http, u, want, samples, interval, deadline));
        let waiting = crate::engine::events::waiting(
            cx.p,
            "waiting for health URLs to report the new generation",
            join_all(futs),
        );
        let results = tokio::select! {
            r = waiting => r,
            _ = interrupt::requested_async() => {
                cx.phase_done(Step::Verify, began);
                return Verified::Interrupted;
            }
        };
        for r in &results {
            let detail = match &r.last {
                health::Answer::Fresh { gen } if r.ok => {
                    format!("fresh gen={gen}, {} samples in a row", r.samples)
                }
                health::Answer::WrongPassphrase => {
                    "WrongPassphraseError: this app cannot open the vault".into()
                }
                other => format!("straggler: last answer {other}"),
            };
            if !r.ok {
                stragglers = true;
                cx.next_step(format!("{}: {detail}; restart that instance", r.url));
            }
            cx.row(
                Step::Verify,
                "health",
                &r.url,
                None,
                r.ok,
                detail,
                t.elapsed(),
            );
        }
        cx.emit(Event::Health(results));
    }
    cx.phase_done(Step::Verify, began);
    if stragglers {
        Verified::Stragglers
    } else {
        Verified::Ok
    }
}

pub(crate) fn duration(v: &Option<String>, d: Duration) -> Duration {
    v.as_deref()
        .and_then(|s| crate::plan::parse_duration(s).ok())
        .unwrap_or(d)
}
