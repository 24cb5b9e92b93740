//! `vsync-orchestrate run` end to end on the `fly` restarter: a `dir` vault and a
//! `file` store (the demo's), and the stateful Fly.io Machines API fake of
//! `adapters/fly/tests/fake` (there is no emulator).
//!
//! Each fake machine is one demo app: restarting the machine restarts the app,
//! which boots from the passphrase file, and the machine's check passes only when
//! the app is up (a failed boot is a critical check with the app's error). So
//! `[verify] health` sees the new generation only if every machine was restarted
//! after activation.

#![cfg(all(feature = "fly", feature = "local"))]

mod support;

#[path = "../adapters/fly/tests/fake/mod.rs"]
mod fly_fake;

use fly_fake::{Behaviour, FlyState, APP, TOKEN};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use support::demo::{bin, Demo};

const APPS: u32 = 2;
const TOKEN_ENV: &str = "VSYNC_E2E_FLY_TOKEN";

fn plan(demo: &Demo, api: &str) -> PathBuf {
    let d = demo.root.display();
    let health: Vec<String> = demo
        .ports()
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}/healthz\""))
        .collect();
    let path = demo.root.join("fly-plan.toml");
    std::fs::write(
        &path,
        format!(
            r#"env = "demo"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "demo/demo/"
config = {{ file = "{d}/vsync-config" }}
[passphrase]
new = {{ generate = {{ length = 32 }} }}
note = "e2e on the Fly Machines fake"
[[store]]
type = "file"
path = "{d}/passphrase"
[[restart]]
type = "fly"
app = "{APP}"
token_env = "{TOKEN_ENV}"
api_base = "{api}"
poll_interval = "100ms"
check_grace = "2s"
timeout = "60s"
[verify]
health = [{health}]
timeout = "60s"
samples = 2
interval = "100ms"
"#,
            health = health.join(", "),
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_rotates_the_demo_vault_and_rolls_the_fly_machines() {
    let demo = Demo::setup(APPS);
    let old = demo.passphrase();
    // One machine per demo app, plus a release-command machine never restarted.
    let mut st = FlyState::default();
    let mut apps = BTreeMap::new();
    for n in 1..=APPS {
        let id = st.add_machine("ams", "app", "started", Behaviour::Healthy);
        apps.insert(id, n);
    }
    let release = st.add_machine(
        "ams",
        "fly_app_release_command",
        "started",
        Behaviour::Healthy,
    );
    let dir = demo.root.clone();
    let map = apps.clone();
    st.on_restart = Some(Arc::new(move |id: &str| {
        let n = map.get(id).ok_or("unknown machine")?;
        let out = bin()
            .args(["demo-ctl", "restart", "--app", &n.to_string(), "--dir"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }));
    let fake = fly_fake::start(st).await;
    let plan = plan(&demo, &fake.url());

    let mut cmd = bin();
    cmd.args(["run", "--yes", "--output", "json"])
        .arg(&plan)
        .env(TOKEN_ENV, TOKEN)
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    let new = demo.passphrase();
    assert_ne!(new, old);
    assert_eq!(demo.gen().await, 1);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(&new) && !text.contains(&old),
            "a passphrase was printed"
        );
        assert!(!text.contains("fm2_"), "the token was printed");
    }
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["exit_code"], 0, "{v}");
    let st = fake.state();
    let order: Vec<&String> = st.order.iter().collect();
    assert_eq!(
        order,
        apps.keys().collect::<Vec<_>>(),
        "every app machine, one by one"
    );
    assert_eq!(
        st.restarts.get(&release),
        None,
        "the release-command machine was left alone"
    );
    assert!(st.leases_held().is_empty());
    let run_id = v["run_id"].as_str().unwrap_or_default().to_owned();
    for id in apps.keys() {
        let marker = st.machine(id)["config"]["metadata"]["vsync_orchestrate_run"].clone();
        assert!(marker.is_string(), "{marker}");
        if !run_id.is_empty() {
            assert_eq!(marker, run_id.as_str());
        }
    }
}
