//! The `vercel` store against the stateful Vercel REST fake (`fake/mod.rs`,
//! environment variable endpoints): the kit's store suite with a sensitive variable
//! (write-only: the fake's own view stands in for the app's), the suite again with
//! a readable one, then entry selection, staging invisible to deploys, the
//! sensitive type kept, a team policy that forces sensitive, rate limiting, stale
//! stages and the token's absence.

mod fake;

use fake::{start, VercelState, PROJECT, TEAM, TOKEN};
use std::sync::Arc;
use vsync_orchestrate_api::{ErrorKind, Passphrase, RunId, SecretStore};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, When};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};
use vsync_orchestrate_vercel::{VercelStore, VercelStoreConfig, VercelTarget};

const KEY: &str = "VSYNC_PASSPHRASE";
const TOKEN_ENV: &str = "VSYNC_TEST_VERCEL_TOKEN";

fn config(fake: &FakeHttp<VercelState>) -> VercelStoreConfig {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let mut c = VercelStoreConfig::new(PROJECT);
    c.team_id = Some(TEAM.into());
    c.token_env = TOKEN_ENV.into();
    c.api_base = Some(fake.url());
    c
}

fn store(fake: &FakeHttp<VercelState>) -> VercelStore {
    VercelStore::new(config(fake)).unwrap()
}

/// A project whose production `VSYNC_PASSPHRASE` is `kind`, next to a preview
/// entry and a branch entry of the same key (the store must pick the right one).
async fn seeded(initial: &str, kind: &str) -> FakeHttp<VercelState> {
    let mut st = VercelState::default();
    st.add_env(
        KEY,
        "preview-value-xxxxxxxx",
        "encrypted",
        &["preview"],
        None,
    );
    st.add_env(
        KEY,
        "branch-value-xxxxxxxx",
        "encrypted",
        &["preview"],
        Some("feature-x"),
    );
    st.add_env(KEY, initial, kind, &["production"], None);
    st.add_env(
        "DATABASE_URL",
        "postgres://x",
        "encrypted",
        &["production"],
        None,
    );
    start(st).await
}

fn run(s: &str) -> RunId {
    RunId(s.to_owned())
}

// ---------------------------------------------------------------------------------
// The kit's store suite, sensitive (write-only) and readable.

struct Fixture {
    kind: &'static str,
    sensitive: bool,
}
struct Seeded {
    fake: FakeHttp<VercelState>,
    sensitive: bool,
}

#[vsync_orchestrate_api::async_trait]
impl StoreFixture for Fixture {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        Box::new(Seeded {
            fake: seeded(initial.expose(), self.kind).await,
            sensitive: self.sensitive,
        })
    }
}

#[vsync_orchestrate_api::async_trait]
impl SeededStore for Seeded {
    async fn open(&self) -> Arc<dyn SecretStore> {
        let mut c = config(&self.fake);
        c.sensitive = self.sensitive;
        Arc::new(VercelStore::new(c).unwrap())
    }

    /// What a production deployment made now would get.
    async fn app_view(&self) -> Option<Passphrase> {
        self.fake.state().production_value(KEY).map(Passphrase::new)
    }
}

mod sensitive {
    use super::*;
    async fn fixture() -> Option<Fixture> {
        Some(Fixture {
            kind: "sensitive",
            sensitive: true,
        })
    }
    vsync_orchestrate_testkit::store_suite!(fixture());
}

mod readable {
    use super::*;
    async fn fixture() -> Option<Fixture> {
        Some(Fixture {
            kind: "encrypted",
            sensitive: false,
        })
    }
    vsync_orchestrate_testkit::store_suite!(fixture());
}

// ---------------------------------------------------------------------------------

async fn capabilities_are_honest() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let s = store(&fake);
    let caps = s.capabilities();
    assert!(!caps.read_current && caps.read_staged);
    assert!(s.read_current().await.unwrap().is_none());
    let pf = s.preflight().await.unwrap();
    assert!(
        pf.detail.starts_with("VSYNC_PASSPHRASE (sensitive, env_"),
        "{}",
        pf.detail
    );
    assert!(
        pf.warnings
            .iter()
            .any(|w| w.contains("cannot be read back")),
        "{:?}",
        pf.warnings
    );
    // Declared readable but sensitive: refused with the fix.
    let mut c = config(&fake);
    c.sensitive = false;
    let e = VercelStore::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.message().contains("set `sensitive = true`"), "{e}");
}

