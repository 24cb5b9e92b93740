//! The vendor's own client against the fake ECS the restarter's tests use
//! (`ecs_fake/`): the aws CLI (`VSYNC_TEST_AWS_CLI`, exported by
//! `.ci/services/42-aws-cli.sh`) builds the requests from the service model, signs
//! them, and parses the fake's answers with botocore's JSON 1.1 parser. An answer
//! ECS would not send (a member of the wrong type, an error body botocore cannot
//! read, a wrong content type) shows up here as a parse failure or a wrong error
//! code, not as a green restarter test.

mod ecs_fake;

use std::time::{Duration, Instant};

use serde_json::Value;
use vsync_orchestrate_api::{RestartContext, Restarter, RolloutOutcome, RunId};
use vsync_orchestrate_aws::{EcsConfig, EcsRestarter};
use vsync_orchestrate_testkit::fake_http::FakeHttp;
use vsync_orchestrate_testkit::service::{current_test, env_or_skip};

use ecs_fake::{FakeState, ARN, CLUSTER};

struct Cli {
    bin: String,
    endpoint: String,
}

/// One CLI run: exit code, stdout parsed as JSON when it is, stderr.
struct Ran {
    code: i32,
    json: Value,
    stderr: String,
}

impl Cli {
    async fn on(fake: &FakeHttp<FakeState>) -> Option<Cli> {
        let bin = env_or_skip(&current_test(), &["VSYNC_TEST_AWS_CLI"])?.remove(0);
        Some(Cli {
            bin,
            endpoint: fake.url(),
        })
    }

    async fn run(&self, args: &[&str]) -> Ran {
        let out = tokio::process::Command::new(&self.bin)
            .args(["ecs"])
            .args(args)
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            // Static test credentials and region; nothing from the developer's own
            // configuration.
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/vsync-aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/vsync-aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        let json = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("aws {args:?}: stdout is not JSON ({e}): {stdout}"))
        };
        Ran { code, json, stderr }
    }

    /// A call that must succeed; its parsed output.
    async fn ok(&self, args: &[&str]) -> Value {
        let r = self.run(args).await;
        assert_eq!(r.code, 0, "aws ecs {args:?} failed: {}", r.stderr);
        r.json
    }

    /// A call the fake refuses: the CLI must exit as for a service error (254 in
    /// v2, 255 in v1) and name the error code and message as ECS sent them:
    /// "An error occurred (<Code>) when calling the <Op> operation: <message>".
    async fn refused(&self, args: &[&str], code: &str, op: &str, message: &str) {
        let r = self.run(args).await;
        assert!(
            r.code == 254 || r.code == 255,
            "aws ecs {args:?}: exit {} (stderr: {})",
            r.code,
            r.stderr
        );
        let want = format!("An error occurred ({code}) when calling the {op} operation");
        assert!(
            r.stderr.contains(&want) && r.stderr.contains(message),
            "aws ecs {args:?}: wanted {want:?} and {message:?} in: {}",
            r.stderr
        );
    }
}

fn service_arn(name: &str) -> String {
    format!("{ARN}:service/{CLUSTER}/{name}")
}

async fn cli_describes_and_forces_a_deployment() {
    let fake = ecs_fake::start(&["ok-api", "codedeploy-blue"]).await;
    let Some(cli) = Cli::on(&fake).await else {
        return;
    };
    let out = cli
        .ok(&[
            "describe-services",
            "--cluster",
            CLUSTER,
            "--services",
            "ok-api",
            "missing",
        ])
        .await;
    let svc = &out["services"][0];
    assert_eq!(svc["serviceName"], "ok-api");
    assert_eq!(svc["serviceArn"], service_arn("ok-api"));
    assert_eq!(svc["status"], "ACTIVE");
    assert_eq!(svc["deploymentController"]["type"], "ECS");
    assert_eq!(
        svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"],
        true
    );
    assert_eq!(svc["deployments"][0]["status"], "PRIMARY");
    assert_eq!(svc["deployments"][0]["rolloutState"], "COMPLETED");
    // A JSON 1.1 timestamp is epoch seconds: CLI v2 prints it as ISO 8601, v1
    // (`cli_timestamp_format = none`) as sent.
    let created = &svc["deployments"][0]["createdAt"];
    assert!(
        created.as_f64() == Some(1_764_000_000.5)
            || created
                .as_str()
                .is_some_and(|t| t.starts_with("2025-11-24T16:00:00.5")),
        "{created}"
    );
    assert!(svc.get("tags").is_none(), "tags without --include TAGS");
    assert_eq!(out["failures"][0]["reason"], "MISSING");
    assert_eq!(out["failures"][0]["arn"], service_arn("missing"));

    let out = cli
        .ok(&[
            "update-service",
            "--cluster",
            CLUSTER,
            "--service",
            "ok-api",
            "--force-new-deployment",
        ])
        .await;
    let deps = out["service"]["deployments"].as_array().unwrap();
    assert_eq!(deps.len(), 2, "{deps:?}");
    assert_eq!(deps[0]["id"], "ecs-svc/0001");
    assert_eq!(deps[0]["status"], "PRIMARY");
    assert_eq!(deps[0]["rolloutState"], "IN_PROGRESS");
    assert_eq!(deps[1]["status"], "ACTIVE");
    assert_eq!(
        fake.state().forced,
        1,
        "the CLI's request forced no deployment"
    );

    cli.refused(
        &[
            "describe-services",
            "--cluster",
            "other",
            "--services",
            "ok-api",
        ],
        "ClusterNotFoundException",
        "DescribeServices",
        "Cluster not found.",
    )
    .await;
    cli.refused(
        &[
            "update-service",
            "--cluster",
            CLUSTER,
            "--service",
            "nope",
            "--force-new-deployment",
        ],
        "ServiceNotFoundException",
        "UpdateService",
        "Service not found.",
    )
    .await;
}

