//! The `gcp_secret_manager` store against the stateful Secret Manager fake
//! (`fake/secret_manager.rs`): the kit's store suite, then what the suite does not
//! cover — the alias requirement, stale stages, etag conflicts, lost answers,
//! checksums, and error kinds.

mod fake;

use fake::secret_manager::{self as sm, SmState, VersionState};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{async_trait, ErrorKind, Passphrase, RunId, SecretStore};
use vsync_orchestrate_gcp::{CredentialSource, SecretManagerConfig, SecretManagerStore};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, When};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

const SECRET: &str = "projects/shop-prod/secrets/vsync-passphrase";
const OLD: &str = "old-passphrase-Kq93mZx71LwP";
const NEW: &str = "new-passphrase-Tb28vNc40QsR";

fn config(endpoint: &str) -> SecretManagerConfig {
    let mut c = SecretManagerConfig::new(SECRET);
    c.endpoint = Some(endpoint.to_owned());
    c.credentials = CredentialSource::Anonymous;
    c.attempt_timeout = Some(Duration::from_secs(5));
    c
}

fn store(fake: &FakeHttp<SmState>) -> SecretManagerStore {
    SecretManagerStore::new(config(&fake.url())).unwrap()
}

async fn seeded() -> FakeHttp<SmState> {
    sm::start(sm::seeded(SECRET, OLD)).await
}

fn run(id: &str) -> RunId {
    RunId(id.to_owned())
}

/// No error text may hold any value the fake's secret holds.
fn assert_no_secret(fake: &FakeHttp<SmState>, text: &str) {
    for v in fake.state().all_values() {
        if !v.is_empty() {
            assert!(!text.contains(&v), "a secret value leaked into: {text}");
        }
    }
    assert!(
        !text.contains(NEW),
        "the new passphrase leaked into: {text}"
    );
}

// ---------------------------------------------------------------------------------
// The kit's store suite.

struct Fixture;
struct Seeded(FakeHttp<SmState>);

#[async_trait]
impl StoreFixture for Fixture {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        Box::new(Seeded(
            sm::start(sm::seeded(SECRET, initial.expose())).await,
        ))
    }
}

#[async_trait]
impl SeededStore for Seeded {
    async fn open(&self) -> Arc<dyn SecretStore> {
        Arc::new(store(&self.0))
    }

