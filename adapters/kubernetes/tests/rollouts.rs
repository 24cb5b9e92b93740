//! The restarter against the fake cluster: kubectl's rules, early failures,
//! idempotency, waves, selectors, RBAC and the API server's error answers.

mod common;

use common::*;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RolloutOutcome};
use vsync_orchestrate_kubernetes::{RESTARTED_AT, RUN_ANNOTATION};

#[tokio::test]
async fn a_normal_rollout_is_kubectls_patch_then_done() {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_deployment(NS, "api", 3)
        .add_deployment(NS, "worker", 2);
    let r = env.deployments(&["api", "worker"]);
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail.contains("deployment/api 3/3 available"),
        "{}",
        pf.detail
    );
    assert!(pf.detail.contains("v1.33.1"), "{}", pf.detail);
    assert!(pf.warnings.is_empty(), "{:?}", pf.warnings);
    let ctx = run("normal");
    let rollout = r.restart(&ctx).await.unwrap();
    assert_eq!(rollout.id, "deployment/api@2,deployment/worker@2");
    let patches = env.fake.state().patches();
    assert_eq!(patches.len(), 2);
    let p = &patches[0];
    assert_eq!(p.content_type, "application/strategic-merge-patch+json");
    let ann = &p.body["spec"]["template"]["metadata"]["annotations"];
    let at = ann[RESTARTED_AT].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert_eq!(ann[RUN_ANNOTATION], ctx.run.as_str());
    assert_eq!(
        p.body.as_object().unwrap().len(),
        1,
        "only spec.template is patched: {}",
        p.body
    );
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(
                detail.contains("deployment/api") && detail.contains("successfully rolled out"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    let d = env.fake.state().deployment(NS, "api");
    let st = d.status.unwrap();
    assert_eq!(
        (st.updated_replicas, st.available_replicas, st.replicas),
        (Some(3), Some(3), Some(3))
    );
    let pods = env.fake.state().pods(Res::Deployments, NS, "api");
    assert!(pods
        .iter()
        .all(|p| p.metadata.annotations.as_ref().unwrap()[RUN_ANNOTATION] == ctx.run.as_str()));
}

#[tokio::test]
async fn the_previous_rollouts_complete_status_is_not_taken_for_this_one() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 2);
    let r = env.deployments(&["api"]);
    // The controller has not seen our patch yet: the status still says the last
    // rollout completed, for the previous generation.
    env.fake.state().hold = true;
    let rollout = r.restart(&run("stale")).await.unwrap();
    let d = env.fake.state().deployment(NS, "api");
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(d.status.as_ref().unwrap().updated_replicas, Some(2));
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_millis(700))
        .await
        .unwrap();
    match out {
        RolloutOutcome::TimedOut { detail } => {
            assert!(detail.contains("spec update to be observed"), "{detail}")
        }
        other => panic!("done on the previous rollout's status: {other:?}"),
    }
    env.fake.state().hold = false;
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

#[tokio::test]
async fn a_stalled_rollout_times_out_at_the_deadline() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 2).script(
        Res::Deployments,
        NS,
        "api",
        Script::Stall,
    );
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("stall")).await.unwrap();
    let started = Instant::now();
    let out = r
        .wait(&rollout, started + Duration::from_millis(1500))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    match out {
        RolloutOutcome::TimedOut { detail } => assert!(
            detail.contains("deployment/api: 1 out of 2 new replicas have been updated"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn progress_deadline_exceeded_is_a_failure() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 2).script(
        Res::Deployments,
        NS,
        "api",
        Script::ProgressDeadline,
    );
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("deadline")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("exceeded its progress deadline"),
                "{reason}"
            );
            assert!(reason.contains("has timed out progressing"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

const WRONG: &str =
    "WrongPassphraseError: the passphrase does not decrypt bundle myapp/prod/v=20250101";

#[tokio::test]
async fn crash_looping_pods_are_named_with_their_log_line() {
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 3).script(
        Res::Deployments,
        NS,
        "api",
        Script::CrashLoop {
            log: format!("booting\nreading VSYNC_PASSPHRASE_FILE\n{WRONG}\n"),
        },
    );
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("crash")).await.unwrap();
    let started = Instant::now();
    let reason = match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => reason,
        other => panic!("{other:?}"),
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not reported early"
    );
    let pod = env
        .fake
        .state()
        .pods(Res::Deployments, NS, "api")
        .into_iter()
        .find(|p| p.metadata.annotations.is_some())
        .unwrap()
        .metadata
        .name
        .unwrap();
    assert!(reason.contains(&format!("pod {pod}")), "{reason}");
    assert!(reason.contains("CrashLoopBackOff"), "{reason}");
    assert!(reason.contains(WRONG), "{reason}");
    // Old pods still serve: exactly what a wrong passphrase looks like.
    let st = env.fake.state().deployment(NS, "api").status.unwrap();
    assert_eq!(st.available_replicas, Some(3));
}

