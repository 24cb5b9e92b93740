//! Secrets Store CSI driver awareness: preflight says when pods that mount the
//! driver see the new passphrase. Information only; nothing here refuses a run.
//!
//! A pod can read `VSYNC_PASSPHRASE` from a `csi` volume of the driver
//! `secrets-store.csi.k8s.io` whose `volumeAttributes.secretProviderClass` names a
//! `SecretProviderClass` in the pod's namespace. What that means for the window:
//!
//! * The driver fetches the file from the provider when the pod starts ("on pod
//!   start and restart, the Secrets Store CSI driver communicates with the provider
//!   … to retrieve the secret content",
//!   https://secrets-store-csi-driver.sigs.k8s.io/concepts.html). A pod the restart
//!   starts after T1 therefore mounts the new passphrase: for new pods the window
//!   ends at T1, as for any store read at boot.
//! * A running pod's file changes only when the driver runs with
//!   `--enable-secret-rotation` (an alpha feature, off by default), and then at the
//!   next poll, every `--rotation-poll-interval` (default `2m`)
//!   (https://secrets-store-csi-driver.sigs.k8s.io/topics/secret-auto-rotation.html;
//!   the flags' defaults in the driver's `cmd/secrets-store-csi-driver/main.go`:
//!   `flag.Bool("enable-secret-rotation", false, …)`,
//!   `flag.Duration("rotation-poll-interval", 2*time.Minute, …)`). Even then an app
//!   sees it only if it re-reads the file.
//! * `spec.secretObjects` makes the driver mirror the mounted content into a
//!   Kubernetes Secret; "the secrets will only sync once you start a pod mounting the
//!   secrets … When all the pods consuming the secret are deleted, the Kubernetes
//!   secret is also deleted"
//!   (https://secrets-store-csi-driver.sigs.k8s.io/topics/sync-as-kubernetes-secret.html).
//!   Env vars taken from it are read when a container starts: "the pod needs to be
//!   restarted to get the latest secret as environment variable" (the rotation page).
//!
//! The rotation flags are args of the `secrets-store` container of the driver's
//! DaemonSet in `kube-system` (`csi-secrets-store` in the driver's
//! `deploy/secrets-store-csi-driver.yaml`; the Helm chart names it after the release
//! and passes the flags only when set). Reading them needs RBAC in `kube-system` that
//! a run's Role rarely has, so they are read best-effort and called unknown otherwise.
//! The class is read as `secrets-store.csi.x-k8s.io/v1` (the driver's CRD:
//! namespaced, plural `secretproviderclasses`). Its `parameters` are never printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::Client;
use serde::Serialize;
use vsync_orchestrate_api::ErrorKind;

use crate::error::bounded;
use crate::workload::WorkloadRef;

/// The driver's CSI name, as pods write it in `volumes[].csi.driver`.
pub(crate) const DRIVER: &str = "secrets-store.csi.k8s.io";
const GROUP: &str = "secrets-store.csi.x-k8s.io";
const VERSION: &str = "v1";
const KIND: &str = "SecretProviderClass";
const PLURAL: &str = "secretproviderclasses";
const DRIVER_NAMESPACE: &str = "kube-system";
/// The driver container whose args carry the rotation flags.
const DRIVER_CONTAINER: &str = "secrets-store";
/// The DaemonSet names the driver's manifest and common installs use, tried one by
/// one when RBAC allows `get` of them but not `list`.
const DRIVER_DAEMONSETS: &[&str] = &["csi-secrets-store", "secrets-store-csi-driver"];
const DEFAULT_POLL: &str = "2m";
/// Best-effort reads: a slow answer must not hold preflight for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one workload's pod template takes from the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mounts {
    /// The SecretProviderClasses its driver volumes name, in volume order.
    classes: Vec<String>,
    /// A driver volume names no class: the driver has nothing to mount.
    unnamed: bool,
    /// Secrets its containers read into env vars (`secretKeyRef`, `envFrom`).
    env_secrets: BTreeSet<String>,
}

/// The driver volumes of a workload's pod template; `None` when it mounts none.
pub(crate) fn mounts<K: Serialize>(obj: &K) -> Option<Mounts> {
    let v = serde_json::to_value(obj).ok()?;
    let spec: PodSpec = serde_json::from_value(v["spec"]["template"]["spec"].clone()).ok()?;
    let mut m = Mounts::default();
    for csi in spec.volumes.iter().flatten().filter_map(|v| v.csi.as_ref()) {
        if csi.driver != DRIVER {
            continue;
        }
        match csi
            .volume_attributes
            .as_ref()
            .and_then(|a| a.get("secretProviderClass"))
            .filter(|c| !c.is_empty())
        {
            Some(c) if !m.classes.contains(c) => m.classes.push(c.clone()),
            Some(_) => {}
            None => m.unnamed = true,
        }
    }
    if m.classes.is_empty() && !m.unnamed {
        return None;
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        m.env_secrets.extend(env_secrets(c));
    }
    Some(m)
}