async fn the_staged_value_stays_out_of_deploys_and_activation_keeps_the_type() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let s = store(&fake);
    let new = Passphrase::from("new-passphrase-abcdefghijk");
    let staged = s.stage(&new, &run("r1")).await.unwrap();
    {
        let st = fake.state();
        // A deploy now would still get the old value under the key apps read.
        assert_eq!(
            st.production_value(KEY).unwrap(),
            "old-passphrase-0123456789"
        );
        let next = st.env("VSYNC_PASSPHRASE_NEXT");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0]["type"], "encrypted");
        assert_eq!(next[0]["target"], serde_json::json!(["production"]));
        assert_eq!(next[0]["comment"], "vsync-orchestrate run r1 (staged)");
        // The preview and branch entries of the same key are untouched.
        assert_eq!(st.env(KEY).len(), 3);
    }
    assert_eq!(
        staged.version,
        fake.state().env("VSYNC_PASSPHRASE_NEXT")[0]["id"]
    );

    let patches = When::any().method("PATCH");
    s.activate(&staged).await.unwrap();
    assert_eq!(fake.count(&patches), 1, "activation is one request");
    {
        let st = fake.state();
        assert_eq!(st.production_value(KEY).unwrap(), new.expose());
        let live: Vec<_> = st
            .env(KEY)
            .into_iter()
            .filter(|e| e["target"] == serde_json::json!(["production"]))
            .collect();
        assert_eq!(live[0]["type"], "sensitive", "sensitive stays sensitive");
        assert_eq!(live[0]["comment"], "vsync-orchestrate run r1");
        assert_eq!(
            st.production_value("VSYNC_PASSPHRASE").unwrap(),
            new.expose()
        );
        let others: Vec<_> = st
            .env(KEY)
            .into_iter()
            .filter_map(|e| e["value"].as_str())
            .collect();
        assert!(
            others.contains(&"preview-value-xxxxxxxx") && others.contains(&"branch-value-xxxxxxxx")
        );
    }
    // The PATCH re-sent the entry's own type, as `vercel env update` does.
    let body = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap()
        .json();
    assert_eq!(body["type"], "sensitive", "{body}");

    s.tidy(&staged).await.unwrap();
    assert!(fake.state().env("VSYNC_PASSPHRASE_NEXT").is_empty());
    // After tidy, a fresh process activating the journaled stage again finds the
    // run's marker on the variable: success, nothing sent.
    let fresh = store(&fake);
    fresh.activate(&staged).await.unwrap();
    assert_eq!(fake.count(&patches), 1);
}

async fn a_fresh_process_activates_from_the_staged_variable() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let new = Passphrase::from("new-passphrase-abcdefghijk");
    let staged = store(&fake).stage(&new, &run("r2")).await.unwrap();
    let record: vsync_orchestrate_api::Staged =
        serde_json::from_str(&serde_json::to_string(&staged).unwrap()).unwrap();
    let fresh = store(&fake);
    assert!(fresh.read_staged(&record).await.unwrap().same_as(&new));
    fresh.activate(&record).await.unwrap();
    assert_eq!(fake.state().production_value(KEY).unwrap(), new.expose());
}

async fn the_branch_and_preview_entries_are_selected_by_target_and_branch() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let mut c = config(&fake);
    c.target = VercelTarget::Preview;
    c.git_branch = Some("feature-x".into());
    c.sensitive = false;
    let s = VercelStore::new(c).unwrap();
    assert_eq!(
        s.read_current().await.unwrap().unwrap().expose(),
        "branch-value-xxxxxxxx"
    );
    let mut c = config(&fake);
    c.target = VercelTarget::Preview;
    c.sensitive = false;
    assert_eq!(
        VercelStore::new(c)
            .unwrap()
            .read_current()
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "preview-value-xxxxxxxx"
    );
    // No development entry: not found, naming where it does exist.
    let mut c = config(&fake);
    c.target = VercelTarget::Development;
    c.sensitive = false;
    let e = VercelStore::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.message()
            .contains("no variable VSYNC_PASSPHRASE for development"),
        "{e}"
    );
    assert!(e.message().contains("production"), "{e}");
}

