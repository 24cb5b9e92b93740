//! The `kubernetes_secret` store on the fake cluster: the test kit's store suite,
//! then what only this store does — the staged copy, the one conditional patch,
//! the refusals preflight makes (immutable, RBAC with the Role rules, an
//! unfinished run's copy, a Secret External Secrets owns), and every order in
//! which a conflicting, lost or late write can arrive.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, ErrorKind, Passphrase, RunId, SecretStore, Severity, StoreConfig,
};
use vsync_orchestrate_kubernetes::{KubernetesSecretConfig, STAGED_SUFFIX};
use vsync_orchestrate_testkit::fake_http::{Fault, When};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

const SECRET: &str = "app";
const KEY: &str = "VSYNC_PASSPHRASE";
const OLD: &str = "old-passphrase-Jq8Wm2Zx7Lp4Rt";
const NEW: &str = "new-passphrase-Hv3Nc9Ks1Yd6Bf";
const OTHER: &str = "someone-elses-Pw5Gx2Qm8Tz4Lc";

fn staged_name() -> String {
    format!("{SECRET}{STAGED_SUFFIX}")
}

fn run(tag: &str) -> RunId {
    RunId(format!("{tag}-{}", std::process::id()))
}

/// A cluster whose namespace holds Secret `app` with `VSYNC_PASSPHRASE = OLD`
/// and another key, as `kubectl create secret generic` makes it.
async fn seeded() -> Env {
    let env = Env::new("prod").await;
    env.fake
        .state()
        .add_secret(NS, SECRET, &[(KEY, OLD), ("DATABASE_URL", "postgres://db")]);
    env
}

fn store(env: &Env) -> Arc<dyn SecretStore> {
    env.secret_store(env.secret_config(SECRET))
}

fn live(env: &Env) -> Option<String> {
    env.fake.state().secret_value(NS, SECRET, KEY)
}

fn run_annotation(env: &Env) -> Option<String> {
    env.fake
        .state()
        .secret(NS, SECRET)?
        .metadata
        .annotations?
        .get(vsync_orchestrate_kubernetes::RUN_ANNOTATION)
        .cloned()
}

fn assert_no_secret(text: &str) {
    for s in [OLD, NEW, OTHER] {
        assert!(!text.contains(s), "a passphrase in: {text}");
    }
}

// ---------------------------------------------------------------------------------
// The store suite.

struct Fixture;
struct Seeded(Env);

#[async_trait]
impl StoreFixture for Fixture {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        let env = Env::new("suite").await;
        env.fake
            .state()
            .add_secret(NS, SECRET, &[(KEY, initial.expose())]);
        Box::new(Seeded(env))
    }
}

#[async_trait]
impl SeededStore for Seeded {
    async fn open(&self) -> Arc<dyn SecretStore> {
        store(&self.0)
    }

    /// What a pod starting now gets from `secretKeyRef`.
    async fn app_view(&self) -> Option<Passphrase> {
        live(&self.0).map(Passphrase::new)
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture)
}

vsync_orchestrate_testkit::store_suite!(fixture());

// ---------------------------------------------------------------------------------
// The protocol, as the fake records it.