fn env_secrets(c: &Container) -> impl Iterator<Item = String> + '_ {
    let by_key = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.clone());
    let whole = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.secret_ref.as_ref())
        .map(|r| r.name.clone());
    by_key.chain(whole)
}

/// The driver's rotation flags as one DaemonSet runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flags {
    daemonset: String,
    /// `None`: the flag is absent (off, the default).
    enabled: Option<bool>,
    /// `None`: the flag is absent (`2m`, the default).
    interval: Option<String>,
}

/// What is known of the driver's rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rotation {
    Read(Vec<Flags>),
    Unknown(String),
}

/// Go's `strconv.ParseBool`, which `flag.Bool` uses.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The rotation flags in a container's command line, as Go's `flag` package reads
/// them: `-name` or `--name`, `=value`, a bare bool flag meaning true, a duration's
/// value in the next argument, the last occurrence winning.
fn flags(daemonset: &str, args: &[String]) -> std::result::Result<Flags, String> {
    let mut f = Flags {
        daemonset: daemonset.to_owned(),
        enabled: None,
        interval: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match name {
            "enable-secret-rotation" => {
                f.enabled = Some(match value {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        format!("daemonset {DRIVER_NAMESPACE}/{daemonset} has --enable-secret-rotation={v}, not a boolean")
                    })?,
                });
            }
            "rotation-poll-interval" => {
                f.interval = value.map(str::to_owned).or_else(|| it.next().cloned());
            }
            _ => {}
        }
    }
    Ok(f)
}

/// The driver's container in a DaemonSet, if it runs the driver.
fn driver_container(ds: &DaemonSet) -> Option<&Container> {
    ds.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| {
            c.name == DRIVER_CONTAINER
                || c.image
                    .as_deref()
                    .is_some_and(|i| i.contains("csi-secrets-store/driver"))
        })
}

fn read_flags(ds: &DaemonSet) -> Option<std::result::Result<Flags, String>> {
    let c = driver_container(ds)?;
    let args: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    Some(flags(ds.metadata.name.as_deref().unwrap_or(""), &args))
}

fn collect(dss: &[DaemonSet]) -> Rotation {
    let mut read = Vec::new();
    for r in dss.iter().filter_map(read_flags) {
        match r {
            Ok(f) => read.push(f),
            Err(why) => return Rotation::Unknown(why),
        }
    }
    if read.is_empty() {
        Rotation::Unknown(format!(
            "no DaemonSet in {DRIVER_NAMESPACE} runs the driver's {DRIVER_CONTAINER} container \
             (a managed add-on, or installed in another namespace?)"
        ))
    } else {
        Rotation::Read(read)
    }
}

/// The driver's rotation settings, best-effort: a list of `kube-system`'s
/// DaemonSets, else a get of the usual names.
async fn rotation(client: &Client) -> Rotation {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), DRIVER_NAMESPACE);
    let listed = bounded(
        &format!("list daemonsets -n {DRIVER_NAMESPACE}"),
        REQUEST_TIMEOUT,
        api.list(&ListParams::default()),
    )
    .await;
    let list_error = match listed {
        Ok(l) => return collect(&l.items),
        Err(e) if e.kind() == ErrorKind::Permission => {
            format!("RBAC does not allow list daemonsets.apps in {DRIVER_NAMESPACE}")
        }
        Err(e) => return Rotation::Unknown(e.message().to_owned()),
    };
    let mut found = Vec::new();
    for name in DRIVER_DAEMONSETS {
        let got = bounded(
            &format!("get daemonset/{name} -n {DRIVER_NAMESPACE}"),
            REQUEST_TIMEOUT,
            api.get_opt(name),
        )
        .await;
        if let Ok(Some(ds)) = got {
            found.push(ds);
        }
    }
    if found.is_empty() {
        Rotation::Unknown(format!(
            "{list_error}, nor get of daemonset {}",
            DRIVER_DAEMONSETS.join(" or ")
        ))
    } else {
        collect(&found)
    }
}

/// One class as read.
enum Class {
    Read {
        provider: String,
        /// `spec.secretObjects[].secretName`.
        synced: Vec<String>,
    },
    Missing(String),
    Unreadable(String),
}

