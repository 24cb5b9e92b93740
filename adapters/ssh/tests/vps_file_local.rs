//! The vps_file store with the local transport: the `file` store's staged-file core,
//! in this process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use vsync_orchestrate_api::{async_trait, ErrorKind, Passphrase, RunId, SecretStore};
use vsync_orchestrate_ssh::{Transport, VpsFileConfig, VpsFileStore};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

struct LocalFiles;
struct SeededLocal(tempfile::TempDir);

#[async_trait]
impl StoreFixture for LocalFiles {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("passphrase"),
            format!("{}\r\n", initial.expose()),
        )
        .unwrap();
        Box::new(SeededLocal(dir))
    }
}

#[async_trait]
impl SeededStore for SeededLocal {
    async fn open(&self) -> Arc<dyn SecretStore> {
        Arc::new(store_in(self.0.path()))
    }
}

async fn local_files() -> Option<LocalFiles> {
    Some(LocalFiles)
}

vsync_orchestrate_testkit::store_suite!(local_files());

const INITIAL: &str = "local-initial-Yc3pW0";

fn store_in(dir: &std::path::Path) -> VpsFileStore {
    let path = dir.join("passphrase");
    VpsFileStore::new(VpsFileConfig::new(Transport::Local, path.to_str().unwrap())).unwrap()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

async fn local_store_applies_mode_and_owner_and_keeps_prev() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passphrase"), format!("{INITIAL}\r\n")).unwrap();
    let mut cfg = VpsFileConfig::new(
        Transport::Local,
        dir.path().join("passphrase").to_str().unwrap(),
    );
    cfg.mode = Some(0o640);
    if is_root() {
        cfg.owner = Some("nobody".into());
        cfg.group = Some("nogroup".into());
    }
    let store = VpsFileStore::new(cfg).unwrap();
    let last = Passphrase::from("local-activated-Tn5Wq2");
    let staged = store.stage(&last, &RunId("l".into())).await.unwrap();
    store.activate(&staged).await.unwrap();
    let f = dir.path().join("passphrase");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), last.expose());
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    if is_root() {
        assert_eq!(meta.uid(), 65534);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase.prev")).unwrap(),
        format!("{INITIAL}\r\n")
    );
}

async fn a_replaced_stage_is_neither_activated_nor_discarded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passphrase"), INITIAL).unwrap();
    let store = store_in(dir.path());
    let staged = store
        .stage(&Passphrase::from("ours-111111"), &RunId("a".into()))
        .await
        .unwrap();
    // Another actor stages something else (a new file, a new inode).
    let n = dir.path().join("passphrase.new");
    std::fs::remove_file(&n).unwrap();
    std::fs::write(&n, "theirs-22222").unwrap();
    let e = store.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    let e = store.discard(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(!e.chain().contains("theirs") && !e.chain().contains("ours-"));
    assert_eq!(std::fs::read_to_string(&n).unwrap(), "theirs-22222");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase")).unwrap(),
        INITIAL
    );
}

async fn resume_can_read_back_and_reactivate_after_activation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passphrase"), INITIAL).unwrap();
    let store = store_in(dir.path());
    let new = Passphrase::from("resumed-value-333");
    let staged = store.stage(&new, &RunId("r".into())).await.unwrap();
    // The journal round-trips the record.
    let staged: vsync_orchestrate_api::Staged =
        serde_json::from_str(&serde_json::to_string(&staged).unwrap()).unwrap();
    store.activate(&staged).await.unwrap();
    // Crash after activate: resume reads the staged value back and activates again.
    assert!(store.read_staged(&staged).await.unwrap().same_as(&new));
    store.activate(&staged).await.unwrap();
    assert!(store.read_current().await.unwrap().unwrap().same_as(&new));
}

async fn a_record_without_fingerprints_activates_after_reading_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passphrase"), INITIAL).unwrap();
    let store = store_in(dir.path());
    let new = Passphrase::from("handmade-value-444");
    let mut staged = store.stage(&new, &RunId("h".into())).await.unwrap();
    staged.extra = serde_json::Value::Null;
    assert!(store.read_staged(&staged).await.unwrap().same_as(&new));
    store.activate(&staged).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase")).unwrap(),
        new.expose()
    );
}

async fn missing_directory_and_bad_values_are_clear_errors() {
    let store = VpsFileStore::new(VpsFileConfig::new(
        Transport::Local,
        "/nonexistent-vsync-dir/passphrase",
    ))
    .unwrap();
    let e = store.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert!(
        e.chain().contains("localhost") && e.chain().contains("does not exist"),
        "{}",
        e.chain()
    );

    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let e = store
        .stage(&Passphrase::from("trailing-newline\n"), &RunId("x".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = store.read_current().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
}

async fn sudo_is_refused_on_the_local_transport_unless_already_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = VpsFileConfig::new(
        Transport::Local,
        dir.path().join("passphrase").to_str().unwrap(),
    );
    cfg.sudo = true;
    match VpsFileStore::new(cfg) {
        Ok(_) => assert!(
            is_root(),
            "sudo on the local transport accepted for a non-root process"
        ),
        Err(e) => {
            assert!(!is_root(), "root can write the file itself: {}", e.chain());
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(
                e.message().contains("sudo = true cannot be honoured"),
                "{}",
                e.message()
            );
        }
    }
}

async fn a_missing_file_is_a_warning_and_activate_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let p = store.preflight().await.unwrap();
    assert!(
        p.warnings.iter().any(|w| w.contains("does not exist yet")),
        "{p:?}"
    );
    let new = Passphrase::from("created-by-activate-555");
    let staged = store.stage(&new, &RunId("c".into())).await.unwrap();
    store.activate(&staged).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase")).unwrap(),
        new.expose()
    );
    assert!(!dir.path().join("passphrase.prev").exists());
    let hint = store.activate_hint(&staged).unwrap();
    assert!(
        hint.contains("passphrase.new") && !hint.contains(new.expose()),
        "{hint}"
    );
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [store_suite],
    tests: [
        local_store_applies_mode_and_owner_and_keeps_prev,
        a_replaced_stage_is_neither_activated_nor_discarded,
        resume_can_read_back_and_reactivate_after_activation,
        a_record_without_fingerprints_activates_after_reading_the_stage,
        missing_directory_and_bad_values_are_clear_errors,
        sudo_is_refused_on_the_local_transport_unless_already_root,
        a_missing_file_is_a_warning_and_activate_creates_it,
    ],
}
