//! What the API server answers besides success: RBAC (with the Role this crate
//! documents), throttling, conflicts, missing objects, dropped and expired watches,
//! an unreachable cluster and a wrong kubeconfig.

mod common;

use common::*;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RolloutOutcome};
use vsync_orchestrate_testkit::fake_http::{Fault, When};

/// The Role in `deploy/kubernetes/cronjob.yaml`, which docs/adapters.md quotes.
fn documented_role() -> Vec<Rule> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes/cronjob.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let role = text
        .split("\n---\n")
        .find(|doc| doc.contains("\nkind: Role\n"))
        .expect("a Role in the deploy example");
    let role: k8s_openapi::api::rbac::v1::Role = serde_saphyr::from_str(role).unwrap();
    role.rules.unwrap().iter().map(Rule::from).collect()
}

#[tokio::test]
async fn the_documented_role_is_enough_for_everything_the_restarter_does() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.set_rbac(Some(documented_role()));
        s.add_deployment(NS, "api", 2)
            .add_statefulset(NS, "db", 1)
            .add_daemonset(NS, "agent", 1);
        s.script(
            Res::Deployments,
            NS,
            "api",
            Script::CrashLoop {
                log: "WrongPassphraseError: nope".into(),
            },
        );
    }
    let mut c = env.config();
    c.deployments = vec!["api".into()];
    c.statefulsets = vec!["db".into()];
    c.daemonsets = vec!["agent".into()];
    let r = env.restarter(c);
    let pf = r.preflight().await.unwrap();
    assert!(pf.warnings.is_empty(), "{:?}", pf.warnings);
    let rollout = r.restart(&run("rbac")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(reason.contains("WrongPassphraseError: nope"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Every request the restarter made was allowed by the Role.
    assert_eq!(env.fake.state().denials(), Vec::<String>::new());
}

#[tokio::test]
async fn preflight_names_what_rbac_does_not_allow() {
    let env = Env::new("prod").await;
    let mut role = documented_role();
    for r in &mut role {
        r.verbs.retain(|v| v != "patch");
        if r.resources.iter().any(|x| x == "pods/log") {
            r.verbs.clear();
        }
    }
    {
        let mut s = env.fake.state();
        s.set_rbac(Some(role));
        s.add_deployment(NS, "api", 1);
    }
    let r = env.deployments(&["api"]);
    let e = r.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.chain());
    assert!(
        e.message().contains("patch deployments.apps api"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("get deployments"), "{}", e.message());
    // The patch itself is refused by the server, as a permission error.
    let e = r.restart(&run("denied")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.chain());
    assert!(
        e.message()
            .contains("cannot patch resource \"deployments\""),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn a_missing_log_permission_is_a_warning_and_the_pod_is_still_named() {
    let env = Env::new("prod").await;
    let mut role = documented_role();
    role.retain(|r| !r.resources.iter().any(|x| x == "pods/log"));
    {
        let mut s = env.fake.state();
        s.set_rbac(Some(role));
        s.add_deployment(NS, "api", 1);
        s.script(
            Res::Deployments,
            NS,
            "api",
            Script::CrashLoop {
                log: "WrongPassphraseError".into(),
            },
        );
    }
    let r = env.deployments(&["api"]);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.warnings.iter().any(|w| w.contains("get pods/log")),
        "{:?}",
        pf.warnings
    );
    let rollout = r.restart(&run("nolog")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(reason.contains("CrashLoopBackOff"), "{reason}");
            assert!(
                reason.contains("log is not readable (RBAC: get pods/log)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn throttling_and_conflicts_are_temporary_with_the_servers_wait() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 1);
    let r = env.deployments(&["api"]);
    env.fake
        .state()
        .fail("PATCH", "/deployments/api", 1, 429, 3);
    let e = r.restart(&run("throttled")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());
    assert_eq!(e.wait_hint(), Some(Duration::from_secs(3)));
    env.fake
        .state()
        .fail("PATCH", "/deployments/api", 1, 409, 0);
    let e = r.restart(&run("conflict")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(e.is_temporary());
    // Nothing was applied by the refused patches; the engine's retry restarts once.
    let rollout = r.restart(&run("conflict")).await.unwrap();
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 1);
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

#[tokio::test]
async fn missing_workloads_and_clusters_fail_preflight_by_kind() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 1);
    let e = env
        .deployments(&["api", "nope"])
        .preflight()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert!(
        e.message()
            .contains("deployment/nope does not exist in namespace shop"),
        "{}",
        e.message()
    );

    let mut wrong = env.config();
    wrong.context = Some("staging".into());
    wrong.deployments = vec!["api".into()];
    let e = env.restarter(wrong).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{}", e.chain());
    assert!(
        e.message().contains("context \"staging\""),
        "{}",
        e.message()
    );

    // A cluster that does not answer: nothing listens on the port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        &env.kubeconfig,
        kubeconfig_text(&[("prod", &format!("http://127.0.0.1:{port}"))], "prod"),
    )
    .unwrap();
    let e = env.deployments(&["api"]).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());
    assert!(e.message().contains("not reachable"), "{}", e.message());
}

#[tokio::test]
async fn watch_blips_expiry_and_dropped_watches_do_not_fail_the_wait() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 3);
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("blips")).await.unwrap();
    env.fake.state().hold = true;
    // The first watch is refused, the list after it cut, and the history expired.
    env.fake.state().fail("GET", "/deployments", 1, 500, 0);
    env.fake.http().inject(
        When::path("/apis/apps/v1/namespaces/shop/deployments").times(1),
        Fault::CutBefore,
    );
    let waiter = {
        let r = r.clone();
        let rollout = rollout.clone();
        tokio::spawn(async move {
            r.wait(&rollout, Instant::now() + Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    env.fake.state().compact();
    env.fake.state().drop_watches();
    env.fake.state().hold = false;
    let out = waiter.await.unwrap().unwrap();
    assert!(out.is_done(), "{out:?}");
    let watches = env
        .fake
        .http()
        .requests()
        .iter()
        .filter(|q| q.query.as_deref().is_some_and(|x| x.contains("watch=true")))
        .count();
    assert!(watches >= 2, "the watch was not re-opened ({watches})");
}
