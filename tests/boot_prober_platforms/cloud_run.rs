//! Cloud Run with the secret pinned to a version NUMBER, as Cloud Run advises for
//! env secrets: an instance gets the version its revision's template names, so a
//! new instance of the revision that serves the traffic gets the old passphrase
//! until the revision whose pin the restarter moved takes the traffic. The store
//! switching `current` (T1) changes nothing for it. The real binary runs an S3
//! vault on moto, the `gcp_secret_manager` store and the `cloud_run` restarter on
//! the REST fakes of `adapters/gcp/tests/fake`.

use crate::gcp_fake::cloud_run::{self as run, Behaviour, RunState};
use crate::gcp_fake::secret_manager::{self as sm, SmState};
use crate::probe::{judge, rotated, Prober, Tally};
use crate::support;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::{KdfParams, LayoutChoice, Vault};
use vsync_orchestrate_testkit::fake_http::FakeHttp;

const OLD: &str = "run-prober-old-passphrase-0123456789";
const SALT: &str = "RunProberSaltRunProberSalt";
const PREFIX: &str = "shop/prod/";
const SECRET_ID: &str = "vsync-passphrase";
const SECRET: &str = "projects/shop-prod/secrets/vsync-passphrase";
const SERVICE: &str = "projects/shop-prod/locations/europe-west1/services/shop";
const ROTATIONS: usize = 5;
const PLATFORM: &str = "cloud run (pinned version, read at instance start)";

/// The version `template` pins for `VSYNC_PASSPHRASE`.
fn pin(template: &Value) -> Option<String> {
    template["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == "VSYNC_PASSPHRASE")?["valueSource"]["secretKeyRef"]["version"]
        .as_str()
        .map(str::to_owned)
}

/// The version a new instance of the serving revision resolves.
fn serving_pin(run: &FakeHttp<RunState>) -> Option<String> {
    let st = run.state();
    let revision = st.serving_revision(SERVICE)?;
    pin(st.revision_template(SERVICE, &revision)?)
}

/// One instance start: the revision serving 100% of the traffic now, the version
/// its template pins, that version's payload, then the vault opened with it. An
/// instance that cannot resolve its secret does not start: a failed boot.
async fn boot(
    run: Arc<FakeHttp<RunState>>,
    secrets: Arc<FakeHttp<SmState>>,
    vault: Arc<Vault>,
) -> bool {
    let Some(version) = serving_pin(&run) else {
        return false;
    };
    let Some(p) = secrets.state().value(SECRET, &version) else {
        return false;
    };
    vault.open(&Passphrase::new(p)).await.is_ok()
}

fn plan_text(state: &Path, bucket: &str, moto: &str, sm_url: &str, run_url: &str) -> String {
    format!(
        r#"env = "prod"
state_dir = "{state}"
[vault]
bucket = "{bucket}"
prefix = "{PREFIX}"
region = "us-east-1"
endpoint = "{moto}"
salt = {{ env = "VSYNC_TEST_SALT" }}
iterations = 2000
[[store]]
type = "gcp_secret_manager"
secret = "{SECRET}"
endpoint = "{sm_url}"
credentials = "anonymous"
[[restart]]
type = "cloud_run"
services = ["{SERVICE}"]
endpoint = "{run_url}"
credentials = "anonymous"
poll_interval = "100ms"
timeout = "30s"
"#,
        state = state.display(),
    )
}

pub async fn boots_of_the_serving_revision_fail_only_inside_the_delivery_window() {
    let Some(moto) = support::moto_endpoint() else {
        return;
    };
    let (bucket, storage) = support::moto_bucket(&moto).await;
    let vault = Arc::new(Vault::new(
        storage,
        PREFIX,
        KdfParams::new(SALT, 2000),
        LayoutChoice::Auto,
    ));
    support::seed_runtime(&vault, OLD).await;
    // Version 1 holds the passphrase and the service's template pins it by number.
    let secrets = Arc::new(sm::start(sm::seeded(SECRET, OLD)).await);
    let mut st = RunState::default();
    st.add_service(SERVICE, Behaviour::Healthy, run::template(SECRET_ID, "1"));
    let cloud_run = Arc::new(run::start(st).await);

    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        plan_text(
            &dir.path().join("state"),
            &bucket,
            &moto,
            &secrets.url(),
            &cloud_run.url(),
        ),
    )
    .unwrap();

    let mut tally = Tally::default();
    for i in 0..ROTATIONS {
        let prober = {
            let (run, secrets, vault) = (cloud_run.clone(), secrets.clone(), vault.clone());
            Prober::start(Duration::from_millis(2), move || {
                boot(run.clone(), secrets.clone(), vault.clone())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
            .args(["run", "--yes", "--output", "json"])
            .arg(&plan)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", &moto)
            .env("VSYNC_TEST_SALT", SALT)
            .env_remove("AWS_PROFILE")
            .env_remove("GOOGLE_CLOUD_RUST_LOGGING")
            .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
            .output()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let boots = prober.stop().await;
        let r = rotated(&format!("{PLATFORM} rotation {i}"), &out, i as u64 + 1);
        // The boots went through the pin: the revision serving now pins the
        // version `current` names, a new number each rotation.
        let current = secrets
            .state()
            .secret(SECRET)
            .aliases
            .get("current")
            .copied();
        assert_eq!(
            serving_pin(&cloud_run),
            current.map(|v| v.to_string()),
            "rotation {i}: the serving revision does not pin the activated version"
        );
        assert_eq!(current, Some(i as i64 + 2), "rotation {i}: `current`");
        let delivery = r.delivery_ms;
        let store = r.store_ms;
        let judged = judge(&format!("{PLATFORM} rotation {i}"), &boots, delivery);
        tally.add(PLATFORM, &judged, delivery, store);
    }
    tally.print(PLATFORM);
}