async fn stage_writes_a_copy_no_pod_reads_and_activate_is_one_conditional_patch() {
    let env = seeded().await;
    let s = store(&env);
    let pf = s.preflight().await.unwrap();
    assert!(
        pf.detail
            .starts_with("Secret shop/app key VSYNC_PASSPHRASE"),
        "{}",
        pf.detail
    );
    assert!(pf.warnings.is_empty(), "{:?}", pf.warnings);
    assert!(pf.current.unwrap().same_as(&Passphrase::from(OLD)));

    let r = run("proto");
    let staged = s.stage(&Passphrase::from(NEW), &r).await.unwrap();
    assert_no_secret(&serde_json::to_string(&staged).unwrap());
    {
        let st = env.fake.state();
        assert_eq!(st.secret_value(NS, SECRET, KEY).as_deref(), Some(OLD));
        let copy = st.secret(NS, &staged_name()).expect("the staged copy");
        assert_eq!(copy.metadata.uid.as_deref(), Some(staged.version.as_str()));
        let labels = copy.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "vsync-orchestrate");
        assert_eq!(
            labels[vsync_orchestrate_kubernetes::RUN_ANNOTATION],
            r.as_str()
        );
        assert_eq!(
            st.secret_value(NS, &staged_name(), "value").as_deref(),
            Some(NEW)
        );
        assert_eq!(
            st.secret_value(NS, &staged_name(), "previous").as_deref(),
            Some(OLD)
        );
        assert_eq!(
            st.secret_patches(NS, SECRET),
            0,
            "staging wrote the live Secret"
        );
    }
    assert!(s
        .read_staged(&staged)
        .await
        .unwrap()
        .same_as(&Passphrase::from(NEW)));

    let rv_before = env
        .fake
        .state()
        .secret(NS, SECRET)
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    s.activate(&staged).await.unwrap();
    {
        let st = env.fake.state();
        assert_eq!(st.secret_value(NS, SECRET, KEY).as_deref(), Some(NEW));
        assert_eq!(
            st.secret_value(NS, SECRET, "DATABASE_URL").as_deref(),
            Some("postgres://db"),
            "the other keys are kept"
        );
        let patches: Vec<_> = st
            .patches()
            .into_iter()
            .filter(|p| p.resource == "secrets")
            .collect();
        assert_eq!(patches.len(), 1, "activation is one patch");
        let p = &patches[0];
        assert!(
            p.content_type.starts_with("application/merge-patch+json"),
            "{}",
            p.content_type
        );
        assert_eq!(p.body["metadata"]["resourceVersion"], rv_before.as_str());
        assert_eq!(
            p.body["data"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec![KEY],
            "only the passphrase key is written"
        );
    }
    assert_eq!(run_annotation(&env).as_deref(), Some(r.as_str()));
    // Until tidy, the staged value still reads back (resume needs it).
    assert!(s
        .read_staged(&staged)
        .await
        .unwrap()
        .same_as(&Passphrase::from(NEW)));
    let hint = s.activate_hint(&staged).unwrap();
    assert_no_secret(&hint);
    assert!(
        hint.contains("patch secret app --type merge --patch-file <(")
            && hint.contains(&format!("get secret {}", staged_name())),
        "{hint}"
    );
    s.tidy(&staged).await.unwrap();
    assert!(env.fake.state().secret(NS, &staged_name()).is_none());
    // Still active, and a repeat is success.
    s.activate(&staged).await.unwrap();
    s.tidy(&staged).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(NEW));
    let e = s.discard(&staged).await;
    assert!(e.is_ok(), "the copy is gone: nothing to discard: {e:?}");
}

/// The command `activate_hint` prints works: bash runs it with the installed
/// kubectl against the fake, and the live key ends up holding the staged value.
async fn the_printed_command_activates_by_hand() {
    let Some(kubectl) = vsync_orchestrate_testkit::service::env_or_skip(
        &vsync_orchestrate_testkit::service::current_test(),
        &["VSYNC_TEST_KUBECTL"],
    ) else {
        return;
    };
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("hint")).await.unwrap();
    let hint = s.activate_hint(&staged).unwrap();
    let home = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(&kubectl[0])
        .parent()
        .unwrap()
        .to_owned();
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&hint)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HOME", home.path())
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{hint}\n{text}");
    assert_no_secret(&text);
    assert_eq!(live(&env).as_deref(), Some(NEW));
    // The engine's retry after a manual activation is success, and tidy cleans up.
    s.activate(&staged).await.unwrap();
    s.tidy(&staged).await.unwrap();
    assert!(env.fake.state().secret(NS, &staged_name()).is_none());
}

// ---------------------------------------------------------------------------------
// Preflight refusals.

