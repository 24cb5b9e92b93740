//! The systemd restarter against a real systemd booted in systemd-nspawn
//! (`.ci/services/30-nspawn.sh`), reached over its own sshd on 127.0.0.1.

mod common;

use common::nspawn_env;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{
    ErrorKind, Passphrase, RestartContext, Restarter, RolloutOutcome, RunId, SecretStore,
};
use vsync_orchestrate_ssh::{
    RestartMode, SystemdConfig, SystemdRestarter, Transport, VpsFileConfig, VpsFileStore,
};

/// The tests share the container's units: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DEMO: [&str; 3] = ["demo@a.service", "demo@b.service", "demo@c.service"];

fn restarter(
    env: &common::NspawnEnv,
    units: &[&str],
    mode: RestartMode,
    settle: Duration,
) -> SystemdRestarter {
    let mut cfg = SystemdConfig::new(
        Transport::Ssh(vec![env.host()]),
        units.iter().map(|u| u.to_string()).collect(),
    );
    cfg.mode = mode;
    cfg.settle = settle;
    cfg.poll_interval = Duration::from_millis(200);
    SystemdRestarter::new(cfg).unwrap()
}

#[tokio::test]
async fn glob_restart_yields_new_invocation_ids() {
    let Some(env) = nspawn_env("glob_restart_yields_new_invocation_ids") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let r = restarter(
        &env,
        &["demo@*.service"],
        RestartMode::Parallel,
        Duration::from_secs(2),
    );
    let pre = r.preflight().await.unwrap();
    for u in DEMO {
        assert!(pre.detail.contains(u), "{}", pre.detail);
    }
    let before: Vec<String> = DEMO.iter().map(|u| env.prop(u, "InvocationID")).collect();
    let run = RunId(common::unique("glob"));
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    assert_eq!(
        r.restart(&RestartContext::new(run.clone())).await.unwrap(),
        rollout,
        "restart is idempotent per run"
    );
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(out.is_done(), "{out:?}");
    for (u, b) in DEMO.iter().zip(&before) {
        let now = env.prop(u, "InvocationID");
        assert!(!now.is_empty() && &now != b, "{u}: {b} -> {now}");
        assert_eq!(env.prop(u, "SubState"), "running");
    }
    r.close().await;
}

#[tokio::test]
async fn rolling_restart_goes_one_batch_at_a_time() {
    let Some(env) = nspawn_env("rolling_restart_goes_one_batch_at_a_time") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let settle = Duration::from_secs(1);
    let r = restarter(
        &env,
        &DEMO,
        RestartMode::Rolling {
            batch_size: 1,
            pause: Duration::from_millis(300),
        },
        settle,
    );
    r.preflight().await.unwrap();
    let rollout = r
        .restart(&RestartContext::new(RunId(common::unique("rolling"))))
        .await
        .unwrap();
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(out.is_done(), "{out:?}");
    let t: Vec<u64> = DEMO
        .iter()
        .map(|u| {
            env.prop(u, "ActiveEnterTimestampMonotonic")
                .parse()
                .unwrap()
        })
        .collect();
    // Each unit started only after the previous one settled and the pause passed.
    assert!(
        t[1] >= t[0] + 1_300_000 && t[2] >= t[1] + 1_300_000,
        "{t:?}"
    );
    r.close().await;
}

#[tokio::test]
async fn a_unit_that_fails_on_start_is_reported_with_its_journal() {
    let Some(env) = nspawn_env("a_unit_that_fails_on_start_is_reported_with_its_journal") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let unit = "demo-bad@one.service";
    let r = restarter(&env, &[unit], RestartMode::Parallel, Duration::from_secs(3));
    r.preflight().await.unwrap();
    let rollout = r
        .restart(&RestartContext::new(RunId(common::unique("bad"))))
        .await
        .unwrap();
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    env.ssh(&format!(
        "systemctl stop {unit}; systemctl reset-failed {unit}"
    ));
    match out {
        RolloutOutcome::Failed { reason } => {
            eprintln!("failure reason: {reason}");
            assert!(reason.contains(unit), "{reason}");
            assert!(
                reason.contains("cannot read the vault"),
                "journal lines expected: {reason}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    r.close().await;
}

#[tokio::test]
async fn a_glob_matching_nothing_fails_preflight() {
    let Some(env) = nspawn_env("a_glob_matching_nothing_fails_preflight") else {
        return;
    };
    let r = restarter(
        &env,
        &["nothing-here@*.service"],
        RestartMode::Parallel,
        Duration::from_secs(1),
    );
    let e = r.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert!(
        e.chain().contains("nothing-here@*.service"),
        "{}",
        e.chain()
    );
    r.close().await;
}

#[tokio::test]
async fn rotate_the_file_then_restart_the_units() {
    let Some(env) = nspawn_env("rotate_the_file_then_restart_the_units") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let store = VpsFileStore::new(VpsFileConfig::new(
        Transport::Ssh(vec![env.host()]),
        "/etc/vsync/passphrase",
    ))
    .unwrap();
    let r = restarter(
        &env,
        &["demo@*.service"],
        RestartMode::Parallel,
        Duration::from_secs(1),
    );
    store.preflight().await.unwrap();
    r.preflight().await.unwrap();
    let old = store.read_current().await.unwrap().unwrap();
    let new = Passphrase::new(common::unique("nspawn-rotated"));
    assert!(!old.same_as(&new));
    let run = RunId(common::unique("e2e"));
    let staged = store.stage(&new, &run).await.unwrap();
    store.activate(&staged).await.unwrap();
    let rollout = r.restart(&RestartContext::new(run.clone())).await.unwrap();
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(out.is_done(), "{out:?}");
    assert!(store.read_current().await.unwrap().unwrap().same_as(&new));
    assert_eq!(env.ssh("stat -c %a /etc/vsync/passphrase").trim(), "600");
    assert_eq!(env.ssh("cat /etc/vsync/passphrase.prev"), old.expose());
    store.close().await;
    r.close().await;
}
