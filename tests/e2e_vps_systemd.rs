//! End to end: the built `vsync-orchestrate run PLAN` against a real systemd booted in
//! systemd-nspawn (`.ci/services/30-nspawn.sh`), reached over its own sshd, with the
//! vault on moto (`.ci/services/10-moto.sh`).
//!
//! The test installs the built binary in the container as demo apps: a template unit
//! `vsyncapp@PORT.service` that boots from `/etc/vsync/config` (a VSYNC_CONFIG blob
//! pointing at moto, reachable because the container shares the host's loopback) and
//! `/etc/vsync/passphrase`. The plan rotates that file with the `vps_file` store,
//! restarts the units with the `systemd` restarter and verifies their `/healthz`.
//! Every unit, the unit file and the binary are removed afterwards so the cached
//! container root stays reusable; a crashed earlier run is cleaned up first.

mod support;

use support::nspawn::{env, Env};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::config_blob::{self, VsyncConfig};
use vsync_orchestrate::vault::{
    KdfParams, Layout, LayoutChoice, SeedContent, Vault, VaultErrorKind,
};

/// The tests share the container's /etc/vsync: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EXE: &str = env!("CARGO_BIN_EXE_vsync-orchestrate");
const REMOTE_EXE: &str = "/usr/local/bin/vsync-orchestrate";
const REMOTE_CONFIG: &str = "/etc/vsync/config";
const REMOTE_PASS: &str = "/etc/vsync/passphrase";
const UNIT_FILE: &str = "/etc/systemd/system/vsyncapp@.service";
/// Real deployments use 600000; a small count keeps every app boot fast.
const ITERATIONS: u32 = 2000;
const SALT: &str = "E2eVpsSystemdSalt0123456";

const UNIT: &str = "[Unit]
Description=vsync demo app on port %i (vsync-orchestrate e2e)

[Service]
Type=simple
Environment=VSYNC_CONFIG_FILE=/etc/vsync/config VSYNC_PASSPHRASE_FILE=/etc/vsync/passphrase
Environment=AWS_EC2_METADATA_DISABLED=true
# The minbase root has no CA bundle at all: the app must still reach moto over
# plain HTTP (this once panicked in the S3 client).
ExecStart=/usr/local/bin/vsync-orchestrate demo-app --port %i
Restart=on-failure
RestartSec=1
";

/// The host spec as the plan spells it.
fn host_toml(env: &Env) -> String {
    format!(
        "{{ host = \"127.0.0.1\", port = {}, user = {}, identity_file = {}, known_hosts_file = {} }}",
        env.port,
        q(&env.user),
        q(&env.key.display().to_string()),
        q(&env.known_hosts.display().to_string())
    )
}

fn q(s: &str) -> String {
    toml::Value::from(s).to_string()
}

fn free_port() -> u16 {
    // The container shares this machine's network namespace: free here is free there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET http://127.0.0.1:port/path with a plain socket (independent of the crate).
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // One write: the demo app routes on whatever its first read returns.
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    match resp.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!("unexpected answer: {resp}")),
    }
}

fn healthz(port: u16) -> Result<serde_json::Value, String> {
    let body = http_get(port, "/healthz")?;
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

fn is_fresh(v: &serde_json::Value, gen: u64) -> bool {
    v["status"] == "fresh" && v["gen"].as_u64() == Some(gen)
}

/// The demo apps in the container, removed again on drop (even when the test panics).
struct Apps<'a> {
    env: &'a Env,
    ports: Vec<u16>,
    /// What /etc/vsync/passphrase(.prev) held before: the adapters' tests use it too.
    saved: Vec<(String, Option<String>)>,
}