async fn an_immutable_secret_is_refused_before_anything_is_written() {
    let env = seeded().await;
    env.fake.state().make_immutable(NS, SECRET);
    let s = store(&env);
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(
        e.message().contains("immutable: true") && e.message().contains("replace --force"),
        "{}",
        e.message()
    );
    let e = s
        .stage(&Passphrase::from(NEW), &run("imm"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(env.fake.state().secret(NS, &staged_name()).is_none());
}

/// Made immutable between stage and activate: the API server's `422` becomes
/// the same refusal, and the value stays.
async fn an_immutable_secret_at_activation_is_the_same_refusal() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("imm2")).await.unwrap();
    env.fake
        .state()
        .before_next("PATCH", "/secrets/app", |c| c.make_immutable(NS, SECRET));
    let e = s.activate(&staged).await.unwrap_err();
    // The write met a new resourceVersion first (409), then the refusal.
    assert!(
        matches!(e.kind(), ErrorKind::Conflict | ErrorKind::Unsupported),
        "{}",
        e.chain()
    );
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(e.message().contains("immutable"), "{}", e.message());
    assert_eq!(live(&env).as_deref(), Some(OLD));
}

/// The rules the store names, parsed as a Role's `rules:`.
fn named_rules(message: &str) -> Vec<Rule> {
    let yaml = message
        .split("needs the rules: ")
        .nth(1)
        .expect("the message names the rules");
    let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not a Role's rules: {e}: {yaml}"));
    rules.iter().map(Rule::from).collect()
}

async fn missing_rbac_is_refused_with_the_role_rules_that_are_enough() {
    let env = seeded().await;
    env.fake.state().set_rbac(Some(vec![Rule {
        api_groups: vec!["".into()],
        resources: vec!["secrets".into()],
        verbs: vec!["get".into()],
        resource_names: vec![SECRET.into()],
    }]));
    let s = store(&env);
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.chain());
    let m = e.message();
    assert!(m.contains("patch secrets app"), "{m}");
    assert!(m.contains("create secrets"), "{m}");
    assert!(!m.contains("get secrets app,"), "{m}");
    // Granting exactly what the message names is enough for the whole protocol.
    let rules = named_rules(m);
    env.fake.state().set_rbac(Some(rules));
    let s = store(&env);
    s.preflight().await.unwrap();
    let staged = s.stage(&Passphrase::from(NEW), &run("rbac")).await.unwrap();
    s.read_staged(&staged).await.unwrap();
    s.activate(&staged).await.unwrap();
    s.tidy(&staged).await.unwrap();
    let staged = s
        .stage(&Passphrase::from(OLD), &run("rbac2"))
        .await
        .unwrap();
    s.discard(&staged).await.unwrap();
    assert_eq!(env.fake.state().denials(), Vec::<String>::new());
    assert_eq!(live(&env).as_deref(), Some(NEW));
}

/// Not even `get`: the API server's own 403 carries the rules too.
async fn a_forbidden_read_names_the_rules() {
    let env = seeded().await;
    env.fake.state().set_rbac(Some(vec![]));
    let e = store(&env).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.chain());
    assert!(
        e.message()
            .contains("cannot get resource \"secrets\" in API group \"\""),
        "{}",
        e.message()
    );
    assert!(!named_rules(e.message()).is_empty());
}

async fn an_unfinished_runs_copy_is_refused_and_clean_stale_removes_it() {
    let env = seeded().await;
    let s = store(&env);
    let first = s
        .stage(&Passphrase::from(NEW), &run("crashed"))
        .await
        .unwrap();
    let e = s.preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(
        e.message().contains("resume") && e.message().contains("--clean-stale"),
        "{}",
        e.message()
    );
    let e = s
        .stage(&Passphrase::from(OTHER), &run("next"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let cleaned = s.clean_stale().await.unwrap().expect("something removed");
    assert!(cleaned.contains(&staged_name()), "{cleaned}");
    assert_eq!(s.clean_stale().await.unwrap(), None);
    s.preflight().await.unwrap();
    // The crashed run's record no longer activates anything.
    let e = s.activate(&first).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert_eq!(live(&env).as_deref(), Some(OLD));
}

/// A finished run whose tidy failed leaves its copy: a warning, and the next
/// stage replaces it.
async fn a_finished_runs_leftover_copy_is_replaced() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("done")).await.unwrap();
    s.activate(&staged).await.unwrap();
    let pf = s.preflight().await.unwrap();
    assert!(
        pf.warnings.iter().any(|w| w.contains("tidy did not run")),
        "{:?}",
        pf.warnings
    );
    let next = s
        .stage(&Passphrase::from(OTHER), &run("after"))
        .await
        .unwrap();
    assert_ne!(next.version, staged.version);
    s.activate(&next).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(OTHER));
}

