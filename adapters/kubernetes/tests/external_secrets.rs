//! The restarter's `external_secrets` option against the fake cluster's External
//! Secrets controller: the restart force-syncs and waits for the new value before
//! rolling anything; a policy that never syncs, a missing ExternalSecret or RBAC
//! are refused in preflight; a sync error or a controller that never syncs fails
//! the restart with nothing rolled.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RolloutOutcome};
use vsync_orchestrate_kubernetes::{KubernetesConfig, FORCE_SYNC};
use vsync_orchestrate_testkit::fake_http::{Fault, When};

const ES: &str = "vsync";
const SECRET: &str = "app";
const KEY: &str = "VSYNC_PASSPHRASE";
const REMOTE: &str = "myapp/prod/vsync";
const OLD: &str = "old-passphrase-Jq8Wm2Zx7Lp4Rt";
const NEW: &str = "new-passphrase-Hv3Nc9Ks1Yd6Bf";

/// A cluster where ExternalSecret `vsync` (`policy`) has synced OLD into Secret
/// `app`, read by Deployment `api`; then the store switched to NEW (T1).
async fn synced(policy: Option<&str>) -> Env {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_deployment(NS, "api", 2);
        s.set_provider_value(REMOTE, OLD);
        let mut es = json!({"metadata": {"name": ES}, "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
            "target": {"name": SECRET},
            "data": [{"secretKey": KEY, "remoteRef": {"key": REMOTE}}]}});
        if let Some(p) = policy {
            es["spec"]["refreshPolicy"] = json!(p);
        }
        s.add_external_secret(NS, es);
    }
    let until = Instant::now() + Duration::from_secs(5);
    while env.fake.state().secret_value(NS, SECRET, KEY).as_deref() != Some(OLD) {
        assert!(Instant::now() < until, "the fake's ESO never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.fake.state().set_provider_value(REMOTE, NEW);
    env
}

fn config(env: &Env) -> KubernetesConfig {
    let mut c = env.config();
    c.deployments = vec!["api".into()];
    c.external_secrets = vec![ES.into()];
    c
}

/// The writes since the setup's first sync, in order.
fn writes(env: &Env) -> Vec<String> {
    let all = env.fake.state().writes();
    all.into_iter().skip(1).collect()
}

#[tokio::test]
async fn the_restart_force_syncs_and_rolls_only_once_the_secret_holds_the_new_value() {
    let env = synced(None).await;
    let r = env.restarter(config(&env));
    let pf = r.preflight().await.unwrap();
    assert!(pf.warnings.is_empty(), "{:?}", pf.warnings);
    assert_eq!(writes(&env), Vec::<String>::new(), "preflight wrote");
    let ctx = run("eso");
    let rollout = r.restart(&ctx).await.unwrap();
    assert_eq!(
        writes(&env),
        [
            "patch externalsecrets/vsync",
            "sync secrets/app",
            "patch deployments/api"
        ]
    );
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(NEW)
    );
    let es = env.fake.state().external_secret(NS, ES).unwrap();
    assert_eq!(es["metadata"]["annotations"][FORCE_SYNC], ctx.run.as_str());
    let journaled = &rollout.extra["external_secrets"][0];
    assert_eq!(journaled["name"], ES);
    assert_eq!(journaled["target"], SECRET);
    let text = rollout.extra.to_string();
    assert!(!text.contains(NEW) && !text.contains(OLD), "{text}");
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());

    // Resumed (the process died before journaling): no second annotation, no
    // second rollout.
    let again = env.restarter(config(&env)).restart(&ctx).await.unwrap();
    assert_eq!(again.id, rollout.id);
    assert_eq!(writes(&env).len(), 3, "{:?}", writes(&env));
}

#[tokio::test]
async fn on_change_syncs_on_the_annotation_too() {
    let env = synced(Some("OnChange")).await;
    let r = env.restarter(config(&env));
    r.preflight().await.unwrap();
    r.restart(&run("onchange")).await.unwrap();
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(NEW)
    );
    assert_eq!(writes(&env).last().unwrap(), "patch deployments/api");
}

