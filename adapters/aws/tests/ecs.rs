//! The ECS restarter, in two parts:
//!
//! * `moto_*` tests: the REAL ECS API as moto serves it. They prove the requests and
//!   the response parsing (preflight, UpdateService forceNewDeployment, DescribeServices
//!   polling), but moto never finishes a rollout (rolloutState stays IN_PROGRESS), so
//!   there they can only end in a timeout.
//! * `fake_*` tests: a small stateful FAKE ECS written here (AWS JSON 1.1 on a loopback
//!   socket, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.*`) that scripts what moto
//!   cannot: a rollout progressing to COMPLETED, one ending FAILED, and a circuit-breaker
//!   rollback that makes the deployment disappear.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, LaunchType,
};
use serde_json::{json, Value};
use vsync_orchestrate_api::{
    async_trait, ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId,
};
use vsync_orchestrate_aws::{EcsConfig, EcsRestarter};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Response};
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

/// How a fake service's next deployment behaves, chosen by its name's prefix.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Script {
    /// IN_PROGRESS for two polls, then COMPLETED.
    Completes,
    /// IN_PROGRESS for one poll, then FAILED.
    Fails,
    /// IN_PROGRESS for one poll, then the circuit breaker rolls back: the new
    /// deployment vanishes and the old one is PRIMARY again.
    RollsBack,
    /// Never leaves IN_PROGRESS.
    Stalls,
}

struct FakeService {
    name: String,
    tags: Vec<Value>,
    script: Script,
    controller: &'static str,
    deployments: Vec<Value>,
    polls: u32,
}

#[derive(Default)]
struct FakeState {
    services: HashMap<String, FakeService>,
    next_id: u32,
    calls: HashMap<String, u32>,
}

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012";

impl FakeState {
    fn add(&mut self, name: &str) {
        let script = match name.split('-').next().unwrap() {
            "ok" => Script::Completes,
            "fail" => Script::Fails,
            "rollback" => Script::RollsBack,
            _ => Script::Stalls,
        };
        let controller = if name.starts_with("codedeploy") {
            "CODE_DEPLOY"
        } else {
            "ECS"
        };
        let first = deployment("ecs-svc/0000", "PRIMARY", "COMPLETED", 2);
        self.services.insert(
            name.to_owned(),
            FakeService {
                name: name.into(),
                tags: vec![],
                script,
                controller,
                deployments: vec![first],
                polls: 0,
            },
        );
    }

    fn handle(&mut self, target: &str, body: &Value) -> (u16, Value) {
        let op = target.rsplit('.').next().unwrap_or("").to_owned();
        *self.calls.entry(op.clone()).or_default() += 1;
        if op == "TagResource" {
            let arn = body["resourceArn"].as_str().unwrap_or("");
            let name = arn.rsplit('/').next().unwrap_or("");
            let Some(s) = self.services.get_mut(name) else {
                return (
                    400,
                    json!({"__type": "InvalidParameterException", "message": "no such resource"}),
                );
            };
            for t in body["tags"].as_array().cloned().unwrap_or_default() {
                s.tags.retain(|x| x["key"] != t["key"]);
                s.tags.push(t);
            }
            return (200, json!({}));
        }
        if body["cluster"] != "c1" {
            return (
                400,
                json!({"__type": "ClusterNotFoundException", "message": "Cluster not found."}),
            );
        }
        match op.as_str() {
            "DescribeServices" => {
                let mut services = vec![];
                let mut failures = vec![];
                for name in body["services"].as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    match self.services.get_mut(name) {
                        Some(s) => {
                            s.advance();
                            services.push(s.to_json());
                        }
                        None => failures.push(
                            json!({"arn": format!("{ARN}:service/c1/{name}"), "reason": "MISSING"}),
                        ),
                    }
                }
                (200, json!({"services": services, "failures": failures}))
            }
            "UpdateService" => {
                assert_eq!(
                    body["forceNewDeployment"], true,
                    "restart must force a deployment"
                );
                self.next_id += 1;
                let id = format!("ecs-svc/{:04}", self.next_id);
                let Some(s) = self.services.get_mut(body["service"].as_str().unwrap()) else {
                    return (
                        400,
                        json!({"__type": "ServiceNotFoundException", "message": "Service not found."}),
                    );
                };
                for d in &mut s.deployments {
                    d["status"] = json!("ACTIVE");
                }
                s.deployments
                    .insert(0, deployment(&id, "PRIMARY", "IN_PROGRESS", 0));
                s.polls = 0;
                (200, json!({"service": s.to_json()}))
            }
            _ => (
                400,
                json!({"__type": "InvalidAction", "message": "not faked"}),
            ),
        }
    }
}

