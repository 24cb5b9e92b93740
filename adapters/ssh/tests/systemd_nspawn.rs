//! The systemd restarter against a real systemd booted in systemd-nspawn
//! (`.ci/services/30-nspawn.sh`), reached over its own sshd on 127.0.0.1: the
//! testkit's restarter suite on units this file installs in the container, then
//! what the suite does not cover (globs, rolling batches, the journal in a failure,
//! the vps_file store and the restarter together).

mod common;

use common::{nspawn_env, NspawnEnv};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{
    async_trait, ErrorKind, Passphrase, RestartContext, Restarter, RolloutOutcome, RunId,
    SecretStore,
};
use vsync_orchestrate_ssh::{
    RestartMode, SystemdConfig, SystemdRestarter, Transport, VpsFileConfig, VpsFileStore,
};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

// ---------------------------------------------------------------------------------
// The restarter suite.

/// Units for the suite, one instance per target, installed at runtime (under /run,
/// gone at the container's next boot): each start appends a line to a counter file,
/// which is how the suite's "starts" are counted by systemd itself.
const SUITE_UNITS: &str = r#"set -eu
mkdir -p /run/systemd/system /run/vsync-suite
cat >/run/systemd/system/vsync-suite-ok@.service <<'UNIT'
[Unit]
Description=vsync-orchestrate restarter suite, healthy %i

[Service]
Type=simple
ExecStartPre=/bin/sh -c 'echo start >>/run/vsync-suite/%i.starts'
ExecStart=/bin/sleep infinity
UNIT
cat >/run/systemd/system/vsync-suite-bad@.service <<'UNIT'
[Unit]
Description=vsync-orchestrate restarter suite, failing %i

[Service]
Type=simple
ExecStartPre=/bin/sh -c 'echo start >>/run/vsync-suite/%i.starts'
ExecStart=/bin/sh -c 'echo "vsync-suite-bad %i: cannot read the vault" >&2; exit 1'
UNIT
systemctl daemon-reload
echo installed
"#;

struct Nspawn(Arc<NspawnEnv>);

struct SuiteUnit {
    env: Arc<NspawnEnv>,
    unit: String,
    instance: String,
    scenario: Scenario,
    /// Starts before the check began (a healthy unit is started once to be running).
    base: usize,
}

impl SuiteUnit {
    fn count(&self) -> usize {
        self.env
            .ssh(&format!(
                "cat /run/vsync-suite/{}.starts 2>/dev/null || true",
                self.instance
            ))
            .lines()
            .count()
    }
}

impl Drop for SuiteUnit {
    fn drop(&mut self) {
        self.env.ssh(&format!(
            "systemctl stop {0}; systemctl reset-failed {0}; rm -f /run/vsync-suite/{1}.starts",
            self.unit, self.instance
        ));
    }
}

#[async_trait]
impl RestarterFixture for Nspawn {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let out = self.0.ssh(SUITE_UNITS);
            assert!(
                out.contains("installed"),
                "installing the suite's units: {out}"
            );
        });
        let instance = vsync_orchestrate_testkit::unique("suite");
        let template = match scenario {
            Scenario::Failing => "vsync-suite-bad",
            Scenario::Healthy | Scenario::Stalling => "vsync-suite-ok",
        };
        let unit = format!("{template}@{instance}.service");
        if scenario != Scenario::Failing {
            self.0.ssh(&format!("systemctl start {unit}"));
            assert_eq!(self.0.prop(&unit, "SubState"), "running", "{unit}");
        }
        let mut t = SuiteUnit {
            env: self.0.clone(),
            unit,
            instance,
            scenario,
            base: 0,
        };
        t.base = t.count();
        Box::new(t)
    }
}

#[async_trait]
impl RestartTarget for SuiteUnit {
    /// A stalling rollout, on a real systemd: the unit restarts, but the settle
    /// period is longer than any deadline the suite gives, so it never counts as done.
    async fn open(&self) -> Arc<dyn Restarter> {
        let settle = match self.scenario {
            Scenario::Stalling => Duration::from_secs(3600),
            _ => Duration::from_secs(1),
        };
        Arc::new(restarter(
            &self.env,
            &[&self.unit],
            RestartMode::Parallel,
            settle,
        ))
    }

    async fn starts(&self) -> usize {
        self.count() - self.base
    }
}

async fn nspawn() -> Option<Nspawn> {
    nspawn_env(&vsync_orchestrate_testkit::service::current_test()).map(|e| Nspawn(Arc::new(e)))
}

vsync_orchestrate_testkit::restarter_suite!(nspawn());

// ---------------------------------------------------------------------------------
// Beyond the suite.

/// The tests share the container's units: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DEMO: [&str; 3] = ["demo@a.service", "demo@b.service", "demo@c.service"];

fn restarter(
    env: &NspawnEnv,
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
    // (Restarting the same run again is the suite's idempotency check.)
    let run = RunId(common::unique("glob"));
    let rollout = r.restart(&RestartContext::new(run)).await.unwrap();
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
    // After T1 the engine tidies: the link stage kept becomes `.prev`.
    store.tidy(&staged).await.unwrap();
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

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        glob_restart_yields_new_invocation_ids,
        rolling_restart_goes_one_batch_at_a_time,
        a_unit_that_fails_on_start_is_reported_with_its_journal,
        a_glob_matching_nothing_fails_preflight,
        rotate_the_file_then_restart_the_units,
    ],
}
