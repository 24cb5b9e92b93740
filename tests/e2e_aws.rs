//! `vsync-orchestrate run` end to end on moto in server mode (real S3 and
//! Secrets Manager protocols on 127.0.0.1): an S3 vault and the Secrets Manager
//! store, with the dry run proven to write nothing.

mod support;

use aws_sdk_secretsmanager as sm;

use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::{KdfParams, Layout, LayoutChoice, SeedContent, Vault};

const OLD: &str = "moto-old-passphrase-0123456789";
const SALT: &str = "MotoSaltMotoSalt0123456789";

async fn current(client: &sm::Client, id: &str) -> String {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    out.secret_string().unwrap().to_owned()
}

fn run(args: &[&str], plan: &std::path::Path, endpoint: &str) -> (i32, String, String) {
    run_env(args, plan, endpoint, &[])
}

fn run_env(
    args: &[&str],
    plan: &std::path::Path,
    endpoint: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .args(args)
        .envs(env.iter().copied())
        .arg(plan)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("VSYNC_TEST_SALT", SALT)
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint)
        .output()
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    if args.contains(&"json") {
        if let Ok(v) = serde_json::from_str(&stdout) {
            support::assert_rows_match(&stderr, &v);
        }
    }
    (code, stdout, stderr)
}

async fn run_rotates_an_s3_vault_and_secrets_manager_on_moto() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, storage) = support::moto_bucket(&ep).await;
    let kdf = KdfParams::new(SALT, 2000);
    let vault = Vault::new(storage.clone(), "shop/prod/", kdf, LayoutChoice::Auto);
    let content = SeedContent::Files(vec![(
        "infra/vault/prod/.env.prod".into(),
        b"A=1\n".to_vec(),
    )]);
    vault
        .seed(Layout::Cli, &Passphrase::from(OLD), &content)
        .await
        .unwrap();
    let client = support::moto_sm(&ep);
    let secret_id = support::moto_secret(&client, "prod/shop/vsync", OLD).await;

    let dir = tempfile::tempdir().unwrap();
    let plan = support::moto_sm_plan(
        dir.path(),
        &ep,
        &bucket,
        &secret_id,
        "[passphrase]\nnote = \"e2e on moto\"\n",
    );

    // The dry run reads everything and writes nothing.
    let objects_before = storage.list("").await.unwrap();
    let versions_before = client
        .list_secret_version_ids()
        .secret_id(&secret_id)
        .send()
        .await
        .unwrap()
        .versions()
        .len();
    let (code, stdout, stderr) = run(&["plan", "--output", "json"], &plan, &ep);
    assert_eq!(code, 0, "{stderr}");
    let p: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(p["planned_writes"].as_array().unwrap().len() >= 8);
    assert_eq!(
        storage.list("").await.unwrap(),
        objects_before,
        "the dry run wrote to S3"
    );
    assert_eq!(
        client
            .list_secret_version_ids()
            .secret_id(&secret_id)
            .send()
            .await
            .unwrap()
            .versions()
            .len(),
        versions_before
    );
    assert_eq!(current(&client, &secret_id).await, OLD);

    // At TRACE every crate logs, the AWS SDK included: still no passphrase (below).
    let (code, stdout, stderr) = run_env(
        &["run", "--yes", "--output", "json"],
        &plan,
        &ep,
        &[("RUST_LOG", "trace")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("TRACE"), "no trace logs at RUST_LOG=trace");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (s["gen_before"].as_u64(), s["gen_after"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(s["window_ms"].as_f64().is_some());

    let new = current(&client, &secret_id).await;
    assert_ne!(new, OLD);
    // AWSPENDING was tidied away after the window closed.
    let versions = client
        .list_secret_version_ids()
        .secret_id(&secret_id)
        .send()
        .await
        .unwrap();
    assert!(
        versions
            .versions()
            .iter()
            .all(|v| !v.version_stages().iter().any(|s| s == "AWSPENDING")),
        "{versions:?}"
    );
    assert!(!stdout.contains(&new) && !stderr.contains(&new) && !stderr.contains(OLD));
    let opened = vault.open(&Passphrase::new(new)).await.unwrap();
    assert_eq!(opened.gen, 1);
    let audit = storage
        .get("shop/prod/audit.csv")
        .await
        .unwrap()
        .expect("audit row written");
    assert!(String::from_utf8_lossy(&audit.body).contains(",rotate,"));

    // An abandoned AWSPENDING (a run that staged and died, or a stage that landed
    // after its run gave up) does not block the next run: the current passphrase
    // opens the live bundle, so the label is moved to the new version.
    client
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string("abandoned-staged-passphrase-000")
        .client_request_token("00000000-0000-4000-8000-000000000001")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let (code, stdout, stderr) = run(&["run", "--yes", "--output", "json"], &plan, &ep);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("00000000-0000-4000-8000-000000000001") && stderr.contains("AWSPENDING"),
        "the stale label is not reported: {stderr}"
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["gen_after"], 2);
    assert!(
        !stderr.contains("abandoned-staged-passphrase")
            && !stdout.contains("abandoned-staged-passphrase")
    );
    let versions = client
        .list_secret_version_ids()
        .secret_id(&secret_id)
        .send()
        .await
        .unwrap();
    assert!(
        versions
            .versions()
            .iter()
            .all(|v| !v.version_stages().iter().any(|s| s == "AWSPENDING")),
        "{versions:?}"
    );
    let new = current(&client, &secret_id).await;
    assert_eq!(vault.open(&Passphrase::new(new)).await.unwrap().gen, 2);
}

/// `run --clean-stale` after a crash right after the pointer swap: the stale
/// AWSPENDING is the only key to the live bundle, so it must stay; `resume` then
/// finishes the crashed run.
async fn clean_stale_keeps_a_staged_version_the_vault_needs() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, storage) = support::moto_bucket(&ep).await;
    let vault = Vault::new(
        storage.clone(),
        "shop/prod/",
        KdfParams::new(SALT, 2000),
        LayoutChoice::Auto,
    );
    support::seed_runtime(&vault, OLD).await;
    let client = support::moto_sm(&ep);
    let secret_id = support::moto_secret(&client, "prod/shop/vsync", OLD).await;
    let dir = tempfile::tempdir().unwrap();
    let plan = support::moto_sm_plan(dir.path(), &ep, &bucket, &secret_id, "");
    let (code, _, stderr) = run_env(
        &["run", "--yes"],
        &plan,
        &ep,
        &[("VSYNC_ORCHESTRATE_CRASH_AT", "committed")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("crashing on purpose"), "{stderr}");
    let pending = client
        .get_secret_value()
        .secret_id(&secret_id)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    assert!(vault.open(&Passphrase::new(pending.clone())).await.is_ok());

    // The crashed run's lock has expired by the time someone reaches for
    // --clean-stale (or the crash was on another machine).
    storage
        .delete("shop/prod/.vsync-orchestrate.lock", None)
        .await
        .unwrap();
    // A plain run sees the stale AWSPENDING, but the current passphrase does not
    // open the live bundle: it stops before writing anything, naming `resume`.
    let (code, _, stderr) = run(&["run", "--yes"], &plan, &ep);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("resume"), "{stderr}");
    let (code, _, stderr) = run(&["run", "--yes", "--clean-stale"], &plan, &ep);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("removed nothing") && stderr.contains("resume"),
        "{stderr}"
    );
    assert!(stderr.contains("old passphrase does not open"), "{stderr}");
    let still = client
        .get_secret_value()
        .secret_id(&secret_id)
        .version_stage("AWSPENDING")
        .send()
        .await
        .expect("the staged version the vault needs was kept");
    assert_eq!(still.secret_string(), Some(pending.as_str()));

    let (code, _, stderr) = run(&["resume", "--yes"], &plan, &ep);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(current(&client, &secret_id).await, pending);
}

