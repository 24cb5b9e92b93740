//! The run's outcome as data: what `--output json` prints and what every caller
//! (the CLI, a fleet of runs, the tests) reads. Filled from the engine's events
//! only ([`Summary::apply`]), so it cannot disagree with what was displayed.

use crate::engine::events::{Event, TargetResult};
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
    pub layout: Option<String>,
    pub gen_before: Option<u64>,
    pub gen_after: Option<u64>,
    pub old_stamp: Option<String>,
    pub new_stamp: Option<String>,
    /// T0 (pointer swap) → T1 (every store activated), milliseconds.
    pub window_ms: Option<f64>,
    /// T0 → T2 (every restarter reported its rollout done), milliseconds.
    pub t2_ms: Option<f64>,
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

impl Summary {
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
            Event::Header(_) | Event::Phase { .. } | Event::Note(_) | Event::Journal(_) => {}
        }
    }
}
