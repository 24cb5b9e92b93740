use serde::{Deserialize, Serialize};
use std::fmt;

/// What an adapter acts on, for plans, progress lines and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The plan's `type` tag, e.g. `aws_secrets_manager`.
    pub kind: String,
    /// What a human recognises: a secret id, a file path, `cluster/service`.
    pub name: String,
}

impl Target {
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Target {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// The id of one orchestrated rotation. Adapters derive idempotency tokens from it,
/// so a retried or resumed step never creates a second version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunId(pub String);

impl RunId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a read-only preflight found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Preflight {
    /// One line for the progress display, e.g. `AWSCURRENT = 3f2a…`.
    pub detail: String,
    /// Things an operator should know that do not stop the run.
    pub warnings: Vec<String>,
    /// The value apps get today, where preflight read it anyway: the engine then
    /// does not read the store a second time. Never serialised.
    #[serde(skip)]
    pub current: Option<crate::Passphrase>,
}

/// A staged, not yet active, passphrase version. Recorded in the journal so that
/// `resume` can activate or discard it: it never holds the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub target: Target,
    pub run: RunId,
    /// The platform's id of the staged version (version id, alias target, file path).
    pub version: String,
    /// The version that was current when staging, where the platform has one.
    pub previous: Option<String>,
    /// Adapter-specific bookkeeping (per-host results, etags).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// A restart that was started and can be waited on, also journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub target: Target,
    pub run: RunId,
    /// The platform's id of the rollout (deployment id, generation, invocation ids).
    pub id: String,
    #[serde(default)]
    pub extra: serde_json::Value,
    /// Whether this rollout is on the passphrase's way into new processes, which
    /// makes its timing part of the window apps feel.
    #[serde(default)]
    pub delivers: Delivers,
}

impl Rollout {
    pub fn new(target: Target, run: RunId, id: impl Into<String>) -> Rollout {
        Rollout {
            target,
            run,
            id: id.into(),
            extra: serde_json::Value::Null,
            delivers: Delivers::Nothing,
        }
    }

    pub fn delivering(mut self, delivers: Delivers) -> Rollout {
        self.delivers = delivers;
        self
    }
}

/// Whether new processes get the new passphrase only through a restarter's work,
/// and from when. A Kubernetes Secret filled by External Secrets holds the old
/// value until it is synced; a Cloud Run revision pinned to a version number serves
/// the old one until the new revision takes the traffic: there the store window is
/// not the window apps feel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivers {
    /// New processes read the store (or what it feeds) themselves; the restart
    /// only replaces the running ones.
    #[default]
    Nothing,
    /// `restart` returned once new processes get the new value (an ExternalSecret
    /// force-synced into the Secret the pods read).
    WhenStarted,
    /// New processes get it once the rollout is done (a revision pinning the new
    /// version serves the traffic; a deployment holds the production alias).
    WhenDone,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RolloutOutcome {
    Done { detail: String },
    Failed { reason: String },
    TimedOut { detail: String },
}

impl RolloutOutcome {
    pub fn is_done(&self) -> bool {
        matches!(self, RolloutOutcome::Done { .. })
    }
}

/// What a store can do beyond the required protocol. The engine and the test kit
/// ask rather than assume: a Vercel "sensitive" variable cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// `read_current` returns the value (not `None`).
    pub read_current: bool,
    /// `read_staged` returns the staged value, so `resume` can prove it opens the
    /// live bundle before activating.
    pub read_staged: bool,
    /// How a booting process gets what this store serves: what decides the window
    /// apps feel, as opposed to the store's own.
    pub delivery: Delivery,
}

/// How the passphrase travels from a store into a process that starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A process reads the store when it starts (a file, Secrets Manager injected
    /// at task start, a GCP alias, a Kubernetes Secret read by a new pod): apps
    /// feel the store's own window, T0 → the store activated.
    AtBoot,
    /// The value reaches only new deployments (a Vercel environment variable):
    /// processes of the serving deployment that start after T0 still get the old
    /// value until a restart has delivered a new deployment. Apps feel T0 → the
    /// restart done.
    OnRedeploy,
}

impl StoreCapabilities {
    pub const ALL: StoreCapabilities = StoreCapabilities {
        read_current: true,
        read_staged: true,
        delivery: Delivery::AtBoot,
    };
    /// A store whose values cannot be read back at all.
    pub const WRITE_ONLY: StoreCapabilities = StoreCapabilities {
        read_current: false,
        read_staged: false,
        delivery: Delivery::AtBoot,
    };

    /// The same capabilities, delivered to processes as `delivery` says.
    pub const fn delivered(mut self, delivery: Delivery) -> StoreCapabilities {
        self.delivery = delivery;
        self
    }
}

impl Default for StoreCapabilities {
    fn default() -> Self {
        StoreCapabilities::ALL
    }
}

/// What a restarter can do beyond restart and wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestarterCapabilities {
    /// `cancel` stops a rollout in flight and releases what it holds (Fly leases).
    pub cancel: bool,
    /// Whether its rollouts will be on the passphrase's way into new processes, as
    /// far as the restarter knows before restarting (after its preflight, where
    /// that decides it): what `plan` announces. The rollout itself says what it was
    /// (`Rollout::delivers`).
    pub delivers: Delivers,
}

impl RestarterCapabilities {
    pub const fn with_cancel() -> Self {
        RestarterCapabilities {
            cancel: true,
            delivers: Delivers::Nothing,
        }
    }

    pub const fn delivering(mut self, delivers: Delivers) -> Self {
        self.delivers = delivers;
        self
    }
}

/// A store version the engine activated in this run, by the store's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivatedVersion {
    pub target: Target,
    /// The platform's id of the now-current version (`Staged::version`).
    pub version: String,
}

/// What a restarter is told when it starts a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestartContext {
    /// Idempotency: a second `restart` with the same run id starts nothing new.
    pub run: RunId,
    /// What every store activated: a service that pins a secret version number
    /// (Cloud Run) needs the new one.
    pub activated: Vec<ActivatedVersion>,
}

impl RestartContext {
    pub fn new(run: RunId) -> Self {
        RestartContext {
            run,
            activated: vec![],
        }
    }

    pub fn with_activated(mut self, activated: Vec<ActivatedVersion>) -> Self {
        self.activated = activated;
        self
    }
}
