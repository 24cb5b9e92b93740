//! `plans/aws-eks.toml` on this machine, for the tests that run it with the real
//! binary: its S3 vault and Secrets Manager store on moto, its Kubernetes restarter
//! on the fake API server (a kubeconfig whose context is the plan's EKS context),
//! and the plan's ExternalSecrets, which the fake's External Secrets controller
//! syncs from Secrets Manager. Only what is specific to this machine is changed:
//! the bucket and secret names, the moto endpoint, a cheap key derivation, no
//! health URLs (no apps run here; the fake's controller completes the rollouts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vsync_orchestrate::vault::Vault;
use vsync_orchestrate_kubernetes_fake::{kubeconfig, FakeCluster};

/// When a watched value last changed, and to what.
#[derive(Default)]
pub struct LastChange(Mutex<Option<(String, Instant)>>);

impl LastChange {
    pub fn saw(&self, value: &str) {
        let mut last = self.0.lock().unwrap();
        if last.as_ref().is_none_or(|(v, _)| v != value) {
            *last = Some((value.to_owned(), Instant::now()));
        }
    }

    pub fn at(&self) -> Option<Instant> {
        self.0.lock().unwrap().as_ref().map(|(_, at)| *at)
    }
}

/// The example plan's world, seeded with `old` everywhere and ESO's first sync
/// done.
pub struct Eks {
    pub vault: Vault,
    pub sm: aws_sdk_secretsmanager::Client,
    pub secret_id: String,
    pub cluster: Arc<FakeCluster>,
    pub namespace: String,
    pub deployments: Vec<String>,
    pub external_secrets: Vec<String>,
    /// The JSON member of the secret that holds the passphrase, and the key of
    /// the pods' Secret ESO writes it to.
    pub json_key: String,
    /// What the bridge last saw Secrets Manager serve as `AWSCURRENT`.
    pub store_changed: Arc<LastChange>,
    ep: String,
    salt: String,
    dir: tempfile::TempDir,
    plan: PathBuf,
    bridge: tokio::task::JoinHandle<()>,
}

impl Eks {
    /// `bridge_every`: how often Secrets Manager's `AWSCURRENT` is copied into the
    /// fake's ESO provider (the bridge stands in for ESO's own provider read; its
    /// lag is not ESO's).
    pub async fn start(ep: &str, old: &str, salt: &str, bridge_every: Duration) -> Eks {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/aws-eks.toml"),
        )
        .unwrap();
        let mut plan: toml::Table = example.parse().unwrap();
        let strings = |v: &toml::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect()
        };
        let prefix = plan["vault"]["prefix"].as_str().unwrap().to_owned();
        let restart = plan["restart"][0].as_table().unwrap().clone();
        let context = restart["context"].as_str().unwrap().to_owned();
        let namespace = restart["namespace"].as_str().unwrap().to_owned();
        let deployments = strings(&restart["deployments"]);
        let external_secrets = strings(
            restart
                .get("external_secrets")
                .expect("the example plan names its ExternalSecrets"),
        );
        let json_key = plan["store"][0]["json_key"].as_str().unwrap().to_owned();
        let profile = plan["store"][0]["profile"].as_str().unwrap().to_owned();

        // The vault and the secret, on moto.
        let (bucket, storage) = super::moto_bucket(ep).await;
        let vault = super::seeded_vault(storage, &prefix, salt, old).await;
        let sm = super::moto_sm(ep);
        let secret_id = super::unique("prod/myapp/config");
        sm.create_secret()
            .name(&secret_id)
            .secret_string(serde_json::json!({ &json_key: old, "LOG_LEVEL": "info" }).to_string())
            .send()
            .await
            .unwrap();

        // The cluster, named by the plan's own context, with the ExternalSecrets the
        // plan names, refreshing hourly: within a run only the restarter's
        // force-sync brings the new value into the Secret the pods read.
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
        let store_changed: Arc<LastChange> = Arc::default();
        let bridge = {
            let (sm, cluster, secret_id, changed) = (
                sm.clone(),
                cluster.clone(),
                secret_id.clone(),
                store_changed.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let got = sm
                        .get_secret_value()
                        .secret_id(&secret_id)
                        .version_stage("AWSCURRENT")
                        .send()
                        .await;
                    if let Some(s) = got.ok().and_then(|v| v.secret_string().map(str::to_owned)) {
                        changed.saw(&s);
                        cluster.state().set_provider_value(&secret_id, &s);
                    }
                    tokio::time::sleep(bridge_every).await;
                }
            })
        };
        // ESO's first sync: the pods' Secret holds the old passphrase before a run.
        let until = Instant::now() + Duration::from_secs(10);
        while external_secrets.iter().any(|es| {
            cluster
                .state()
                .secret_value(&namespace, es, &json_key)
                .as_deref()
                != Some(old)
        }) {
            assert!(Instant::now() < until, "the fake's ESO never synced");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kubeconfig"),
            kubeconfig(&[(&context, &cluster.url())], &namespace, &context),
        )
        .unwrap();
        // The plan's AWS profile for the store and the default one for the vault
        // (the example names no vault profile), both on moto's test credentials.
        std::fs::write(
            dir.path().join("aws-config"),
            format!("[default]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n\n[profile {profile}]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n"),
        )
        .unwrap();
        plan.insert(
            "state_dir".into(),
            dir.path().join("state").display().to_string().into(),
        );
        let v = plan["vault"].as_table_mut().unwrap();
        v.insert("bucket".into(), bucket.into());
        v.insert("endpoint".into(), ep.into());
        v.insert("iterations".into(), 2000.into());
        plan["store"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap()
            .insert("secret_id".into(), secret_id.clone().into());
        plan.remove("verify");
        let plan_path = dir.path().join("aws-eks.toml");
        std::fs::write(&plan_path, toml::to_string(&plan).unwrap()).unwrap();

        Eks {
            vault,
            sm,
            secret_id,
            cluster,
            namespace,
            deployments,
            external_secrets,
            json_key,
            store_changed,
            ep: ep.to_owned(),
            salt: salt.to_owned(),
            dir,
            plan: plan_path,
            bridge,
        }
    }

    /// `vsync-orchestrate run --yes --output json` on the plan, with only the
    /// kubeconfig and the AWS config files above for credentials.
    pub fn run(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
        c.args(["run", "--yes", "--output", "json"])
            .arg(&self.plan)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("AWS_CONFIG_FILE", self.dir.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-credentials"),
            )
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL", &self.ep)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("VSYNC_SALT", &self.salt);
        c
    }

    /// What the pods' Secret (the first ExternalSecret's) holds now.
    pub fn pods_value(&self) -> Option<String> {
        self.cluster.state().secret_value(
            &self.namespace,
            &self.external_secrets[0],
            &self.json_key,
        )
    }
}

impl Drop for Eks {
    fn drop(&mut self) {
        self.bridge.abort();
    }
}