fn resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: PLURAL.into(),
    }
}

async fn read_class(client: &Client, ns: &str, name: &str) -> Class {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource());
    let got: vsync_orchestrate_api::Result<DynamicObject> = bounded(
        &format!("get secretproviderclass/{name}"),
        REQUEST_TIMEOUT,
        api.get(name),
    )
    .await;
    match got {
        Ok(obj) => {
            let d = &obj.data["spec"];
            Class::Read {
                provider: d["provider"].as_str().unwrap_or("").to_owned(),
                synced: d["secretObjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["secretName"].as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Class::Missing(e.message().to_owned()),
        Err(e) if e.kind() == ErrorKind::Permission => Class::Unreadable(format!(
            "RBAC does not allow get {PLURAL}.{GROUP} {name} in namespace {ns}"
        )),
        Err(e) => Class::Unreadable(e.message().to_owned()),
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

fn prefixed(prefix: &str, items: &BTreeSet<String>) -> String {
    items
        .iter()
        .map(|s| format!("{prefix}{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Preflight: for the workloads that mount the driver, which class each mounts and
/// what the driver's settings mean for their pods. Returns warnings; never fails.
/// `kubectl_args` is the ` -n NS [--context CTX]` the commands printed use.
pub(crate) async fn preflight<'a>(
    client: &Client,
    ns: &str,
    workloads: impl IntoIterator<Item = (&'a WorkloadRef, &'a Mounts)>,
    kubectl_args: &str,
) -> Vec<String> {
    let mut by_class: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut unnamed = Vec::new();
    let mut env: Vec<(String, &BTreeSet<String>)> = Vec::new();
    for (w, m) in workloads {
        for c in &m.classes {
            if !by_class.contains_key(c.as_str()) {
                order.push(c);
            }
            by_class.entry(c).or_default().push(w.to_string());
        }
        if m.unnamed {
            unnamed.push(w.to_string());
        }
        env.push((w.to_string(), &m.env_secrets));
    }
    if order.is_empty() && unnamed.is_empty() {
        return Vec::new();
    }
    let context = kubectl_args.replacen(&format!(" -n {ns}"), "", 1);
    let mut warnings = Vec::new();
    for class in order {
        let who = &by_class[class];
        let look = format!("kubectl get secretproviderclass {class}{kubectl_args} -o yaml");
        match read_class(client, ns, class).await {
            Class::Read { provider, synced } => {
                let provider = if provider.is_empty() {
                    String::new()
                } else {
                    format!(", provider {provider}")
                };
                warnings.push(format!(
                    "{} mount{} secretproviderclass/{class} (Secrets Store CSI driver{provider}): \
                     the driver fetches the file when a pod starts, so the pods this restart \
                     starts after T1 get the new passphrase; for new pods the window apps feel \
                     ends at T1",
                    list(who),
                    if who.len() == 1 { "s" } else { "" }
                ));
                if !synced.is_empty() {
                    let synced_set: BTreeSet<String> = synced.iter().cloned().collect();
                    let readers: Vec<String> = env
                        .iter()
                        .filter(|(w, _)| who.contains(w))
                        .filter_map(|(w, s)| {
                            let hit: BTreeSet<String> =
                                s.intersection(&synced_set).cloned().collect();
                            (!hit.is_empty()).then(|| {
                                format!("{w} takes env vars from {}", prefixed("secret/", &hit))
                            })
                        })
                        .collect();
                    let readers = if readers.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", readers.join("; "))
                    };
                    warnings.push(format!(
                        "secretproviderclass/{class} also syncs {} from the mounted file \
                         (secretObjects): the driver keeps such a Secret only while a pod mounts \
                         the class, and env vars taken from it are read by kubelet when a \
                         container starts, so they change only with the restart{readers}",
                        prefixed("secret/", &synced_set)
                    ));
                }
            }
            Class::Missing(why) => warnings.push(format!(
                "secretproviderclass/{class}, mounted by {}, was not found in namespace {ns} \
                 ({why}): the driver mounts a pod's file from the class it names, so new pods \
                 cannot get the passphrase from it; look: {look}",
                list(who)
            )),
            Class::Unreadable(why) => warnings.push(format!(
                "could not read secretproviderclass/{class}, mounted by {} ({why}): whether it \
                 syncs a Secret the pods read as env vars is unknown; look: {look}",
                list(who)
            )),
        }
    }
    if !unnamed.is_empty() {
        warnings.push(format!(
            "{} mount{} the Secrets Store CSI driver without \
             volumeAttributes.secretProviderClass: the driver has no class to mount",
            list(&unnamed),
            if unnamed.len() == 1 { "s" } else { "" }
        ));
    }
    warnings.extend(rotation_warnings(&rotation(client).await, &context));
    warnings
}

/// What running pods see, from what is known of the driver's rotation.
fn rotation_warnings(r: &Rotation, context: &str) -> Vec<String> {
    match r {
        Rotation::Read(all) => all
            .iter()
            .map(|f| {
                let ds = format!("daemonset {DRIVER_NAMESPACE}/{}", f.daemonset);
                if f.enabled == Some(true) {
                    let (every, how) = match &f.interval {
                        Some(i) => (i.as_str(), format!("--rotation-poll-interval={i}")),
                        None => (DEFAULT_POLL, format!("no --rotation-poll-interval: {DEFAULT_POLL}, the default")),
                    };
                    format!(
                        "the Secrets Store CSI driver rotates mounted files ({ds}: \
                         --enable-secret-rotation=true, {how}): a running pod's file gets the \
                         new passphrase up to {every} after T1, which an app sees only if it \
                         re-reads the file (env vars never change); the restart still replaces \
                         the pods"
                    )
                } else {
                    let how = match f.enabled {
                        Some(_) => "--enable-secret-rotation=false".to_owned(),
                        None => "no --enable-secret-rotation: off, the default".to_owned(),
                    };
                    format!(
                        "the Secrets Store CSI driver does not rotate mounted files ({ds}: {how}): \
                         running pods keep the file they mounted, with the old passphrase, until \
                         the restart replaces them"
                    )
                }
            })
            .collect(),
        Rotation::Unknown(why) => vec![format!(
            "the Secrets Store CSI driver's rotation settings are unknown ({why}): running pods \
             keep the file they mounted, with the old passphrase, unless the driver runs with \
             --enable-secret-rotation (off by default), and then get the new one up to \
             --rotation-poll-interval (default {DEFAULT_POLL}) after T1; check the args of the \
             {DRIVER_CONTAINER} container: kubectl get daemonsets -n {DRIVER_NAMESPACE}{context} \
             -o jsonpath='{{range .items[*]}}{{.metadata.name}}: \
             {{.spec.template.spec.containers[?(@.name==\"{DRIVER_CONTAINER}\")].args}}{{\"\\n\"}}{{end}}'"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_are_read_as_go_reads_them() {
        let f = flags("d", &args(&["--endpoint=$(CSI_ENDPOINT)"])).unwrap();
        assert_eq!((f.enabled, f.interval), (None, None));
        let f = flags(
            "d",
            &args(&["--enable-secret-rotation", "-rotation-poll-interval", "30s"]),
        )
        .unwrap();
        assert_eq!(
            (f.enabled, f.interval.as_deref()),
            (Some(true), Some("30s"))
        );
        let f = flags(
            "d",
            &args(&[
                "--enable-secret-rotation=true",
                "--enable-secret-rotation=F",
                "--rotation-poll-interval=1h",
            ]),
        )
        .unwrap();
        assert_eq!(
            (f.enabled, f.interval.as_deref()),
            (Some(false), Some("1h"))
        );
        assert!(flags("d", &args(&["--enable-secret-rotation=yes"])).is_err());
    }

    #[test]
    fn only_the_drivers_volumes_count() {
        let dep: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api"},
            "spec": {"selector": {}, "template": {"spec": {
                "volumes": [
                    {"name": "a", "csi": {"driver": "other.csi.example.com", "volumeAttributes": {"secretProviderClass": "x"}}},
                    {"name": "b", "csi": {"driver": DRIVER, "volumeAttributes": {"secretProviderClass": "vsync"}}},
                    {"name": "c", "csi": {"driver": DRIVER, "volumeAttributes": {"secretProviderClass": "vsync"}}}
                ],
                "containers": [{"name": "app", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "synced", "key": "k"}}},
                    {"name": "B", "value": "plain"}
                ], "envFrom": [{"secretRef": {"name": "whole"}}]}]
            }}}
        }))
        .unwrap();
        let m = mounts(&dep).unwrap();
        assert_eq!(m.classes, ["vsync"]);
        assert!(!m.unnamed);
        assert_eq!(
            m.env_secrets.iter().collect::<Vec<_>>(),
            ["synced", "whole"]
        );
        let plain: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app"}]}}}
            }))
            .unwrap();
        assert_eq!(mounts(&plain), None);
    }
}