async fn cli_tags_and_sees_the_tagging_refusals() {
    let fake = ecs_fake::start(&["ok-api", "ok-short-api"]).await;
    let Some(cli) = Cli::on(&fake).await else {
        return;
    };
    let arn = service_arn("ok-api");
    let out = cli
        .ok(&[
            "tag-resource",
            "--resource-arn",
            &arn,
            "--tags",
            "key=team,value=payments",
        ])
        .await;
    assert!(
        out.is_null() || out == serde_json::json!({}),
        "TagResource answers an empty object: {out}"
    );
    let out = cli
        .ok(&["list-tags-for-resource", "--resource-arn", &arn])
        .await;
    assert_eq!(
        out["tags"],
        serde_json::json!([{"key": "team", "value": "payments"}])
    );
    let out = cli
        .ok(&[
            "describe-services",
            "--cluster",
            CLUSTER,
            "--services",
            "ok-api",
            "--include",
            "TAGS",
        ])
        .await;
    assert_eq!(out["services"][0]["tags"][0]["key"], "team");

    // The old short ARN: ECS's own refusal, as the CLI shows it.
    let short = format!("{ARN}:service/ok-short-api");
    cli.refused(
        &[
            "tag-resource",
            "--resource-arn",
            &short,
            "--tags",
            "key=a,value=b",
        ],
        "InvalidParameterException",
        "TagResource",
        "Long arn format must be used for tagging operations",
    )
    .await;
    cli.refused(
        &[
            "tag-resource",
            "--resource-arn",
            &service_arn("gone"),
            "--tags",
            "key=a,value=b",
        ],
        "ResourceNotFoundException",
        "TagResource",
        "The specified resource wasn't found.",
    )
    .await;

    fake.state().denied.push("TagResource".into());
    cli.refused(
        &[
            "tag-resource",
            "--resource-arn",
            &arn,
            "--tags",
            "key=a,value=b",
        ],
        "AccessDeniedException",
        "TagResource",
        "is not authorized to perform: ecs:TagResource",
    )
    .await;
}

/// The restarter and the CLI see the same service: the markers the restarter set
/// read back through the CLI, and a circuit-breaker rollback parses as ECS sends it.
async fn cli_reads_what_the_restarter_did() {
    let fake = ecs_fake::start(&["ok-api", "rollback-api"]).await;
    let Some(cli) = Cli::on(&fake).await else {
        return;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let cfg = EcsConfig {
        cluster: CLUSTER.into(),
        services: vec!["ok-api".into(), "rollback-api".into()],
        region: Some("us-east-1".into()),
        endpoint: Some(fake.url()),
        profile: None,
        timeout: None,
        poll_interval: Duration::from_millis(20),
    };
    let r = EcsRestarter::from_sdk_config(cfg, &sdk).unwrap();
    let rollout = r
        .restart(&RestartContext::new(RunId("run-cli".into())))
        .await
        .unwrap();
    let out = cli
        .ok(&[
            "list-tags-for-resource",
            "--resource-arn",
            &service_arn("ok-api"),
        ])
        .await;
    let tags = out["tags"].as_array().unwrap();
    let tag = |k: &str| {
        tags.iter()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].clone())
    };
    assert_eq!(tag("vsync-orchestrate:run"), Some("run-cli".into()));
    assert_eq!(
        tag("vsync-orchestrate:deployment"),
        Some(rollout.extra["deployments"]["ok-api"].clone())
    );

    let outcome = r
        .wait(&rollout, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RolloutOutcome::Failed { reason } if reason.contains("circuit breaker")),
        "{outcome:?}"
    );
    let out = cli
        .ok(&[
            "describe-services",
            "--cluster",
            CLUSTER,
            "--services",
            "rollback-api",
        ])
        .await;
    let deps = out["services"][0]["deployments"].as_array().unwrap();
    let ours = deps
        .iter()
        .find(|d| d["id"] == rollout.extra["deployments"]["rollback-api"])
        .unwrap_or_else(|| panic!("our deployment is gone: {deps:?}"));
    assert_eq!(ours["rolloutState"], "FAILED");
    assert_eq!(ours["status"], "ACTIVE");
    assert_eq!(ours["failedTasks"], 3);
    assert!(ours["rolloutStateReason"]
        .as_str()
        .unwrap()
        .contains("circuit breaker"));
    assert_eq!(deps[0]["status"], "PRIMARY");
}

// This target's `main` (`harness = false` in Cargo.toml).
vsync_orchestrate_testkit::main! {
    tests: [
        cli_describes_and_forces_a_deployment,
        cli_tags_and_sees_the_tagging_refusals,
        cli_reads_what_the_restarter_did,
    ],
}