/// One secret id in two regions (a replicated secret): two stores that describe
/// themselves alike. Each is known by its plan position, so both are staged,
/// activated and verified — not one twice and the other never.
async fn one_secret_id_in_two_regions_is_two_stores() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, storage) = support::moto_bucket(&ep).await;
    let vault = Vault::new(
        storage.clone(),
        "shop/prod/",
        KdfParams::new(SALT, 2000),
        LayoutChoice::Auto,
    );
    support::seed_runtime(&vault, OLD).await;
    let secret_id = support::unique("prod/shop/replicated");
    let regions = ["us-east-1", "eu-west-1"];
    let mut clients = Vec::new();
    for region in regions {
        let conf = sm::Config::builder()
            .behavior_version(sm::config::BehaviorVersion::latest())
            .region(sm::config::Region::new(region))
            .endpoint_url(&ep)
            .credentials_provider(sm::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let c = sm::Client::from_conf(conf);
        c.create_secret()
            .name(&secret_id)
            .secret_string(OLD)
            .send()
            .await
            .unwrap();
        clients.push(c);
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let stores: String = regions
        .iter()
        .map(|r| {
            format!(
                "[[store]]\ntype = \"aws_secrets_manager\"\nsecret_id = \"{secret_id}\"\nregion = \"{r}\"\nendpoint = \"{ep}\"\n"
            )
        })
        .collect();
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
{stores}"#,
            state = dir.path().join("state").display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["run", "--yes", "--output", "json"], &plan, &ep);
    assert_eq!(code, 0, "{stderr}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let activated: Vec<&str> = s["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["phase"] == "activate" && t["ok"] == true)
        .filter_map(|t| t["slot"].as_str())
        .collect();
    assert_eq!(activated, vec!["store.1", "store.2"], "{stdout}");
    let mut values = Vec::new();
    for c in &clients {
        let v = current(c, &secret_id).await;
        assert_ne!(v, OLD, "a region kept the old passphrase");
        assert!(vault.open(&Passphrase::new(v.clone())).await.is_ok());
        values.push(v);
    }
    assert_eq!(values[0], values[1]);
}

vsync_orchestrate_testkit::main! {
    tests: [
        run_rotates_an_s3_vault_and_secrets_manager_on_moto,
        clean_stale_keeps_a_staged_version_the_vault_needs,
        one_secret_id_in_two_regions_is_two_stores,
    ],
}
