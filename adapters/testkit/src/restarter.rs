//! The restarter suite: what the engine assumes of every [`Restarter`], one named
//! check per assumption. This is where platforms differ most (rollouts, leases,
//! markers), so each check drives the restarter against a target whose behaviour
//! the fixture scripts: one that restarts fine, one whose rollout fails, one whose
//! rollout never finishes.
//!
//! An adapter's test file provides a [`RestarterFixture`], writes
//! `vsync_orchestrate_testkit::restarter_suite!(fixture());` and runs the checks
//! from its `main` ([`crate::main!`], in a `harness = false` target).

use crate::{ensure, step, unique, Outcome, Violation};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{async_trait, RestartContext, Restarter, RolloutOutcome, RunId};

/// How the target's apps behave when restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The rollout completes.
    Healthy,
    /// The rollout ends in failure (a unit that crashes, a circuit breaker).
    Failing,
    /// The rollout never finishes on its own.
    Stalling,
}

/// Makes restart targets for the checks, one per check.
#[async_trait]
pub trait RestarterFixture: Send + Sync {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget>;

    /// How long a healthy rollout may take on this platform (default 60 s).
    fn healthy_within(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// One prepared target.
#[async_trait]
pub trait RestartTarget: Send + Sync {
    /// A freshly built restarter on the target, as a new process builds it.
    async fn open(&self) -> Arc<dyn Restarter>;

    /// How many restarts the platform has started on this target so far, as the
    /// platform itself counts them (forced deployments, invocation ids, command runs).
    async fn starts(&self) -> usize;
}

/// The canary that stands for a passphrase in the process environment: a restarter
/// never receives the passphrase, so no text it produces may contain this.
const CANARY: &str = "suite-canary-passphrase-Vb7Rk2Qw9";
const CANARY_VAR: &str = "VSYNC_TESTKIT_PASSPHRASE_CANARY";

fn ctx(tag: &str) -> RestartContext {
    RestartContext::new(RunId(unique(&format!("suite-{tag}"))))
}

fn no_canary(text: &str, what: &str) -> Outcome {
    ensure!(!text.contains(CANARY), "{what} carries the passphrase");
    Ok(())
}

fn describe(o: &RolloutOutcome) -> String {
    format!("{o:?}")
}

/// Preflight starts nothing.
pub async fn preflight_writes_nothing(f: &dyn RestarterFixture) -> Outcome {
    let t = f.target(Scenario::Healthy).await;
    let r = t.open().await;
    let before = t.starts().await;
    step("preflight", r.preflight().await)?;
    step("preflight (repeat)", r.preflight().await)?;
    let after = t.starts().await;
    ensure!(
        after == before,
        "preflight started {} restart(s)",
        after - before
    );
    Ok(())
}

/// A second `restart` with the same run id, from a freshly built instance (as after
/// a crash between starting a rollout and journaling it), starts nothing new.
pub async fn restart_is_idempotent_across_instances(f: &dyn RestarterFixture) -> Outcome {
    let t = f.target(Scenario::Healthy).await;
    let c = ctx("idem");
    let one = t.open().await;
    let first = step("restart", one.restart(&c).await)?;
    let after_first = t.starts().await;
    let again = step("restart (same instance)", one.restart(&c).await)?;
    let fresh = t.open().await;
    let third = step("restart (fresh instance)", fresh.restart(&c).await)?;
    let after = t.starts().await;
    ensure!(
        after == after_first,
        "restarting the same run again started {} more restart(s)",
        after - after_first
    );
    ensure!(
        again.id == first.id && third.id == first.id,
        "the repeated restart names another rollout ({} / {} / {})",
        first.id,
        again.id,
        third.id
    );
    // And the rollout it returns can be waited on to the end.
    let out = step(
        "wait (fresh instance)",
        fresh
            .wait(&third, Instant::now() + f.healthy_within())
            .await,
    )?;
    ensure!(out.is_done(), "a healthy rollout ended {}", describe(&out));
    Ok(())
}

/// A healthy rollout ends `Done`, within the fixture's time.
pub async fn wait_ends_done(f: &dyn RestarterFixture) -> Outcome {
    let t = f.target(Scenario::Healthy).await;
    let r = t.open().await;
    step("preflight", r.preflight().await)?;
    let rollout = step("restart", r.restart(&ctx("done")).await)?;
    let out = step(
        "wait",
        r.wait(&rollout, Instant::now() + f.healthy_within()).await,
    )?;
    ensure!(out.is_done(), "a healthy rollout ended {}", describe(&out));
    ensure!(t.starts().await >= 1, "the platform saw no restart");
    Ok(())
}

/// A failing rollout ends `Failed`, with a reason, before the deadline.
pub async fn wait_ends_failed(f: &dyn RestarterFixture) -> Outcome {
    let t = f.target(Scenario::Failing).await;
    let r = t.open().await;
    let rollout = step("restart", r.restart(&ctx("fail")).await)?;
    let out = step(
        "wait",
        r.wait(&rollout, Instant::now() + f.healthy_within()).await,
    )?;
    match &out {
        RolloutOutcome::Failed { reason } => {
            ensure!(
                !reason.trim().is_empty(),
                "a failed rollout gives no reason"
            )
        }
        other => {
            return Err(Violation(format!(
                "a failing rollout ended {}",
                describe(other)
            )))
        }
    }
    Ok(())
}

/// `wait` returns `TimedOut` at its deadline (not long after) when the rollout
/// never finishes.
pub async fn wait_honours_its_deadline(f: &dyn RestarterFixture) -> Outcome {
    let t = f.target(Scenario::Stalling).await;
    let r = t.open().await;
    let rollout = step("restart", r.restart(&ctx("stall")).await)?;
    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let out = step("wait", r.wait(&rollout, started + budget).await)?;
    let took = started.elapsed();
    ensure!(
        matches!(out, RolloutOutcome::TimedOut { .. }),
        "a stalled rollout ended {}",
        describe(&out)
    );
    ensure!(
        took < budget + Duration::from_secs(3),
        "wait returned {took:?} after a {budget:?} deadline"
    );
    Ok(())
}

/// Nothing a restarter reports carries the passphrase, even with one in the
/// process environment (the way `{ env = … }` sources arrive).
pub async fn errors_carry_no_secret(f: &dyn RestarterFixture) -> Outcome {
    vsync_orchestrate_api::child_env::register(CANARY_VAR);
    std::env::set_var(CANARY_VAR, CANARY);
    let result = async {
        for scenario in [Scenario::Healthy, Scenario::Failing] {
            let t = f.target(scenario).await;
            let r = t.open().await;
            match r.preflight().await {
                Ok(p) => no_canary(&format!("{} {:?}", p.detail, p.warnings), "preflight")?,
                Err(e) => no_canary(&e.chain(), "a preflight error")?,
            }
            let rollout = match r.restart(&ctx("secret")).await {
                Ok(ro) => ro,
                Err(e) => return no_canary(&e.chain(), "a restart error"),
            };
            no_canary(
                &serde_json::to_string(&rollout).unwrap_or_default(),
                "the journaled rollout",
            )?;
            match r.wait(&rollout, Instant::now() + f.healthy_within()).await {
                Ok(o) => no_canary(&describe(&o), "the rollout outcome")?,
                Err(e) => no_canary(&e.chain(), "a wait error")?,
            }
        }
        Ok::<(), Violation>(())
    }
    .await;
    std::env::remove_var(CANARY_VAR);
    result
}

/// One test per check of the restarter suite, in a module `restarter_suite` whose
/// `tests()` lists them for [`main!`](crate::main) (`suites: [restarter_suite]`).
/// `$fixture` evaluates to a future of `Option<F>` with `F: RestarterFixture`.
#[macro_export]
macro_rules! restarter_suite {
    ($fixture:expr) => {
        pub(crate) mod restarter_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::restarter_suite!(@checks $fixture;
                preflight_writes_nothing,
                restart_is_idempotent_across_instances,
                wait_ends_done,
                wait_ends_failed,
                wait_honours_its_deadline,
                errors_carry_no_secret,
            );
        }
    };
    (@checks $fixture:expr; $($check:ident),+ $(,)?) => {
        $(
            async fn $check() {
                let Some(fixture) = $fixture.await else { return };
                $crate::restarter::$check(&fixture)
                    .await
                    .unwrap_or_else(|v| panic!("restarter suite, {}: {v}", stringify!($check)));
            }
        )+

        /// Every check, for [`vsync_orchestrate_testkit::main!`].
        pub(crate) fn tests() -> ::std::vec::Vec<$crate::harness::Test> {
            ::std::vec![$(
                $crate::harness::Test::new(
                    $crate::harness::test_name(module_path!(), stringify!($check)),
                    $crate::harness::Runtime::MultiThread(2),
                    $check,
                )
            ),+]
        }
    };
}
