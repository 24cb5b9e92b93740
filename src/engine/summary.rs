//! The run's outcome as data: what `--output json` prints and what every caller
//! (the CLI, a fleet of runs, the tests) reads. Filled from the engine's events
//! only ([`Summary::apply`]), so it cannot disagree with what was displayed.

use crate::engine::events::{DeliveryWindow, Event, RowError, Step, TargetResult};
use crate::engine::exit::Exit;
use crate::engine::health::UrlResult;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Milliseconds with microsecond precision, as the summary and journal print them.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The run's outcome, for the human summary and `--output json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub command: String,
    pub env: String,
    pub vault: String,
    pub exit_code: u8,
    pub outcome: String,
    /// Where and why the run stopped, as data; absent when it succeeded.
    pub failure: Option<FailureReport>,
    /// The phase the run was in last (from the engine's phase events).
    #[serde(skip)]
    pub last_phase: Option<Step>,
    pub layout: Option<String>,
    pub gen_before: Option<u64>,
    pub gen_after: Option<u64>,
    pub old_stamp: Option<String>,
    pub new_stamp: Option<String>,
    /// T0 (pointer swap) → T1 (every store activated), milliseconds.
    pub window_ms: Option<f64>,
    /// T0 → T2 (every restarter reported its rollout done), milliseconds.
    pub t2_ms: Option<f64>,
    /// The window apps feel, per path: each store, and each restarter whose
    /// rollout is on the way (see [`DeliveryWindow`]).
    pub delivery: Vec<DeliveryWindow>,
    /// The longest of them: T0 → the new passphrase can reach a process that
    /// starts, by every path. `None` unless every path's was measured.
    pub delivery_window_ms: Option<f64>,
    pub phases_ms: BTreeMap<String, f64>,
    pub targets: Vec<TargetResult>,
    pub health: Vec<UrlResult>,
    pub planned_writes: Vec<String>,
    pub warnings: Vec<String>,
    pub next_steps: Vec<String>,
    pub manual_audit_row: Option<String>,
    /// The audit.csv row this rotation appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_row: Option<String>,
    pub journal: Option<String>,
}

/// Where a run that did not succeed stopped: the phase it was in, the outcome's
/// name (the exit code's meaning), and each failed adapter with why, so a script
/// or an alert routes on data rather than on the words of `outcome`.
#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    pub phase: Option<Step>,
    pub exit: Exit,
    pub failed: Vec<FailedTarget>,
}

/// One adapter whose row failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTarget {
    pub phase: String,
    pub slot: Option<String>,
    pub target: String,
    pub error: Option<RowError>,
}

impl Summary {
    /// The failure as the events so far describe it: the last phase entered and
    /// every failed row about an adapter.
    pub fn failure_report(&self, exit: Exit) -> FailureReport {
        FailureReport {
            phase: self.last_phase,
            exit,
            failed: self
                .targets
                .iter()
                .filter(|t| !t.ok && (t.slot.is_some() || t.error.is_some()))
                .map(|t| FailedTarget {
                    phase: t.phase.clone(),
                    slot: t.slot.clone(),
                    target: t.label(),
                    error: t.error,
                })
                .collect(),
        }
    }

    /// The outcome as the one exit-code type (the JSON keeps the number).
    pub fn exit(&self) -> Exit {
        Exit::from_code(self.exit_code).unwrap_or(Exit::BadInput)
    }

    /// Folds one engine event into the summary: the JSON renderer.
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Vault(v) => self.vault = v.clone(),
            Event::Row(r) => self.targets.push(r.clone()),
            Event::Warning(w) => self.warnings.push(w.clone()),
            Event::NextStep(n) => self.next_steps.push(n.clone()),
            Event::Timing { step, took } => {
                self.phases_ms.insert(step.as_str().into(), ms(*took));
            }
            Event::Window(w) => self.window_ms = Some(ms(*w)),
            Event::AuditRow(r) => self.audit_row = Some(r.clone()),
            Event::T2(t) => self.t2_ms = Some(ms(*t)),
            Event::Delivery(d) => {
                self.delivery_window_ms = if d.is_empty() {
                    None
                } else {
                    d.iter()
                        .map(|w| w.window_ms)
                        .try_fold(0.0_f64, |worst, w| w.map(|w| worst.max(w)))
                };
                self.delivery = d.clone();
            }
            Event::Facts(f) => {
                let keep = |mine: &mut Option<String>, new: &Option<String>| {
                    if new.is_some() {
                        *mine = new.clone();
                    }
                };
                keep(&mut self.layout, &f.layout);
                keep(&mut self.old_stamp, &f.old_stamp);
                keep(&mut self.new_stamp, &f.new_stamp);
                if f.gen_before.is_some() {
                    self.gen_before = f.gen_before;
                }
                if f.gen_after.is_some() {
                    self.gen_after = f.gen_after;
                }
            }
            Event::Health(h) => self.health = h.clone(),
            Event::PlannedWrites(w) => self.planned_writes = w.clone(),
            Event::ManualAuditRow(r) => self.manual_audit_row = Some(r.clone()),
            Event::Phase { step, .. } => self.last_phase = Some(*step),
            Event::Header(_) | Event::Note(_) | Event::Journal(_) => {}
        }
    }
}
