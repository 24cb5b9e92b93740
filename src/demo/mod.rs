//! `vsync-orchestrate demo`: a whole rotation on this machine with no cloud
//! account — a local-directory vault, a passphrase file, N running apps that boot
//! from them, and a plan using the `file` store and the `command` restarter,
//! driven by the real engine.

pub mod app;
pub mod ctl;

use crate::engine::{self, RunOptions};
use crate::report::{Progress, Summary};
use crate::vault::{config_blob, storage::DirStorage, Layout, LayoutChoice, SeedContent, Vault};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::Passphrase;

pub const PREFIX: &str = "demo/demo/";

/// The sandbox `plans/demo.toml` names: `demo --dir /tmp/vsync-demo` builds the
/// sandbox that plan runs as it stands.
pub const EXAMPLE_DIR: &str = "/tmp/vsync-demo";

/// App N of `demo` listens on `FIRST_PORT + N - 1` when that port is free, so the
/// example plan's health URLs (8081, 8082, 8083) are the apps' own.
pub const FIRST_PORT: u16 = 8081;

/// Where the apps listen: the fixed ports the example plan names, or any free ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ports {
    /// `FIRST_PORT`, `FIRST_PORT + 1`, …, each falling back to a free port when taken.
    Fixed,
    /// Free ports the kernel picks: for sandboxes side by side (`demo-setup`, tests).
    Any,
}

/// A port for app `n` (1-based), and whether it is the fixed one.
fn port_for(n: u32, ports: Ports) -> std::io::Result<(u16, bool)> {
    if ports == Ports::Fixed {
        if let Some(fixed) = u16::try_from(n - 1)
            .ok()
            .and_then(|i| FIRST_PORT.checked_add(i))
        {
            if std::net::TcpListener::bind(("127.0.0.1", fixed)).is_ok() {
                return Ok((fixed, true));
            }
        }
    }
    Ok((ctl::free_port()?, ports == Ports::Any))
}

fn q(s: &str) -> String {
    toml::Value::from(s).to_string()
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body)
}

/// The plan the demo runs, for a sandbox at `dir` with apps on `ports`.
pub fn plan_text(dir: &Path, exe: &str, ports: &[u16]) -> String {
    let d = dir.display().to_string();
    let targets: Vec<String> = (1..=ports.len())
        .map(|n| {
            format!(
                "  {{ name = \"app-{n}\", argv = [{}, \"demo-ctl\", \"restart\", \"--dir\", {}, \"--app\", \"{n}\"] }},",
                q(exe),
                q(&d)
            )
        })
        .collect();
    let health: Vec<String> = ports
        .iter()
        .map(|p| format!("  \"http://127.0.0.1:{p}/healthz\","))
        .collect();
    format!(
        r#"# A local rotation: the vault is a directory, the passphrase a 0600 file the apps
# read through VSYNC_PASSPHRASE_FILE, and each app is restarted by a command.
# `vsync-orchestrate demo --dir DIR` writes this file as DIR/plan.toml and runs it;
# `vsync-orchestrate run DIR/plan.toml` then rotates the sandbox again (the restarts
# start the apps the demo stopped). plans/demo.toml is the one for
# DIR=/tmp/vsync-demo with the apps on 8081-8083 and vsync-orchestrate on PATH.
env = "demo"
state_dir = {state}

[vault]
dir = {vault}
prefix = "{PREFIX}"
# Salt and iterations come from the same VSYNC_CONFIG the apps boot with.
config = {{ file = {config} }}

[passphrase]
old = "store"                          # read from the first store that can read it back
new = {{ generate = {{ length = 32 }} }}   # CSPRNG, alphanumeric
note = "vsync-orchestrate demo"

# Stages passphrase.new, activates by rename, keeps passphrase.prev.
[[store]]
type = "file"
path = {pass}

[[restart]]
type = "command"
parallel = false                       # one app after the other, like a rolling restart
timeout = "30s"
targets = [
{targets}
]

[verify]
health = [
{health}
]
timeout = "60s"
samples = 3
interval = "100ms"
"#,
        state = q(&format!("{d}/state")),
        vault = q(&format!("{d}/vault")),
        config = q(&format!("{d}/vsync-config")),
        pass = q(&format!("{d}/passphrase")),
        targets = targets.join("\n"),
        health = health.join("\n"),
    )
}

