//! The ECS restarter, in two parts:
//!
//! * `moto_*` tests: the REAL ECS API as moto serves it. They prove the requests and
//!   the response parsing (preflight, UpdateService forceNewDeployment, DescribeServices
//!   polling), but moto never finishes a rollout (rolloutState stays IN_PROGRESS), so
//!   there they can only end in a timeout.
//! * `fake_*` tests: the FAKE ECS of `ecs_fake/` (checked by the aws CLI in
//!   `ecs_aws_cli.rs`), scripting what moto cannot: a rollout progressing to COMPLETED,
//!   one ending FAILED, a circuit-breaker rollback, a service with the old short ARN, a
//!   principal without `ecs:TagResource`.

mod common;
mod ecs_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, LaunchType,
};
use vsync_orchestrate_api::{
    async_trait, ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId,
};
use vsync_orchestrate_aws::{EcsConfig, EcsRestarter};
use vsync_orchestrate_testkit::fake_http::FakeHttp;
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

fn config(cluster: &str, services: &[&str], endpoint: &str) -> EcsConfig {
    EcsConfig {
        cluster: cluster.to_owned(),
        services: services.iter().map(|s| s.to_string()).collect(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
        profile: None,
        timeout: None,
        poll_interval: Duration::from_millis(20),
    }
}

// ---------------------------------------------------------------------------------
// Real API: moto.

async fn moto_preflight_restart_and_poll() {
    let Some(endpoint) = common::moto_endpoint() else {
        return;
    };
    let ecs = aws_sdk_ecs::Client::new(&common::test_sdk_config(&endpoint).await);
    let cluster = common::unique("cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let family = common::unique("td");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // EC2 launch type with bridge networking needs no VPC in moto.
    for (name, controller) in [
        ("web", DeploymentControllerType::Ecs),
        ("blue", DeploymentControllerType::CodeDeploy),
    ] {
        ecs.create_service()
            .cluster(&cluster)
            .service_name(name)
            .task_definition(&family)
            .desired_count(1)
            .launch_type(LaunchType::Ec2)
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(controller)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    let r = EcsRestarter::new(config(&cluster, &["web"], &endpoint))
        .await
        .unwrap();
    let pf = r.preflight().await.unwrap();
    assert!(pf.detail.contains("web"), "{}", pf.detail);

    let run = RunId(common::unique("run"));
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    let id = rollout.extra["deployments"]["web"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    assert_eq!(
        r.restart(&RestartContext::new(run.clone())).await.unwrap(),
        rollout,
        "restart is idempotent per run"
    );
    // The marker a resumed run reads, through moto's TagResource.
    let svc = ecs
        .describe_services()
        .cluster(&cluster)
        .services("web")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let tags = svc.services()[0].tags();
    let tag = |k: &str| {
        tags.iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
    };
    assert_eq!(tag("vsync-orchestrate:run"), Some(run.as_str()), "{tags:?}");
    assert_eq!(
        tag("vsync-orchestrate:deployment"),
        Some(id.as_str()),
        "{tags:?}"
    );
    // moto keeps the deployment IN_PROGRESS forever: the wait can only time out.
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_millis(300))
        .await
        .unwrap();
    match out {
        RolloutOutcome::TimedOut { detail } => assert!(detail.contains(&id), "{detail}"),
        other => panic!("expected a timeout on moto, got {other:?}"),
    }

    let cd = EcsRestarter::new(config(&cluster, &["blue"], &endpoint))
        .await
        .unwrap();
    let err = cd.preflight().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err.chain());
    assert!(err.message().contains("CODE_DEPLOY"), "{}", err.message());

    let missing = EcsRestarter::new(config(&cluster, &["web", "nope"], &endpoint))
        .await
        .unwrap();
    assert_eq!(
        missing.preflight().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// ---------------------------------------------------------------------------------
// Fake ECS: scripted rollouts.

async fn fake_restarter(services: &[&str]) -> (EcsRestarter, FakeHttp<ecs_fake::FakeState>) {
    let fake = ecs_fake::start(services).await;
    (fake_restarter_on(&fake, services).await, fake)
}

/// A restarter (as a fresh process would build it) on a running fake.
async fn fake_restarter_on(
    fake: &FakeHttp<ecs_fake::FakeState>,
    services: &[&str],
) -> EcsRestarter {
    let sdk = common::test_sdk_config(&fake.url()).await;
    EcsRestarter::from_sdk_config(config("c1", services, &fake.url()), &sdk).unwrap()
}

// ---------------------------------------------------------------------------------
// The restarter suite, on the fake.

struct FakeEcs;
struct FakeTarget {
    fake: FakeHttp<ecs_fake::FakeState>,
    service: String,
}

#[async_trait]
impl RestarterFixture for FakeEcs {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let prefix = match scenario {
            Scenario::Healthy => "ok",
            Scenario::Failing => "fail",
            Scenario::Stalling => "stuck",
        };
        let service = format!("{prefix}-suite");
        let fake = ecs_fake::start(&[&service]).await;
        Box::new(FakeTarget { fake, service })
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(10)
    }
}

#[async_trait]
impl RestartTarget for FakeTarget {
    async fn open(&self) -> Arc<dyn Restarter> {
        let sdk = common::test_sdk_config(&self.fake.url()).await;
        Arc::new(
            EcsRestarter::from_sdk_config(config("c1", &[&self.service], &self.fake.url()), &sdk)
                .unwrap(),
        )
    }

    async fn starts(&self) -> usize {
        self.fake.state().forced as usize
    }
}

async fn fake() -> Option<FakeEcs> {
    Some(FakeEcs)
}

vsync_orchestrate_testkit::restarter_suite!(fake());

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

async fn fake_rollouts_complete_after_progress() {
    let (r, state) = fake_restarter(&["ok-api", "ok-worker"]).await;
    r.preflight().await.unwrap();
    let run = RunId("run-1".into());
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    assert_eq!(
        r.restart(&RestartContext::new(run.clone())).await.unwrap(),
        rollout
    );
    assert_eq!(state.state().forced, 2, "a retried restart forced again");
    assert_eq!(rollout.extra["deployments"]["ok-api"], "ecs-svc/0001");

    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(
                detail.contains("ok-api") && detail.contains("ok-worker"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        state.state().calls["DescribeServices"] >= 3,
        "did not poll progress"
    );
}

async fn fake_failed_rollout_reports_the_reason() {
    let (r, _fake) = fake_restarter(&["ok-api", "fail-api"]).await;
    let rollout = r
        .restart(&RestartContext::new(RunId("run-2".into())))
        .await
        .unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("fail-api") && reason.contains("tasks failed to start"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

async fn fake_rollback_is_a_failure_not_a_steady_service() {
    let (r, _fake) = fake_restarter(&["rollback-api"]).await;
    let rollout = r
        .restart(&RestartContext::new(RunId("run-3".into())))
        .await
        .unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        // The reason ECS gave, not "superseded by the rollback deployment".
        RolloutOutcome::Failed { reason } => assert!(
            reason.contains("rollback-api")
                && reason.contains("circuit breaker: tasks failed to start")
                && reason.contains("3 failed tasks"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

async fn fake_vanished_deployment_is_a_failure() {
    let (r, _fake) = fake_restarter(&["vanish-api"]).await;
    let rollout = r
        .restart(&RestartContext::new(RunId("run-3b".into())))
        .await
        .unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => assert!(reason.contains("disappeared"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// Without `ecs:TagResource` the restart stops before UpdateService, names the
/// permission, and once granted deploys exactly once, also from another process.
async fn fake_tag_denied_stops_before_deploying() {
    let (r, fake) = fake_restarter(&["ok-api", "ok-worker"]).await;
    fake.state().denied.push("TagResource".into());
    let run = RunId("run-5".into());
    let err = r
        .restart(&RestartContext::new(run.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{}", err.chain());
    assert!(
        err.message().contains("ecs:TagResource"),
        "{}",
        err.message()
    );
    assert_eq!(fake.state().forced, 0, "deployed before the marker was set");

    fake.state().denied.clear();
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    assert_eq!(fake.state().forced, 2);
    let id = rollout.extra["deployments"]["ok-api"].as_str().unwrap();
    assert_eq!(
        fake.state()
            .tag("ok-api", "vsync-orchestrate:deployment")
            .as_deref(),
        Some(id)
    );
    assert_eq!(
        fake.state()
            .tag("ok-api", "vsync-orchestrate:run")
            .as_deref(),
        Some("run-5")
    );
    // Another process resuming the run finds the markers.
    let other = fake_restarter_on(&fake, &["ok-api", "ok-worker"]).await;
    let again = other.restart(&RestartContext::new(run)).await.unwrap();
    assert_eq!(again.extra["deployments"], rollout.extra["deployments"]);
    assert_eq!(fake.state().forced, 2, "a resumed run forced again");
    assert!(matches!(
        other.wait(&again, soon()).await.unwrap(),
        RolloutOutcome::Done { .. }
    ));
}

/// A service with the old short ARN cannot be tagged: preflight says so and names
/// the fix; the restart deploys it once, without TagResource, and follows it.
async fn fake_short_arn_is_restarted_untagged_with_a_warning() {
    let (r, fake) = fake_restarter(&["ok-short-api", "ok-api"]).await;
    let pf = r.preflight().await.unwrap();
    let w = pf
        .warnings
        .iter()
        .find(|w| w.contains("ok-short-api"))
        .unwrap_or_else(|| panic!("no short-ARN warning: {:?}", pf.warnings));
    assert!(
        w.contains("aws ecs put-account-setting --name serviceLongArnFormat --value enabled"),
        "{w}"
    );
    assert!(
        !pf.warnings
            .iter()
            .any(|w| w.contains("service ok-api ") && w.contains("short ARN")),
        "{:?}",
        pf.warnings
    );
    let run = RunId("run-6".into());
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    assert_eq!(r.restart(&RestartContext::new(run)).await.unwrap(), rollout);
    {
        let st = fake.state();
        assert_eq!(st.forced, 2, "one deployment per service");
        assert!(st.tag("ok-short-api", "vsync-orchestrate:run").is_none());
        assert_eq!(
            st.tag("ok-api", "vsync-orchestrate:run").as_deref(),
            Some("run-6")
        );
        assert!(rollout.extra.get("unmarked").is_none(), "{}", rollout.extra);
    }
    assert!(matches!(
        r.wait(&rollout, soon()).await.unwrap(),
        RolloutOutcome::Done { .. }
    ));
}

async fn fake_stalled_rollout_times_out_and_bad_targets_are_refused() {
    let (r, _fake) = fake_restarter(&["stuck-api"]).await;
    let rollout = r
        .restart(&RestartContext::new(RunId("run-4".into())))
        .await
        .unwrap();
    let started = Instant::now();
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_millis(200))
        .await
        .unwrap();
    assert!(matches!(out, RolloutOutcome::TimedOut { .. }), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let (cd, _fake_cd) = fake_restarter(&["codedeploy-api"]).await;
    assert_eq!(
        cd.preflight().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );

    let fake = ecs_fake::start(&["ok-x"]).await;
    let sdk = common::test_sdk_config(&fake.url()).await;
    let wrong =
        EcsRestarter::from_sdk_config(config("other", &["ok-x"], &fake.url()), &sdk).unwrap();
    assert_eq!(
        wrong.preflight().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        moto_preflight_restart_and_poll,
        fake_rollouts_complete_after_progress,
        fake_failed_rollout_reports_the_reason,
        fake_rollback_is_a_failure_not_a_steady_service,
        fake_vanished_deployment_is_a_failure,
        fake_tag_denied_stops_before_deploying,
        fake_short_arn_is_restarted_untagged_with_a_warning,
        fake_stalled_rollout_times_out_and_bad_targets_are_refused,
    ],
}