impl<'a> Apps<'a> {
    /// Installs the binary, config, passphrase and unit, starts one unit per port and
    /// waits until each serves `fresh` at gen 0.
    fn start(env: &'a Env, blob: &str, passphrase: &str, count: usize) -> Apps<'a> {
        let saved = [REMOTE_PASS.to_owned(), format!("{REMOTE_PASS}.prev")]
            .into_iter()
            .map(|p| {
                let body = env.get(&p);
                (p, body)
            })
            .collect();
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < count {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let apps = Apps { env, ports, saved };
        // A crashed earlier run may have left instances behind.
        apps.remove_units();
        let exe = std::fs::read(EXE).expect("the built binary");
        env.put(REMOTE_EXE, &exe, "0755");
        env.put(REMOTE_CONFIG, blob.as_bytes(), "0600");
        env.put(REMOTE_PASS, passphrase.as_bytes(), "0600");
        env.ssh(&format!("rm -f {REMOTE_PASS}.prev {REMOTE_PASS}.new"));
        env.put(UNIT_FILE, UNIT.as_bytes(), "0644");
        env.ssh(&format!(
            "systemctl daemon-reload && systemctl start {}",
            apps.units().join(" ")
        ));
        for &port in &apps.ports {
            apps.wait_health(port, 0, Duration::from_secs(60));
        }
        apps
    }

    fn units(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("vsyncapp@{p}.service"))
            .collect()
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/healthz"))
            .collect()
    }

    fn wait_health(&self, port: u16, gen: u64, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            match healthz(port) {
                Ok(v) if is_fresh(&v, gen) => return,
                Ok(v) => last = v.to_string(),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let unit = format!("vsyncapp@{port}.service");
        let diag = self.env.ssh_raw(
            &format!("systemctl status --no-pager {unit}; journalctl --no-pager -n 30 -u {unit}"),
            b"",
        );
        panic!(
            "{unit} never served fresh gen {gen}; last answer: {last}\n{}",
            String::from_utf8_lossy(&diag.stdout)
        );
    }

    /// Stops every `vsyncapp@` instance and removes the unit file (best effort).
    fn remove_units(&self) {
        let _ = self.env.ssh_raw(
            &format!(
                "systemctl stop 'vsyncapp@*.service'; systemctl reset-failed 'vsyncapp@*.service'; \
                 rm -f {UNIT_FILE}; systemctl daemon-reload"
            ),
            b"",
        );
    }
}

impl Drop for Apps<'_> {
    fn drop(&mut self) {
        self.remove_units();
        let _ = self.env.ssh_raw(
            &format!("rm -f {REMOTE_EXE} {REMOTE_CONFIG} /etc/vsync/ca-certificates.crt {REMOTE_PASS}.new"),
            b"",
        );
        for (path, body) in &self.saved {
            let script = match body {
                Some(_) => format!(
                    "umask 077; cat >{path}.e2e-tmp && chmod 0600 {path}.e2e-tmp && mv -f {path}.e2e-tmp {path}"
                ),
                None => format!("rm -f {path}"),
            };
            let input = body.as_deref().unwrap_or("").as_bytes();
            let _ = self.env.ssh_raw(&script, input);
        }
    }
}

/// A runtime-layout vault on a fresh moto bucket, and the VSYNC_CONFIG blob for it.
struct TestVault {
    vault: Vault,
    bucket: String,
    prefix: String,
    blob: String,
}

async fn seed_vault(env: &Env, old: &str) -> TestVault {
    let (bucket, storage) = support::moto_bucket(&env.moto).await;
    let prefix = format!("{}/prod/", support::unique("e2e"));
    let vault = Vault::new(
        storage,
        &prefix,
        KdfParams::new(SALT, ITERATIONS),
        LayoutChoice::Runtime,
    );
    let content = SeedContent::Json {
        kv: BTreeMap::from([("DATABASE_URL".into(), "postgres://db/app".into())]),
        assets: BTreeMap::new(),
    };
    vault
        .seed(Layout::Runtime, &Passphrase::from(old), &content)
        .await
        .expect("seed the vault on moto");
    let blob = config_blob::encode(&VsyncConfig {
        v: 1,
        endpoint: env.moto.clone(),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        prefix: prefix.clone(),
        env: "prod".into(),
        salt: SALT.into(),
        iterations: ITERATIONS,
    });
    TestVault {
        vault,
        bucket,
        prefix,
        blob,
    }
}

fn plan_text(env: &Env, dir: &Path, tv: &TestVault, apps: &Apps, old: &str) -> String {
    let host = host_toml(env);
    let units: Vec<String> = apps.units().iter().map(|u| q(u)).collect();
    let health: Vec<String> = apps.urls().iter().map(|u| q(u)).collect();
    format!(
        r#"env = "prod"
state_dir = {state}

[vault]
bucket = {bucket}
prefix = {prefix}
endpoint = {endpoint}
region = "us-east-1"
config = {{ file = {config} }}

[passphrase]
old = {old}
new = {{ generate = {{ length = 32 }} }}
note = "e2e vps_file + systemd"

[[store]]
type = "vps_file"
hosts = [{host}]
path = "{REMOTE_PASS}"
mode = "0600"

[[restart]]
type = "systemd"
hosts = [{host}]
units = [{units}]
mode = "rolling"
batch_size = 1
pause = "200ms"
settle = "2s"
timeout = "2m"

[verify]
health = [{health}]
timeout = "60s"
samples = 3
interval = "200ms"
"#,
        state = q(&dir.join("state").display().to_string()),
        bucket = q(&tv.bucket),
        prefix = q(&tv.prefix),
        endpoint = q(&env.moto),
        config = q(&dir.join("vsync-config").display().to_string()),
        units = units.join(", "),
        health = health.join(", "),
    )
}

struct RunResult {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: serde_json::Value,
    took: Duration,
}

/// `vsync-orchestrate run --yes --output json PLAN`, the built binary.
fn run_plan(plan: &Path, extra_env: &[(&str, &str)]) -> RunResult {
    let mut c = Command::new(EXE);
    c.args(["run", "--yes", "--output", "json"])
        .arg(plan)
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
        .stdin(Stdio::null());
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        if std::env::var_os(k).is_none() {
            c.env(k, v);
        }
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let t0 = Instant::now();
    let out = c.output().expect("spawn vsync-orchestrate");
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- vsync-orchestrate run ({took:?}) stderr:\n{stderr}--- stdout:\n{stdout}");
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON summary ({e}): {stdout}"));
    RunResult {
        code: out.status.code(),
        stdout,
        stderr,
        summary,
        took,
    }
}

fn write_plan_dir(tv: &TestVault) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vsync-e2e-")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("vsync-config"), &tv.blob).unwrap();
    dir
}

