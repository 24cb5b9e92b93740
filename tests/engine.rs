//! Engine behaviour with in-memory fakes and the local adapters on a directory
//! vault: phase order, dry run, rollback, the open window, resume, locking.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::fakes::{Log, MemRestarter, MemStore};
use vsync_orchestrate::api::{Passphrase, RunId, SecretStore};
use vsync_orchestrate::engine::{self, build, lock::Lock, Exit, RunOptions};
use vsync_orchestrate::plan;
use vsync_orchestrate::report::Progress;
use vsync_orchestrate::vault::{Layout, SeedContent, Vault};

const OLD: &str = "the-old-passphrase-0123456789";

struct Sandbox {
    dir: tempfile::TempDir,
    loaded: plan::LoadedPlan,
    vault: Vault,
}

impl Sandbox {
    /// A seeded runtime-layout vault in a directory, a passphrase file holding OLD,
    /// and a plan over them (`extra` is appended to the plan).
    async fn new(extra: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("salt"), "AbCdEfGhIjKlMnOpQrStUvWx").unwrap();
        support::write_0600(&dir.path().join("passphrase"), OLD);
        let text = format!(
            r#"env = "prod"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "app/prod/"
salt = {{ file = "{d}/salt" }}
iterations = 2000
[passphrase]
note = "engine test"
[[store]]
type = "file"
path = "{d}/passphrase"
{extra}"#
        );
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = plan::load(&path).unwrap();
        let vault = build::vault(&loaded.plan).await.unwrap();
        vault
            .seed(
                Layout::Runtime,
                &Passphrase::from(OLD),
                &SeedContent::Json {
                    kv: BTreeMap::from([("K".into(), "v".into())]),
                    assets: BTreeMap::new(),
                },
            )
            .await
            .unwrap();
        Sandbox { dir, loaded, vault }
    }

    fn opts(&self) -> RunOptions {
        let mut o = RunOptions::new(self.dir.path().join("state"));
        o.yes = true;
        o
    }

    async fn parts(
        &self,
        stores: Vec<Arc<dyn SecretStore>>,
        restart: Option<Arc<MemRestarter>>,
    ) -> build::Parts {
        build::Parts {
            vault: build::vault(&self.loaded.plan).await.unwrap(),
            stores,
            restarters: restart
                .into_iter()
                .map(|r| {
                    (
                        r as Arc<dyn vsync_orchestrate::api::Restarter>,
                        std::time::Duration::from_secs(5),
                    )
                })
                .collect(),
        }
    }

    fn file_store(&self) -> Arc<dyn SecretStore> {
        Arc::new(vsync_orchestrate::local::FileStore::new(
            self.dir.path().join("passphrase"),
            0o600,
        ))
    }

    fn passphrase_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("passphrase")).unwrap()
    }

    fn journal_texts(&self) -> String {
        let runs = self.dir.path().join("state/runs");
        std::fs::read_dir(runs)
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every file under `root` with its bytes and mode: the "nothing was written" oracle.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

fn log() -> Log {
    Default::default()
}

#[tokio::test]
async fn phases_run_in_order_and_activation_follows_the_swap() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, Some(sb.vault.clone()));
    let restarter = Arc::new(MemRestarter {
        log: log.clone(),
        fail: false.into(),
    });
    let parts = sb
        .parts(vec![sb.file_store(), mem.clone()], Some(restarter))
        .await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);

    let calls: Vec<String> = log.lock().unwrap().clone();
    let pos = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c} missing from {calls:?}"))
    };
    assert!(pos("mem:preflight") < pos("mem:stage"));
    assert!(pos("restarter:preflight") < pos("mem:stage"));
    assert!(pos("mem:stage") < pos("mem:activate"));
    assert!(pos("mem:activate") < pos("restarter:restart"));
    assert!(pos("restarter:restart") < pos("restarter:wait"));

    let seen = mem.seen_pointer.lock().unwrap().clone();
    let (old_stamp, new_stamp) = (s.old_stamp.clone().unwrap(), s.new_stamp.clone().unwrap());
    assert_eq!(
        seen[0],
        ("stage".into(), old_stamp),
        "stage must happen before the swap"
    );
    assert_eq!(
        seen[1],
        ("activate".into(), new_stamp),
        "activate must happen after the swap"
    );

    let new = Passphrase::new(sb.passphrase_file());
    assert!(
        mem.current().same_as(&new),
        "both stores hold the same new passphrase"
    );
    let opened = sb.vault.open(&new).await.unwrap();
    assert_eq!((opened.gen, s.gen_after), (1, Some(1)));
    assert!(s.window_ms.unwrap() < 1000.0, "window {:?}", s.window_ms);
    for phase in [
        "preflight",
        "stage",
        "rotate",
        "activate",
        "restart",
        "verify",
    ] {
        assert!(s.phases_ms.contains_key(phase), "no timing for {phase}");
    }
    // Never a passphrase in the journal or the JSON summary.
    let journal = sb.journal_texts();
    let json = serde_json::to_string(&s).unwrap();
    for secret in [OLD, new.expose()] {
        assert!(!journal.contains(secret) && !json.contains(secret));
    }
    assert!(
        Lock::peek(&sb.vault).await.is_none(),
        "the lock is released"
    );
}

