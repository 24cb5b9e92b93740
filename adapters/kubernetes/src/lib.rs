//! The `kubernetes` restarter for vsync-orchestrate: what `kubectl rollout restart`
//! does, followed by what `kubectl rollout status` checks, for Deployments,
//! StatefulSets and DaemonSets.
//!
//! Operators trust kubectl, so the restart is kubectl's own strategic-merge patch of
//! `kubectl.kubernetes.io/restartedAt` on the pod template, and "done" is kubectl's
//! rollout-status rule, made stricter where kubectl's would call a rollout finished
//! while pods of the old template still serve (a partitioned StatefulSet). A wrong
//! passphrase looks exactly like new pods crash-looping while old ones keep serving,
//! so pods of the new template stuck in `CrashLoopBackOff` and friends end the wait
//! early, named with the last lines of their log.
//!
//! The restarter never sees the passphrase; it restarts pods so they read it anew.
//!
//! The `kubernetes_secret` store ([`KubernetesSecretStore`]) is for a passphrase
//! that lives only in a Kubernetes Secret: staged in a copy no pod reads,
//! activated by one patch of the live key under its `resourceVersion`.

mod config;
mod connect;
mod csi;
mod error;
mod external_secrets;
mod restarter;
mod secret_store;
mod status;
mod workload;

pub use config::KubernetesConfig;
pub use external_secrets::{FORCE_SYNC, FORCE_SYNC_AT};
pub use restarter::KubernetesRestarter;
pub use secret_store::{
    KubernetesSecretConfig, KubernetesSecretStore, STAGED_PREVIOUS, STAGED_SUFFIX, STAGED_VALUE,
};
pub use workload::{Kind, WorkloadRef};

/// The pod-template annotation `kubectl rollout restart` sets (RFC 3339, seconds).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The pod-template annotation carrying the run id: it makes a retried or resumed
/// restart of the same run a no-op, and a second run within the same second (same
/// `restartedAt`) still a change of the template, hence a rollout.
pub const RUN_ANNOTATION: &str = "vsync-orchestrate/run-id";
