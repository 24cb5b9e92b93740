//! EKS apps: pods read the passphrase from a Kubernetes Secret that External
//! Secrets fills from Secrets Manager, so a pod that starts after T1 still gets
//! the old value until ESO syncs. With a refreshInterval of an hour only the
//! restarter's force-sync can deliver it in a run, which puts the restart on the
//! delivery path. The real binary runs `plans/aws-eks.toml` (vault and store on
//! moto, the restarter on the fake API server), as `tests/e2e_eks.rs` does.

use crate::probe::{judge, rotated, Probers, Tally};
use crate::support;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::Vault;
use vsync_orchestrate_kubernetes_fake::{kubeconfig, FakeCluster};

const OLD: &str = "eks-prober-old-passphrase-0123456789";
const SALT: &str = "EksProberSaltEksProberSalt";
const ROTATIONS: usize = 4;
/// Boots in flight at once, started this far apart: a boot (a vault read on moto)
/// takes longer than the window, so one at a time could not see how long it is.
const PROBERS: usize = 4;
const STAGGER: Duration = Duration::from_millis(5);
const PLATFORM: &str = "eks (Secret filled by External Secrets)";
/// How far the watchers may see a change late or early: the bridge reads Secrets
/// Manager (one request, slow under load), and AWSCURRENT flips before the
/// activation's answer reaches the tool.
const WATCH_SLACK_MS: f64 = 50.0;

/// When a watched value last changed: the bridge's view of AWSCURRENT and the
/// pods' Secret, so the run prints how long the Secret lagged the store.
#[derive(Default)]
struct LastChange(Mutex<Option<(String, Instant)>>);

impl LastChange {
    fn saw(&self, value: &str) {
        let mut last = self.0.lock().unwrap();
        if last.as_ref().is_none_or(|(v, _)| v != value) {
            *last = Some((value.to_owned(), Instant::now()));
        }
    }

    fn at(&self) -> Option<Instant> {
        self.0.lock().unwrap().as_ref().map(|(_, at)| *at)
    }
}

/// Where a pod's passphrase comes from: one key of the ExternalSecret's target
/// Secret.
struct PodSource {
    cluster: Arc<FakeCluster>,
    namespace: String,
    secret: String,
    key: String,
}

/// One pod start: the Secret's value as the kubelet mounts it at that moment, then
/// the vault opened with it. A Secret without the key is a pod that cannot start.
async fn boot(from: Arc<PodSource>, vault: Arc<Vault>) -> bool {
    let value = from
        .cluster
        .state()
        .secret_value(&from.namespace, &from.secret, &from.key);
    match value {
        Some(p) => vault.open(&Passphrase::from(p.as_str())).await.is_ok(),
        None => false,
    }
}

