//! Preflight on workloads that mount the Secrets Store CSI driver: it names the
//! workload and its SecretProviderClass, says that pods the restart starts get the
//! new passphrase (the window ends at T1 for them), what the driver's rotation flags
//! mean for running pods, and that env vars from a `secretObjects` Secret change
//! only with the restart. Information only: nothing is refused, nothing is written.

mod common;

use common::*;
use serde_json::json;
use vsync_orchestrate_api::Preflight;

const CLASS: &str = "vsync";
const SYNCED: &str = "vsync-synced";
/// A provider parameter: preflight must never print a class's parameters.
const PARAMETER: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:myapp/prod";

fn class(secret_objects: bool) -> serde_json::Value {
    let mut spc = json!({"metadata": {"name": CLASS}, "spec": {
        "provider": "aws",
        "parameters": {"objects": format!("- objectName: \"{PARAMETER}\"\n  objectAlias: passphrase\n")}}});
    if secret_objects {
        spc["spec"]["secretObjects"] = json!([{"secretName": SYNCED, "type": "Opaque",
            "data": [{"objectName": "passphrase", "key": "VSYNC_PASSPHRASE"}]}]);
    }
    spc
}

async fn preflight(env: &Env, deployments: &[&str]) -> Preflight {
    env.deployments(deployments).preflight().await.unwrap()
}

/// The warnings that mention the driver or its classes.
fn about_csi(pf: &Preflight) -> Vec<String> {
    pf.warnings
        .iter()
        .filter(|w| w.contains("Secrets Store CSI") || w.contains("secretproviderclass"))
        .cloned()
        .collect()
}

fn one<'a>(warnings: &'a [String], needle: &str) -> &'a str {
    let hits: Vec<&String> = warnings.iter().filter(|w| w.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "{needle:?} in {warnings:#?}");
    hits[0]
}

#[tokio::test]
async fn a_mounted_class_with_secret_objects_is_explained_with_the_drivers_rotation() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_csi_deployment(NS, "api", 2, CLASS).env_from_secret(
            Res::Deployments,
            NS,
            "api",
            "VSYNC_PASSPHRASE",
            SYNCED,
            "VSYNC_PASSPHRASE",
        );
        s.add_deployment(NS, "web", 1);
        s.add_secret_provider_class(NS, class(true));
        s.add_csi_driver(
            "csi-secrets-store",
            &[
                "--enable-secret-rotation=true",
                "--rotation-poll-interval=30s",
            ],
        );
    }
    let pf = preflight(&env, &["api", "web"]).await;
    let w = about_csi(&pf);
    assert_eq!(w.len(), 3, "{w:#?}");

    let mounts = one(&w, "mounts secretproviderclass/vsync");
    assert!(
        mounts.starts_with(
            "deployment/api mounts secretproviderclass/vsync (Secrets Store CSI driver, provider aws)"
        ),
        "{mounts}"
    );
    assert!(
        mounts.contains("the pods this restart starts after T1 get the new passphrase"),
        "{mounts}"
    );
    assert!(
        mounts.contains("for new pods the window apps feel ends at T1"),
        "{mounts}"
    );

    let synced = one(&w, "secretObjects");
    assert!(synced.contains("syncs secret/vsync-synced"), "{synced}");
    assert!(
        synced.contains("only while a pod mounts the class"),
        "{synced}"
    );
    assert!(synced.contains("change only with the restart"), "{synced}");
    assert!(
        synced.contains("deployment/api takes env vars from secret/vsync-synced"),
        "{synced}"
    );

    let rotation = one(&w, "rotates mounted files");
    assert!(
        rotation.contains("daemonset kube-system/csi-secrets-store"),
        "{rotation}"
    );
    assert!(
        rotation.contains("--rotation-poll-interval=30s"),
        "{rotation}"
    );
    assert!(rotation.contains("up to 30s after T1"), "{rotation}");

    // The workload without a driver volume is not named; the class's parameters
    // are never printed; preflight wrote nothing.
    assert!(w.iter().all(|x| !x.contains("deployment/web")), "{w:#?}");
    let all = format!("{pf:?}");
    assert!(!all.contains(PARAMETER), "{all}");
    assert_eq!(env.fake.state().writes(), Vec::<String>::new());
}

#[tokio::test]
async fn workloads_sharing_a_class_are_named_together_and_rotation_off_is_said() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_csi_deployment(NS, "api", 2, CLASS);
        s.add_csi_deployment(NS, "worker", 1, CLASS);
        s.add_secret_provider_class(NS, class(false));
        // The Helm chart passes no rotation flag unless asked: the default, off.
        s.add_csi_driver("secrets-store-csi-driver", &[]);
    }
    let pf = preflight(&env, &["api", "worker"]).await;
    let w = about_csi(&pf);
    assert_eq!(w.len(), 2, "{w:#?}");
    one(
        &w,
        "deployment/api, deployment/worker mount secretproviderclass/vsync",
    );
    let rotation = one(&w, "does not rotate mounted files");
    assert!(
        rotation.contains(
            "daemonset kube-system/secrets-store-csi-driver: no --enable-secret-rotation: off, the default"
        ),
        "{rotation}"
    );
    assert!(
        rotation.contains("running pods keep the file they mounted, with the old passphrase, until the restart replaces them"),
        "{rotation}"
    );
    assert!(w.iter().all(|x| !x.contains("secretObjects")), "{w:#?}");
}

