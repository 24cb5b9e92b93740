//! `vsync-orchestrate run` end to end on GCP adapters: an S3 vault on moto, the
//! `gcp_secret_manager` store and the `cloud_run` restarter on the stateful REST
//! fakes of `adapters/gcp/tests/fake` (there is no emulator for either service).
//!
//! The fake Cloud Run does what Cloud Run does on a new revision: it resolves the
//! secret reference in the service's template against the fake Secret Manager,
//! hands the value to the "instances" (the demo apps' passphrase file) and starts
//! them again (`demo-ctl restart`). So `[verify] health` only sees the new
//! generation if the store activated the right version *and* the restarter pointed
//! the service at it.

mod support;

#[path = "../adapters/gcp/tests/fake/mod.rs"]
mod gcp_fake;

use gcp_fake::cloud_run::{self as run, Behaviour, RunState};
use gcp_fake::secret_manager::{self as sm, SmState};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::config_blob::{self, VsyncConfig};
use vsync_orchestrate::vault::{KdfParams, LayoutChoice, Vault};
use vsync_orchestrate_testkit::fake_http::FakeHttp;

const OLD: &str = "gcp-old-passphrase-0123456789";
const SALT: &str = "GcpSaltGcpSalt0123456789";
const PREFIX: &str = "shop/prod/";
const SECRET_ID: &str = "vsync-passphrase";
const SECRET: &str = "projects/shop-prod/secrets/vsync-passphrase";
const SERVICE: &str = "projects/shop-prod/locations/europe-west1/services/shop";
const APPS: u32 = 2;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
}

/// The demo apps, booted from `dir/vsync-config` (the S3 vault on moto) and
/// `dir/passphrase`, stopped when dropped.
struct Apps {
    dir: PathBuf,
    ports: Vec<u16>,
}

impl Apps {
    fn start(dir: &Path) -> Apps {
        std::fs::create_dir_all(dir.join("apps")).unwrap();
        let mut ports = Vec::new();
        for n in 1..=APPS {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            std::fs::write(dir.join(format!("apps/app-{n}.port")), port.to_string()).unwrap();
            ports.push(port);
        }
        let apps = Apps {
            dir: dir.to_owned(),
            ports,
        };
        for n in 1..=APPS {
            // `restart` of an app that is not running just starts it.
            restart_app(dir, n).unwrap();
        }
        apps
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        for n in 1..=APPS {
            let _ = bin()
                .args(["demo-ctl", "stop", "--app", &n.to_string(), "--dir"])
                .arg(&self.dir)
                .output();
        }
    }
}

fn restart_app(dir: &Path, n: u32) -> Result<(), String> {
    let out = bin()
        .args(["demo-ctl", "restart", "--app", &n.to_string(), "--dir"])
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "app {n} failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Cloud Run starting the new revision's instances: the env secret reference is
/// resolved against Secret Manager at instance start, like Cloud Run does.
fn new_revision_hook(dir: PathBuf, secrets: Arc<FakeHttp<SmState>>) -> run::Hook {
    Arc::new(move |service: &Value| {
        let r = &service["template"]["containers"][0]["env"][0]["valueSource"]["secretKeyRef"];
        let secret = r["secret"].as_str().unwrap_or("");
        let version = r["version"].as_str().unwrap_or("");
        if secret != SECRET_ID {
            return Err(format!("unexpected secret reference {secret}"));
        }
        let value = secrets
            .state()
            .value(SECRET, version)
            .ok_or_else(|| format!("secret {SECRET} version {version} is not accessible"))?;
        support::write_0600(&dir.join("passphrase"), &value);
        (1..=APPS).try_for_each(|n| restart_app(&dir, n))
    })
}

fn plan_text(
    dir: &Path,
    bucket: &str,
    moto: &str,
    sm_url: &str,
    run_url: &str,
    ports: &[u16],
) -> String {
    let health: Vec<String> = ports
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}/healthz\""))
        .collect();
    format!(
        r#"env = "prod"
state_dir = "{state}"
[vault]
bucket = "{bucket}"
prefix = "{PREFIX}"
region = "us-east-1"
endpoint = "{moto}"
salt = {{ env = "VSYNC_TEST_SALT" }}
iterations = 2000
[passphrase]
note = "e2e on the GCP fakes"
[[store]]
type = "gcp_secret_manager"
secret = "{SECRET}"
endpoint = "{sm_url}"
credentials = "anonymous"
[[restart]]
type = "cloud_run"
services = ["{SERVICE}"]
endpoint = "{run_url}"
credentials = "anonymous"
poll_interval = "100ms"
timeout = "90s"
[verify]
health = [{health}]
timeout = "60s"
samples = 2
interval = "100ms"
"#,
        state = dir.join("state").display(),
        health = health.join(", "),
    )
}

/// Runs the binary off the runtime's threads, so the fakes keep answering.
async fn cli(
    args: &[&str],
    plan: &Path,
    moto: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.args(args)
        .arg(plan)
        .envs(env.iter().copied())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", moto)
        .env_remove("AWS_PROFILE")
        .env_remove("GOOGLE_CLOUD_RUST_LOGGING")
        .env("VSYNC_TEST_SALT", SALT);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    if let Ok(v) = serde_json::from_str::<Value>(&stdout) {
        support::assert_rows_match(&stderr, &v);
    }
    (code, stdout, stderr)
}

fn pinned_version(fake: &FakeHttp<RunState>) -> Value {
    fake.state().service(SERVICE)["template"]["containers"][0]["env"][0]["valueSource"]
        ["secretKeyRef"]["version"]
        .clone()
}

