//! `plans/aws-eks.toml` end to end: the real binary runs the example plan with its
//! S3 vault and Secrets Manager store on moto and its Kubernetes restarter on the
//! fake API server, External Secrets included (`support::eks`).

mod support;

use std::time::Duration;
use support::eks::Eks;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate_kubernetes_fake::Res;

const OLD: &str = "eks-old-passphrase-0123456789";
const SALT: &str = "EksSaltEksSaltEksSalt0123";

async fn the_eks_example_plan_runs_end_to_end() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let eks = Eks::start(&ep, OLD, SALT, Duration::from_millis(20)).await;
    let Eks {
        vault,
        sm: client,
        secret_id,
        cluster,
        namespace,
        deployments,
        external_secrets,
        json_key,
        ..
    } = &eks;
    let out = eks.run().output().await.unwrap();
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
            .secret_id(secret_id)
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
    for es in external_secrets {
        assert_eq!(
            cluster
                .state()
                .secret_value(namespace, es, json_key)
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
    for d in deployments {
        assert_eq!(state.patch_count(Res::Deployments, namespace, d), 1, "{d}");
        let dep = state.deployment(namespace, d);
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