pub async fn boots_reading_the_synced_secret_fail_only_inside_the_delivery_window() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/aws-eks.toml"),
    )
    .unwrap();
    let mut plan: toml::Table = example.parse().unwrap();
    let prefix = plan["vault"]["prefix"].as_str().unwrap().to_owned();
    let restart = plan["restart"][0].as_table().unwrap().clone();
    let context = restart["context"].as_str().unwrap().to_owned();
    let namespace = restart["namespace"].as_str().unwrap().to_owned();
    let deployments: Vec<String> = restart["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let external_secrets: Vec<String> = restart["external_secrets"]
        .as_array()
        .expect("the example plan names its ExternalSecrets")
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    let json_key = plan["store"][0]["json_key"].as_str().unwrap().to_owned();
    let profile = plan["store"][0]["profile"].as_str().unwrap().to_owned();

    let (bucket, storage) = support::moto_bucket(&ep).await;
    let vault = Arc::new(support::seeded_vault(storage, &prefix, SALT, OLD).await);
    let client = support::moto_sm(&ep);
    let secret_id = support::unique("prod/myapp/config");
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(serde_json::json!({ &json_key: OLD, "LOG_LEVEL": "info" }).to_string())
        .send()
        .await
        .unwrap();

    // The cluster, with the plan's ExternalSecrets refreshing only hourly: within a
    // run, only the restarter's force-sync can bring the new value into the Secret.
    let cluster = Arc::new(FakeCluster::start().await);
    for d in &deployments {
        cluster.state().add_deployment(&namespace, d, 2);
    }
    for es in &external_secrets {
        cluster.state().add_external_secret(
            &namespace,
            serde_json::json!({"metadata": {"name": es}, "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
                "target": {"name": es},
                "data": [{"secretKey": &json_key,
                          "remoteRef": {"key": &secret_id, "property": &json_key}}]}}),
        );
    }
    // ESO's provider is Secrets Manager (moto here): the bridge copies AWSCURRENT
    // into the fake's provider as ESO would read it. It polls every 3 ms so its own
    // lag stays far below the window being measured (it is not part of ESO).
    let store_changed: Arc<LastChange> = Arc::default();
    let bridge = {
        let (client, cluster, secret_id, changed) = (
            client.clone(),
            cluster.clone(),
            secret_id.clone(),
            store_changed.clone(),
        );
        tokio::spawn(async move {
            loop {
                let got = client
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .version_stage("AWSCURRENT")
                    .send()
                    .await;
                if let Some(s) = got.ok().and_then(|v| v.secret_string().map(str::to_owned)) {
                    changed.saw(&s);
                    cluster.state().set_provider_value(&secret_id, &s);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let secret_changed: Arc<LastChange> = Arc::default();
    let watcher = {
        let (cluster, changed, ns, es, key) = (
            cluster.clone(),
            secret_changed.clone(),
            namespace.clone(),
            external_secrets[0].clone(),
            json_key.clone(),
        );
        tokio::spawn(async move {
            loop {
                let v = cluster.state().secret_value(&ns, &es, &key);
                if let Some(v) = v {
                    changed.saw(&v);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // ESO's first sync: the pods' Secret holds the old passphrase before any run.
    let until = Instant::now() + Duration::from_secs(10);
    while external_secrets.iter().any(|es| {
        cluster
            .state()
            .secret_value(&namespace, es, &json_key)
            .as_deref()
            != Some(OLD)
    }) {
        assert!(Instant::now() < until, "the fake's ESO never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig_path = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig_path,
        kubeconfig(&[(&context, &cluster.url())], &namespace, &context),
    )
    .unwrap();
    let aws_config = dir.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!("[default]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n\n[profile {profile}]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n"),
    )
    .unwrap();
    plan.insert(
        "state_dir".into(),
        dir.path().join("state").display().to_string().into(),
    );
    let v = plan["vault"].as_table_mut().unwrap();
    v.insert("bucket".into(), bucket.into());
    v.insert("endpoint".into(), ep.clone().into());
    v.insert("iterations".into(), 2000.into());
    plan["store"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap()
        .insert("secret_id".into(), secret_id.clone().into());
    plan.remove("verify");
    let plan_path = dir.path().join("aws-eks.toml");
    std::fs::write(&plan_path, toml::to_string(&plan).unwrap()).unwrap();

    // The pods of every deployment read the plan's first ExternalSecret's Secret.
    let source = Arc::new(PodSource {
        cluster: cluster.clone(),
        namespace: namespace.clone(),
        secret: external_secrets[0].clone(),
        key: json_key.clone(),
    });
    let mut tally = Tally::default();
    for i in 0..ROTATIONS {
        let probers = {
            let (source, vault) = (source.clone(), vault.clone());
            let boot = move || boot(source.clone(), vault.clone());
            Probers::start(PROBERS, Duration::from_millis(2), STAGGER, boot).await
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
            .args(["run", "--yes", "--output", "json"])
            .arg(&plan_path)
            .env("KUBECONFIG", &kubeconfig_path)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-credentials"),
            )
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL", &ep)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("VSYNC_SALT", SALT)
            .output()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let boots = probers.stop().await;
        let r = rotated(&format!("{PLATFORM} rotation {i}"), &out, i as u64 + 1);
        let delivery = r.delivery_ms;
        let store = r.store_ms;
        let lag =
            (secret_changed.at().unwrap()).saturating_duration_since(store_changed.at().unwrap());
        let judged = judge(&format!("{PLATFORM} rotation {i}"), &boots, delivery);
        println!(
            "{PLATFORM} rotation {i}: the pods' Secret changed {lag:?} after AWSCURRENT did; the failed boots show apps felt at least {:?}",
            judged.felt
        );
        // The Secret holds the old value until the restarter's force-sync, after
        // T1: the window the run reports must end later than the store's, by at
        // least the lag seen here (the watchers poll, so allow their period).
        assert!(
            store_changed.at().unwrap() < secret_changed.at().unwrap(),
            "{PLATFORM} rotation {i}: the pods' Secret changed before Secrets Manager did"
        );
        assert!(
            delivery - store + WATCH_SLACK_MS >= lag.as_secs_f64() * 1000.0,
            "{PLATFORM} rotation {i}: the Secret changed {lag:?} after AWSCURRENT, but the run reports only {:.3} ms beyond the store window",
            delivery - store
        );
        tally.add(PLATFORM, &judged, delivery, store);
    }
    bridge.abort();
    watcher.abort();
    tally.print(PLATFORM);
}
