//! Cross-check of the fake against a real client: the installed `kubectl` runs
//! `rollout restart` and `rollout status` against the fake API server, and must
//! agree with the restarter on every state (done, stalled, past its progress
//! deadline, paused, StatefulSet, DaemonSet). kubectl reads discovery first and
//! sends its own strategic-merge patch, so this also proves the fake speaks the API
//! kubectl expects. `VSYNC_TEST_KUBECTL` names the binary (`.ci/run` exports it).

mod common;

use common::*;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RolloutOutcome};
use vsync_orchestrate_kubernetes::RESTARTED_AT;
use vsync_orchestrate_testkit::service::{current_test, env_or_skip};

struct Kubectl {
    bin: String,
    home: tempfile::TempDir,
}

struct Ran {
    ok: bool,
    out: String,
}

impl Kubectl {
    fn find() -> Option<Kubectl> {
        let bin = env_or_skip(&current_test(), &["VSYNC_TEST_KUBECTL"])?.remove(0);
        Some(Kubectl {
            bin,
            home: tempfile::tempdir().unwrap(),
        })
    }

    async fn run(&self, env: &Env, args: &[&str]) -> Ran {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["--context", &env.context, "-n", NS])
            .args([
                "--cache-dir",
                &self.home.path().join("cache").to_string_lossy(),
            ])
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ran {
            ok: out.status.success(),
            out: text,
        }
    }

    /// `rollout restart` then `rollout status --timeout`.
    async fn restart_and_status(&self, env: &Env, what: &str, timeout: &str) -> (Ran, Ran) {
        let restart = self.run(env, &["rollout", "restart", what]).await;
        if !restart.ok {
            return (
                restart,
                Ran {
                    ok: false,
                    out: String::new(),
                },
            );
        }
        let status = self
            .run(
                env,
                &["rollout", "status", what, &format!("--timeout={timeout}")],
            )
            .await;
        (restart, status)
    }
}

/// The restarter's verdict on `workload` (`deployment/x`).
async fn ours(
    env: &Env,
    kind_name: &str,
    budget: Duration,
) -> vsync_orchestrate_api::Result<RolloutOutcome> {
    let (kind, name) = kind_name.split_once('/').unwrap();
    let mut c = env.config();
    match kind {
        "deployment" => c.deployments = vec![name.into()],
        "statefulset" => c.statefulsets = vec![name.into()],
        _ => c.daemonsets = vec![name.into()],
    }
    let r = env.restarter(c);
    r.preflight().await?;
    let rollout = r.restart(&run(name)).await?;
    r.wait(&rollout, Instant::now() + budget).await
}

