//! The `file` store and the `command` restarter: both suites, file modes, and what
//! a restart command does and does not receive.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{
    async_trait, ErrorKind, Passphrase, RestartContext, Restarter, RolloutOutcome, RunId,
    SecretStore,
};
use vsync_orchestrate_local::{CommandRestarter, CommandTargetSpec, FileStore};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

const INITIAL: &str = "initial-file-passphrase-0123";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn write_0600(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------
// The suites.

struct Files;
struct SeededFile(tempfile::TempDir);

#[async_trait]
impl StoreFixture for Files {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        let dir = tempfile::tempdir().unwrap();
        write_0600(
            &dir.path().join("passphrase"),
            &format!("{}\n", initial.expose()),
        );
        Box::new(SeededFile(dir))
    }
}

#[async_trait]
impl SeededStore for SeededFile {
    async fn open(&self) -> Arc<dyn SecretStore> {
        Arc::new(FileStore::new(self.0.path().join("passphrase"), 0o600))
    }
}

async fn files() -> Option<Files> {
    Some(Files)
}

vsync_orchestrate_testkit::store_suite!(files());

struct Commands;
struct CommandTarget {
    _dir: tempfile::TempDir,
    count: PathBuf,
    script: String,
}

#[async_trait]
impl RestarterFixture for Commands {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("starts");
        let then = match scenario {
            Scenario::Healthy => "exit 0",
            Scenario::Failing => "echo app failed to boot >&2; exit 3",
            Scenario::Stalling => "exec sleep 30",
        };
        let script = format!("echo started >> '{}'; {then}", count.display());
        Box::new(CommandTarget {
            _dir: dir,
            count,
            script,
        })
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(20)
    }
}

#[async_trait]
impl RestartTarget for CommandTarget {
    async fn open(&self) -> Arc<dyn Restarter> {
        Arc::new(CommandRestarter::new(
            vec![target("app", &self.script)],
            false,
            Duration::from_secs(60),
        ))
    }

    async fn starts(&self) -> usize {
        std::fs::read_to_string(&self.count)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

async fn commands() -> Option<Commands> {
    Some(Commands)
}

vsync_orchestrate_testkit::restarter_suite!(commands());

// ---------------------------------------------------------------------------------
// What the suites do not cover.

async fn file_store_keeps_the_previous_file_and_applies_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase");
    write_0600(&path, &format!("{INITIAL}\n"));
    let store = FileStore::new(&path, 0o640);
    let new = Passphrase::from("the-next-passphrase-0123456789");
    let staged = store.stage(&new, &RunId("r1".into())).await.unwrap();
    store.activate(&staged).await.unwrap();
    store.tidy(&staged).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new.expose());
    assert_eq!(
        mode(&path),
        0o640,
        "the plan's mode applies to the activated file"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase.prev")).unwrap(),
        format!("{INITIAL}\n")
    );
    assert_eq!(
        mode(&dir.path().join("passphrase.prev")),
        0o600,
        ".prev is the old file itself"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "temp files left behind: {leftovers:?}");
}

async fn a_stage_replaced_by_someone_else_is_a_conflict_not_an_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase");
    write_0600(&path, INITIAL);
    let store = FileStore::new(&path, 0o600);
    let staged = store
        .stage(
            &Passphrase::from("ours-0123456789abcdef"),
            &RunId("r".into()),
        )
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join("passphrase.new")).unwrap();
    write_0600(
        &dir.path().join("passphrase.new"),
        "theirs-0123456789abcdef",
    );
    let e = store.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), INITIAL);
    assert!(!e.chain().contains("theirs") && !e.chain().contains("ours"));
}

async fn preflight_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("nope"), 0o600);
    let e = store.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.chain().contains("nope"), "{}", e.chain());
}

fn target(name: &str, script: &str) -> CommandTargetSpec {
    CommandTargetSpec {
        name: name.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
    }
}

async fn command_restarter_runs_in_order_with_the_run_id_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!("echo \"$VSYNC_ORCHESTRATE_TARGET $VSYNC_ORCHESTRATE_RUN_ID ${{VSYNC_PASSPHRASE:-none}} $#\" >> {}", out.display());
    let r = CommandRestarter::new(
        vec![target("a", &script), target("b", &script)],
        false,
        Duration::from_secs(5),
    );
    r.preflight().await.unwrap();
    std::env::set_var("VSYNC_PASSPHRASE", "must-not-leak-0123456789");
    let rollout = r
        .restart(&RestartContext::new(RunId("run-42".into())))
        .await
        .unwrap();
    let outcome = r
        .wait(&rollout, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(outcome.is_done(), "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "a run-42 none 0\nb run-42 none 0\n"
    );
}

async fn command_restarter_reports_failures_and_timeouts() {
    let r = CommandRestarter::new(
        vec![
            target("ok", "true"),
            target("bad", "echo boom >&2; exit 3"),
            target("never", "true"),
        ],
        false,
        Duration::from_secs(5),
    );
    let ro = r
        .restart(&RestartContext::new(RunId("x".into())))
        .await
        .unwrap();
    match r
        .wait(&ro, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap()
    {
        RolloutOutcome::Failed { reason } => {
            assert!(
                reason.contains("bad") && reason.contains("boom"),
                "{reason}"
            );
            assert!(
                !reason.contains("never"),
                "rolling restarts stop at the first failure"
            );
        }
        other => panic!("{other:?}"),
    }
    let slow = CommandRestarter::new(
        vec![target("slow", "sleep 5")],
        true,
        Duration::from_millis(200),
    );
    let ro = slow
        .restart(&RestartContext::new(RunId("y".into())))
        .await
        .unwrap();
    let t = Instant::now();
    let outcome = slow
        .wait(&ro, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RolloutOutcome::Failed { reason } if reason.contains("timed out")),
        "{outcome:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let missing = CommandRestarter::new(
        vec![CommandTargetSpec {
            name: "m".into(),
            argv: vec!["/no/such/tool".into()],
        }],
        false,
        Duration::from_secs(1),
    );
    assert!(missing
        .preflight()
        .await
        .unwrap_err()
        .chain()
        .contains("/no/such/tool"));
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [store_suite, restarter_suite],
    tests: [
        file_store_keeps_the_previous_file_and_applies_the_mode,
        a_stage_replaced_by_someone_else_is_a_conflict_not_an_activation,
        preflight_names_a_missing_file,
        command_restarter_runs_in_order_with_the_run_id_and_no_secrets,
        command_restarter_reports_failures_and_timeouts,
    ],
}
