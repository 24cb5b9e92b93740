//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod demo;
#[cfg(all(feature = "kubernetes", feature = "aws", feature = "s3"))]
pub mod eks;
pub mod fakes;
pub mod fault_proxy;
pub mod nspawn;
pub mod sandbox;

use std::sync::Arc;
use vsync_orchestrate::vault::storage::Storage;

/// A name unique to this process and call: the testkit's, as the adapters' tests use.
pub use vsync_orchestrate_testkit::unique;

/// The moto server `.ci/run` starts (real S3 protocol on 127.0.0.1), through the
/// testkit's service-or-skip: `None` on a developer's machine without it, and the
/// test is reported `ignored (<why>)` (the files that call this run under the
/// testkit's harness); under CI a missing server is a failure.
pub fn moto_endpoint() -> Option<String> {
    use vsync_orchestrate_testkit::service::{current_test, env_or_skip};
    env_or_skip(&current_test(), &["VSYNC_TEST_MOTO_ENDPOINT"]).map(|mut v| v.remove(0))
}

/// A fresh bucket on moto, with its storage handle.
#[cfg(feature = "s3")]
pub async fn moto_bucket(endpoint: &str) -> (String, Arc<dyn Storage>) {
    let bucket = unique("vault");
    let s = s3_storage(endpoint, &bucket).await;
    s.client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket on moto");
    (bucket, Arc::new(s))
}

/// A Secrets Manager client on moto (or a proxy in front of it) in `region`, with
/// moto's test credentials.
pub fn moto_sm_in(endpoint: &str, region: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build(),
    )
}

/// [`moto_sm_in`] `us-east-1`, where the tests' plans live.
pub fn moto_sm(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    moto_sm_in(endpoint, "us-east-1")
}

/// A new Secrets Manager secret on moto named `<prefix>-<unique>` holding `value`;
/// its name.
pub async fn moto_secret(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    value: &str,
) -> String {
    let name = unique(prefix);
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("create the secret on moto");
    name
}

/// `dir/plan.toml`: a vault under `shop/prod/` in moto's `bucket` (salt from
/// `VSYNC_TEST_SALT`, 2,000 iterations) and one `aws_secrets_manager` store on
/// `secret_id`, then `extra` (more tables); state in `dir/state`.
pub fn moto_sm_plan(
    dir: &std::path::Path,
    ep: &str,
    bucket: &str,
    secret_id: &str,
    extra: &str,
) -> std::path::PathBuf {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            r#"env = "prod"
state_dir = "{state}"
[vault]
bucket = "{bucket}"
prefix = "shop/prod/"
region = "us-east-1"
endpoint = "{ep}"
salt = {{ env = "VSYNC_TEST_SALT" }}
iterations = 2000
[[store]]
type = "aws_secrets_manager"
secret_id = "{secret_id}"
region = "us-east-1"
endpoint = "{ep}"
{extra}"#,
            state = dir.join("state").display()
        ),
    )
    .unwrap();
    plan
}

/// A vault under `prefix` on `storage`, seeded (CLI layout, generation 0) with one
/// env file under `old`, at the cheap key derivation the tests use (2,000
/// PBKDF2 iterations).
pub async fn seeded_vault(
    storage: Arc<dyn Storage>,
    prefix: &str,
    salt: &str,
    old: &str,
) -> vsync_orchestrate::vault::Vault {
    use vsync_orchestrate::api::Passphrase;
    use vsync_orchestrate::vault::{KdfParams, Layout, LayoutChoice, SeedContent, Vault};
    let vault = Vault::new(
        storage,
        prefix,
        KdfParams::new(salt, 2000),
        LayoutChoice::Auto,
    );
    vault
        .seed(
            Layout::Cli,
            &Passphrase::from(old),
            &SeedContent::Files(vec![(
                "infra/vault/prod/.env.prod".into(),
                b"A=1\n".to_vec(),
            )]),
        )
        .await
        .expect("seed the vault");
    vault
}

/// Seeds `vault` in the runtime layout (generation 0) with one variable under
/// `old`, as `vsync` apps read it.
pub async fn seed_runtime(vault: &vsync_orchestrate::vault::Vault, old: &str) {
    use vsync_orchestrate::api::Passphrase;
    use vsync_orchestrate::vault::{Layout, SeedContent};
    vault
        .seed(
            Layout::Runtime,
            &Passphrase::from(old),
            &SeedContent::Json {
                kv: [("DATABASE_URL".to_owned(), "postgres://shop".to_owned())].into(),
                assets: Default::default(),
            },
        )
        .await
        .expect("seed the vault");
}

/// A storage handle on an existing bucket, through `endpoint` (moto or a proxy).
#[cfg(feature = "s3")]
pub async fn s3_storage(
    endpoint: &str,
    bucket: &str,
) -> vsync_orchestrate::vault::storage::S3Storage {
    use vsync_orchestrate::vault::storage::{S3Options, S3Storage};
    S3Storage::connect(&S3Options {
        bucket: bucket.to_owned(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
        path_style: true,
        static_keys: Some(("testing".into(), "testing".into())),
        ..Default::default()
    })
    .await
}

pub fn write_0600(path: &std::path::Path, body: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(body.as_bytes()).unwrap();
}

/// Every result row the human display printed (`✓ label — detail  (12 ms)`), as
/// `label — detail`.
pub fn printed_rows(human: &str) -> Vec<String> {
    human
        .lines()
        .filter_map(|l| {
            // Result rows are indented; the closing "✓ run … — exit 0" line is not.
            let t = l.trim_start();
            if t.len() == l.len() {
                return None;
            }
            let rest = t.strip_prefix("✓ ").or_else(|| t.strip_prefix("✗ "))?;
            let end = rest.rfind("  (").unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        })
        .collect()
}

/// The human output and `--output json` are renderers of the same events: every
/// row printed is a JSON target, and no target was left unprinted.
pub fn assert_rows_match(human: &str, json: &serde_json::Value) {
    let printed = printed_rows(human);
    let targets: Vec<String> = json["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let (kind, name) = (t["kind"].as_str().unwrap(), t["name"].as_str().unwrap());
                    let label = if name.is_empty() {
                        kind.to_owned()
                    } else {
                        format!("{kind} {name}")
                    };
                    match t["detail"].as_str().unwrap() {
                        "" => label,
                        d => format!("{label} — {d}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        printed, targets,
        "the human rows and the JSON targets disagree\n--- human\n{human}"
    );
}
