//! The fakes checked by Google's own clients: the same fakes the adapter tests use
//! (`fake/`), started here on a loopback port, driven by `gcloud` and by the Python
//! clients `google-cloud-secret-manager` and `google-cloud-run` over REST. The
//! clients build the requests and parse the answers, so a path, field, enum, int64,
//! operation or error body the real service would not send fails here.
//!
//! `VSYNC_TEST_GCLOUD` names the `gcloud` binary and `VSYNC_TEST_GCP_PYTHON` a
//! Python with both clients installed (`.ci/services/40-gcp-clients.sh` exports
//! them). A passphrase only ever goes to a client on stdin, never in its argv.

mod fake;

use fake::cloud_run::{self as run, Behaviour, RunState};
use fake::secret_manager::{self as sm, VersionState};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use vsync_orchestrate_api::{Passphrase, RunId, SecretStore};
use vsync_orchestrate_gcp::{CredentialSource, SecretManagerConfig, SecretManagerStore};
use vsync_orchestrate_testkit::service::{current_test, env_or_skip};

const SECRET: &str = "projects/shop-prod/secrets/vsync-passphrase";
const OLD: &str = "old-passphrase-Kq93mZx71LwP";
const NEW: &str = "new-passphrase-Tb28vNc40QsR";
const SERVICE: &str = "projects/shop-prod/locations/europe-west1/services/shop";
const BROKEN: &str = "projects/shop-prod/locations/europe-west1/services/broken";

