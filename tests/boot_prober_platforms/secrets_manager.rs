//! ECS-style apps: a task reads AWSCURRENT from Secrets Manager when it starts (the
//! task definition's `secrets`, resolved at task start), so the delivery path is
//! the store itself, read at boot, and no restarter is on it. The real binary runs
//! an S3 vault and the Secrets Manager store on moto, rotating once per run.

use crate::probe::{judge, rotated, Probers, Tally};
use crate::support;
use aws_sdk_secretsmanager as sm;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::Vault;

const OLD: &str = "sm-prober-old-passphrase-0123456789";
const SALT: &str = "SmProberSaltSmProberSalt01";
const ROTATIONS: usize = 5;
/// Boots in flight at once, started this far apart: a boot (a Secrets Manager read
/// and a vault read on moto) takes longer than the window, so one at a time could
/// not see how long it is.
const PROBERS: usize = 4;
const STAGGER: Duration = Duration::from_millis(5);
const PLATFORM: &str = "secrets manager (AWSCURRENT at task start)";

/// One task start: the passphrase as ECS injects it (AWSCURRENT at that moment),
/// then the vault opened with it. A read that fails is a task that fails to start.
async fn boot(client: sm::Client, secret_id: Arc<str>, vault: Arc<Vault>) -> bool {
    let got = client
        .get_secret_value()
        .secret_id(&*secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await;
    let Some(p) = got.ok().and_then(|v| v.secret_string().map(str::to_owned)) else {
        return false;
    };
    vault.open(&Passphrase::from(p.as_str())).await.is_ok()
}

pub async fn boots_reading_awscurrent_fail_only_inside_the_delivery_window() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, storage) = support::moto_bucket(&ep).await;
    let vault = Arc::new(support::seeded_vault(storage, "shop/prod/", SALT, OLD).await);
    let client = support::moto_sm(&ep);
    let secret_id: Arc<str> = support::moto_secret(&client, "prod/shop/vsync", OLD)
        .await
        .into();

    let dir = tempfile::tempdir().unwrap();
    let plan = support::moto_sm_plan(dir.path(), &ep, &bucket, &secret_id, "");

    let mut tally = Tally::default();
    for i in 0..ROTATIONS {
        let probers = {
            let (client, secret_id, vault) = (client.clone(), secret_id.clone(), vault.clone());
            let boot = move || boot(client.clone(), secret_id.clone(), vault.clone());
            Probers::start(PROBERS, Duration::from_millis(2), STAGGER, boot).await
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
            .args(["run", "--yes", "--output", "json"])
            .arg(&plan)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("VSYNC_TEST_SALT", SALT)
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL", &ep)
            .output()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let boots = probers.stop().await;
        let r = rotated(&format!("{PLATFORM} rotation {i}"), &out, i as u64 + 1);
        let delivery = r.delivery_ms;
        let store = r.store_ms;
        let judged = judge(&format!("{PLATFORM} rotation {i}"), &boots, delivery);
        println!(
            "{PLATFORM} rotation {i}: the failed boots show apps felt at least {:?}",
            judged.felt
        );
        tally.add(PLATFORM, &judged, delivery, store);
    }
    tally.print(PLATFORM);
}