async fn a_secret_external_secrets_owns_is_refused() {
    let env = seeded().await;
    env.fake.state().edit_secret(NS, SECRET, |o| {
        o["metadata"]["ownerReferences"] = serde_json::json!([{
            "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
            "name": "app-es", "uid": "u-1", "controller": true}]);
    });
    let e = store(&env).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    assert!(
        e.message().contains("ExternalSecret app-es"),
        "{}",
        e.message()
    );
}

async fn a_missing_secret_or_key_is_not_found() {
    let env = seeded().await;
    let e = env
        .secret_store(env.secret_config("nope"))
        .preflight()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    let mut c = env.secret_config(SECRET);
    c.key = "PASSPHRASE".into();
    let e = env.secret_store(c).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.message()
            .contains("its keys: DATABASE_URL, VSYNC_PASSPHRASE"),
        "{}",
        e.message()
    );
}

// ---------------------------------------------------------------------------------
// Conflicts, lost answers, late writes.

/// The live Secret moves between activation's read and its patch (`409`), and it
/// holds the staged value: our own earlier write landed. Success, nothing more sent.
async fn a_stale_resource_version_holding_our_value_is_success() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("ours")).await.unwrap();
    env.fake.state().before_next("PATCH", "/secrets/app", |c| {
        c.set_secret_value(NS, SECRET, KEY, NEW)
    });
    s.activate(&staged).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(NEW));
    assert_eq!(
        env.fake.state().secret_patches(NS, SECRET),
        0,
        "the conditional patch was refused (409), and not sent again"
    );
}

/// …and holding someone else's value: a conflict, not an overwrite, and not
/// retryable.
async fn a_stale_resource_version_holding_another_value_is_a_conflict() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s
        .stage(&Passphrase::from(NEW), &run("theirs"))
        .await
        .unwrap();
    env.fake.state().before_next("PATCH", "/secrets/app", |c| {
        c.set_secret_value(NS, SECRET, KEY, OTHER)
    });
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(
        !e.is_temporary(),
        "someone else's value is not retried over"
    );
    assert_no_secret(&e.chain());
    assert_eq!(live(&env).as_deref(), Some(OTHER));
    // Changed before activation even reads it: the same refusal, without a patch.
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(env.fake.state().secret_patches(NS, SECRET), 0);
    // Not activated, so still discardable.
    s.discard(&staged).await.unwrap();
}

/// …and still holding the value it had at staging (someone changed a label):
/// activation reads it again and patches under the new resourceVersion; when that
/// too meets a change, a retryable conflict, and the retry activates.
async fn a_stale_resource_version_from_another_field_is_read_again() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s
        .stage(&Passphrase::from(NEW), &run("label"))
        .await
        .unwrap();
    let label = |v: &'static str| {
        move |c: &mut vsync_orchestrate_kubernetes_fake::Cluster| {
            c.edit_secret(NS, SECRET, |o| {
                o["metadata"]["labels"] = serde_json::json!({ "team": v })
            })
        }
    };
    env.fake
        .state()
        .before_next("PATCH", "/secrets/app", label("shop"));
    s.activate(&staged).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(NEW));
    let labels = env.fake.state().secret(NS, SECRET).unwrap().metadata.labels;
    assert_eq!(labels.unwrap()["team"], "shop", "their change is kept");

    let env = seeded().await;
    let s = store(&env);
    let staged = s
        .stage(&Passphrase::from(NEW), &run("label2"))
        .await
        .unwrap();
    env.fake
        .state()
        .before_next("PATCH", "/secrets/app", label("a"));
    env.fake
        .state()
        .before_next("PATCH", "/secrets/app", label("b"));
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert!(e.is_temporary());
    assert_eq!(live(&env).as_deref(), Some(OLD));
    s.activate(&staged).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(NEW));
}