async fn run_rotates_secret_manager_and_rolls_cloud_run_under_live_apps() {
    let Some(moto) = support::moto_endpoint() else {
        return;
    };
    // The vault on moto and its VSYNC_CONFIG, as the apps get it.
    let (bucket, storage) = support::moto_bucket(&moto).await;
    let vault = Vault::new(
        storage.clone(),
        PREFIX,
        KdfParams::new(SALT, 2000),
        LayoutChoice::Auto,
    );
    support::seed_runtime(&vault, OLD).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let blob = config_blob::encode(&VsyncConfig {
        v: 1,
        endpoint: moto.clone(),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        prefix: PREFIX.into(),
        env: "prod".into(),
        salt: SALT.into(),
        iterations: 2000,
    });
    support::write_0600(&dir.join("vsync-config"), &blob);
    support::write_0600(&dir.join("passphrase"), OLD);
    let apps = Apps::start(&dir);

    // Secret Manager: version 1 holds the passphrase, `current` → 1. Cloud Run: the
    // service pins version 1 in its env (Cloud Run's advice for env secrets).
    let secrets = Arc::new(sm::start(sm::seeded(SECRET, OLD)).await);
    let mut st = RunState::default();
    st.add_service(SERVICE, Behaviour::Healthy, run::template(SECRET_ID, "1"));
    st.on_new_revision = Some(new_revision_hook(dir.clone(), secrets.clone()));
    let cloud_run = run::start(st).await;

    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        plan_text(
            &dir,
            &bucket,
            &moto,
            &secrets.url(),
            &cloud_run.url(),
            &apps.ports,
        ),
    )
    .unwrap();

    // The dry run reads everything and writes nothing.
    let objects = storage.list("").await.unwrap();
    let (code, stdout, stderr) = cli(&["plan", "--output", "json"], &plan, &moto, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("pins vsync-passphrase to version 1"),
        "{stderr}"
    );
    assert_eq!(
        storage.list("").await.unwrap(),
        objects,
        "the dry run wrote to S3"
    );
    assert_eq!(secrets.state().secret(SECRET).versions.len(), 1);
    assert_eq!(
        secrets.state().secret(SECRET).etag,
        1,
        "the dry run moved an alias"
    );
    assert_eq!(
        cloud_run.state().updates(SERVICE),
        0,
        "the dry run restarted"
    );
    assert!(!stdout.contains(OLD) && !stderr.contains(OLD));

    // The rotation, at TRACE (every crate logs): still no passphrase anywhere.
    let (code, stdout, stderr) = cli(
        &["run", "--yes", "--output", "json"],
        &plan,
        &moto,
        &[("RUST_LOG", "trace")],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (s["gen_before"].as_u64(), s["gen_after"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        s["health"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ok"] == true),
        "{stdout}"
    );
    let new = secrets.state().value(SECRET, "current").unwrap();
    assert_ne!(new, OLD);
    {
        let st = secrets.state();
        let aliases = &st.secret(SECRET).aliases;
        assert_eq!(
            (
                aliases.get("current"),
                aliases.get("previous"),
                aliases.get("pending")
            ),
            (Some(&2), Some(&1), None)
        );
    }
    // The pin followed the activation, and the revision carries the run id.
    assert_eq!(pinned_version(&cloud_run), json!("2"));
    assert_eq!(
        cloud_run.state().service(SERVICE)["template"]["annotations"]["vsync-orchestrate/run-id"],
        s["run_id"]
    );
    assert_eq!(cloud_run.state().updates(SERVICE), 1);
    // A pinned version reaches new instances only through the new revision: the
    // window apps feel ends when it serves, not at T1.
    let paths = delivery_paths(&s);
    assert_eq!(
        paths,
        vec![
            ("store.1".into(), "at_boot".into()),
            ("restart.1".into(), "rollout_done".into())
        ],
        "{stdout}"
    );
    let revision = s["delivery"][1]["window_ms"].as_f64().expect("measured");
    assert!(revision > s["window_ms"].as_f64().unwrap(), "{stdout}");
    assert_eq!(s["delivery_window_ms"].as_f64(), Some(revision));
    assert_eq!(
        std::fs::read_to_string(dir.join("passphrase")).unwrap(),
        new
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(&new) && !text.contains(OLD),
            "a passphrase was printed"
        );
    }
    assert_eq!(
        vault.open(&Passphrase::new(new.clone())).await.unwrap().gen,
        1
    );

    // The same service on the alias instead of a pin: the restart changes no
    // reference, and the apps still come back on what `current` serves.
    {
        let mut st = cloud_run.state();
        let svc = &mut st.services.get_mut(SERVICE).unwrap().json;
        svc["template"]["containers"][0]["env"][0]["valueSource"]["secretKeyRef"]["version"] =
            json!("current");
    }
    let (code, stdout, stderr) =
        cli(&["run", "--yes", "--output", "json"], &plan, &moto, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["gen_after"], 2);
    assert_eq!(pinned_version(&cloud_run), json!("current"));
    // On the alias, a new instance resolves it as it starts: the store window.
    assert_eq!(
        delivery_paths(&s),
        vec![("store.1".into(), "at_boot".into())],
        "{stdout}"
    );
    let newer = secrets.state().value(SECRET, "current").unwrap();
    assert_ne!(newer, new);
    assert_eq!(
        std::fs::read_to_string(dir.join("passphrase")).unwrap(),
        newer
    );
    assert!(!stdout.contains(&newer) && !stderr.contains(&newer));
    drop(apps);
}

/// The summary's delivery rows as (slot, path).
fn delivery_paths(s: &Value) -> Vec<(String, String)> {
    s["delivery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["slot"].as_str().unwrap().to_owned(),
                d["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(2)] run_rotates_secret_manager_and_rolls_cloud_run_under_live_apps,
    ],
}
