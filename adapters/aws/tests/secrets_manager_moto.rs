//! The Secrets Manager store against a REAL Secrets Manager API: moto in server mode
//! (`VSYNC_TEST_MOTO_ENDPOINT`). The store is built with its public `new` constructor,
//! so the standard credential chain is exercised too; the tests' own checks go through
//! a plain SDK client, i.e. what apps see. One test (`fake_*`) uses a stand-in server
//! instead, for the one state moto cannot model; it says so.

mod common;

use aws_sdk_secretsmanager::Client;
use std::sync::Arc;
use vsync_orchestrate_api::{async_trait, ErrorKind, Passphrase, RunId, SecretStore};
use vsync_orchestrate_aws::{SecretsManagerConfig, SecretsManagerStore};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Response};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

struct Moto;

#[async_trait]
impl StoreFixture for Moto {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        Box::new(Fixture::new("suite", initial.expose()).await.expect("moto"))
    }
}

#[async_trait]
impl SeededStore for Fixture {
    async fn open(&self) -> Arc<dyn SecretStore> {
        Arc::new(self.store(None).await)
    }

    async fn app_view(&self) -> Option<Passphrase> {
        Some(Passphrase::new(Fixture::app_view(self).await))
    }
}

async fn moto() -> Option<Moto> {
    common::moto_endpoint().map(|_| Moto)
}

vsync_orchestrate_testkit::store_suite!(moto());

struct Fixture {
    raw: Client,
    secret_id: String,
    endpoint: String,
}

impl Fixture {
    /// A fresh secret holding `initial` as AWSCURRENT.
    async fn new(tag: &str, initial: &str) -> Option<Fixture> {
        let endpoint = common::moto_endpoint()?;
        let raw = Client::new(&common::test_sdk_config(&endpoint).await);
        let secret_id = common::unique(tag);
        raw.create_secret()
            .name(&secret_id)
            .secret_string(initial)
            .send()
            .await
            .unwrap();
        Some(Fixture {
            raw,
            secret_id,
            endpoint,
        })
    }

    async fn store(&self, json_key: Option<&str>) -> SecretsManagerStore {
        SecretsManagerStore::new(SecretsManagerConfig {
            secret_id: self.secret_id.clone(),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            profile: None,
            json_key: json_key.map(str::to_owned),
            attempt_timeout: None,
        })
        .await
        .unwrap()
    }

    /// What an app booting now would read.
    async fn app_view(&self) -> String {
        let out = self
            .raw
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        out.secret_string().unwrap().to_owned()
    }

    async fn version_count(&self) -> usize {
        let d = self
            .raw
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .unwrap();
        d.version_ids_to_stages().map_or(0, |m| m.len())
    }
}

async fn stage_is_invisible_and_stage_and_activate_are_idempotent() {
    let Some(fx) = Fixture::new("idem", "old-pass").await else {
        return;
    };
    let store = fx.store(None).await;
    let run = RunId(common::unique("run"));
    let new = Passphrase::from("new-pass-Zr81");

    store.preflight().await.unwrap();
    let staged = store.stage(&new, &run).await.unwrap();
    assert_eq!(staged.version.len(), 36);
    assert!(staged.previous.is_some());
    assert_eq!(
        fx.app_view().await,
        "old-pass",
        "staged value visible to apps"
    );

    let again = store.stage(&new, &run).await.unwrap();
    assert_eq!(again, staged);
    assert_eq!(
        fx.version_count().await,
        2,
        "a repeated stage created a version"
    );
    assert_eq!(fx.app_view().await, "old-pass");

    store.activate(&staged).await.unwrap();
    assert_eq!(fx.app_view().await, "new-pass-Zr81");
    store.activate(&staged).await.unwrap();
    assert_eq!(fx.app_view().await, "new-pass-Zr81");
    // After activation the staged version is still readable (resume after T1).
    assert!(store.read_staged(&staged).await.unwrap().same_as(&new));
    // Staging the same run again after activation changes nothing.
    assert_eq!(
        store.stage(&new, &run).await.unwrap().version,
        staged.version
    );
    assert_eq!(fx.version_count().await, 2);
}

async fn activate_refuses_when_awscurrent_moved_underneath() {
    let Some(fx) = Fixture::new("cas", "old-pass").await else {
        return;
    };
    let store = fx.store(None).await;
    let staged = store
        .stage(&Passphrase::from("ours-Wq3"), &RunId(common::unique("run")))
        .await
        .unwrap();

    // Someone else rotates meanwhile: a plain PutSecretValue moves AWSCURRENT.
    fx.raw
        .put_secret_value()
        .secret_id(&fx.secret_id)
        .secret_string("theirs")
        .send()
        .await
        .unwrap();

    let err = store.activate(&staged).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{}", err.chain());
    assert!(!err.chain().contains("ours-Wq3"));
    assert_eq!(
        fx.app_view().await,
        "theirs",
        "a conflicting activate changed the secret"
    );
}