#[tokio::test]
async fn no_driver_volume_means_no_such_warning_and_no_lookup() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_deployment(NS, "web", 2);
        s.add_secret_provider_class(NS, class(true));
        s.add_csi_driver("csi-secrets-store", &["--enable-secret-rotation=true"]);
    }
    let pf = preflight(&env, &["web"]).await;
    assert_eq!(about_csi(&pf), Vec::<String>::new(), "{:#?}", pf.warnings);
    let asked: Vec<String> = env
        .fake
        .http()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p.contains("secretproviderclasses") || p.contains("kube-system"))
        .collect();
    assert_eq!(asked, Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_class_is_named_with_the_command_to_look() {
    let env = Env::new("prod").await;
    env.fake.state().add_csi_deployment(NS, "api", 2, CLASS);
    // Information, not a refusal: preflight succeeds.
    let pf = preflight(&env, &["api"]).await;
    let w = about_csi(&pf);
    let missing = one(&w, "was not found");
    assert!(
        missing.starts_with(
            "secretproviderclass/vsync, mounted by deployment/api, was not found in namespace shop"
        ),
        "{missing}"
    );
    assert!(
        missing.contains("secretproviderclasses.secrets-store.csi.x-k8s.io \"vsync\" not found"),
        "{missing}"
    );
    assert!(
        missing.ends_with(
            "look: kubectl get secretproviderclass vsync -n shop --context prod -o yaml"
        ),
        "{missing}"
    );
    // No driver DaemonSet in kube-system: the settings are unknown, with what to check.
    let unknown = one(&w, "rotation settings are unknown");
    assert!(
        unknown.contains("no DaemonSet in kube-system runs the driver's secrets-store container"),
        "{unknown}"
    );
    assert!(
        unknown.contains("--enable-secret-rotation (off by default)")
            && unknown.contains("--rotation-poll-interval (default 2m)"),
        "{unknown}"
    );
    assert!(
        unknown.contains("kubectl get daemonsets -n kube-system --context prod"),
        "{unknown}"
    );
}

#[tokio::test]
async fn without_the_drivers_crds_the_class_is_missing_with_the_servers_answer() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_csi_deployment(NS, "api", 2, CLASS);
        s.secrets_store_absent = true;
    }
    let pf = preflight(&env, &["api"]).await;
    let missing = one(&pf.warnings, "was not found");
    assert!(
        missing.contains("the server could not find the requested resource"),
        "{missing}"
    );
}

#[tokio::test]
async fn rbac_that_hides_the_class_and_the_driver_is_said_not_refused() {
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_csi_deployment(NS, "api", 2, CLASS);
        s.add_secret_provider_class(NS, class(true));
        s.add_csi_driver("csi-secrets-store", &["--enable-secret-rotation=true"]);
        // The Role of the restarter's README section: no secretproviderclasses, no
        // daemonsets (the fake's rules are not per namespace, so kube-system's
        // DaemonSets are hidden with the plan namespace's).
        s.set_rbac(Some(vec![
            Rule {
                api_groups: vec!["apps".into()],
                resources: vec!["deployments".into()],
                verbs: vec!["get".into(), "list".into(), "watch".into(), "patch".into()],
                ..Default::default()
            },
            Rule {
                api_groups: vec!["".into()],
                resources: vec!["pods".into(), "pods/log".into()],
                verbs: vec!["get".into(), "list".into()],
                ..Default::default()
            },
        ]));
    }
    let pf = preflight(&env, &["api"]).await;
    let w = about_csi(&pf);
    let unreadable = one(&w, "could not read secretproviderclass/vsync");
    assert!(
        unreadable.contains(
            "RBAC does not allow get secretproviderclasses.secrets-store.csi.x-k8s.io vsync in namespace shop"
        ),
        "{unreadable}"
    );
    let unknown = one(&w, "rotation settings are unknown");
    assert!(
        unknown.contains("RBAC does not allow list daemonsets.apps in kube-system"),
        "{unknown}"
    );
    // The list was refused, then each usual name was tried.
    let denied = env.fake.state().denials();
    for d in [
        "get secretproviderclasses vsync",
        "list daemonsets",
        "get daemonsets csi-secrets-store",
        "get daemonsets secrets-store-csi-driver",
    ] {
        assert!(denied.iter().any(|x| x == d), "{d:?} in {denied:?}");
    }
}