    /// What an app reading `versions/current` gets, straight from the fake.
    async fn app_view(&self) -> Option<Passphrase> {
        self.0.state().value(SECRET, "current").map(Passphrase::new)
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::store_suite!(fixture());

// ---------------------------------------------------------------------------------
// The whole protocol, as the fake records it.

async fn stage_adds_a_checksummed_version_behind_pending_and_activate_moves_current() {
    let fake = seeded().await;
    let s = store(&fake);
    let pf = s.preflight().await.unwrap();
    assert_eq!(pf.detail, "`current` → version 1");
    assert!(s
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(OLD)));

    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    assert_eq!(
        (staged.version.as_str(), staged.previous.as_deref()),
        ("2", Some("1"))
    );
    {
        let st = fake.state();
        let sec = st.secret(SECRET);
        assert_eq!(sec.aliases["pending"], 2);
        assert_eq!(sec.aliases["current"], 1, "staging must not move current");
        assert_eq!(st.value(SECRET, "current").as_deref(), Some(OLD));
        let sent = st.add_checksums[0].expect("AddSecretVersion carries a CRC32C");
        assert_eq!(sent, i64::from(fake::crc32c(NEW.as_bytes())));
    }
    assert!(s
        .read_staged(&staged)
        .await
        .unwrap()
        .same_as(&Passphrase::from(NEW)));

    s.activate(&staged).await.unwrap();
    {
        let st = fake.state();
        let sec = st.secret(SECRET);
        assert_eq!(sec.aliases["current"], 2);
        assert_eq!(sec.aliases["previous"], 1, "the way back is kept");
        assert!(!sec.aliases.contains_key("pending"));
        assert_eq!(st.value(SECRET, "current").as_deref(), Some(NEW));
    }
    // After activation the staged value still reads back (resume needs it).
    assert!(s
        .read_staged(&staged)
        .await
        .unwrap()
        .same_as(&Passphrase::from(NEW)));
    let hint = s.activate_hint(&staged).unwrap();
    assert!(
        hint.contains("--update-version-aliases=current=2,previous=1"),
        "{hint}"
    );
    assert_no_secret(&fake, &hint);
}

async fn discard_drops_pending_and_disables_the_version() {
    let fake = seeded().await;
    let s = store(&fake);
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    s.discard(&staged).await.unwrap();
    {
        let st = fake.state();
        let sec = st.secret(SECRET);
        assert!(!sec.aliases.contains_key("pending"));
        assert_eq!(sec.versions[1].state, VersionState::Disabled);
        assert_eq!(sec.versions[0].state, VersionState::Enabled);
    }
    s.discard(&staged).await.unwrap();
    let e = s.read_staged(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert_no_secret(&fake, &e.chain());
    // A discarded version is never pointed at: activating it is refused.
    let e = s.activate(&staged).await.unwrap_err();
    assert!(matches!(
        e.kind(),
        ErrorKind::Conflict | ErrorKind::NotFound
    ));
    assert_eq!(fake.state().secret(SECRET).aliases["current"], 1);
}

// ---------------------------------------------------------------------------------
// The alias requirement.

async fn a_secret_apps_read_through_latest_is_refused_with_the_command_that_fixes_it() {
    let mut st = SmState::default();
    st.add_secret(SECRET);
    st.add_version(SECRET, "an-older-value-0000000");
    st.add_version(SECRET, OLD);
    let fake = sm::start(st).await;
    let s = store(&fake);
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let m = e.chain();
    assert!(m.contains("versions/latest"), "{m}");
    assert!(
        m.contains(
            "gcloud secrets update vsync-passphrase --project=shop-prod \
             --update-version-aliases=current=2"
        ),
        "{m}"
    );
    assert!(m.contains(&format!("{SECRET}/versions/current")), "{m}");
    assert!(m.contains("create_alias"), "{m}");
    assert_no_secret(&fake, &m);
    // Stage refuses too: adding a version would be activating it.
    let e = s
        .stage(&Passphrase::from(NEW), &run("r1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(fake.state().secret(SECRET).versions.len(), 2);
}

async fn create_alias_puts_current_on_the_newest_version_at_the_first_stage() {
    let mut st = SmState::default();
    st.add_secret(SECRET);
    st.add_version(SECRET, OLD);
    let fake = sm::start(st).await;
    let mut cfg = config(&fake.url());
    cfg.create_alias = true;
    let s = SecretManagerStore::new(cfg).unwrap();
    let pf = s.preflight().await.unwrap();
    assert!(pf.warnings[0].contains("creates it on version 1"), "{pf:?}");
    assert!(
        fake.state().secret(SECRET).aliases.is_empty(),
        "preflight wrote"
    );
    assert!(s
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(OLD)));
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    {
        let st = fake.state();
        let a = &st.secret(SECRET).aliases;
        assert_eq!((a["current"], a["pending"]), (1, 2));
    }
    s.activate(&staged).await.unwrap();
    assert_eq!(fake.state().value(SECRET, "current").as_deref(), Some(NEW));
}

// ---------------------------------------------------------------------------------
// Stages left behind.

async fn a_stale_pending_is_refused_and_clean_stale_removes_it() {
    let mut st = sm::seeded(SECRET, OLD);
    let abandoned = st.add_version(SECRET, "abandoned-staged-value-999");
    st.set_alias(SECRET, "pending", abandoned);
    let fake = sm::start(st).await;
    let s = store(&fake);
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.message().contains("resume") && e.message().contains("--clean-stale"),
        "{}",
        e.message()
    );
    assert_no_secret(&fake, &e.chain());
    // Staging another value over it is refused as well.
    let e = s
        .stage(&Passphrase::from(NEW), &run("r2"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);

    let cleaned = s.clean_stale().await.unwrap().unwrap();
    assert!(cleaned.contains("version 2"), "{cleaned}");
    {
        let st = fake.state();
        assert!(!st.secret(SECRET).aliases.contains_key("pending"));
        assert_eq!(st.secret(SECRET).versions[1].state, VersionState::Disabled);
    }
    assert_eq!(s.clean_stale().await.unwrap(), None);
    s.preflight().await.unwrap();
}

async fn a_retried_stage_reuses_the_pending_version_with_the_same_bytes() {
    let fake = seeded().await;
    let a = store(&fake)
        .stage(&Passphrase::from(NEW), &run("r1"))
        .await
        .unwrap();
    // A fresh process (resume) staging the same value again.
    let b = store(&fake)
        .stage(&Passphrase::from(NEW), &run("r1"))
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(fake.state().secret(SECRET).versions.len(), 2);
}

// ---------------------------------------------------------------------------------
// Conflicts and lost answers.

async fn an_etag_conflict_is_a_retryable_conflict_and_the_retry_adds_no_second_version() {
    let fake = seeded().await;
    let s = store(&fake);
    fake.state().concurrent_writes = 1;
    let e = s
        .stage(&Passphrase::from(NEW), &run("r1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(e.is_temporary(), "the engine retries an etag conflict");
    assert!(e.message().contains("etag"), "{}", e.message());
    // What the service answers a stale etag: 400 FAILED_PRECONDITION, the code it
    // also refuses other things with; the store read the secret to tell them apart.
    assert_eq!(fake.state().stale_etags, 1);
    // The engine's retry: the version added before the failed alias write is
    // found (it is `latest` and holds these bytes), not added again.
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    assert_eq!(staged.version, "2");
    assert_eq!(fake.state().secret(SECRET).versions.len(), 2);

    fake.state().concurrent_writes = 1;
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.is_temporary());
    s.activate(&staged).await.unwrap();
    assert_eq!(fake.state().secret(SECRET).aliases["current"], 2);
}

/// A stale etag and a refusal of another kind share `400 FAILED_PRECONDITION`: only
/// the moved etag is a retryable conflict.
async fn a_failed_precondition_without_a_moved_etag_is_not_a_conflict() {
    let fake = seeded().await;
    let s = store(&fake);
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    fake.state().precondition_refusals = 1;
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(!e.is_temporary(), "{}", e.chain());
    assert!(
        e.message().contains(sm::PRECONDITION_REFUSAL),
        "{}",
        e.message()
    );
    assert_eq!(fake.state().stale_etags, 0);
    s.activate(&staged).await.unwrap();
}

/// `latest` and `new` are reserved in any letter case; a plan that names one is
/// refused before anything runs, not at the first stage.
async fn a_reserved_alias_in_any_case_is_refused_at_validate() {
    use vsync_orchestrate_api::StoreConfig;
    for alias in ["Latest", "LATEST", "new", "New"] {
        let mut c = SecretManagerConfig::new(SECRET);
        c.alias = alias.to_owned();
        let findings = c.check();
        let f = findings
            .iter()
            .find(|f| f.key.as_deref() == Some("alias"))
            .unwrap_or_else(|| panic!("{alias}: no finding on `alias`: {findings:?}"));
        assert!(
            f.message.contains("reserved by Secret Manager")
                && f.message.contains("any letter case")
                && f.message.contains(&format!("{alias:?}")),
            "{}",
            f.message
        );
        let e = SecretManagerStore::new(c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    }
}

async fn a_lost_add_answer_is_found_again_and_a_lost_activation_is_already_done() {
    let fake = seeded().await;
    let s = store(&fake);
    fake.inject(
        When::path(&format!("/v1/{SECRET}:addVersion")),
        Fault::CutAfter,
    );
    let e = s
        .stage(&Passphrase::from(NEW), &run("r1"))
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    assert_eq!(fake.state().secret(SECRET).versions.len(), 2, "it did land");
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    assert_eq!(staged.version, "2");
    assert_eq!(fake.state().secret(SECRET).versions.len(), 2);

    fake.inject(
        When::path(&format!("/v1/{SECRET}")).method("PATCH"),
        Fault::CutAfter,
    );
    let e = s.activate(&staged).await.unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    s.activate(&staged).await.unwrap();
    assert_eq!(fake.state().value(SECRET, "current").as_deref(), Some(NEW));
}

async fn current_moved_by_someone_else_is_a_conflict_not_an_overwrite() {
    let fake = seeded().await;
    let s = store(&fake);
    let staged = s.stage(&Passphrase::from(NEW), &run("r1")).await.unwrap();
    {
        let mut st = fake.state();
        let v = st.add_version(SECRET, "someone-elses-value-1234567");
        st.set_alias(SECRET, "current", v);
    }
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        !e.is_temporary(),
        "a moved alias is not resolved by retrying"
    );
    assert!(
        e.message().contains("version 3") && e.message().contains("version 1"),
        "{}",
        e.message()
    );
    assert_no_secret(&fake, &e.chain());
    assert_eq!(fake.state().secret(SECRET).aliases["current"], 3);
    // It is not ours to discard either.
    let e = s.discard(&staged).await;
    assert!(e.is_ok(), "the staged version is still only pending: {e:?}");
}

// ---------------------------------------------------------------------------------
// Error kinds.

async fn service_errors_map_to_kinds() {
    let fake = seeded().await;
    let s = store(&fake);

    fake.inject(
        When::path(&format!("/v1/{SECRET}")).times(1),
        Fault::RetryAfter {
            status: 429,
            seconds: 4,
        },
    );
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert_eq!(e.wait_hint(), Some(Duration::from_secs(4)));

    fake.inject(When::path(&format!("/v1/{SECRET}")), Fault::Status(403));
    assert_eq!(
        s.preflight().await.unwrap_err().kind(),
        ErrorKind::Permission
    );

    // The client retries UNAVAILABLE on reads by itself, a few times only.
    fake.inject(
        When::path(&format!("/v1/{SECRET}")).times(2),
        Fault::Status(503),
    );
    s.preflight().await.unwrap();
    fake.inject(
        When::path(&format!("/v1/{SECRET}")).times(3),
        Fault::Status(503),
    );
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());

    let missing = SecretManagerStore::new({
        let mut c = config(&fake.url());
        c.secret = "projects/shop-prod/secrets/nope".into();
        c
    })
    .unwrap();
    assert_eq!(
        missing.preflight().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // The version apps read is disabled: FAILED_PRECONDITION, a state refused.
    fake.state().secrets.get_mut(SECRET).unwrap().versions[0].state = VersionState::Disabled;
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(e.message().contains("DISABLED"), "{}", e.message());
}

async fn a_damaged_payload_is_never_used() {
    let fake = seeded().await;
    let s = store(&fake);
    fake.state().corrupt_reads = 1;
    let e = s.read_current().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert!(e.message().contains("CRC32C"), "{}", e.message());
    assert_no_secret(&fake, &e.chain());
    assert!(s
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(OLD)));
}

async fn a_trailing_newline_is_not_part_of_the_passphrase() {
    let fake = sm::start(sm::seeded(SECRET, &format!("{OLD}\n"))).await;
    assert!(store(&fake)
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(OLD)));
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [store_suite],
    tests: [
        stage_adds_a_checksummed_version_behind_pending_and_activate_moves_current,
        discard_drops_pending_and_disables_the_version,
        a_secret_apps_read_through_latest_is_refused_with_the_command_that_fixes_it,
        create_alias_puts_current_on_the_newest_version_at_the_first_stage,
        a_stale_pending_is_refused_and_clean_stale_removes_it,
        a_retried_stage_reuses_the_pending_version_with_the_same_bytes,
        an_etag_conflict_is_a_retryable_conflict_and_the_retry_adds_no_second_version,
        a_failed_precondition_without_a_moved_etag_is_not_a_conflict,
        a_reserved_alias_in_any_case_is_refused_at_validate,
        a_lost_add_answer_is_found_again_and_a_lost_activation_is_already_done,
        current_moved_by_someone_else_is_a_conflict_not_an_overwrite,
        service_errors_map_to_kinds,
        a_damaged_payload_is_never_used,
        a_trailing_newline_is_not_part_of_the_passphrase,
    ],
}
