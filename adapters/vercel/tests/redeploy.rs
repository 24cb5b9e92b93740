//! The `vercel` restarter against the stateful Vercel REST fake (`fake/mod.rs`,
//! project and deployment endpoints; builds advance QUEUED → BUILDING → READY
//! over polls): the kit's restarter suite, then a failed build, a cancel, an alias
//! error, failed checks, an Instant Rollback (seen only when the project is read
//! with `rollbackInfo=true`, as the fake leaves it out otherwise; refused, or
//! promoted with `promote = true` and the promotion job followed), rate limiting
//! and polling blips.

mod fake;

use fake::{start, Build, PromoteJob, VercelState, PROJECT, TEAM, TOKEN};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, When};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};
use vsync_orchestrate_vercel::{VercelRedeploy, VercelRedeployConfig, RUN_META};

const TOKEN_ENV: &str = "VSYNC_TEST_VERCEL_TOKEN";

fn config(fake: &FakeHttp<VercelState>) -> VercelRedeployConfig {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let mut c = VercelRedeployConfig::new(PROJECT);
    c.team_id = Some(TEAM.into());
    c.token_env = TOKEN_ENV.into();
    c.api_base = Some(fake.url());
    c.poll_interval = Duration::from_millis(20);
    c
}

fn restarter(fake: &FakeHttp<VercelState>) -> VercelRedeploy {
    VercelRedeploy::new(config(fake)).unwrap()
}

async fn fake_with(build: Build) -> FakeHttp<VercelState> {
    let mut st = VercelState::default();
    st.build = build;
    start(st).await
}

fn ctx(run: &str) -> RestartContext {
    RestartContext::new(RunId(run.to_owned()))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

// ---------------------------------------------------------------------------------
// The kit's restarter suite.

struct Fixture;
struct Prepared(FakeHttp<VercelState>);

#[vsync_orchestrate_api::async_trait]
impl RestarterFixture for Fixture {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let build = match scenario {
            Scenario::Healthy => Build::Healthy,
            Scenario::Failing => Build::Fails,
            Scenario::Stalling => Build::Stalls,
        };
        Box::new(Prepared(fake_with(build).await))
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(10)
    }
}

#[vsync_orchestrate_api::async_trait]
impl RestartTarget for Prepared {
    async fn open(&self) -> Arc<dyn Restarter> {
        Arc::new(restarter(&self.0))
    }

