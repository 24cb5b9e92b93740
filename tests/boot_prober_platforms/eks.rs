//! EKS apps: pods read the passphrase from a Kubernetes Secret that External
//! Secrets fills from Secrets Manager, so a pod that starts after T1 still gets
//! the old value until ESO syncs. With a refreshInterval of an hour only the
//! restarter's force-sync can deliver it in a run, which puts the restart on the
//! delivery path. The real binary runs `plans/aws-eks.toml` (vault and store on
//! moto, the restarter on the fake API server), as `tests/e2e_eks.rs` does.

use crate::probe::{judge, rotated, Probers, Tally};
use crate::support;
use crate::support::eks::{Eks, LastChange};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::Vault;
use vsync_orchestrate_kubernetes_fake::FakeCluster;

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
    // The bridge polls every 3 ms so its own lag stays far below the window being
    // measured (it is not part of ESO).
    let eks = Eks::start(&ep, OLD, SALT, Duration::from_millis(3)).await;
    let vault = Arc::new(eks.vault.clone());
    let (cluster, namespace, external_secrets, json_key) = (
        &eks.cluster,
        &eks.namespace,
        &eks.external_secrets,
        &eks.json_key,
    );
    let store_changed = eks.store_changed.clone();
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
        let out = eks.run().output().await.unwrap();
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
    watcher.abort();
    tally.print(PLATFORM);
}