#[tokio::test]
async fn created_once_is_refused_in_preflight_with_the_fix() {
    let env = synced(Some("CreatedOnce")).await;
    let e = env.restarter(config(&env)).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.chain());
    let m = e.message();
    assert!(
        m.contains("externalsecret/vsync has refreshPolicy CreatedOnce"),
        "{m}"
    );
    assert!(
        m.contains("kubectl patch externalsecret vsync -n shop --context prod --type merge"),
        "{m}"
    );
    assert!(writes(&env).is_empty(), "{:?}", writes(&env));
}

#[tokio::test]
async fn a_missing_external_secret_or_rbac_is_refused_with_the_role_rules() {
    let env = synced(None).await;
    let mut c = config(&env);
    c.external_secrets = vec!["nope".into()];
    let e = env.restarter(c).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert!(
        e.message().contains("externalsecret/nope"),
        "{}",
        e.message()
    );

    env.fake.state().eso_absent = true;
    let e = env.restarter(config(&env)).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.chain());
    assert!(
        e.message()
            .contains("is External Secrets Operator installed?"),
        "{}",
        e.message()
    );
    env.fake.state().eso_absent = false;

    let rule = |group: &str, res: &str, verbs: &[&str]| Rule {
        api_groups: vec![group.into()],
        resources: vec![res.into()],
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: vec![],
    };
    env.fake.state().set_rbac(Some(vec![
        rule("apps", "deployments", &["get", "list", "watch", "patch"]),
        rule("", "pods", &["list"]),
        rule("", "pods/log", &["get"]),
        rule("external-secrets.io", "externalsecrets", &["get"]),
    ]));
    let e = env.restarter(config(&env)).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.chain());
    let m = e.message();
    assert!(
        m.contains("patch externalsecrets.external-secrets.io vsync"),
        "{m}"
    );
    assert!(m.contains("get secrets app"), "{m}");
    assert!(
        m.contains("resources: [\"externalsecrets\"], resourceNames: [\"vsync\"], verbs: [\"get\", \"patch\"]"),
        "{m}"
    );
    assert!(
        m.contains("resources: [\"secrets\"], resourceNames: [\"app\"], verbs: [\"get\"]"),
        "{m}"
    );
}

#[tokio::test]
async fn a_sync_error_fails_the_restart_before_anything_is_rolled() {
    let env = synced(None).await;
    env.fake.state().remove_provider_value(REMOTE);
    let r = env.restarter(config(&env));
    r.preflight().await.unwrap();
    let e = r.restart(&run("eso-error")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{}", e.chain());
    let m = e.message();
    assert!(
        m.contains("Ready=False SecretSyncedError: could not get secret data from provider"),
        "{m}"
    );
    assert!(m.contains("nothing was restarted"), "{m}");
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 0);
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(OLD)
    );
}

#[tokio::test]
async fn a_controller_that_never_syncs_times_out_before_anything_is_rolled() {
    let env = synced(None).await;
    env.fake.state().hold_external_secrets(true);
    let mut c = config(&env);
    c.external_secrets_timeout = Some(Duration::from_millis(800));
    let r = env.restarter(c);
    let started = Instant::now();
    let e = r.restart(&run("eso-stuck")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Failed, "{}", e.chain());
    assert!(
        e.message().contains("did not sync before the deadline"),
        "{}",
        e.message()
    );
    assert_eq!(writes(&env), ["patch externalsecrets/vsync"]);
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 0);
    // Once the controller runs again the same run syncs and rolls.
    env.fake.state().hold_external_secrets(false);
    let rollout = env
        .restarter(config(&env))
        .restart(&run("eso-stuck"))
        .await
        .unwrap();
    assert!(matches!(
        r.wait(&rollout, soon()).await.unwrap(),
        RolloutOutcome::Done { .. }
    ));
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(NEW)
    );
}