async fn kubectl_and_the_restarter_agree_on_every_state() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        for suffix in ["kubectl", "ours"] {
            s.add_deployment(NS, &format!("ok-{suffix}"), 3);
            s.add_deployment(NS, &format!("late-{suffix}"), 2).script(
                Res::Deployments,
                NS,
                &format!("late-{suffix}"),
                Script::ProgressDeadline,
            );
            s.add_deployment(NS, &format!("stuck-{suffix}"), 2).script(
                Res::Deployments,
                NS,
                &format!("stuck-{suffix}"),
                Script::Stall,
            );
            s.add_deployment(NS, &format!("paused-{suffix}"), 1)
                .pause(NS, &format!("paused-{suffix}"));
            s.add_statefulset(NS, &format!("db-{suffix}"), 3);
            s.add_daemonset(NS, &format!("agent-{suffix}"), 2);
        }
    }

    // Done.
    let (restart, status) = k
        .restart_and_status(&env, "deployment/ok-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(
        restart.out.contains("deployment.apps/ok-kubectl restarted"),
        "{}",
        restart.out
    );
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("deployment \"ok-kubectl\" successfully rolled out"),
        "{}",
        status.out
    );
    assert!(ours(&env, "deployment/ok-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());

    // kubectl's patch and ours touch the same thing the same way.
    let patches = env.fake.state().patches();
    let theirs = patches.iter().find(|p| p.name == "ok-kubectl").unwrap();
    let mine = patches.iter().find(|p| p.name == "ok-ours").unwrap();
    assert_eq!(theirs.content_type, mine.content_type);
    let keys = |p: &vsync_orchestrate_kubernetes_fake::PatchSeen| {
        p.body["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        keys(theirs),
        vec![RESTARTED_AT.to_owned()],
        "{}",
        theirs.body
    );
    assert!(keys(mine).contains(&RESTARTED_AT.to_owned()));
    let at = |p: &vsync_orchestrate_kubernetes_fake::PatchSeen| {
        p.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
            .as_str()
            .unwrap()
            .len()
    };
    assert_eq!(
        at(theirs),
        at(mine),
        "restartedAt in another format than kubectl's"
    );

    // ProgressDeadlineExceeded.
    let (_, status) = k
        .restart_and_status(&env, "deployment/late-kubectl", "60s")
        .await;
    assert!(!status.ok, "{}", status.out);
    assert!(
        status.out.contains("exceeded its progress deadline"),
        "{}",
        status.out
    );
    match ours(&env, "deployment/late-ours", Duration::from_secs(30))
        .await
        .unwrap()
    {
        RolloutOutcome::Failed { reason } => assert!(
            reason.contains("exceeded its progress deadline"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // Stalled: neither calls it done; both give up at their timeout.
    let (_, status) = k
        .restart_and_status(&env, "deployment/stuck-kubectl", "2s")
        .await;
    assert!(!status.ok, "{}", status.out);
    assert!(
        status.out.contains("timed out waiting for the condition"),
        "{}",
        status.out
    );
    assert!(
        status
            .out
            .contains("1 out of 2 new replicas have been updated"),
        "{}",
        status.out
    );
    match ours(&env, "deployment/stuck-ours", Duration::from_secs(2))
        .await
        .unwrap()
    {
        RolloutOutcome::TimedOut { detail } => assert!(
            detail.contains("1 out of 2 new replicas have been updated"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }

    // Paused: both refuse to restart, and name `rollout resume`.
    let (restart, _) = k
        .restart_and_status(&env, "deployment/paused-kubectl", "5s")
        .await;
    assert!(!restart.ok, "{}", restart.out);
    assert!(
        restart
            .out
            .contains("can't restart paused deployment (run rollout resume first)"),
        "{}",
        restart.out
    );
    let e = ours(&env, "deployment/paused-ours", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("rollout resume"), "{}", e.message());
    assert_eq!(
        env.fake
            .state()
            .patch_count(Res::Deployments, NS, "paused-kubectl"),
        0
    );

    // StatefulSet and DaemonSet.
    let (restart, status) = k
        .restart_and_status(&env, "statefulset/db-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("roll out complete: 3 new pods have been updated"),
        "{}",
        status.out
    );
    assert!(ours(&env, "statefulset/db-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());
    let (restart, status) = k
        .restart_and_status(&env, "daemonset/agent-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("daemon set \"agent-kubectl\" successfully rolled out"),
        "{}",
        status.out
    );
    assert!(ours(&env, "daemonset/agent-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());
}

async fn kubectl_sees_the_restarters_rollout_as_unfinished_until_the_controller_catches_up() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 2);
    env.fake.state().hold = true;
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("held")).await.unwrap();
    let status = k
        .run(
            &env,
            &["rollout", "status", "deployment/api", "--timeout=1s"],
        )
        .await;
    assert!(
        !status.ok,
        "kubectl called the held rollout done: {}",
        status.out
    );
    assert!(
        status
            .out
            .contains("Waiting for deployment spec update to be observed"),
        "{}",
        status.out
    );
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_millis(500))
        .await
        .unwrap();
    assert!(matches!(out, RolloutOutcome::TimedOut { .. }), "{out:?}");
    env.fake.state().hold = false;
    let status = k
        .run(
            &env,
            &["rollout", "status", "deployment/api", "--timeout=30s"],
        )
        .await;
    assert!(status.ok, "{}", status.out);
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(2)] kubectl_and_the_restarter_agree_on_every_state,
        #[multi_thread(2)] kubectl_sees_the_restarters_rollout_as_unfinished_until_the_controller_catches_up,
    ],
}