    /// Deployments the platform created.
    async fn starts(&self) -> usize {
        self.0.state().redeploys
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::restarter_suite!(fixture());

// ---------------------------------------------------------------------------------

async fn production_is_redeployed_like_vercel_redeploy_and_followed_to_its_alias() {
    let fake = fake_with(Build::Healthy).await;
    let before = fake.state().production.clone().unwrap();
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail
            .contains(&format!("production is {before}, READY")),
        "{}",
        pf.detail
    );
    let rollout = r.restart(&ctx("20261130T050000Z-abc123")).await.unwrap();
    let post = fake
        .requests()
        .into_iter()
        .find(|q| q.method == "POST" && q.path == "/v13/deployments")
        .unwrap();
    assert_eq!(post.query_param("forceNew").as_deref(), Some("1"));
    assert_eq!(
        post.json(),
        serde_json::json!({
            "name": PROJECT, "deploymentId": before, "target": "production",
            "meta": { "action": "redeploy", RUN_META: "20261130T050000Z-abc123" }
        })
    );
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(
                detail.contains("READY, production alias assigned"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fake.state().production.as_deref(),
        Some(rollout.id.as_str())
    );
    // The polls saw the lifecycle.
    assert!(fake.count(&When::path(&format!("/v13/deployments/{}", rollout.id))) >= 2);
}

async fn a_failed_build_a_cancel_and_an_alias_error_are_failures_with_their_reason() {
    for (build, want) in [
        (Build::Fails, "failed (BUILD_FAILED): Command \"npm run build\" exited with 1"),
        (Build::Canceled, "was canceled before it was ready"),
        (Build::AliasFails, "the production alias failed: DEPLOYMENT_ALIAS_FAILED: The domain shop.example.com is not verified"),
        (Build::ChecksFail, "its checks failed (checksConclusion = failed)"),
    ] {
        let fake = fake_with(build).await;
        let r = restarter(&fake);
        let rollout = r.restart(&ctx("run-fail")).await.unwrap();
        match r.wait(&rollout, soon()).await.unwrap() {
            RolloutOutcome::Failed { reason } => assert!(reason.contains(want), "{build:?}: {reason}"),
            other => panic!("{build:?}: {other:?}"),
        }
    }
}

async fn an_instant_rollback_is_explained_or_promoted_when_asked() {
    let fake = fake_with(Build::Healthy).await;
    fake.state().roll_back();
    let e = restarter(&fake).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("rolled back"), "{e}");
    assert!(e.message().contains("promote = true"), "{e}");
    let e = restarter(&fake).restart(&ctx("run-rb")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(fake.state().redeploys, 0, "nothing built");

    let mut c = config(&fake);
    c.promote = true;
    let r = VercelRedeploy::new(c).unwrap();
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.warnings[0].contains("will be promoted"),
        "{:?}",
        pf.warnings
    );
    let rollout = r.restart(&ctx("run-rb")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(detail.contains("promoted to production"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let st = fake.state();
    assert_eq!(st.promotions, 1);
    assert_eq!(st.production.as_deref(), Some(rollout.id.as_str()));
    assert!(st.rolled_back_to.is_none());
    drop(st);
    // Asked as `vercel promote` asks: the body `{}`, then the project's
    // `lastAliasRequest` read with `rollbackInfo=true` until the job ends.
    let posts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path.contains("/promote/"))
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json(), serde_json::json!({}));
    let project_reads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|q| q.path == "/v9/projects/shop")
        .collect();
    assert!(project_reads.len() >= 4, "{}", project_reads.len());
    assert!(project_reads
        .iter()
        .all(|q| q.query_param("rollbackInfo").as_deref() == Some("true")));
}

/// A promotion is a job: its failure is the rollout's, with the reason; one
/// queued behind a rolling release (202) is followed to its end.
async fn a_promotion_job_that_fails_is_a_failure_and_a_queued_one_is_followed() {
    for (job, want) in [
        (PromoteJob::Fails, Err("promotion to production failed")),
        (PromoteJob::Queued, Ok("promoted to production")),
    ] {
        let fake = fake_with(Build::Healthy).await;
        fake.state().roll_back();
        fake.state().promote_job = job;
        let mut c = config(&fake);
        c.promote = true;
        let r = VercelRedeploy::new(c).unwrap();
        let rollout = r.restart(&ctx("run-job")).await.unwrap();
        match (r.wait(&rollout, soon()).await.unwrap(), want) {
            (RolloutOutcome::Failed { reason }, Err(w)) => assert!(reason.contains(w), "{reason}"),
            (RolloutOutcome::Done { detail }, Ok(w)) => assert!(detail.contains(w), "{detail}"),
            (other, _) => panic!("{job:?}: {other:?}"),
        }
        assert_eq!(fake.state().promotions, 1, "{job:?}: asked once");
    }
}

async fn rate_limits_and_blips_are_waited_out() {
    let fake = fake_with(Build::Healthy).await;
    // Vercel's own refusal (429 `rate_limited`, Retry-After), not the kit's.
    fake.state().rate_limit("POST", "/v13/deployments", 1, 1);
    let r = restarter(&fake);
    let t = Instant::now();
    let rollout = r.restart(&ctx("run-429")).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(fake.state().redeploys, 1);
    fake.inject(
        When::any().method("GET").times(2),
        Fault::RetryAfter {
            status: 429,
            seconds: 1,
        },
    );
    fake.inject(When::any().method("GET").times(1), Fault::Status(502));
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
    // A lost answer to the redeploy is found by the run's meta, not built twice.
    let fake = fake_with(Build::Healthy).await;
    fake.inject(
        When::path("/v13/deployments").method("POST"),
        Fault::CutAfter,
    );
    assert!(restarter(&fake).restart(&ctx("run-cut")).await.is_err());
    let again = restarter(&fake).restart(&ctx("run-cut")).await.unwrap();
    assert_eq!(fake.state().redeploys, 1);
    assert!(restarter(&fake)
        .wait(&again, soon())
        .await
        .unwrap()
        .is_done());
}

async fn a_missing_project_and_a_refused_token_have_kinds() {
    let fake = fake_with(Build::Healthy).await;
    let mut c = config(&fake);
    c.project = "nope".into();
    assert_eq!(
        VercelRedeploy::new(c)
            .unwrap()
            .preflight()
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // A token Vercel does not know: 403 `forbidden`.
    std::env::set_var("VSYNC_TEST_VERCEL_WRONG_TOKEN", "notTheToken");
    let mut c = config(&fake);
    c.token_env = "VSYNC_TEST_VERCEL_WRONG_TOKEN".into();
    let e = VercelRedeploy::new(c)
        .unwrap()
        .preflight()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission);
    assert!(!e.chain().contains(TOKEN));
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        production_is_redeployed_like_vercel_redeploy_and_followed_to_its_alias,
        a_failed_build_a_cancel_and_an_alias_error_are_failures_with_their_reason,
        an_instant_rollback_is_explained_or_promoted_when_asked,
        a_promotion_job_that_fails_is_a_failure_and_a_queued_one_is_followed,
        rate_limits_and_blips_are_waited_out,
        a_missing_project_and_a_refused_token_have_kinds,
    ],
}