impl FakeService {
    /// One DescribeServices poll passes.
    fn advance(&mut self) {
        if self.deployments.len() < 2 {
            return; // no rollout of ours in flight
        }
        self.polls += 1;
        match (self.script, self.polls) {
            (Script::Completes, n) if n > 2 => {
                self.deployments.truncate(1);
                let d = &mut self.deployments[0];
                d["rolloutState"] = json!("COMPLETED");
                d["runningCount"] = json!(2);
            }
            (Script::Completes, _) => self.deployments[0]["runningCount"] = json!(1),
            (Script::Fails, n) if n > 1 => {
                let d = &mut self.deployments[0];
                d["rolloutState"] = json!("FAILED");
                d["failedTasks"] = json!(3);
                d["rolloutStateReason"] = json!(
                    "ECS deployment circuit breaker: tasks failed to start. Task failed ELB health checks."
                );
            }
            (Script::RollsBack, n) if n > 1 => {
                self.deployments.remove(0);
                self.deployments[0]["status"] = json!("PRIMARY");
            }
            _ => {}
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "serviceName": self.name,
            "serviceArn": format!("{ARN}:service/c1/{}", self.name),
            "clusterArn": format!("{ARN}:cluster/c1"),
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "pendingCount": 0,
            "launchType": "FARGATE",
            "deploymentController": {"type": self.controller},
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100
            },
            "currentServiceDeployment": format!("{ARN}:service-deployment/c1/{}/x", self.name),
            "deployments": self.deployments,
            "tags": self.tags,
        })
    }
}

fn deployment(id: &str, status: &str, rollout: &str, running: i32) -> Value {
    json!({
        "id": id,
        "status": status,
        "taskDefinition": format!("{ARN}:task-definition/app:7"),
        "desiredCount": 2,
        "pendingCount": 2 - running,
        "runningCount": running,
        "failedTasks": 0,
        "createdAt": 1_764_000_000.5,
        "updatedAt": 1_764_000_000.5,
        "launchType": "FARGATE",
        "rolloutState": rollout,
        "rolloutStateReason": format!("ECS deployment {id} {}.", rollout.to_lowercase()),
    })
}

/// Starts the fake on the testkit's fake HTTP server (AWS JSON 1.1: every call is a
/// POST to `/` named by `X-Amz-Target`).
async fn fake_ecs(services: &[&str]) -> FakeHttp<FakeState> {
    let mut state = FakeState::default();
    for s in services {
        state.add(s);
    }
    FakeHttp::builder(state)
        .route("POST", "/", |req, st: &mut FakeState| {
            let target = req.header("x-amz-target").unwrap_or_default();
            assert!(
                target.starts_with("AmazonEC2ContainerServiceV20141113."),
                "unexpected target {target}"
            );
            let (status, reply) = st.handle(target, &req.json());
            Response::json(status, &reply)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-requestid", "fake")
        })
        .start()
        .await
}

async fn fake_restarter(services: &[&str]) -> (EcsRestarter, FakeHttp<FakeState>) {
    let fake = fake_ecs(services).await;
    let sdk = common::test_sdk_config(&fake.url()).await;
    let r = EcsRestarter::from_sdk_config(config("c1", services, &fake.url()), &sdk).unwrap();
    (r, fake)
}

// ---------------------------------------------------------------------------------
// The restarter suite, on the fake.

struct FakeEcs;
struct FakeTarget {
    fake: FakeHttp<FakeState>,
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
        let fake = fake_ecs(&[&service]).await;
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
        self.fake
            .state()
            .calls
            .get("UpdateService")
            .copied()
            .unwrap_or(0) as usize
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
    assert_eq!(
        state.state().calls["UpdateService"],
        2,
        "a retried restart forced again"
    );
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
        RolloutOutcome::Failed { reason } => assert!(reason.contains("disappeared"), "{reason}"),
        other => panic!("{other:?}"),
    }
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

    let fake = fake_ecs(&["ok-x"]).await;
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
        fake_stalled_rollout_times_out_and_bad_targets_are_refused,
    ],
}
