//! The test kit's restarter suite, on the fake cluster.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{async_trait, Restarter};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

struct Fixture;

struct Target {
    env: Env,
}

#[async_trait]
impl RestarterFixture for Fixture {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let env = Env::new("suite").await;
        let script = match scenario {
            Scenario::Healthy => Script::Healthy,
            Scenario::Failing => Script::CrashLoop {
                log: "WrongPassphraseError: bad passphrase".into(),
            },
            Scenario::Stalling => Script::Stall,
        };
        env.fake
            .state()
            .add_deployment(NS, "app", 2)
            .script(Res::Deployments, NS, "app", script);
        Box::new(Target { env })
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(15)
    }
}

#[async_trait]
impl RestartTarget for Target {
    async fn open(&self) -> Arc<dyn Restarter> {
        self.env.deployments(&["app"])
    }

    /// Restarts as the cluster counts them: patches that changed the template.
    async fn starts(&self) -> usize {
        self.env
            .fake
            .state()
            .patch_count(Res::Deployments, NS, "app")
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::restarter_suite!(fixture());

// This target's `main` (`harness = false` in Cargo.toml).
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
}
