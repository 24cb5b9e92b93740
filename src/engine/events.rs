//! What the engine says while it runs.
//!
//! The runbook never prints, never fills in the summary and never edits the journal
//! directly: it emits events, and the JSON summary (`Summary::apply`), the journal
//! (`Journal::apply`) and every [`Subscriber`] — the human display and the logs
//! (`report`), notifications (`notify`) — are renderers of the same events, so they
//! cannot disagree about what happened. These are the engine's own types: nothing
//! here knows who renders them.

use crate::engine::health::UrlResult;
pub use crate::engine::infra::journal::JournalEvent;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Delivers, Delivery, ErrorKind};

/// One result row, as printed (`✓ label — detail`) and as in the JSON `targets`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub phase: String,
    pub kind: String,
    pub name: String,
    /// The adapter's position in the plan (`store.1`), where the row is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    pub ok: bool,
    pub detail: String,
    /// Why a failed row failed, as data (`"permission"`, `"timed_out"`): what a
    /// script or an alert routes on, instead of the words in `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RowError>,
    pub ms: f64,
}

/// One path of the passphrase into the apps — a store, or a restarter whose work
/// is on the way (an ExternalSecret it syncs, a revision that carries a pinned
/// version): `window_ms` is T0 → the moment a process that starts can get the new
/// passphrase through it. `None` in a dry run, after `resume` (no T0 of its own),
/// or when it never did (a restart that failed, or none to deliver it).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryWindow {
    pub slot: String,
    pub target: String,
    pub path: DeliveryPath,
    pub window_ms: Option<f64>,
}

/// Which moment ends a [`DeliveryWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryPath {
    /// Processes read the store as they start: the store activated (T1).
    AtBoot,
    /// The store's value reaches new deployments only: every restart done.
    OnRedeploy,
    /// A restarter put it where new processes read it (an ExternalSecret synced
    /// into the Secret pods read): that restart started.
    Synced,
    /// New processes get it from what a rollout brings (a revision pinning the
    /// new version serving; a deployment holding the alias): that rollout done.
    RolloutDone,
}

impl DeliveryPath {
    /// The words the summary prints after the window.
    pub fn words(self) -> &'static str {
        match self {
            DeliveryPath::AtBoot => "read at boot",
            DeliveryPath::OnRedeploy => "new deployments only",
            DeliveryPath::Synced => "synced by the restart",
            DeliveryPath::RolloutDone => "once the rollout is done",
        }
    }

    /// A restarter's part, where it has one.
    pub fn of_restart(d: Delivers) -> Option<DeliveryPath> {
        match d {
            Delivers::Nothing => None,
            Delivers::WhenStarted => Some(DeliveryPath::Synced),
            Delivers::WhenDone => Some(DeliveryPath::RolloutDone),
        }
    }
}

impl From<Delivery> for DeliveryPath {
    fn from(d: Delivery) -> DeliveryPath {
        match d {
            Delivery::AtBoot => DeliveryPath::AtBoot,
            Delivery::OnRedeploy => DeliveryPath::OnRedeploy,
        }
    }
}

/// Why a row failed: the adapter's own error kind, or how a rollout it started
/// ended. Serialized as the bare name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RowError {
    Adapter(ErrorKind),
    Rollout(RolloutEnd),
}

/// How a rollout that was started ended, when not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutEnd {
    /// The platform reported the rollout failed.
    Failed,
    /// The restarter's timeout passed first.
    TimedOut,
    /// An outcome this build does not know.
    Unknown,
}

impl From<ErrorKind> for RowError {
    fn from(k: ErrorKind) -> Self {
        RowError::Adapter(k)
    }
}

impl TargetResult {
    /// What the row is about, as the human display prints it.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.kind.clone()
        } else {
            format!("{} {}", self.kind, self.name)
        }
    }
}

/// The phases of the runbook, as the operator reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Preflight,
    Plan,
    Stage,
    Rotate,
    Activate,
    Restart,
    Verify,
    Resume,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Plan => "plan",
            Step::Stage => "stage",
            Step::Rotate => "rotate",
            Step::Activate => "activate",
            Step::Restart => "restart",
            Step::Verify => "verify",
            Step::Resume => "resume",
        }
    }
}

/// What preflight and rotate learned about the vault.
#[derive(Debug, Clone, Default)]
pub struct VaultFacts {
    pub layout: Option<String>,
    pub gen_before: Option<u64>,
    pub gen_after: Option<u64>,
    pub old_stamp: Option<String>,
    pub new_stamp: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// The command's first line.
    Header(String),
    /// The vault the run is about.
    Vault(String),
    Phase {
        step: Step,
        what: String,
    },
    /// One result: a store, a restarter, the vault, a health URL.
    Row(TargetResult),
    Warning(String),
    /// A progress line that is not a result (the window, "not due").
    Note(String),
    NextStep(String),
    Timing {
        step: Step,
        took: Duration,
    },
    /// T0 → T1.
    Window(Duration),
    /// T0 → every rollout reported done.
    T2(Duration),
    /// The window apps feel, per store: how its passphrase reaches a process that
    /// starts, and (in a run that swapped) how long after T0 it could.
    Delivery(Vec<DeliveryWindow>),
    Facts(VaultFacts),
    Health(Vec<UrlResult>),
    PlannedWrites(Vec<String>),
    /// The audit row the operator must append by hand (exit 4).
    ManualAuditRow(String),
    /// The audit row this rotation appended (or found already there).
    AuditRow(String),
    Journal(JournalEvent),
}

/// What sees every event of a run as it happens: the human display and the logs
/// (`report::Progress`), notifications (`notify`). The summary and the journal are
/// not subscribers: the engine owns them.
pub trait Subscriber: Send + Sync {
    /// `run` is the run's id.
    fn event(&self, run: &str, e: &Event);
    /// Whether a live "waiting for …" line is worth redrawing (a terminal).
    fn live(&self) -> bool {
        false
    }
    /// Redraws the live line; `frame` counts redraws.
    fn tick(&self, _label: &str, _elapsed: Duration, _frame: usize) {}
    /// Clears the live line.
    fn tick_end(&self) {}
}

/// Runs `fut`; on a live display, redraws "waiting for … (12s)" meanwhile.
pub async fn waiting<F: Future>(view: &dyn Subscriber, label: &str, fut: F) -> F::Output {
    if !view.live() {
        return fut.await;
    }
    let began = Instant::now();
    tokio::pin!(fut);
    let mut frame = 0;
    loop {
        tokio::select! {
            out = &mut fut => {
                view.tick_end();
                return out;
            }
            _ = tokio::time::sleep(Duration::from_millis(120)) => {
                frame += 1;
                view.tick(label, began.elapsed(), frame);
            }
        }
    }
}
