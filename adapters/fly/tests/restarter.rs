//! The `fly` restarter against the stateful Fly.io Machines API fake
//! (`fake/mod.rs`: leases with nonces, restart → stopping → starting → started
//! over polls, checks critical → passing): the kit's restarter suite, then the
//! rolling order and machine selection, a failing check that stops the rollout
//! naming the machine, a crash, a held lease (waited out, or timed out with every
//! lease released), cancel, rate limiting and resume by the metadata marker.

mod fake;

use fake::{start, Behaviour, FlyState, APP, TOKEN};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RestartContext, Restarter, RolloutOutcome, RunId};
use vsync_orchestrate_fly::{FlyConfig, FlyRestarter, RUN_METADATA};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, When};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

const TOKEN_ENV: &str = "VSYNC_TEST_FLY_TOKEN";

fn config(fake: &FakeHttp<FlyState>) -> FlyConfig {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let mut c = FlyConfig::new(APP);
    c.token_env = TOKEN_ENV.into();
    c.api_base = Some(fake.url());
    c.poll_interval = Duration::from_millis(20);
    c.check_grace = Duration::from_millis(200);
    c
}

fn restarter(fake: &FakeHttp<FlyState>) -> FlyRestarter {
    FlyRestarter::new(config(fake)).unwrap()
}