async fn run_rotates_a_vps_file_and_restarts_systemd_units() {
    let Some(env) = env("run_rotates_a_vps_file_and_restarts_systemd_units") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let started = Instant::now();
    let old = format!("{}-old-passphrase", support::unique("e2e"));
    let tv = seed_vault(&env, &old).await;
    let apps = Apps::start(&env, &tv.blob, &old, 2);
    let setup = started.elapsed();
    let before: Vec<String> = apps
        .units()
        .iter()
        .map(|u| env.prop(u, "InvocationID"))
        .collect();

    let dir = write_plan_dir(&tv);
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_text(&env, dir.path(), &tv, &apps, "\"store\"")).unwrap();
    let r = run_plan(&plan, &[]);

    assert_eq!(r.code, Some(0), "run failed: {}", r.stderr);
    let s = &r.summary;
    assert_eq!(s["exit_code"].as_u64(), Some(0), "{s}");
    assert_eq!(s["gen_before"].as_u64(), Some(0), "{s}");
    assert_eq!(s["gen_after"].as_u64(), Some(1), "{s}");
    assert!(s["window_ms"].as_f64().is_some(), "window_ms: {s}");
    let health = s["health"].as_array().expect("health results");
    assert_eq!(health.len(), apps.ports.len(), "{s}");
    for (h, url) in health.iter().zip(apps.urls()) {
        assert_eq!(h["url"].as_str(), Some(url.as_str()), "{s}");
        assert_eq!(h["ok"].as_bool(), Some(true), "{h}");
        assert_eq!(h["last"]["state"].as_str(), Some("fresh"), "{h}");
        assert_eq!(h["last"]["gen"].as_u64(), Some(1), "{h}");
    }

    // Every unit was restarted (a new invocation) and serves the new generation.
    for (unit, b) in apps.units().iter().zip(&before) {
        let now = env.prop(unit, "InvocationID");
        assert!(!now.is_empty() && &now != b, "{unit} not restarted");
        assert_eq!(env.prop(unit, "SubState"), "running", "{unit}");
    }
    for &port in &apps.ports {
        let v = healthz(port).unwrap();
        assert!(is_fresh(&v, 1), "127.0.0.1:{port}/healthz: {v}");
    }

    // The container's file: the new passphrase, 0600, the old one kept as .prev.
    let new = env.get(REMOTE_PASS).expect("passphrase file");
    assert_ne!(new, old);
    assert_eq!(new.len(), 32, "generated length");
    assert_eq!(env.ssh(&format!("stat -c %a {REMOTE_PASS}")).trim(), "600");
    assert_eq!(
        env.get(&format!("{REMOTE_PASS}.prev")).as_deref(),
        Some(old.as_str())
    );
    assert_eq!(
        env.get(&format!("{REMOTE_PASS}.new")),
        None,
        "staged file left"
    );

    // The vault opens with the new passphrase only.
    let opened = tv
        .vault
        .open(&Passphrase::from(new.as_str()))
        .await
        .unwrap();
    assert_eq!(opened.gen, 1);
    let err = tv
        .vault
        .open(&Passphrase::from(old.as_str()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, VaultErrorKind::WrongPassphrase);

    // Neither passphrase ever reached the tool's output.
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(!text.contains(&new), "new passphrase on {name}");
        assert!(!text.contains(&old), "old passphrase on {name}");
    }
    eprintln!(
        "timings: setup {setup:?}, run {:?}, whole test {:?}",
        r.took,
        started.elapsed()
    );
}