async fn json_key_replaces_only_its_member() {
    let original = "{\"db_url\": \"postgres://u@h/db\",\n  \"ratio\": 1.50, \"VSYNC_PASSPHRASE\":\"old\\u0021\", \"nested\": {\"a\": [1, \"}\"]}, \"flag\":null}";
    let Some(fx) = Fixture::new("json", original).await else {
        return;
    };
    let store = fx.store(Some("VSYNC_PASSPHRASE")).await;
    store.preflight().await.unwrap();
    assert_eq!(
        store.read_current().await.unwrap().unwrap().expose(),
        "old!"
    );

    let new = Passphrase::from("n\"ew\\pass");
    let staged = store
        .stage(&new, &RunId(common::unique("run")))
        .await
        .unwrap();
    assert!(store.read_staged(&staged).await.unwrap().same_as(&new));
    store.activate(&staged).await.unwrap();

    let expected = original.replace("\"old\\u0021\"", "\"n\\\"ew\\\\pass\"");
    assert_eq!(
        fx.app_view().await,
        expected,
        "other members were not kept byte for byte"
    );
    assert!(store.read_current().await.unwrap().unwrap().same_as(&new));

    // A key that is not there is a plan error, found in preflight.
    let wrong = fx.store(Some("NOPE")).await;
    assert_eq!(
        wrong.preflight().await.unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

/// A stale AWSPENDING (a run that staged and died, or a `PutSecretValue` that
/// landed after its run gave up) is reported, never refused: it must not block
/// every later run. Preflight stays read-only.
async fn preflight_warns_of_a_stale_pending_and_leaves_it() {
    let Some(fx) = Fixture::new("stale", "old-pass").await else {
        return;
    };
    let store = fx.store(None).await;
    // An earlier run that staged and then died.
    let stale = store
        .stage(
            &Passphrase::from("stale-value-Zq9xK"),
            &RunId(common::unique("run")),
        )
        .await
        .unwrap();

    let pf = store.preflight().await.unwrap();
    let warned = pf.warnings.join("\n");
    assert!(warned.contains(&stale.version), "{warned}");
    assert!(warned.contains("resume"), "{warned}");
    assert!(
        !warned.contains("stale-value-Zq9xK"),
        "the staged value leaked: {warned}"
    );
    // Preflight is read-only: the label is still there.
    assert!(store.read_staged(&stale).await.is_ok());

    assert_eq!(
        store.remove_stale_pending().await.unwrap(),
        Some(stale.version.clone())
    );
    assert_eq!(store.remove_stale_pending().await.unwrap(), None);
    assert!(store.preflight().await.unwrap().warnings.is_empty());
    assert_eq!(
        store.read_staged(&stale).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(fx.app_view().await, "old-pass");
}

async fn preflight_reports_a_missing_secret_as_not_found() {
    let Some(endpoint) = common::moto_endpoint() else {
        return;
    };
    let missing = SecretsManagerStore::new(SecretsManagerConfig {
        secret_id: common::unique("missing"),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        profile: None,
        json_key: None,
        attempt_timeout: None,
    })
    .await
    .unwrap();
    assert_eq!(
        missing.preflight().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// FAKE, not moto: moto's RotateSecret wants an existing Lambda function, so a rotation-
/// enabled secret is served by the testkit's fake HTTP server answering DescribeSecret in
/// the AWS JSON 1.1 shape.
async fn fake_preflight_refuses_a_secret_with_managed_rotation() {
    let fake = FakeHttp::builder(())
        .route("POST", "/", |r, _| {
            if r.header("x-amz-target") != Some("secretsmanager.DescribeSecret") {
                return Response::json(
                    400,
                    &serde_json::json!({ "__type": "UnknownOperationException" }),
                );
            }
            Response::json(
                200,
                &serde_json::json!({
                    "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rot-AbCdEf",
                    "Name": "rot",
                    "RotationEnabled": true,
                    "RotationLambdaARN": "arn:aws:lambda:us-east-1:123456789012:function:rotator",
                    "VersionIdsToStages": { "v1": ["AWSCURRENT"] },
                }),
            )
            .header("content-type", "application/x-amz-json-1.1")
        })
        .start()
        .await;
    let sdk = common::test_sdk_config(&fake.url()).await;
    let cfg = SecretsManagerConfig {
        secret_id: "rot".into(),
        region: None,
        endpoint: None,
        profile: None,
        json_key: None,
        attempt_timeout: None,
    };
    let store = SecretsManagerStore::from_sdk_config(cfg, &sdk).unwrap();
    let err = store.preflight().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err.chain());
    assert!(
        err.message().contains("automatic rotation"),
        "{}",
        err.message()
    );
    // Preflight read the secret's description and wrote nothing.
    let targets: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.header("x-amz-target").unwrap_or("").to_owned())
        .collect();
    assert_eq!(targets, ["secretsmanager.DescribeSecret"], "{targets:?}");
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [store_suite],
    tests: [
        stage_is_invisible_and_stage_and_activate_are_idempotent,
        activate_refuses_when_awscurrent_moved_underneath,
        json_key_replaces_only_its_member,
        preflight_warns_of_a_stale_pending_and_leaves_it,
        preflight_reports_a_missing_secret_as_not_found,
        fake_preflight_refuses_a_secret_with_managed_rotation,
    ],
}