#[tokio::test]
async fn dry_run_makes_zero_writes() {
    let sb = Sandbox::new(
        "[[restart]]\ntype = \"command\"\ntargets = [{ name = \"noop\", argv = [\"true\"] }]\n",
    )
    .await;
    let before = snapshot(sb.dir.path());
    let s = engine::run(&sb.loaded, &sb.opts(), &Progress::new(), true).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    assert!(
        s.planned_writes.iter().any(|w| w.contains("T0")),
        "{:?}",
        s.planned_writes
    );
    assert!(s.planned_writes.len() >= 8);
    assert_eq!(snapshot(sb.dir.path()), before, "the dry run changed files");
}

#[tokio::test]
async fn stage_failure_discards_and_leaves_the_vault_untouched() {
    let sb = Sandbox::new("").await;
    let log = log();
    let bad = MemStore::new("bad", OLD, &log, None);
    bad.fail_stage.store(true, Ordering::SeqCst);
    let vault_before = snapshot(&sb.dir.path().join("vault"));
    let parts = sb.parts(vec![sb.file_store(), bad.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, Exit::StageFailed.code(), "{}", s.outcome);
    assert!(
        !sb.dir.path().join("passphrase.new").exists(),
        "the file store's stage was not discarded"
    );
    assert_eq!(sb.passphrase_file(), OLD);
    let mut vault_after = snapshot(&sb.dir.path().join("vault"));
    vault_after.retain(|p, _| {
        !p.to_string_lossy().contains(".vsync-orchestrate.lock")
            && !p
                .to_string_lossy()
                .contains(".vsync-meta/app/prod/.vsync-orchestrate.lock")
    });
    assert_eq!(vault_after, vault_before, "the vault changed");
    assert!(Lock::peek(&sb.vault).await.is_none());
}

#[tokio::test]
async fn activation_failure_reports_the_open_window_and_resume_closes_it() {
    let sb = Sandbox::new("").await;
    let log = log();
    let flaky = MemStore::new("flaky", OLD, &log, None);
    flaky.fail_activate.store(usize::MAX, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), flaky.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, Exit::WindowOpen.code());
    assert!(
        s.outcome.contains("WINDOW OPEN") && s.outcome.contains("memory flaky"),
        "{}",
        s.outcome
    );
    let steps = s.next_steps.join("\n");
    assert!(steps.contains("vsync-orchestrate resume"), "{steps}");
    assert!(
        steps.contains("memctl activate flaky v-"),
        "the exact manual step is missing: {steps}"
    );
    assert!(flaky.current().same_as(&Passphrase::from(OLD)));
    assert!(
        Lock::peek(&sb.vault).await.is_some(),
        "the lock stays while the window is open"
    );

    flaky.fail_activate.store(0, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), flaky.clone()], None).await;
    let r = engine::resume_with(&sb.loaded, parts, &sb.opts(), &Progress::new()).await;
    assert_eq!(r.exit_code, 0, "{}", r.outcome);
    let new = Passphrase::new(sb.passphrase_file());
    assert!(flaky.current().same_as(&new));
    assert_eq!(sb.vault.open(&new).await.unwrap().gen, 1);
    assert!(Lock::peek(&sb.vault).await.is_none());
}

