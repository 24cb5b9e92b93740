//! The `cloud_run` restarter against the stateful Cloud Run Admin v2 fake
//! (`fake/cloud_run.rs`): the kit's restarter suite, then a revision that fails to
//! start, an operation that fails, a pinned secret version moved, etag conflicts,
//! lost answers and the preflight warnings.

mod fake;

use fake::cloud_run::{self as run, Behaviour, RunState};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{
    async_trait, ActivatedVersion, ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId,
    Target,
};
use vsync_orchestrate_gcp::{CloudRunConfig, CloudRunRestarter, CredentialSource, RUN_ANNOTATION};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, When};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

const SERVICE: &str = "projects/shop-prod/locations/europe-west1/services/shop";
const SECRET: &str = "projects/shop-prod/secrets/vsync-passphrase";

fn config(endpoint: &str, services: &[&str]) -> CloudRunConfig {
    let mut c = CloudRunConfig::new(services.iter().copied());
    c.endpoint = Some(endpoint.to_owned());
    c.credentials = CredentialSource::Anonymous;
    c.poll_interval = Duration::from_millis(20);
    c
}

async fn fake_with(behaviour: Behaviour, template: serde_json::Value) -> FakeHttp<RunState> {
    let mut st = RunState::default();
    st.add_service(SERVICE, behaviour, template);
    run::start(st).await
}

fn restarter(fake: &FakeHttp<RunState>) -> CloudRunRestarter {
    CloudRunRestarter::new(config(&fake.url(), &[SERVICE])).unwrap()
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
struct Prepared(FakeHttp<RunState>);

#[async_trait]
impl RestarterFixture for Fixture {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let behaviour = match scenario {
            Scenario::Healthy => Behaviour::Healthy,
            Scenario::Failing => Behaviour::FailsToStart,
            Scenario::Stalling => Behaviour::Stalls,
        };
        Box::new(Prepared(
            fake_with(behaviour, run::template("vsync-passphrase", "current")).await,
        ))
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(10)
    }
}

#[async_trait]
impl RestartTarget for Prepared {
    async fn open(&self) -> Arc<dyn Restarter> {
        Arc::new(restarter(&self.0))
    }

    /// Updates the platform applied: each is a new revision.
    async fn starts(&self) -> usize {
        self.0.state().updates(SERVICE)
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::restarter_suite!(fixture());

// ---------------------------------------------------------------------------------

async fn a_new_revision_marked_with_the_run_id_is_followed_to_ready() {
    let fake = fake_with(
        Behaviour::Healthy,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail
            .contains("shop (generation 1, serving shop-00001-aaa)"),
        "{}",
        pf.detail
    );
    assert!(pf.warnings.is_empty(), "{:?}", pf.warnings);

    let rollout = r.restart(&ctx("20261129T210249Z-03b10e")).await.unwrap();
    assert_eq!(rollout.id, "shop@2");
    assert!(
        rollout.extra["services"][SERVICE]["operation"]
            .as_str()
            .unwrap()
            .contains("/operations/"),
        "{}",
        rollout.extra
    );
    {
        let st = fake.state();
        let svc = st.service(SERVICE);
        assert_eq!(
            svc["template"]["annotations"][RUN_ANNOTATION],
            "20261129T210249Z-03b10e"
        );
        // Nothing else of the template changed: the alias reference stays.
        assert_eq!(
            svc["template"]["containers"][0]["env"][0]["valueSource"]["secretKeyRef"],
            json!({"secret": "vsync-passphrase", "version": "current"})
        );
        assert_eq!(
            svc["template"]["containers"][0]["image"],
            "europe-docker.pkg.dev/p/shop/app:1.4.2"
        );
    }
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert_eq!(detail, "shop: revision shop-00002-r2x ready (generation 2)")
        }
        other => panic!("{other:?}"),
    }
    let polled = fake.count(
        &When::any()
            .method("GET")
            .matching(|r| r.path.contains("/operations/")),
    );
    assert!(
        polled >= 2,
        "the operation was not followed ({polled} polls)"
    );
}