fn ctx(run: &str) -> RestartContext {
    RestartContext::new(RunId(run.to_owned()))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// Three serving machines in two regions, plus a release-command machine, a
/// console machine and a stopped one that must be left alone.
fn app(behaviours: [Behaviour; 3]) -> (FlyState, Vec<String>) {
    let mut st = FlyState::default();
    let ids = vec![
        st.add_machine("ams", "app", "started", behaviours[0]),
        st.add_machine("ams", "app", "started", behaviours[1]),
        st.add_machine("iad", "app", "started", behaviours[2]),
    ];
    st.add_machine(
        "ams",
        "fly_app_release_command",
        "started",
        Behaviour::Healthy,
    );
    st.add_machine("ams", "fly_app_console", "started", Behaviour::Healthy);
    st.add_machine("iad", "app", "stopped", Behaviour::Healthy);
    (st, ids)
}

// ---------------------------------------------------------------------------------
// The kit's restarter suite.

struct Fixture;
struct Prepared(FakeHttp<FlyState>);

#[vsync_orchestrate_api::async_trait]
impl RestarterFixture for Fixture {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let b = match scenario {
            Scenario::Healthy => Behaviour::Healthy,
            Scenario::Failing => Behaviour::FailingCheck,
            Scenario::Stalling => Behaviour::NeverStarts,
        };
        let (st, _) = app([Behaviour::Healthy, b, Behaviour::Healthy]);
        Box::new(Prepared(start(st).await))
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

    /// Machine restarts the API applied.
    async fn starts(&self) -> usize {
        self.0.state().total_restarts()
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::restarter_suite!(fixture());

// ---------------------------------------------------------------------------------

async fn serving_machines_are_restarted_one_by_one_under_a_lease_and_marked() {
    let (st, ids) = app([Behaviour::Healthy; 3]);
    let fake = start(st).await;
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail
            .starts_with("3 of 6 machine(s) to restart, 1 at a time"),
        "{}",
        pf.detail
    );
    assert!(
        pf.warnings
            .iter()
            .any(|w| w.contains("not restarted (not started)") && w.contains("stopped")),
        "{:?}",
        pf.warnings
    );
    let rollout = r.restart(&ctx("run-ok")).await.unwrap();
    assert_eq!(rollout.id, format!("{APP}@run-ok"));
    assert_eq!(
        fake.state().total_restarts(),
        0,
        "restart starts nothing yet"
    );
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(detail.starts_with("3 machine(s) restarted"), "{detail}");
            assert!(detail.contains("1 check(s) passing"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let st = fake.state();
    assert_eq!(st.order, ids, "one after the other, in order");
    for id in &ids {
        assert_eq!(st.machine(id)["config"]["metadata"][RUN_METADATA], "run-ok");
        assert_eq!(st.machine(id)["checks"][0]["status"], "passing");
    }
    assert_eq!(st.leases_granted, 3);
    assert_eq!(st.leases_released, 3);
    assert!(st.leases_held().is_empty());
    // Every restart carried the lease's nonce; the FlyV1 token went verbatim.
    let reqs = fake.requests();
    let restarts: Vec<_> = reqs
        .iter()
        .filter(|q| q.path.ends_with("/restart"))
        .collect();
    assert!(restarts.iter().all(|q| q
        .header("fly-machine-lease-nonce")
        .is_some_and(|n| n.starts_with("nonce-"))));
    assert!(reqs
        .iter()
        .all(|q| q.header("authorization") == Some(TOKEN)));
}

async fn a_failing_check_stops_the_rollout_naming_the_machine_and_its_output() {
    let (st, ids) = app([
        Behaviour::Healthy,
        Behaviour::FailingCheck,
        Behaviour::Healthy,
    ]);
    let fake = start(st).await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-bad")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains(&format!("machine {} (ams)", ids[1])),
                "{reason}"
            );
            assert!(reason.contains("is critical"), "{reason}");
            assert!(reason.contains("WrongPassphraseError"), "{reason}");
            assert!(
                reason.contains("1 of 3 machine(s) restarted before"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let st = fake.state();
    assert_eq!(st.order, ids[..2], "the third machine was not touched");
    assert!(
        st.leases_held().is_empty(),
        "the failing machine's lease was released"
    );
}

/// Flaps adds `bg_deployments_compat*` checks for old flyctl versions; fly-go drops
/// them before judging health (`machine_types.go`, `RemoveCompatChecks`), so a
/// critical one must not fail a healthy machine, nor count as a check.
async fn compat_checks_flaps_adds_are_ignored_as_fly_go_ignores_them() {
    let (mut st, ids) = app([Behaviour::Healthy; 3]);
    for id in &ids {
        st.add_compat_check(id, "critical");
    }
    let only_compat = st.add_machine("iad", "app", "started", Behaviour::Healthy);
    st.machines.get_mut(&only_compat).unwrap().json["checks"] = serde_json::json!([]);
    st.add_compat_check(&only_compat, "passing");
    let fake = start(st).await;
    let r = restarter(&fake);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.warnings
            .iter()
            .any(|w| w.contains("machines without checks") && w.contains(&only_compat)),
        "{:?}",
        pf.warnings
    );
    assert!(
        !pf.warnings.iter().any(|w| w.contains(&ids[0])),
        "{:?}",
        pf.warnings
    );
    let rollout = r.restart(&ctx("run-compat")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(!detail.contains("bg_deployments"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.state().total_restarts(), 4);
}

async fn a_machine_that_stops_after_the_restart_is_a_failure() {
    let (st, ids) = app([Behaviour::Crashes, Behaviour::Healthy, Behaviour::Healthy]);
    let fake = start(st).await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-crash")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains(&format!(
                    "machine {} (ams) is stopped after the restart",
                    ids[0]
                )),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.state().leases_held().is_empty());
}

async fn a_held_lease_is_waited_out_and_never_taken_over() {
    let (mut st, ids) = app([Behaviour::Healthy; 3]);
    st.hold_lease(&ids[0]);
    let fake = Arc::new(start(st).await);
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-held")).await.unwrap();
    // The deploy holding it finishes after a while.
    let f = fake.clone();
    let id = ids[0].clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.state().release_foreign_lease(&id);
    });
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
    let conflicts = fake
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path.ends_with(&format!("{}/lease", ids[0])))
        .count();
    assert!(conflicts >= 2, "the held lease was retried ({conflicts})");
    assert_eq!(fake.state().total_restarts(), 3);

    // Held until the deadline: timed out, nothing restarted, no lease of ours left.
    let (mut st, ids) = app([Behaviour::Healthy; 3]);
    st.hold_lease(&ids[0]);
    let fake = start(st).await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-held2")).await.unwrap();
    match r
        .wait(&rollout, Instant::now() + Duration::from_millis(500))
        .await
        .unwrap()
    {
        RolloutOutcome::TimedOut { detail } => {
            assert!(detail.contains("held by another operation"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.state().total_restarts(), 0);
    assert!(fake.state().leases_held().is_empty());
}

async fn leases_are_released_on_timeout_cancel_and_a_dropped_wait() {
    let (st, ids) = app([
        Behaviour::NeverStarts,
        Behaviour::Healthy,
        Behaviour::Healthy,
    ]);
    let fake = start(st).await;
    let r = Arc::new(restarter(&fake));
    let rollout = r.restart(&ctx("run-stall")).await.unwrap();
    match r
        .wait(&rollout, Instant::now() + Duration::from_millis(400))
        .await
        .unwrap()
    {
        RolloutOutcome::TimedOut { detail } => assert!(detail.contains(&ids[0]), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.state().leases_held().is_empty());
    assert_eq!(fake.state().leases_released, 1);

    // A wait cut short (the engine stopping): dropping it releases the lease.
    let (st, _) = app([
        Behaviour::NeverStarts,
        Behaviour::Healthy,
        Behaviour::Healthy,
    ]);
    let fake = start(st).await;
    let r = Arc::new(restarter(&fake));
    let rollout = r.restart(&ctx("run-drop")).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), r.wait(&rollout, soon())).await;
    for _ in 0..50 {
        if fake.state().leases_held().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fake.state().leases_held().is_empty(),
        "the dropped wait's lease was released"
    );

    // cancel releases what this instance holds while a wait runs.
    let (st, _) = app([
        Behaviour::NeverStarts,
        Behaviour::Healthy,
        Behaviour::Healthy,
    ]);
    let fake = start(st).await;
    let r = Arc::new(restarter(&fake));
    assert!(r.capabilities().cancel);
    let rollout = r.restart(&ctx("run-cancel")).await.unwrap();
    let (r2, ro2) = (r.clone(), rollout.clone());
    let waiting =
        tokio::spawn(async move { r2.wait(&ro2, Instant::now() + Duration::from_secs(2)).await });
    while fake.state().leases_held().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r.cancel(&rollout).await.unwrap();
    assert!(fake.state().leases_held().is_empty());
    let _ = waiting.await;
}

async fn a_resumed_run_waits_for_marked_machines_instead_of_restarting_them() {
    let (st, ids) = app([Behaviour::Healthy; 3]);
    let fake = start(st).await;
    let r = restarter(&fake);
    let rollout = r.restart(&ctx("run-resume")).await.unwrap();
    // The first process restarts two machines and dies (its deadline here).
    fake.state().machines.get_mut(&ids[2]).unwrap().behaviour = Behaviour::NeverStarts;
    let _ = r
        .wait(&rollout, Instant::now() + Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(fake.state().total_restarts(), 3);
    fake.state().machines.get_mut(&ids[2]).unwrap().behaviour = Behaviour::Healthy;
    // A fresh process resumes: the marked machines are only waited on.
    let fresh = restarter(&fake);
    let again = fresh.restart(&ctx("run-resume")).await.unwrap();
    assert_eq!(again.id, rollout.id);
    assert!(fresh.wait(&again, soon()).await.unwrap().is_done());
    assert_eq!(
        fake.state().total_restarts(),
        3,
        "no machine restarted twice"
    );
}

async fn batches_process_groups_and_rate_limits() {
    let (mut st, ids) = app([Behaviour::Healthy; 3]);
    let worker = st.add_machine("iad", "worker", "started", Behaviour::Healthy);
    let fake = start(st).await;
    let mut c = config(&fake);
    c.process_groups = vec!["worker".into()];
    let r = FlyRestarter::new(c).unwrap();
    let rollout = r.restart(&ctx("run-worker")).await.unwrap();
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
    assert_eq!(fake.state().order, std::slice::from_ref(&worker));

    let mut c = config(&fake);
    c.batch_size = 2;
    let r = FlyRestarter::new(c).unwrap();
    fake.inject(
        When::any()
            .method("POST")
            .matching(|q| q.path.ends_with("/restart")),
        Fault::RetryAfter {
            status: 429,
            seconds: 1,
        },
    );
    let rollout = r.restart(&ctx("run-batch")).await.unwrap();
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
    let order = fake.state().order.clone();
    assert_eq!(order.len(), 5);
    let all: Vec<String> = ids.iter().cloned().chain([worker]).collect();
    assert!(all.iter().all(|id| order.contains(id)));
}

async fn a_missing_app_and_a_refused_token_have_kinds_and_no_token() {
    let (st, _) = app([Behaviour::Healthy; 3]);
    let fake = start(st).await;
    let mut c = config(&fake);
    c.app = "other-app".into();
    assert_eq!(
        FlyRestarter::new(c)
            .unwrap()
            .preflight()
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    std::env::set_var("VSYNC_TEST_FLY_BAD_TOKEN", "fly-wrong-token");
    let mut c = config(&fake);
    c.token_env = "VSYNC_TEST_FLY_BAD_TOKEN".into();
    let e = FlyRestarter::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission);
    assert!(!e.chain().contains("fly-wrong-token") && !e.chain().contains("fm2_"));
    // An older personal token goes as a bearer token.
    std::env::set_var("VSYNC_TEST_FLY_PERSONAL", "fly-personal-token");
    let mut c = config(&fake);
    c.token_env = "VSYNC_TEST_FLY_PERSONAL".into();
    FlyRestarter::new(c).unwrap().preflight().await.unwrap();
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        serving_machines_are_restarted_one_by_one_under_a_lease_and_marked,
        a_failing_check_stops_the_rollout_naming_the_machine_and_its_output,
        a_machine_that_stops_after_the_restart_is_a_failure,
        compat_checks_flaps_adds_are_ignored_as_fly_go_ignores_them,
        a_held_lease_is_waited_out_and_never_taken_over,
        leases_are_released_on_timeout_cancel_and_a_dropped_wait,
        a_resumed_run_waits_for_marked_machines_instead_of_restarting_them,
        batches_process_groups_and_rate_limits,
        a_missing_app_and_a_refused_token_have_kinds_and_no_token,
    ],
}