/// The store that staged activates with the one conditional patch and nothing
/// else; a fresh one (resume) reads the live and the staged Secret first.
async fn activation_by_the_staging_store_is_one_request() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("one")).await.unwrap();
    let before = env.fake.http().requests().len();
    s.activate(&staged).await.unwrap();
    let sent: Vec<String> = env.fake.http().requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        [format!("PATCH /api/v1/namespaces/{NS}/secrets/{SECRET}")]
    );

    let env = seeded().await;
    let staged = store(&env)
        .stage(&Passphrase::from(NEW), &run("fresh"))
        .await
        .unwrap();
    let before = env.fake.http().requests().len();
    store(&env).activate(&staged).await.unwrap();
    let methods: Vec<String> = env.fake.http().requests()[before..]
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["GET", "GET", "PATCH"]);
    assert_eq!(live(&env).as_deref(), Some(NEW));
}

/// A discarded stage is not activated by the instance that staged it either.
async fn a_discarded_stage_is_not_activated() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("gone")).await.unwrap();
    s.discard(&staged).await.unwrap();
    let e = s.activate(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert_eq!(live(&env).as_deref(), Some(OLD));
}

/// The patch is applied and its answer lost: the error is temporary, and the
/// retry finds the activation done without writing again.
async fn a_lost_activation_answer_is_found_done() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("lost")).await.unwrap();
    env.fake.http().inject(
        When::path(&format!("/api/v1/namespaces/{NS}/secrets/{SECRET}")).method("PATCH"),
        Fault::CutAfter,
    );
    let e = s.activate(&staged).await.unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    assert_eq!(live(&env).as_deref(), Some(NEW), "it did land");
    s.activate(&staged).await.unwrap();
    assert_eq!(env.fake.state().secret_patches(NS, SECRET), 1);
}

/// A lost create answer while staging: the retry finds the copy of this run.
async fn a_lost_stage_answer_is_found_again() {
    let env = seeded().await;
    let s = store(&env);
    env.fake.http().inject(
        When::path(&format!("/api/v1/namespaces/{NS}/secrets")).method("POST"),
        Fault::CutAfter,
    );
    let r = run("lost-stage");
    let e = s.stage(&Passphrase::from(NEW), &r).await.unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    let landed = env.fake.state().secret(NS, &staged_name()).unwrap();
    let staged = s.stage(&Passphrase::from(NEW), &r).await.unwrap();
    assert_eq!(Some(staged.version.clone()), landed.metadata.uid);
}

fn fast(env: &Env) -> Arc<dyn SecretStore> {
    let mut c = env.secret_config(SECRET);
    c.timeout = Some(Duration::from_millis(300));
    env.secret_store(c)
}

/// The activation patch is held past the client's timeout, the retry activates,
/// an operator then writes their own value, and only then the held patch
/// arrives: its resourceVersion is long gone, so it is refused and changes
/// nothing.
async fn a_held_activation_forwarded_after_the_retry_never_overwrites() {
    let env = seeded().await;
    let s = fast(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("held")).await.unwrap();
    env.fake.state().hold("PATCH", "/secrets/app", 1);
    let e = s.activate(&staged).await.unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    assert_eq!(env.fake.state().held(), 1);
    assert_eq!(live(&env).as_deref(), Some(OLD), "held, not applied");
    s.activate(&staged).await.unwrap();
    assert_eq!(live(&env).as_deref(), Some(NEW));
    env.fake.state().set_secret_value(NS, SECRET, KEY, OTHER);
    let codes = env.fake.state().release_held();
    assert_eq!(codes, vec![409], "the late write was refused");
    assert_eq!(live(&env).as_deref(), Some(OTHER));
}

/// The held patch arrives before the retry: the retry reads it back as done and
/// sends nothing.
async fn a_held_activation_forwarded_before_the_retry_is_found_done() {
    let env = seeded().await;
    let s = fast(&env);
    let staged = s
        .stage(&Passphrase::from(NEW), &run("held2"))
        .await
        .unwrap();
    env.fake.state().hold("PATCH", "/secrets/app", 1);
    let e = s.activate(&staged).await.unwrap_err();
    assert!(e.is_temporary(), "{}", e.chain());
    assert_eq!(env.fake.state().release_held(), vec![200]);
    assert_eq!(live(&env).as_deref(), Some(NEW));
    s.activate(&staged).await.unwrap();
    assert_eq!(env.fake.state().secret_patches(NS, SECRET), 1);
}