/// A directory of its own under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "vsync-gcp-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit ok={}\n--- stdout\n{}\n--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with `stdin` on its standard input (the runtime keeps serving the
/// fake meanwhile).
async fn run_with_stdin(mut cmd: tokio::process::Command, stdin: &[u8]) -> Ran {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the client finished within 2 minutes")
    .unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------
// gcloud

struct Gcloud {
    bin: String,
    home: Scratch,
    endpoint: String,
}

impl Gcloud {
    fn find(endpoint: String) -> Option<Gcloud> {
        let bin = env_or_skip(&current_test(), &["VSYNC_TEST_GCLOUD"])?.remove(0);
        let home = Scratch::new("gcloud");
        // Any token: the fake does not check it; gcloud only needs one to send.
        std::fs::write(home.path().join("token"), "ya29.fake-token-for-the-fake\n").unwrap();
        Some(Gcloud {
            bin,
            home,
            endpoint,
        })
    }

    async fn run(&self, args: &[&str], stdin: &[u8]) -> Ran {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .args(["--quiet", "--verbosity=error"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("LANG", "C.UTF-8")
            .env("CLOUDSDK_CONFIG", self.home.path().join("config"))
            .env("CLOUDSDK_CORE_PROJECT", "shop-prod")
            .env(
                "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
                self.home.path().join("token"),
            )
            .env(
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER",
                format!("{}/", self.endpoint.trim_end_matches('/')),
            )
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .env("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "1")
            .env("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true");
        run_with_stdin(cmd, stdin).await
    }
}

/// `gcloud secrets versions add/access` and `gcloud secrets update
/// --update-version-aliases` against the Secret Manager fake, and the errors it
/// prints for the fake's failure answers.
async fn gcloud_adds_accesses_and_moves_aliases_on_the_secret_manager_fake() {
    let mut state = sm::seeded(SECRET, OLD);
    state.set_alias(SECRET, "previous", 1);
    let fake = sm::start(state).await;
    let Some(g) = Gcloud::find(fake.url()) else {
        return;
    };

    let added = g
        .run(
            &[
                "secrets",
                "versions",
                "add",
                "vsync-passphrase",
                "--data-file=-",
            ],
            NEW.as_bytes(),
        )
        .await;
    assert!(added.ok, "{added}");
    {
        let st = fake.state();
        assert_eq!(st.secret(SECRET).versions.len(), 2, "{added}");
        assert_eq!(st.secret(SECRET).versions[1].data, NEW.as_bytes());
        // gcloud sends the payload's CRC32C; the fake checked it with its own.
        assert!(
            matches!(st.add_checksums.last(), Some(Some(_))),
            "{:?}",
            st.add_checksums
        );
    }

    let read = g
        .run(
            &[
                "secrets",
                "versions",
                "access",
                "2",
                "--secret=vsync-passphrase",
            ],
            b"",
        )
        .await;
    // Compared, never printed: a failure names lengths only.
    assert!(read.ok, "gcloud failed: {}", read.stderr);
    assert!(
        read.stdout == NEW,
        "gcloud printed {} bytes, not the payload as it is",
        read.stdout.len()
    );
    let by_alias = g
        .run(
            &[
                "secrets",
                "versions",
                "access",
                "current",
                "--secret=vsync-passphrase",
            ],
            b"",
        )
        .await;
    assert!(by_alias.ok, "gcloud failed: {}", by_alias.stderr);
    assert!(
        by_alias.stdout == OLD,
        "gcloud printed {} bytes",
        by_alias.stdout.len()
    );

    let moved = g
        .run(
            &[
                "secrets",
                "update",
                "vsync-passphrase",
                "--update-version-aliases=current=2",
            ],
            b"",
        )
        .await;
    assert!(moved.ok, "{moved}");
    // gcloud 528 reads the secret, then sends only the pairs given (its
    // `ApplyAliasUpdate` builds the new map without the old one) under
    // `updateMask=version_aliases`: the service replaces the whole map, so every
    // alias that must survive has to be named on the command line.
    let patch = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.query_param("updateMask").as_deref(),
        Some("version_aliases")
    );
    assert_eq!(fake.state().secret(SECRET).aliases.get("current"), Some(&2));

    // A stale etag (https://cloud.google.com/secret-manager/docs/etags): 400
    // FAILED_PRECONDITION, named by gcloud; nothing moves.
    let stale = g
        .run(
            &[
                "secrets",
                "update",
                "vsync-passphrase",
                "--update-version-aliases=current=1",
                "--etag=\"e1\"",
            ],
            b"",
        )
        .await;
    assert!(!stale.ok, "{stale}");
    assert!(
        stale.stderr.contains("FAILED_PRECONDITION") && stale.stderr.contains("etag"),
        "{stale}"
    );
    assert_eq!(fake.state().stale_etags, 1);
    assert_eq!(fake.state().secret(SECRET).aliases.get("current"), Some(&2));

    // Reserved in any letter case: gcloud sends it, the service refuses it.
    let reserved = g
        .run(
            &[
                "secrets",
                "update",
                "vsync-passphrase",
                "--update-version-aliases=Latest=1",
            ],
            b"",
        )
        .await;
    assert!(!reserved.ok, "{reserved}");
    assert!(reserved.stderr.contains("INVALID_ARGUMENT"), "{reserved}");
    assert!(!fake.state().secret(SECRET).aliases.contains_key("Latest"));

    // A disabled version: 400 FAILED_PRECONDITION, which gcloud names.
    fake.state().secrets.get_mut(SECRET).unwrap().versions[0].state = VersionState::Disabled;
    let disabled = g
        .run(
            &[
                "secrets",
                "versions",
                "access",
                "1",
                "--secret=vsync-passphrase",
            ],
            b"",
        )
        .await;
    assert!(!disabled.ok, "{disabled}");
    assert!(
        disabled.stderr.contains("FAILED_PRECONDITION")
            && disabled.stderr.contains("DISABLED state"),
        "{disabled}"
    );
    assert!(!disabled.stderr.contains(OLD) && !disabled.stderr.contains(NEW));

    let missing = g
        .run(
            &[
                "secrets",
                "versions",
                "access",
                "9",
                "--secret=vsync-passphrase",
            ],
            b"",
        )
        .await;
    assert!(!missing.ok, "{missing}");
    assert!(missing.stderr.contains("NOT_FOUND"), "{missing}");
}

/// The command the store prints for activating by hand, run as printed: it moves
/// the apps' alias and keeps every other alias (gcloud replaces the whole map).
async fn the_printed_activation_command_run_with_gcloud_activates_and_keeps_other_aliases() {
    let mut state = sm::seeded(SECRET, OLD);
    state.set_alias(SECRET, "canary", 1);
    let fake = sm::start(state).await;
    let Some(g) = Gcloud::find(fake.url()) else {
        return;
    };
    let mut cfg = SecretManagerConfig::new(SECRET);
    cfg.endpoint = Some(fake.url());
    cfg.credentials = CredentialSource::Anonymous;
    let store = SecretManagerStore::new(cfg).unwrap();
    let staged = store
        .stage(&Passphrase::from(NEW), &RunId("run-by-hand".into()))
        .await
        .unwrap();
    assert_eq!(fake.state().secret(SECRET).aliases.get("pending"), Some(&2));

    let hint = store.activate_hint(&staged).unwrap();
    let prefix = format!(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER={}/ gcloud ",
        fake.url().trim_end_matches('/')
    );
    let args: Vec<&str> = hint
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{hint}"))
        .split_whitespace()
        .collect();
    let ran = g.run(&args, b"").await;
    assert!(ran.ok, "{hint}\n{ran}");
    let aliases = fake.state().secret(SECRET).aliases.clone();
    assert_eq!(aliases.get("current"), Some(&2), "{hint}");
    assert_eq!(aliases.get("previous"), Some(&1), "{hint}");
    assert_eq!(aliases.get("canary"), Some(&1), "{hint}");
    assert_eq!(aliases.get("pending"), None, "{hint}");
    // The run, resumed, finds the activation done.
    store.activate(&staged).await.unwrap();
    assert_eq!(store.read_current().await.unwrap().unwrap().expose(), NEW);
}

// ---------------------------------------------------------------------------------
// Google's Python clients

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/check_fakes.py")
}

async fn python(args: &[&str], stdin: &[u8]) -> Option<Ran> {
    let bin = env_or_skip(&current_test(), &["VSYNC_TEST_GCP_PYTHON"])?.remove(0);
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg(script())
        .args(args)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Some(run_with_stdin(cmd, stdin).await)
}

/// `google-cloud-secret-manager` (REST): add with a CRC32C, access by number, alias
/// and `latest`, the alias map under its etag, a stale etag (400
/// FAILED_PRECONDITION), a reserved alias, a disabled and a missing version.
async fn the_python_secret_manager_client_reads_the_fakes_answers() {
    let fake = sm::start(sm::seeded(SECRET, OLD)).await;
    let Some(ran) = python(&["secret_manager", &fake.url(), SECRET], NEW.as_bytes()).await else {
        return;
    };
    assert!(ran.ok, "{ran}");
    assert!(!ran.stdout.contains(NEW) && !ran.stderr.contains(NEW));
    let st = fake.state();
    assert_eq!(st.secret(SECRET).versions[1].data, NEW.as_bytes());
    assert_eq!(st.secret(SECRET).aliases.get("current"), Some(&2));
    assert_eq!(st.stale_etags, 1, "{ran}");
    assert!(matches!(st.add_checksums.last(), Some(Some(_))));
}

/// `google-cloud-run` (REST): get a service, `update_service(...).result()` polling
/// the fake's operation to a Ready service, a stale etag, a revision that fails to
/// start (the operation's error) and the failed service read back.
async fn the_python_cloud_run_client_follows_the_fakes_operations() {
    let mut st = RunState::default();
    st.add_service(
        SERVICE,
        Behaviour::Healthy,
        run::template("vsync-passphrase", "current"),
    );
    st.add_service(
        BROKEN,
        Behaviour::FailsToStart,
        run::template("vsync-passphrase", "current"),
    );
    let fake = run::start(st).await;
    let Some(ran) = python(&["cloud_run", &fake.url(), SERVICE, BROKEN], b"").await else {
        return;
    };
    assert!(ran.ok, "{ran}");
    let st = fake.state();
    assert_eq!(st.updates(SERVICE), 1, "the stale update was refused");
    assert_eq!(st.updates(BROKEN), 1);
}

vsync_orchestrate_testkit::main! {
    tests: [
        gcloud_adds_accesses_and_moves_aliases_on_the_secret_manager_fake,
        the_printed_activation_command_run_with_gcloud_activates_and_keeps_other_aliases,
        the_python_secret_manager_client_reads_the_fakes_answers,
        the_python_cloud_run_client_follows_the_fakes_operations,
    ],
}
