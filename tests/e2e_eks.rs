//! `plans/aws-eks.toml` end to end: the real binary runs the example plan with its
//! S3 vault and Secrets Manager store on moto and its Kubernetes restarter on the
//! fake API server (a kubeconfig whose context is the plan's EKS context). Only what
//! is specific to this machine is changed: the bucket and secret names, the moto
//! endpoint, a cheap key derivation, no health URLs (no apps run here; the fake's
//! controller completes the rollouts).

mod support;

use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate_kubernetes_fake::{kubeconfig, FakeCluster, Res};

const OLD: &str = "eks-old-passphrase-0123456789";
const SALT: &str = "EksSaltEksSaltEksSalt0123";

async fn the_eks_example_plan_runs_end_to_end() {
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
    let json_key = plan["store"][0]["json_key"].as_str().unwrap().to_owned();
    let profile = plan["store"][0]["profile"].as_str().unwrap().to_owned();

    // The vault and the secret, on moto.
    let (bucket, storage) = support::moto_bucket(&ep).await;
    let vault = support::seeded_vault(storage.clone(), &prefix, SALT, OLD).await;
    let client = support::moto_sm(&ep);
    let secret_id = support::unique("prod/myapp/config");
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(serde_json::json!({ &json_key: OLD, "LOG_LEVEL": "info" }).to_string())
        .send()
        .await
        .unwrap();

    // The cluster, named by the plan's own context, with the ExternalSecret the plan
    // names: the fake's External Secrets controller copies the secret's JSON member
    // into the Secret the pods read. Its provider is Secrets Manager — moto here —
    // so a bridge task copies what moto serves as AWSCURRENT into it, as ESO reads it.
    let cluster = std::sync::Arc::new(FakeCluster::start().await);
    for d in &deployments {
        cluster.state().add_deployment(&namespace, d, 2);
    }
    let external_secrets: Vec<String> = restart["external_secrets"]
        .as_array()
        .expect("the example plan names its ExternalSecrets")
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
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
    let bridge = {
        let (client, cluster, secret_id) = (client.clone(), cluster.clone(), secret_id.clone());
        tokio::spawn(async move {
            loop {
                let got = client
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .version_stage("AWSCURRENT")
                    .send()
                    .await;
                if let Ok(v) = got {
                    if let Some(s) = v.secret_string() {
                        cluster.state().set_provider_value(&secret_id, s);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    // ESO's first sync: the pods' Secret holds the old passphrase before the run.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while external_secrets.iter().any(|es| {
        cluster
            .state()
            .secret_value(&namespace, es, &json_key)
            .as_deref()
            != Some(OLD)
    }) {
        assert!(
            std::time::Instant::now() < until,
            "the fake's ESO never synced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig_path = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig_path,
        kubeconfig(&[(&context, &cluster.url())], &namespace, &context),
    )
    .unwrap();
    // The plan's AWS profile for the store and the default one for the vault (the
    // example names no vault profile), both on moto's test credentials.
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
    bridge.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (s["gen_before"].as_u64(), s["gen_after"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(stderr.contains("kubernetes"), "{stderr}");

    // The store holds the new passphrase in its JSON member; the rest is kept.
    let current: serde_json::Value = serde_json::from_str(
        client
            .get_secret_value()
            .secret_id(&secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let new = current[&json_key].as_str().unwrap().to_owned();
    assert_ne!(new, OLD);
    assert_eq!(current["LOG_LEVEL"], "info");
    assert!(!stdout.contains(&new) && !stderr.contains(&new) && !stderr.contains(OLD));
    // The pods' Secret (filled by External Secrets) was synced to the new passphrase
    // before any deployment rolled: the restart force-synced and waited.
    for es in &external_secrets {
        assert_eq!(
            cluster
                .state()
                .secret_value(&namespace, es, &json_key)
                .as_deref(),
            Some(new.as_str()),
            "{es}: the pods' Secret"
        );
    }
    let writes = cluster.state().writes();
    let synced = writes
        .iter()
        .rposition(|w| w.starts_with("sync secrets/"))
        .expect("ESO synced");
    // The pods read the synced Secret, not Secrets Manager: the window they feel
    // ends at the sync, and the summary says so.
    let rows = s["delivery"].as_array().unwrap();
    let eso = rows
        .iter()
        .find(|d| d["path"] == "synced")
        .unwrap_or_else(|| panic!("no synced delivery row: {stdout}"));
    assert_eq!(eso["slot"], "restart.1");
    let eso_ms = eso["window_ms"].as_f64().expect("measured");
    assert!(eso_ms > s["window_ms"].as_f64().unwrap(), "{stdout}");
    assert_eq!(s["delivery_window_ms"].as_f64(), Some(eso_ms));
    let first_roll = writes
        .iter()
        .position(|w| w.contains("deployments/"))
        .expect("a deployment rolled");
    assert!(synced < first_roll, "rolled before the sync: {writes:?}");
    assert_eq!(vault.open(&Passphrase::new(new)).await.unwrap().gen, 1);

    // Each deployment was restarted once, by this run, and rolled out.
    let run_id = s["run_id"].as_str().unwrap().to_owned();
    let state = cluster.state();
    for d in &deployments {
        assert_eq!(state.patch_count(Res::Deployments, &namespace, d), 1, "{d}");
        let dep = state.deployment(&namespace, d);
        let ann = dep
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap();
        assert_eq!(ann[vsync_orchestrate_kubernetes::RUN_ANNOTATION], run_id);
        let st = dep.status.unwrap();
        assert_eq!(
            (st.updated_replicas, st.available_replicas),
            (Some(2), Some(2))
        );
    }
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(2)] the_eks_example_plan_runs_end_to_end,
    ],
}