async fn a_revision_that_fails_to_start_is_a_failure_quoting_its_condition() {
    let fake = fake_with(
        Behaviour::FailsToStart,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-fail")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.starts_with(
                    "shop: the rollout failed: Revision 'shop-00002-r2x' is not ready"
                ) && reason.contains("failed to start and listen on the port"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A fresh process that only has the journal (no operation) judges the service.
    let mut journaled = rollout.clone();
    journaled.extra["services"][SERVICE]["operation"] = serde_json::Value::Null;
    match restarter(&fake).wait(&journaled, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("not Ready: Revision 'shop-00002-r2x'"),
                "{reason}"
            );
            assert!(reason.contains("REVISION_FAILED"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// After a failed rollout Cloud Run leaves `observedGeneration` at the last serving
/// revision and stops reconciling; without the operation (a resumed run, a lost
/// UpdateService answer, an expired operation) the service alone must say Failed.
async fn a_failed_rollout_seen_only_on_the_service_is_a_failure_not_a_timeout() {
    let fake = fake_with(
        Behaviour::FailsToStart,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    // The update lands but its answer (and with it the operation's name) is lost.
    fake.inject(
        When::path(&format!("/v2/{SERVICE}")).method("PATCH"),
        Fault::CutAfter,
    );
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-lost-fail")).await.unwrap();
    assert_eq!(rollout.extra["services"][SERVICE]["operation"], json!(null));
    assert_eq!(rollout.id, "shop@2");
    let started = Instant::now();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("not Ready: Revision 'shop-00002-r2x' is not ready")
                    && reason.contains("still serving shop-00001-aaa"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "judged, not timed out"
    );
    let st = fake.state();
    let svc = st.service(SERVICE);
    assert_eq!(svc["generation"], "2");
    assert_eq!(
        svc["observedGeneration"], "1",
        "the last serving revision's"
    );
    assert_eq!(svc["reconciling"], false);
    assert_eq!(
        svc["latestReadyRevision"],
        format!("{SERVICE}/revisions/shop-00001-aaa")
    );
}

async fn an_operation_that_fails_is_a_failure_quoting_both_messages() {
    let fake = fake_with(
        Behaviour::OperationFails,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-op")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("Internal error while deploying"),
                "{reason}"
            );
            assert!(
                reason.contains("; Ready: Revision 'shop-00002-r2x' could not be created"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

async fn a_pinned_secret_version_is_moved_to_the_activated_one() {
    let mut template = run::template("vsync-passphrase", "1");
    template["volumes"] = json!([{
        "name": "vsync",
        "secret": { "secret": SECRET, "items": [{ "path": "passphrase", "version": "1" }] }
    }]);
    let fake = fake_with(Behaviour::Healthy, template).await;
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail
            .contains("env VSYNC_PASSPHRASE of container app pins vsync-passphrase to version 1"),
        "{}",
        pf.detail
    );
    let c = ctx("run-pin").with_activated(vec![ActivatedVersion {
        target: Target::new("gcp_secret_manager", SECRET),
        version: "2".into(),
    }]);
    let rollout = r.restart(&c).await.unwrap();
    {
        let st = fake.state();
        let t = &st.service(SERVICE)["template"];
        assert_eq!(
            t["containers"][0]["env"][0]["valueSource"]["secretKeyRef"]["version"],
            "2"
        );
        assert_eq!(t["volumes"][0]["secret"]["items"][0]["version"], "2");
        assert_eq!(st.updates(SERVICE), 1, "one revision carries both changes");
    }
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => assert!(
            detail.contains("env VSYNC_PASSPHRASE of container app: version 1 → 2")
                && detail.contains("volume vsync file passphrase: version 1 → 2"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }
}

async fn a_fixed_revision_name_is_cleared_and_warned_about() {
    let mut template = run::template("vsync-passphrase", "latest");
    template["revision"] = json!("shop-v1");
    let mut st = RunState::default();
    st.add_service(SERVICE, Behaviour::Healthy, template);
    st.services
        .get_mut(SERVICE)
        .unwrap()
        .revisions
        .push(format!("{SERVICE}/revisions/shop-v1"));
    st.services.get_mut(SERVICE).unwrap().json["traffic"] = json!([
        { "type": 2, "revision": "shop-v1", "percent": 100 }
    ]);
    let fake = run::start(st).await;
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    let w = pf.warnings.join("\n");
    assert!(
        w.contains("shop-v1 100%") && w.contains("serve nothing"),
        "{w}"
    );
    assert!(w.contains("names its revision \"shop-v1\""), "{w}");
    assert!(w.contains("at `latest`"), "{w}");

    let rollout = r.restart(&ctx("run-fixed")).await.unwrap();
    assert_eq!(
        fake.state().service(SERVICE)["template"]["revision"],
        json!(null)
    );
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

async fn an_etag_conflict_is_read_again_and_a_lost_answer_is_found_by_its_marker() {
    let fake = fake_with(
        Behaviour::Healthy,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    fake.state().concurrent_writes = 1;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-etag")).await.unwrap();
    assert_eq!(fake.state().updates(SERVICE), 1);
    assert_eq!(
        fake.count(&When::path(&format!("/v2/{SERVICE}")).method("PATCH")),
        2,
        "the first update met a moved etag"
    );
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());

    // The update lands but its answer is lost: the next read finds the marker.
    fake.inject(
        When::path(&format!("/v2/{SERVICE}")).method("PATCH"),
        Fault::CutAfter,
    );
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-cut")).await.unwrap();
    assert_eq!(fake.state().updates(SERVICE), 2, "one update per run");
    assert_eq!(rollout.extra["services"][SERVICE]["operation"], json!(null));
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

async fn missing_services_and_refused_credentials_have_kinds() {
    let fake = fake_with(
        Behaviour::Healthy,
        run::template("vsync-passphrase", "current"),
    )
    .await;
    let other = CloudRunRestarter::new(config(
        &fake.url(),
        &[
            SERVICE,
            "projects/shop-prod/locations/europe-west1/services/nope",
        ],
    ))
    .unwrap();
    let e = other.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("services/nope"), "{}", e.message());

    fake.inject(When::path(&format!("/v2/{SERVICE}")), Fault::Status(403));
    assert_eq!(
        restarter(&fake).preflight().await.unwrap_err().kind(),
        ErrorKind::Permission
    );
    // Polling blips are not a failed rollout.
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-blip")).await.unwrap();
    fake.inject(When::any().method("GET").times(2), Fault::Status(500));
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        a_new_revision_marked_with_the_run_id_is_followed_to_ready,
        a_revision_that_fails_to_start_is_a_failure_quoting_its_condition,
        a_failed_rollout_seen_only_on_the_service_is_a_failure_not_a_timeout,
        an_operation_that_fails_is_a_failure_quoting_both_messages,
        a_pinned_secret_version_is_moved_to_the_activated_one,
        a_fixed_revision_name_is_cleared_and_warned_about,
        an_etag_conflict_is_read_again_and_a_lost_answer_is_found_by_its_marker,
        missing_services_and_refused_credentials_have_kinds,
    ],
}
