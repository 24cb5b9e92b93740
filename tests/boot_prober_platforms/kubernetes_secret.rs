//! Kubernetes Secret as the store: pods read the passphrase from a key of a Secret
//! (`secretKeyRef`) when they start, and the `kubernetes_secret` store writes that
//! key itself, in one patch conditional on the resourceVersion. Nothing stands
//! between the store and a starting pod, so the window apps feel must be the store
//! window (T0 → T1) and nothing more. The real binary runs a `dir` vault (fast
//! boots, a sharp judge) and the store on the fake API server; the plan restarts
//! nothing, since the pods that matter here are the ones starting anyway.

use crate::probe::{judge, rotated, Probers, Tally};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::engine::build;
use vsync_orchestrate::plan;
use vsync_orchestrate::vault::{Layout, SeedContent, Vault};
use vsync_orchestrate_kubernetes_fake::{kubeconfig, FakeCluster};

const OLD: &str = "k8s-secret-prober-old-passphrase-0123456789";
const CONTEXT: &str = "prod";
const NAMESPACE: &str = "shop";
const SECRET: &str = "shop-vsync";
const KEY: &str = "VSYNC_PASSPHRASE";
/// A key of the same Secret the rotation must leave as it is.
const OTHER_KEY: &str = "DATABASE_URL";
const OTHER_VALUE: &str = "postgres://shop";
const ROTATIONS: usize = 5;
/// Boots in flight at once, started this far apart: one activation request is
/// about as long as a boot, so one prober alone could not show how long it is.
const PROBERS: usize = 4;
const STAGGER: Duration = Duration::from_millis(1);
const PLATFORM: &str = "kubernetes_secret (a Secret pods read at start)";

/// One pod start: the key as the kubelet resolves `secretKeyRef` at that moment,
/// then the vault opened with it. A Secret without the key is a pod that cannot
/// start (`CreateContainerConfigError`).
async fn boot(cluster: Arc<FakeCluster>, vault: Arc<Vault>) -> bool {
    let value = cluster.state().secret_value(NAMESPACE, SECRET, KEY);
    match value {
        Some(p) => vault.open(&Passphrase::new(p)).await.is_ok(),
        None => false,
    }
}

fn plan_text(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"env = "prod"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "shop/prod/"
salt = {{ file = "{d}/salt" }}
iterations = 2000
[passphrase]
old = "store"
note = "boot prober on the Kubernetes fake"
[[store]]
type = "kubernetes_secret"
kubeconfig = "{d}/kubeconfig"
context = "{CONTEXT}"
namespace = "{NAMESPACE}"
secret = "{SECRET}"
key = "{KEY}"
"#
    )
}

pub async fn boots_reading_the_secret_fail_only_inside_the_store_window() {
    let cluster = Arc::new(FakeCluster::start().await);
    cluster
        .state()
        .add_secret(NAMESPACE, SECRET, &[(KEY, OLD), (OTHER_KEY, OTHER_VALUE)]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("kubeconfig"),
        kubeconfig(&[(CONTEXT, &cluster.url())], NAMESPACE, CONTEXT),
    )
    .unwrap();
    std::fs::write(root.join("salt"), "K8sSecretProberSaltK8sSec").unwrap();
    let plan_path = root.join("plan.toml");
    std::fs::write(&plan_path, plan_text(root)).unwrap();
    // `run` never creates a vault directory; seeding is what makes one.
    std::fs::create_dir_all(root.join("vault")).unwrap();
    let loaded = plan::load(&plan_path).unwrap();
    let vault = Arc::new(build::vault(&loaded.plan).await.unwrap());
    vault
        .seed(
            Layout::Runtime,
            &Passphrase::from(OLD),
            &SeedContent::Json {
                kv: [("DATABASE_URL".to_owned(), OTHER_VALUE.to_owned())].into(),
                assets: Default::default(),
            },
        )
        .await
        .unwrap();

    let mut tally = Tally::default();
    let mut stores: Vec<f64> = Vec::new();
    let mut boot_times = Vec::new();
    for i in 0..ROTATIONS {
        let old = cluster
            .state()
            .secret_value(NAMESPACE, SECRET, KEY)
            .unwrap();
        let patches = cluster.state().secret_patches(NAMESPACE, SECRET);
        let probers = {
            let (cluster, vault) = (cluster.clone(), vault.clone());
            let boot = move || boot(cluster.clone(), vault.clone());
            Probers::start(PROBERS, Duration::from_millis(1), STAGGER, boot).await
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
            .args(["run", "--yes", "--output", "json"])
            .arg(&plan_path)
            .env_remove("KUBECONFIG")
            .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
            .output()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let boots = probers.stop().await;
        let r = rotated(&format!("{PLATFORM} rotation {i}"), &out, i as u64 + 1);
        let (s, stdout) = (&r.summary, &r.stdout);

        // The pods' key holds a new value, written by one patch; the Secret's
        // other key is as it was, and the staged copy is gone.
        let st = cluster.state();
        let new = st.secret_value(NAMESPACE, SECRET, KEY).unwrap();
        assert_ne!(new, old, "rotation {i}: the Secret's key did not change");
        assert_eq!(
            st.secret_patches(NAMESPACE, SECRET),
            patches + 1,
            "rotation {i}: activation was not one patch of the live Secret"
        );
        assert_eq!(
            st.secret_value(NAMESPACE, SECRET, OTHER_KEY).as_deref(),
            Some(OTHER_VALUE),
            "rotation {i}"
        );
        assert!(
            st.secret_names(NAMESPACE) == [SECRET],
            "rotation {i}: Secrets left behind: {:?}",
            st.secret_names(NAMESPACE)
        );
        drop(st);

        // One path, read at boot, and its window is the store's to the microsecond.
        let store = r.store_ms;
        let rows = s["delivery"].as_array().expect("the delivery rows");
        assert_eq!(rows.len(), 1, "rotation {i}: {}", s["delivery"]);
        assert_eq!(rows[0]["slot"], "store.1", "{}", rows[0]);
        assert_eq!(rows[0]["path"], "at_boot", "{}", rows[0]);
        assert_eq!(rows[0]["window_ms"].as_f64(), Some(store), "{}", rows[0]);
        let delivery = r.delivery_ms;
        assert_eq!(delivery, store, "rotation {i}: {stdout}");

        let judged = judge(&format!("{PLATFORM} rotation {i}"), &boots, delivery);
        println!(
            "{PLATFORM} rotation {i}: the failed boots show apps felt at least {:?}",
            judged.felt
        );
        stores.push(store);
        boot_times.push(judged.longest_boot);
        tally.add(PLATFORM, &judged, delivery, store);
    }
    tally.print(PLATFORM);
    let min = stores.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = stores.iter().cloned().fold(0.0, f64::max);
    println!(
        "{PLATFORM}: store window {min:.3}–{max:.3} ms; a boot takes {:?}–{:?} at its longest per rotation",
        boot_times.iter().min().unwrap(),
        boot_times.iter().max().unwrap()
    );
}