/// ESO synced from a provider answer older than the activation (Secrets Manager
/// reads are eventually consistent): the Secret did not change, so the restart asks
/// again (a new force-sync value) instead of waiting out its deadline, and rolls only
/// once the Secret holds the new value.
#[tokio::test]
async fn a_sync_that_left_the_secret_unchanged_is_asked_for_again() {
    let env = synced(None).await;
    // The provider still answers the old value when the sync is asked for.
    env.fake.state().set_provider_value(REMOTE, OLD);
    let r = env.restarter(config(&env));
    r.preflight().await.unwrap();
    let ctx = run("stale");
    let started = Instant::now();
    let late = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.fake.state().set_provider_value(REMOTE, NEW);
    };
    let (restarted, ()) = tokio::join!(r.restart(&ctx), late);
    restarted.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(NEW)
    );
    let w = writes(&env);
    let patches = w
        .iter()
        .filter(|x| *x == "patch externalsecrets/vsync")
        .count();
    assert!(patches >= 2, "asked once only: {w:?}");
    assert_eq!(w.last().unwrap(), "patch deployments/api", "{w:?}");
    let es = env.fake.state().external_secret(NS, ES).unwrap();
    let value = es["metadata"]["annotations"][FORCE_SYNC]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        value.starts_with(&format!("{}.", ctx.run.as_str())),
        "{value}"
    );
}

// The force-sync annotation is a remote write like any other: an answer refused
// before it was applied, one lost after it was applied, and one held past the
// attempt's timeout and delivered later.

/// The PATCH of the ExternalSecret, whichever API version the fake serves.
fn annotation_patch() -> When {
    When::any()
        .method("PATCH")
        .matching(|r| r.path.ends_with(&format!("/externalsecrets/{ES}")))
}

/// The Secret holds NEW, the deployment was rolled once and the ExternalSecret
/// carries this run's annotation.
fn synced_once(env: &Env, ctx: &vsync_orchestrate_api::RestartContext) {
    assert_eq!(
        env.fake.state().secret_value(NS, SECRET, KEY).as_deref(),
        Some(NEW)
    );
    assert_eq!(env.fake.state().patch_count(Res::Deployments, NS, "api"), 1);
    let es = env.fake.state().external_secret(NS, ES).unwrap();
    assert_eq!(es["metadata"]["annotations"][FORCE_SYNC], ctx.run.as_str());
}

#[tokio::test]
async fn an_annotation_refused_before_it_applied_is_asked_again() {
    let env = synced(None).await;
    // 503 ServiceUnavailable, as the API server answers when it sheds load.
    env.fake
        .state()
        .fail("PATCH", &format!("/externalsecrets/{ES}"), 1, 503, 0);
    let r = env.restarter(config(&env));
    let ctx = run("eso-503");
    let rollout = r.restart(&ctx).await.unwrap();
    synced_once(&env, &ctx);
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

#[tokio::test]
async fn an_annotation_whose_answer_was_lost_is_asked_again_with_the_same_value() {
    let env = synced(None).await;
    env.fake.http().inject(annotation_patch(), Fault::CutAfter);
    let r = env.restarter(config(&env));
    let ctx = run("eso-cut");
    r.restart(&ctx).await.unwrap();
    synced_once(&env, &ctx);
    // Applied, its answer cut, then sent again with the same value: a no-op the
    // API server does not count as a change, so ESO synced once.
    let patches = env.fake.http().count(&annotation_patch());
    assert_eq!(patches, 2, "{:?}", writes(&env));
    let syncs = writes(&env)
        .iter()
        .filter(|w| *w == "sync secrets/app")
        .count();
    assert_eq!(syncs, 1, "{:?}", writes(&env));
}

#[tokio::test]
async fn an_annotation_held_and_delivered_late_changes_nothing() {
    let env = synced(None).await;
    let mut c = config(&env);
    // An attempt gets a quarter of the sync budget: 500 ms here.
    c.external_secrets_timeout = Some(Duration::from_secs(2));
    let r = env.restarter(c);
    env.fake
        .state()
        .hold("PATCH", &format!("/externalsecrets/{ES}"), 1);
    let ctx = run("eso-held");
    r.restart(&ctx).await.unwrap();
    synced_once(&env, &ctx);
    // The held request lands now, after the sync and the roll: the same
    // annotation, so nothing changes and nothing is rolled again.
    assert_eq!(env.fake.state().release_held(), vec![200]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    synced_once(&env, &ctx);
}
