use crate::{
    Passphrase, Preflight, RestartContext, RestarterCapabilities, Result, Rollout, RolloutOutcome,
    RunId, Staged, StoreCapabilities, Target,
};
use std::time::Instant;

/// A platform secret store that holds the passphrase apps boot with.
///
/// The engine relies on a two-step protocol so the window in which apps can boot
/// with the wrong passphrase is one round of requests: `stage` makes the new value
/// retrievable but invisible to apps, `activate` is the single fast switch.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    fn describe(&self) -> Target;

    /// What this store can read back; everything, unless it says otherwise.
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }

    /// Read-only: proves the store exists and is permitted, and warms connections
    /// so that `activate` later costs one request.
    async fn preflight(&self) -> Result<Preflight>;

    /// The value apps get today; `None` where the platform cannot read it back.
    async fn read_current(&self) -> Result<Option<Passphrase>>;

    /// Write `new` as a staged version apps do not see. Idempotent per run id.
    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged>;

    /// Read back what was staged, so `resume` can finish a run after a crash.
    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase>;

    /// Make the staged version current. Idempotent: activating twice is success.
    async fn activate(&self, staged: &Staged) -> Result<()>;

    /// Housekeeping after every store is active (after T1), kept out of `activate`
    /// so the window is only the switch itself: e.g. dropping a staging label.
    /// Idempotent; failures are reported as warnings.
    async fn tidy(&self, _staged: &Staged) -> Result<()> {
        Ok(())
    }

    /// Undo a stage before the vault was rotated. Idempotent.
    async fn discard(&self, staged: &Staged) -> Result<()>;

    /// Removes a staged version that an earlier, abandoned run left behind and that
    /// makes preflight refuse. Called only when the operator asks for it
    /// (`run --clean-stale`); returns what was removed.
    async fn clean_stale(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// The exact command an operator can run to activate `staged` by hand, printed
    /// when activation fails with the window open.
    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        None
    }

    /// Releases connections at the end of a run. The engine closes every store and
    /// restarter at once, so hosts do not hang up one after another on drop.
    async fn close(&self) {}
}

/// Something that restarts the apps so they boot with the new passphrase.
#[async_trait::async_trait]
pub trait Restarter: Send + Sync {
    fn describe(&self) -> Target;

    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default()
    }

    /// Read-only: every target exists, is permitted and is in a restartable state.
    async fn preflight(&self) -> Result<Preflight>;

    /// Start a rolling restart. Idempotent per run id, across processes where the
    /// platform can carry a marker (an annotation, machine metadata): a second call
    /// with the same run id, from a freshly built instance, starts nothing new.
    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout>;

    /// Wait until the rollout reports done or failed, or the deadline passes.
    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome>;

    /// Stop a rollout in flight and release what it holds (a lease). Only called
    /// when `capabilities().cancel` says it does something.
    async fn cancel(&self, _rollout: &Rollout) -> Result<()> {
        Ok(())
    }

    /// Releases connections at the end of a run (see [`SecretStore::close`]).
    async fn close(&self) {}
}
