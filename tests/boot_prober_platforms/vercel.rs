//! Vercel: a function's environment is the one its deployment was built with, so
//! a cold start gets the passphrase of the deployment holding the production alias
//! at that moment, whatever the project's variable says since. Between T0 and the
//! redeployed build taking the alias every cold start gets the old passphrase. The
//! real binary runs a `dir` vault, the `vercel` store and the `vercel` redeploy
//! restarter on the REST fake of `adapters/vercel/tests/fake`.

use crate::probe::{judge, rotated, Prober, Tally};
use crate::support;
use crate::vercel_fake::{self, VercelState, PROJECT, TEAM, TOKEN};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::engine::build;
use vsync_orchestrate::plan;
use vsync_orchestrate::vault::Vault;
use vsync_orchestrate_http::{BearerToken, Client};
use vsync_orchestrate_testkit::fake_http::FakeHttp;

const OLD: &str = "vercel-prober-old-passphrase-0123456789";
const KEY: &str = "VSYNC_PASSPHRASE";
const TOKEN_ENV: &str = "VSYNC_PROBER_VERCEL_TOKEN";
const ROTATIONS: usize = 3;
/// How long the fake's build runs (its build hook sleeps): short, but long enough
/// that the window between T0 and the alias moving holds several boots.
const BUILD: Duration = Duration::from_millis(150);
const PLATFORM: &str = "vercel (the production deployment's build env)";

/// The passphrase a cold start of the production deployment gets: its build's
/// production value of `VSYNC_PASSPHRASE`.
fn built_passphrase(fake: &FakeHttp<VercelState>) -> Option<String> {
    let st = fake.state();
    let production = st.production.as_deref()?;
    st.built_env(production)?.iter().find(|e| {
        e["key"] == KEY
            && e["gitBranch"].is_null()
            && e["target"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "production"))
    })?["value"]
        .as_str()
        .map(str::to_owned)
}

/// One cold start; a deployment without the variable does not boot.
async fn boot(fake: Arc<FakeHttp<VercelState>>, vault: Arc<Vault>) -> bool {
    let Some(p) = built_passphrase(&fake) else {
        return false;
    };
    vault.open(&Passphrase::new(p)).await.is_ok()
}

/// The production deployment the fake starts with was built before the test set
/// the variable: redeploy it as `vercel redeploy` does, so production holds a
/// build with OLD in its environment before the first rotation.
async fn build_production_with_old(fake: &FakeHttp<VercelState>) {
    let http = Client::builder()
        .bearer(BearerToken::new(TOKEN).unwrap())
        .build()
        .unwrap();
    let from = fake.state().production.clone().unwrap();
    let d: Value = http
        .post(&format!("{}/v13/deployments", fake.url()))
        .query(&[("forceNew", "1"), ("teamId", TEAM)])
        .json(
            &json!({ "name": PROJECT, "deploymentId": from, "target": "production",
                       "meta": { "action": "redeploy" } }),
        )
        .send_json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d: Value = http
            .get(&format!("{}/v13/deployments/{id}", fake.url()))
            .query(&[("teamId", TEAM)])
            .send_json()
            .await
            .unwrap();
        if d["readyState"] == "READY" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first build never ended: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.state().production.as_deref(), Some(id.as_str()));
    assert_eq!(built_passphrase(fake).as_deref(), Some(OLD));
}

fn plan_text(d: &Path, api: &str) -> String {
    let d = d.display();
    format!(
        r#"env = "prod"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "shop/prod/"
salt = {{ file = "{d}/salt" }}
iterations = 2000
[passphrase]
old = {{ file = "{d}/old-passphrase" }}
note = "boot prober on the Vercel fake"
[[store]]
type = "vercel"
project = "{PROJECT}"
team_id = "{TEAM}"
token_env = "{TOKEN_ENV}"
api_base = "{api}"
[[restart]]
type = "vercel"
project = "{PROJECT}"
team_id = "{TEAM}"
token_env = "{TOKEN_ENV}"
api_base = "{api}"
poll_interval = "50ms"
timeout = "30s"
"#
    )
}

pub async fn cold_starts_of_the_production_deployment_fail_only_inside_the_delivery_window() {
    let mut st = VercelState::default();
    st.add_env(KEY, OLD, "sensitive", &["production"], None);
    st.on_build = Some(Arc::new(|_: &[Value]| {
        std::thread::sleep(BUILD);
        Ok(())
    }));
    let fake = Arc::new(vercel_fake::start(st).await);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("salt"), "VercelProberSaltVercelPro").unwrap();
    let plan_path = root.join("plan.toml");
    std::fs::write(&plan_path, plan_text(root, &fake.url())).unwrap();
    // `run` never creates a vault directory; seeding is what makes one.
    std::fs::create_dir_all(root.join("vault")).unwrap();
    let loaded = plan::load(&plan_path).unwrap();
    let vault = Arc::new(build::vault(&loaded.plan).await.unwrap());
    support::seed_runtime(&vault, OLD).await;
    build_production_with_old(&fake).await;

    let mut tally = Tally::default();
    for i in 0..ROTATIONS {
        // The old passphrase, as the operator hands it over: the store cannot read
        // a sensitive variable back.
        let old = fake.state().production_value(KEY).unwrap();
        crate::support::write_0600(&root.join("old-passphrase"), &old);
        let redeploys = fake.state().redeploys;
        let prober = {
            let (fake, vault) = (fake.clone(), vault.clone());
            Prober::start(Duration::from_millis(2), move || {
                boot(fake.clone(), vault.clone())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
            .args(["run", "--yes", "--output", "json"])
            .arg(&plan_path)
            .env(TOKEN_ENV, TOKEN)
            .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
            .output()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let boots = prober.stop().await;
        let r = rotated(&format!("{PLATFORM} rotation {i}"), &out, i as u64 + 1);
        // The boots went through a new build: production is the redeploy, built
        // with the value the store activated.
        assert_eq!(fake.state().redeploys, redeploys + 1, "rotation {i}");
        let new = fake.state().production_value(KEY).unwrap();
        assert_ne!(new, old, "rotation {i}: the variable did not change");
        assert_eq!(
            built_passphrase(&fake),
            Some(new),
            "rotation {i}: production was not built with the new value"
        );
        let delivery = r.delivery_ms;
        let store = r.store_ms;
        let judged = judge(&format!("{PLATFORM} rotation {i}"), &boots, delivery);
        tally.add(PLATFORM, &judged, delivery, store);
    }
    tally.print(PLATFORM);
}