async fn discarding_an_activated_stage_is_refused() {
    let env = seeded().await;
    let s = store(&env);
    let staged = s.stage(&Passphrase::from(NEW), &run("act")).await.unwrap();
    s.activate(&staged).await.unwrap();
    let e = s.discard(&staged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert_eq!(live(&env).as_deref(), Some(NEW));
}

async fn a_stage_retried_with_another_value_is_a_conflict() {
    let env = seeded().await;
    let s = store(&env);
    let r = run("twice");
    s.stage(&Passphrase::from(NEW), &r).await.unwrap();
    let e = s.stage(&Passphrase::from(OTHER), &r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.chain());
    assert_no_secret(&e.chain());
}

// ---------------------------------------------------------------------------------
// The plan table.

fn the_table_checks_names_and_says_what_it_writes() {
    let c: KubernetesSecretConfig = serde_json::from_value(serde_json::json!({
        "context": "prod", "namespace": "shop", "secret": "app"
    }))
    .unwrap();
    assert_eq!(c.key, "VSYNC_PASSPHRASE");
    assert!(c.check().iter().all(|f| f.severity != Severity::Error));
    assert_eq!(
        c.identity(),
        "kubernetes_secret:prod/shop/app#VSYNC_PASSPHRASE"
    );
    let mut other_key = c.clone();
    other_key.key = "OTHER".into();
    assert_eq!(
        c.targets(),
        other_key.targets(),
        "two keys of one Secret share the staged copy: one target"
    );
    let bad: KubernetesSecretConfig = serde_json::from_value(serde_json::json!({
        "namespace": "Shop", "secret": "App", "key": "a b", "timeout": "0s"
    }))
    .unwrap();
    let keys: Vec<_> = bad
        .check()
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .filter_map(|f| f.key)
        .collect();
    assert_eq!(keys, ["namespace", "secret", "key", "timeout"]);
    let r: Result<KubernetesSecretConfig, _> = serde_json::from_value(
        serde_json::json!({"namespace": "shop", "secret": "app", "name": "x"}),
    );
    assert!(r.unwrap_err().to_string().contains("unknown field"));
    let staged: KubernetesSecretConfig = serde_json::from_value(serde_json::json!({
        "context": "c", "namespace": "shop", "secret": "app-vsync-staged"
    }))
    .unwrap();
    assert!(staged.check().iter().any(|f| f.severity == Severity::Error));
}

vsync_orchestrate_testkit::main! {
    suites: [store_suite],
    tests: [
        stage_writes_a_copy_no_pod_reads_and_activate_is_one_conditional_patch,
        #[multi_thread(2)] the_printed_command_activates_by_hand,
        an_immutable_secret_is_refused_before_anything_is_written,
        an_immutable_secret_at_activation_is_the_same_refusal,
        missing_rbac_is_refused_with_the_role_rules_that_are_enough,
        a_forbidden_read_names_the_rules,
        an_unfinished_runs_copy_is_refused_and_clean_stale_removes_it,
        a_finished_runs_leftover_copy_is_replaced,
        a_secret_external_secrets_owns_is_refused,
        a_missing_secret_or_key_is_not_found,
        a_stale_resource_version_holding_our_value_is_success,
        a_stale_resource_version_holding_another_value_is_a_conflict,
        a_stale_resource_version_from_another_field_is_read_again,
        activation_by_the_staging_store_is_one_request,
        a_discarded_stage_is_not_activated,
        a_lost_activation_answer_is_found_done,
        a_lost_stage_answer_is_found_again,
        a_held_activation_forwarded_after_the_retry_never_overwrites,
        a_held_activation_forwarded_before_the_retry_is_found_done,
        discarding_an_activated_stage_is_refused,
        a_stage_retried_with_another_value_is_a_conflict,
        #[sync] the_table_checks_names_and_says_what_it_writes,
    ],
}