/// What a refused run must leave alone: vault pointer and generation, the container's
/// file (no `.new`, no `.prev`), the units (same invocation), the apps (fresh, gen 0).
async fn assert_nothing_changed(
    env: &Env,
    tv: &TestVault,
    apps: &Apps<'_>,
    stamp_before: &str,
    vault_pass: &str,
    file_pass: &str,
    invocations: &[String],
) {
    let st = tv.vault.status().await.unwrap().expect("still there");
    assert_eq!(st.stamp, stamp_before, "pointer moved");
    assert_eq!(st.gen, 0, "generation moved");
    let opened = tv.vault.open(&Passphrase::from(vault_pass)).await.unwrap();
    assert_eq!(opened.gen, 0);
    assert_eq!(env.get(REMOTE_PASS).as_deref(), Some(file_pass));
    assert_eq!(env.get(&format!("{REMOTE_PASS}.new")), None, "staged file");
    assert_eq!(env.get(&format!("{REMOTE_PASS}.prev")), None, "activated");
    for (unit, b) in apps.units().iter().zip(invocations) {
        assert_eq!(&env.prop(unit, "InvocationID"), b, "{unit} was restarted");
    }
    for &port in &apps.ports {
        let v = healthz(port).unwrap();
        assert!(is_fresh(&v, 0), "127.0.0.1:{port}/healthz: {v}");
    }
}

async fn a_wrong_old_passphrase_changes_nothing() {
    let Some(env) = env("a_wrong_old_passphrase_changes_nothing") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let old = format!("{}-old-passphrase", support::unique("e2e"));
    let wrong = format!("{}-not-the-passphrase", support::unique("e2e"));
    let tv = seed_vault(&env, &old).await;
    let stamp = tv.vault.status().await.unwrap().expect("seeded").stamp;
    let apps = Apps::start(&env, &tv.blob, &old, 1);
    let invocations: Vec<String> = apps
        .units()
        .iter()
        .map(|u| env.prop(u, "InvocationID"))
        .collect();
    let dir = write_plan_dir(&tv);
    let plan = dir.path().join("plan.toml");
    let old_from_env = "{ env = \"VSYNC_E2E_OLD_PASSPHRASE\" }";
    std::fs::write(&plan, plan_text(&env, dir.path(), &tv, &apps, old_from_env)).unwrap();
    let no_secret_in_output = |r: &RunResult| {
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(!text.contains(&wrong), "the given passphrase on {name}");
            assert!(!text.contains(&old), "the real passphrase on {name}");
        }
    };

    // 1. The plan's old passphrase differs from what the store holds: preflight
    //    refuses (exit 12) before anything is decrypted or written.
    let r = run_plan(&plan, &[("VSYNC_E2E_OLD_PASSPHRASE", &wrong)]);
    assert_eq!(r.code, Some(12), "expected exit 12: {}", r.stderr);
    assert_eq!(r.summary["exit_code"].as_u64(), Some(12), "{}", r.summary);
    assert!(
        r.stderr.contains("holds a different passphrase"),
        "{}",
        r.stderr
    );
    no_secret_in_output(&r);
    assert_nothing_changed(&env, &tv, &apps, &stamp, &old, &old, &invocations).await;

    // 2. The store agrees with the plan but neither opens the vault (the file drifted
    //    after the apps booted): the old passphrase does not decrypt the live bundle,
    //    exit 1, vault and store untouched.
    env.put(REMOTE_PASS, wrong.as_bytes(), "0600");
    let r = run_plan(&plan, &[("VSYNC_E2E_OLD_PASSPHRASE", &wrong)]);
    assert_eq!(r.code, Some(1), "expected exit 1 (bad input): {}", r.stderr);
    assert_eq!(r.summary["exit_code"].as_u64(), Some(1), "{}", r.summary);
    assert!(r.summary["gen_after"].is_null(), "{}", r.summary);
    no_secret_in_output(&r);
    assert_nothing_changed(&env, &tv, &apps, &stamp, &old, &wrong, &invocations).await;
}

vsync_orchestrate_testkit::main! {
    tests: [
        run_rotates_a_vps_file_and_restarts_systemd_units,
        a_wrong_old_passphrase_changes_nothing,
    ],
}