async fn rate_limits_are_waited_out_as_vercel_asks() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let s = store(&fake);
    // Vercel's own refusal (429 `rate_limited`, Retry-After), not the kit's.
    fake.state()
        .rate_limit("POST", "/v10/projects/shop/env", 2, 1);
    let t = std::time::Instant::now();
    let staged = s
        .stage(&Passphrase::from("new-passphrase-abcdefghijk"), &run("r3"))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        fake.count(&When::path("/v10/projects/shop/env").method("POST")),
        3
    );
    assert_eq!(fake.state().env("VSYNC_PASSPHRASE_NEXT").len(), 1);
    // A wait longer than the adapter honours goes back to the engine as a hint.
    fake.state()
        .rate_limit("PATCH", "/v9/projects/shop/env/", 1, 120);
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert_eq!(e.wait_hint(), Some(std::time::Duration::from_secs(120)));
    assert!(!e.chain().contains("new-passphrase"), "{}", e.chain());
    s.activate(&staged).await.unwrap();
}

async fn a_lost_answer_is_found_by_the_runs_marker() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let s = store(&fake);
    fake.inject(
        When::path("/v10/projects/shop/env").method("POST"),
        Fault::CutAfter,
    );
    let new = Passphrase::from("new-passphrase-abcdefghijk");
    assert!(s.stage(&new, &run("r4")).await.unwrap_err().is_temporary());
    let staged = store(&fake).stage(&new, &run("r4")).await.unwrap();
    assert_eq!(fake.state().env("VSYNC_PASSPHRASE_NEXT").len(), 1);
    // Another value for the same run is a conflict, never an overwrite.
    let e = store(&fake)
        .stage(&Passphrase::from("other-passphrase-abcdefgh"), &run("r4"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // Another run meets the stale stage in preflight; clean_stale removes it.
    let e = store(&fake).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("--clean-stale"), "{e}");
    let removed = store(&fake).clean_stale().await.unwrap().unwrap();
    assert!(removed.contains("run r4"), "{removed}");
    store(&fake).preflight().await.unwrap();
    assert_eq!(
        store(&fake).read_staged(&staged).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

async fn a_variable_not_written_by_the_tool_is_never_removed() {
    let mut st = VercelState::default();
    st.add_env(
        KEY,
        "old-passphrase-0123456789",
        "sensitive",
        &["production"],
        None,
    );
    st.add_env(
        "VSYNC_PASSPHRASE_NEXT",
        "mine",
        "encrypted",
        &["production"],
        None,
    );
    let fake = start(st).await;
    let e = store(&fake).clean_stale().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(fake.state().env("VSYNC_PASSPHRASE_NEXT").len(), 1);
    let e = store(&fake)
        .stage(&Passphrase::from("new-passphrase-abcdefghijk"), &run("r5"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

async fn a_policy_that_forces_sensitive_is_refused_at_stage() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    fake.state().force_sensitive = true;
    let e = store(&fake)
        .stage(&Passphrase::from("new-passphrase-abcdefghijk"), &run("r6"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("team policy"), "{e}");
    assert!(
        fake.state().env("VSYNC_PASSPHRASE_NEXT").is_empty(),
        "removed again"
    );
}

async fn token_and_scope_failures_have_kinds_and_no_token() {
    let fake = seeded("old-passphrase-0123456789", "sensitive").await;
    let mut c = config(&fake);
    c.token_env = "VSYNC_TEST_VERCEL_TOKEN_UNSET".into();
    std::env::remove_var("VSYNC_TEST_VERCEL_TOKEN_UNSET");
    let e = VercelStore::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission);
    assert!(e.message().contains("VSYNC_TEST_VERCEL_TOKEN_UNSET"), "{e}");
    let mut c = config(&fake);
    c.team_id = Some("team_other".into());
    let e = VercelStore::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // A token Vercel does not know: 403 `forbidden`.
    std::env::set_var("VSYNC_TEST_VERCEL_WRONG_TOKEN", "notTheToken");
    let mut c = config(&fake);
    c.token_env = "VSYNC_TEST_VERCEL_WRONG_TOKEN".into();
    let e = VercelStore::new(c).unwrap().preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission);
    assert!(!e.chain().contains(TOKEN));
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [sensitive::store_suite, readable::store_suite],
    tests: [
        capabilities_are_honest,
        the_staged_value_stays_out_of_deploys_and_activation_keeps_the_type,
        a_fresh_process_activates_from_the_staged_variable,
        the_branch_and_preview_entries_are_selected_by_target_and_branch,
        rate_limits_are_waited_out_as_vercel_asks,
        a_lost_answer_is_found_by_the_runs_marker,
        a_variable_not_written_by_the_tool_is_never_removed,
        a_policy_that_forces_sensitive_is_refused_at_stage,
        token_and_scope_failures_have_kinds_and_no_token,
    ],
}
