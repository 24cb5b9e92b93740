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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, LaunchType,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vsync_orchestrate_api::{ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId};
use vsync_orchestrate_aws::{EcsConfig, EcsRestarter};

fn config(cluster: &str, services: &[&str], endpoint: &str) -> EcsConfig {
    EcsConfig {
        cluster: cluster.to_owned(),
        services: services.iter().map(|s| s.to_string()).collect(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
        profile: None,
        poll_interval: Duration::from_millis(20),
    }
}

// ---------------------------------------------------------------------------------
// Real API: moto.

#[tokio::test]
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

/// Starts the fake on a free loopback port; returns its endpoint and state.
async fn fake_ecs(services: &[&str]) -> (String, Arc<Mutex<FakeState>>) {
    let state = Arc::new(Mutex::new(FakeState::default()));
    for s in services {
        state.lock().unwrap().add(s);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve_connection(sock, st.clone()));
        }
    });
    (format!("http://{addr}"), state)
}

/// HTTP/1.1 with keep-alive, just enough for the SDK's client.
async fn serve_connection(mut sock: TcpStream, state: Arc<Mutex<FakeState>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        let target = header("x-amz-target").unwrap_or_default();
        assert!(
            target.starts_with("AmazonEC2ContainerServiceV20141113."),
            "unexpected target {target}"
        );
        let (status, reply) = state.lock().unwrap().handle(&target, &body);
        let reply = reply.to_string();
        let resp = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: fake\r\nContent-Length: {}\r\n\r\n{reply}",
            if status == 200 { "OK" } else { "Bad Request" },
            reply.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn fake_restarter(services: &[&str]) -> (EcsRestarter, Arc<Mutex<FakeState>>) {
    let (endpoint, state) = fake_ecs(services).await;
    let sdk = common::test_sdk_config(&endpoint).await;
    let r = EcsRestarter::from_sdk_config(config("c1", services, &endpoint), &sdk).unwrap();
    (r, state)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
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
        state.lock().unwrap().calls["UpdateService"],
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
        state.lock().unwrap().calls["DescribeServices"] >= 3,
        "did not poll progress"
    );
}

#[tokio::test]
async fn fake_failed_rollout_reports_the_reason() {
    let (r, _) = fake_restarter(&["ok-api", "fail-api"]).await;
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

#[tokio::test]
async fn fake_rollback_is_a_failure_not_a_steady_service() {
    let (r, _) = fake_restarter(&["rollback-api"]).await;
    let rollout = r
        .restart(&RestartContext::new(RunId("run-3".into())))
        .await
        .unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => assert!(reason.contains("disappeared"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fake_stalled_rollout_times_out_and_bad_targets_are_refused() {
    let (r, _) = fake_restarter(&["stuck-api"]).await;
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

    let (cd, _) = fake_restarter(&["codedeploy-api"]).await;
    assert_eq!(
        cd.preflight().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );

    let (endpoint, _) = fake_ecs(&["ok-x"]).await;
    let sdk = common::test_sdk_config(&endpoint).await;
    let wrong = EcsRestarter::from_sdk_config(config("other", &["ok-x"], &endpoint), &sdk).unwrap();
    assert_eq!(
        wrong.preflight().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