#[tokio::test]
async fn other_broken_pod_states_end_the_wait_early() {
    for (reason, message) in [
        (
            "ImagePullBackOff",
            "Back-off pulling image \"registry.invalid/api:2\"",
        ),
        (
            "CreateContainerConfigError",
            "secret \"vsync-passphrase\" not found",
        ),
    ] {
        let env = Env::new("prod").await;
        env.fake.state().add_deployment(NS, "api", 2).script(
            Res::Deployments,
            NS,
            "api",
            Script::PodWaiting {
                reason: reason.into(),
                message: message.into(),
            },
        );
        let r = env.deployments(&["api"]);
        let rollout = r.restart(&run("waiting")).await.unwrap();
        match r.wait(&rollout, soon()).await.unwrap() {
            RolloutOutcome::Failed { reason: why } => {
                assert!(why.contains(reason) && why.contains(message), "{why}")
            }
            other => panic!("{reason}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_paused_deployment_is_refused_with_the_command_that_resumes_it() {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_deployment(NS, "api", 2)
        .pause(NS, "api");
    let r = env.deployments(&["api"]);
    let e = r.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(
        e.message()
            .contains("kubectl rollout resume deployment/api -n shop --context prod"),
        "{}",
        e.message()
    );
    let e = r.restart(&run("paused")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(env.fake.state().patches().len(), 0);
}

#[tokio::test]
async fn a_resumed_run_restarts_nothing_twice_and_a_new_run_in_the_same_second_does() {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_deployment(NS, "api", 2)
        .add_statefulset(NS, "db", 2);
    let mut c = env.config();
    c.deployments = vec!["api".into()];
    c.statefulsets = vec!["db".into()];
    let ctx = run("resume");
    let first = env.restarter(c.clone()).restart(&ctx).await.unwrap();
    // The process died before journaling; a fresh one restarts the same run.
    let fresh = env.restarter(c.clone());
    let again = fresh.restart(&ctx).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 1);
    assert_eq!(env.fake.state().patch_count(Res::StatefulSets, NS, "db"), 1);
    assert!(fresh.wait(&again, soon()).await.unwrap().is_done());
    // Resumed after the rollout finished: still nothing new.
    let third = env.restarter(c.clone()).restart(&ctx).await.unwrap();
    assert_eq!(third.id, first.id);
    assert_eq!(env.fake.state().patches().len(), 2);
    // Another run, right away (same restartedAt second): a new rollout.
    let next = env.restarter(c).restart(&run("next")).await.unwrap();
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 2);
    assert_eq!(next.id, "deployment/api@3,statefulset/db@3");
    assert!(fresh.wait(&next, soon()).await.unwrap().is_done());
}

#[tokio::test]
async fn statefulsets_and_daemonsets_roll_out_and_unsafe_strategies_are_refused() {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_statefulset(NS, "db", 3)
        .add_daemonset(NS, "agent", 2);
    let mut c = env.config();
    c.statefulsets = vec!["db".into()];
    c.daemonsets = vec!["agent".into()];
    let r = env.restarter(c.clone());
    r.preflight().await.unwrap();
    let rollout = r.restart(&run("sts")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(
                detail.contains("rolling update complete 3 pods"),
                "{detail}"
            );
            assert!(
                detail.contains("daemon set \"agent\" successfully rolled out"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    let s = env.fake.state().statefulset(NS, "db").status.unwrap();
    assert_eq!(s.current_revision, s.update_revision);

    env.fake.state().edit(Res::StatefulSets, NS, "db", |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2.into()
    });
    let e = r.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("partition 2"), "{}", e.message());
    env.fake.state().edit(Res::StatefulSets, NS, "db", |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 0.into()
    });
    env.fake.state().edit(Res::DaemonSets, NS, "agent", |o| {
        o["spec"]["updateStrategy"] = serde_json::json!({"type": "OnDelete"})
    });
    let e = r.preflight().await.unwrap_err();
    assert!(e.message().contains("OnDelete"), "{}", e.message());
}

#[tokio::test]
async fn waves_run_in_order_and_a_failed_wave_stops_the_next() {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_deployment(NS, "migrate", 1)
        .add_deployment(NS, "api", 2)
        .add_daemonset(NS, "agent", 2);
    let mut c = env.config();
    c.waves = vec![
        vec!["deployment/migrate".into()],
        vec!["deploy/api".into(), "ds/agent".into()],
    ];
    let r = env.restarter(c.clone());
    assert!(r.preflight().await.unwrap().detail.contains("in 2 waves"));
    let rollout = r.restart(&run("waves")).await.unwrap();
    assert_eq!(rollout.id, "deployment/migrate@2");
    assert_eq!(
        env.fake.state().patch_count(Res::Deployments, NS, "api"),
        0,
        "wave 2 started with wave 1"
    );
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Done { detail } => {
            assert!(
                detail.starts_with("wave 1/2: deployment/migrate"),
                "{detail}"
            );
            assert!(detail.contains("wave 2/2"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let order: Vec<String> = env
        .fake
        .state()
        .patches()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(order, ["migrate", "api", "agent"]);

    env.fake.state().script(
        Res::Deployments,
        NS,
        "migrate",
        Script::CrashLoop { log: WRONG.into() },
    );
    let rollout = r.restart(&run("waves-fail")).await.unwrap();
    match r.wait(&rollout, soon()).await.unwrap() {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.starts_with("wave 1/2: deployment/migrate"),
                "{reason}"
            );
            assert!(
                reason.contains("not started: deployment/api, daemonset/agent"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 1);
}

#[tokio::test]
async fn a_selector_expands_to_the_workloads_it_matches() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_deployment(NS, "api", 1)
            .add_statefulset(NS, "db", 1)
            .add_deployment(NS, "batch", 1);
        for (res, n) in [(Res::Deployments, "api"), (Res::StatefulSets, "db")] {
            s.edit(res, NS, n, |o| {
                o["metadata"]["labels"]["part-of"] = "shop".into()
            });
        }
    }
    let mut c = env.config();
    c.selector = Some("part-of=shop".into());
    let r = env.restarter(c.clone());
    let pf = r.preflight().await.unwrap();
    assert!(
        pf.detail.contains("deployment/api") && pf.detail.contains("statefulset/db"),
        "{}",
        pf.detail
    );
    assert!(!pf.detail.contains("batch"), "{}", pf.detail);
    let rollout = r.restart(&run("selector")).await.unwrap();
    assert_eq!(
        rollout.id, "deployment/api@2,statefulset/db@2",
        "labels are metadata, not a new generation"
    );
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
    assert_eq!(
        env.fake.state().patch_count(Res::Deployments, NS, "batch"),
        0
    );

    c.selector = Some("part-of=nothing".into());
    let e = env.restarter(c).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn two_clusters_with_the_same_deployment_name_are_two_targets() {
    use vsync_orchestrate_api::RestarterConfig;
    let east = FakeCluster::start().await;
    let west = FakeCluster::start().await;
    east.state().add_deployment(NS, "api", 2);
    west.state().add_deployment(NS, "api", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        kubeconfig_text(&[("east", &east.url()), ("west", &west.url())], "east"),
    )
    .unwrap();
    let table = |ctx: &str| {
        let mut c = vsync_orchestrate_kubernetes::KubernetesConfig::new(NS);
        c.kubeconfig = Some(path.clone());
        c.context = Some(ctx.into());
        c.deployments = vec!["api".into()];
        c.poll_interval = Duration::from_millis(50);
        c
    };
    let (a, b) = (table("east"), table("west"));
    assert_ne!(a.targets(), b.targets());
    let ctx = run("two");
    let ra = vsync_orchestrate_kubernetes::KubernetesRestarter::new(a).unwrap();
    let rb = vsync_orchestrate_kubernetes::KubernetesRestarter::new(b).unwrap();
    use vsync_orchestrate_api::Restarter;
    let (oa, ob) = (
        ra.restart(&ctx).await.unwrap(),
        rb.restart(&ctx).await.unwrap(),
    );
    assert_ne!(oa.target, ob.target);
    assert_eq!(east.state().patch_count(Res::Deployments, NS, "api"), 1);
    assert_eq!(
        west.state().patch_count(Res::Deployments, NS, "api"),
        1,
        "the same run id in another cluster is another restart"
    );
    assert!(ra.wait(&oa, soon()).await.unwrap().is_done());
    assert!(rb.wait(&ob, soon()).await.unwrap().is_done());
}
