//! `vsync-orchestrate run` end to end on the Vercel adapters: a `dir` vault (the
//! demo's), the `vercel` store and the `vercel` redeploy restarter on the stateful
//! Vercel REST fake of `adapters/vercel/tests/fake` (there is no emulator).
//!
//! The fake does what Vercel does on a build: the new deployment gets the
//! project's production environment variables as they are at build time. Here the
//! "deployment" is the demo apps: the build writes `VSYNC_PASSPHRASE`'s value into
//! their passphrase file and restarts them. So `[verify] health` only sees the new
//! generation if the store activated the new value under the real key *and* the
//! restarter redeployed after it.

#![cfg(feature = "vercel")]

mod support;

#[path = "../adapters/vercel/tests/fake/mod.rs"]
mod vercel_fake;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::demo::{bin, Demo};
use vercel_fake::{Build, VercelState, PROJECT, TEAM, TOKEN};

const APPS: u32 = 2;
const TOKEN_ENV: &str = "VSYNC_E2E_VERCEL_TOKEN";

/// A Vercel build: the deployment's apps boot with the production value of
/// VSYNC_PASSPHRASE as it is now.
fn build_hook(dir: PathBuf) -> vercel_fake::Hook {
    Arc::new(move |envs: &[Value]| {
        let value = envs
            .iter()
            .find(|e| {
                e["key"] == "VSYNC_PASSPHRASE"
                    && e["target"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "production"))
            })
            .and_then(|e| e["value"].as_str())
            .ok_or("VSYNC_PASSPHRASE is not set for production")?
            .to_owned();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("passphrase"))
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| e.to_string())?;
        for n in 1..=APPS {
            let out = bin()
                .args(["demo-ctl", "restart", "--app", &n.to_string(), "--dir"])
                .arg(&dir)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("app {n} failed to start"));
            }
        }
        Ok(())
    })
}

fn plan(demo: &Demo, api: &str, verify_timeout: &str) -> PathBuf {
    let d = demo.root.display();
    let health: Vec<String> = demo
        .ports()
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}/healthz\""))
        .collect();
    let path = demo.root.join("vercel-plan.toml");
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
old = {{ file = "{d}/old-passphrase" }}
new = {{ generate = {{ length = 32 }} }}
note = "e2e on the Vercel fake"
[[store]]
type = "vercel"
project = "{PROJECT}"
team_id = "{TEAM}"
token_env = "{TOKEN_ENV}"
api_base = "{api}"
[[restart]]
type = "vercel"
project = "{PROJECT}"
team_id = "{TEAM}"
token_env = "{TOKEN_ENV}"
api_base = "{api}"
poll_interval = "100ms"
timeout = "60s"
[verify]
health = [{health}]
timeout = "{verify_timeout}"
samples = 2
interval = "100ms"
"#,
            health = health.join(", "),
        ),
    )
    .unwrap();
    path
}

async fn run(plan: &Path) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.args(["run", "--yes", "--output", "json"])
        .arg(plan)
        .env(TOKEN_ENV, TOKEN)
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_rotates_a_sensitive_vercel_variable_and_redeploys_production() {
    let demo = Demo::setup(APPS);
    let old = demo.passphrase();
    std::fs::copy(
        demo.root.join("passphrase"),
        demo.root.join("old-passphrase"),
    )
    .unwrap();
    let mut st = VercelState::default();
    st.add_env("VSYNC_PASSPHRASE", &old, "sensitive", &["production"], None);
    st.add_env(
        "VSYNC_PASSPHRASE",
        "preview-only-value-xxxxx",
        "encrypted",
        &["preview"],
        None,
    );
    st.on_build = Some(build_hook(demo.root.clone()));
    let fake = vercel_fake::start(st).await;
    let plan_path = plan(&demo, &fake.url(), "60s");
    assert_eq!(demo.gen().await, 0);

    let (code, stdout, stderr) = run(&plan_path).await;
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let new = demo.passphrase();
    assert_ne!(new, old);
    assert_eq!(
        demo.gen().await,
        1,
        "the apps' passphrase opens the new generation"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(&new) && !text.contains(&old),
            "a passphrase was printed"
        );
        assert!(!text.contains(TOKEN), "the token was printed");
    }
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["exit_code"], 0, "{v}");
    {
        let st = fake.state();
        assert_eq!(st.production_value("VSYNC_PASSPHRASE").unwrap(), new);
        let live: Vec<&Value> = st
            .env("VSYNC_PASSPHRASE")
            .into_iter()
            .filter(|e| e["target"] == serde_json::json!(["production"]))
            .collect();
        assert_eq!(live[0]["type"], "sensitive", "it stays sensitive");
        assert!(
            st.env("VSYNC_PASSPHRASE_NEXT").is_empty(),
            "the staged variable was removed"
        );
        assert_eq!(st.redeploys, 1);
        assert_eq!(
            st.env("VSYNC_PASSPHRASE")
                .iter()
                .find(|e| e["target"] == serde_json::json!(["preview"]))
                .unwrap()["value"],
            "preview-only-value-xxxxx"
        );
    }

    // A second run with a build that fails: the vault and the variable rotate
    // (T1 closes the window), the restart fails with the build's reason (exit 15)
    // and verify names the apps still on the old generation.
    std::fs::copy(
        demo.root.join("passphrase"),
        demo.root.join("old-passphrase"),
    )
    .unwrap();
    fake.state().build = Build::Fails;
    let plan_path = plan(&demo, &fake.url(), "2s");
    let (code, stdout, stderr) = run(&plan_path).await;
    assert_eq!(code, 15, "{stderr}");
    assert_eq!(fake.state().redeploys, 2);
    assert!(
        stderr.contains("BUILD_FAILED") || stdout.contains("BUILD_FAILED"),
        "{stderr}\n{stdout}"
    );
}