#[tokio::test]
async fn a_held_lock_stops_the_run_before_anything_is_staged() {
    let sb = Sandbox::new("").await;
    let other = RunId("someone-else".into());
    let _held = Lock::acquire(&sb.vault, &other, std::time::Duration::from_secs(600), None)
        .await
        .unwrap();
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, Exit::LockHeld.code(), "{}", s.outcome);
    assert!(s.outcome.contains("someone-else"));
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
}

#[tokio::test]
async fn a_wrong_old_passphrase_is_exit_1_with_nothing_staged() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", "not-the-right-passphrase-xyz", &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, 1, "{}", s.outcome);
    assert!(
        !s.outcome.contains("not-the-right-passphrase"),
        "the error leaks the passphrase"
    );
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
}

#[tokio::test]
async fn stores_that_disagree_fail_preflight() {
    let sb = Sandbox::new("").await;
    let log = log();
    let other = MemStore::new("other", "a-different-passphrase-abc", &log, None);
    let parts = sb.parts(vec![sb.file_store(), other], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, Exit::PreflightFailed.code(), "{}", s.outcome);
    assert!(s.outcome.contains("memory other"));
}

#[tokio::test]
async fn a_concurrent_rotation_is_exit_3_and_everything_staged_is_discarded() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, None);
    // While we stage, someone else moves the pointer.
    let storage = sb.vault.storage.clone();
    *mem.on_stage.lock().unwrap() = Some(Box::new(move || {
        let body = b"RQEM000129990101-000000{}".to_vec();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    storage
                        .put(
                            "app/prod/manifest",
                            body,
                            vsync_orchestrate::vault::storage::PutCondition::None,
                            &Default::default(),
                        )
                        .await
                        .unwrap();
                })
        })
        .join()
        .unwrap();
    }));
    let parts = sb.parts(vec![sb.file_store(), mem.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, 3, "{}", s.outcome);
    assert!(
        mem.staged.lock().unwrap().is_none(),
        "the staged version was not discarded"
    );
    assert!(!sb.dir.path().join("passphrase.new").exists());
    assert_eq!(sb.passphrase_file(), OLD);
}

#[tokio::test]
async fn schedule_not_due_exits_0_without_touching_anything() {
    let sb = Sandbox::new("[schedule]\nmin_age = \"80d\"\n").await;
    let log = log();
    // Never rotated: due, whatever the bundle's age.
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let first = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(
        (first.exit_code, first.gen_after),
        (0, Some(1)),
        "{}",
        first.outcome
    );
    let current = sb.passphrase_file();
    let mem = MemStore::new("mem", &current, &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, 0);
    assert!(s.outcome.starts_with("not due"), "{}", s.outcome);
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
    let mut forced = sb.opts();
    forced.force = true;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let again = engine::run_with(&sb.loaded, parts, &forced, &Progress::new(), false).await;
    assert_eq!(
        (again.exit_code, again.gen_after),
        (0, Some(2)),
        "--force rotates anyway: {}",
        again.outcome
    );
}

#[tokio::test]
async fn a_failed_restart_is_reported_after_activation() {
    let sb = Sandbox::new("").await;
    let log = log();
    let restarter = Arc::new(MemRestarter {
        log: log.clone(),
        fail: true.into(),
    });
    let parts = sb.parts(vec![sb.file_store()], Some(restarter)).await;
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &Progress::new(), false).await;
    assert_eq!(s.exit_code, Exit::RestartFailed.code(), "{}", s.outcome);
    assert_ne!(
        sb.passphrase_file(),
        OLD,
        "activation must still have happened"
    );
    assert!(s
        .next_steps
        .iter()
        .any(|n| n.contains("the fake rollout failed")));
}