/// Why the demo could not set up or run. A setup step that failed is named by
/// `what` ("VSYNC_CONFIG file", "starting an app", …).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup: {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{} already holds a demo; pass an empty or new --dir", .dir.display())]
    AlreadyADemo { dir: PathBuf },
    #[error("demo setup: random: {0}")]
    Random(#[source] getrandom::Error),
    #[error("demo setup: seeding the vault: {0}")]
    Seed(#[source] crate::vault::storage::StorageError),
    #[error(transparent)]
    App(#[from] ctl::CtlError),
    #[error("demo: creating a temporary sandbox: {0}")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

/// Creates the sandbox: vault, config, passphrase, running apps on free ports, plan.
pub async fn setup(
    dir: &Path,
    apps: u32,
    iterations: u32,
    p: &Progress,
) -> Result<PathBuf, DemoError> {
    setup_on(dir, apps, iterations, Ports::Any, p).await
}

/// `setup` with the apps on `ports`.
pub async fn setup_on(
    dir: &Path,
    apps: u32,
    iterations: u32,
    ports_wanted: Ports,
    p: &Progress,
) -> Result<PathBuf, DemoError> {
    let err = |what: &'static str| move |source| DemoError::Io { what, source };
    std::fs::create_dir_all(dir).map_err(err("creating the sandbox"))?;
    let dir = dir.canonicalize().map_err(err("sandbox"))?;
    if dir.join("vault").exists() {
        return Err(DemoError::AlreadyADemo { dir });
    }
    let salt = {
        use base64::Engine;
        let mut b = [0u8; 18];
        getrandom::fill(&mut b).map_err(DemoError::Random)?;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let config = config_blob::VsyncConfig {
        v: 1,
        endpoint: format!("file://{}/vault", dir.display()),
        region: "local".into(),
        bucket: "local".into(),
        access_key_id: "none".into(),
        secret_access_key: "none".into(),
        prefix: PREFIX.into(),
        env: "demo".into(),
        salt: salt.clone(),
        iterations,
    };
    write_private(
        &dir.join("vsync-config"),
        config_blob::encode(&config).as_bytes(),
    )
    .map_err(err("VSYNC_CONFIG file"))?;
    let passphrase = engine::secrets::generate(32);
    write_private(&dir.join("passphrase"), passphrase.expose().as_bytes())
        .map_err(err("passphrase file"))?;
    let storage = DirStorage::new(dir.join("vault")).map_err(err("vault dir"))?;
    let vault = Vault::new(
        Arc::new(storage),
        PREFIX,
        crate::vault::KdfParams::new(salt, config.iterations),
        LayoutChoice::Runtime,
    );
    let content = SeedContent::Json {
        kv: BTreeMap::from([
            (
                "DATABASE_URL".into(),
                "postgres://demo:demo@127.0.0.1/demo".into(),
            ),
            ("STRIPE_KEY".into(), "sk_test_demo_only".into()),
        ]),
        assets: BTreeMap::from([("tls.key".into(), b"-----BEGIN DEMO KEY-----\n".to_vec())]),
    };
    let stamp = vault
        .seed(
            Layout::Runtime,
            &Passphrase::new(passphrase.expose().to_owned()),
            &content,
        )
        .await
        .map_err(DemoError::Seed)?;
    p.line(format!(
        "demo: sandbox {}; vault seeded at {PREFIX} (runtime layout, stamp {stamp}, gen 0)",
        dir.display()
    ));

    let mut ports = Vec::new();
    let mut moved = Vec::new();
    for n in 1..=apps {
        let (port, as_wanted) = port_for(n, ports_wanted).map_err(err("port"))?;
        if !as_wanted {
            moved.push(format!("app-{n} on {port}"));
        }
        ctl::start(&dir, n, port).map_err(err("starting an app"))?;
        ports.push(port);
    }
    for n in 1..=apps {
        ctl::wait_ready(&dir, n, Duration::from_secs(30))?;
    }
    p.line(format!(
        "demo: {apps} app(s) booted from VSYNC_CONFIG_FILE + VSYNC_PASSPHRASE_FILE on ports {}",
        ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !moved.is_empty() {
        p.line(format!(
            "demo: port(s) from {FIRST_PORT} taken, so {}: plans/demo.toml does not match this sandbox; its own plan.toml does",
            moved.join(", ")
        ));
    }
    let exe = std::env::current_exe().map_err(err("own path"))?;
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, plan_text(&dir, &exe.display().to_string(), &ports))
        .map_err(err("plan"))?;
    Ok(plan)
}

pub fn stop_apps(dir: &Path, apps: u32) {
    for n in 1..=apps {
        ctl::stop(dir, n);
    }
}

/// The whole demo. `keep` leaves the sandbox for inspection.
pub async fn run(
    dir: Option<PathBuf>,
    apps: u32,
    yes: bool,
    p: &Progress,
) -> Result<Summary, DemoError> {
    let (dir, _temp) = match dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("vsync-demo-")
                .tempdir()
                .map_err(DemoError::TempDir)?;
            (t.path().to_owned(), Some(t))
        }
    };
    let plan_path = match setup_on(
        &dir,
        apps,
        crate::vault::DEFAULT_ITERATIONS,
        Ports::Fixed,
        p,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            stop_apps(&dir, apps);
            return Err(e);
        }
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let result = match crate::plan::load(&plan_path) {
        Ok(loaded) => {
            let mut opts = RunOptions::new(dir.join("state"));
            opts.yes = yes;
            Ok(engine::run(&loaded, &opts, p, false).await)
        }
        Err(e) => Err(DemoError::Plan(e)),
    };
    stop_apps(&dir, apps);
    // The journal went with a temporary sandbox; don't point at it.
    let result = result.map(|mut s| {
        if _temp.is_some() {
            s.journal = None;
        }
        s
    });
    match _temp {
        Some(_) => p.line(format!("demo: stopped the {apps} app(s); removed the temporary sandbox (use --dir to keep one)")),
        None => {
            p.line(format!(
                "demo: stopped the {apps} app(s); sandbox kept at {} (vault/, vsync-config, passphrase and passphrase.prev, plan.toml, state/)",
                dir.display()
            ));
            // The plan restarts the stopped apps itself: it runs as it stands.
            p.line(format!(
                "demo: rotate it again with: vsync-orchestrate run {}",
                plan_path.display()
            ));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    /// `plans/demo.toml` is the demo's plan for users to copy; keep it identical
    /// to what `demo --dir /tmp/vsync-demo` writes with its three apps on their
    /// fixed ports (`UPDATE_SNAPSHOTS=1` regenerates it).
    #[test]
    fn the_example_plan_is_what_demo_runs() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.toml");
        let p = super::FIRST_PORT;
        let text = super::plan_text(
            std::path::Path::new(super::EXAMPLE_DIR),
            "vsync-orchestrate",
            &[p, p + 1, p + 2],
        );
        if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    /// A sandbox that already holds a demo is refused before anything is written
    /// or started, and the refusal names the directory.
    #[tokio::test]
    async fn a_sandbox_holding_a_demo_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("vault")).unwrap();
        let (p, out) = crate::report::Progress::capture();
        let e = super::setup(d.path(), 1, 1, &p).await.unwrap_err();
        match &e {
            super::DemoError::AlreadyADemo { dir } => {
                assert_eq!(dir, &d.path().canonicalize().unwrap())
            }
            other => panic!("{other:?}"),
        }
        assert!(e
            .to_string()
            .ends_with("already holds a demo; pass an empty or new --dir"));
        assert!(!d.path().join("vsync-config").exists());
        assert!(out.lock().unwrap().is_empty());
    }
}
