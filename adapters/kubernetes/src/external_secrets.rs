//! External Secrets awareness: the restarter's `external_secrets` option.
//!
//! Where External Secrets Operator copies the cloud store's passphrase into the
//! Secret the pods read, the new value reaches that Secret only at ESO's next
//! refresh (`refreshInterval`, 1 hour by default). Pods rolled right after T1
//! would start with the old passphrase and crash-loop against the new bundle, so
//! before rolling anything the restart forces a sync the way ESO documents it
//! (`kubectl annotate es NAME force-sync=$(date +%s) --overwrite`,
//! https://external-secrets.io/latest/introduction/faq/) and waits until the
//! ExternalSecret says it has synced since (`status.refreshTime`, the `Ready`
//! condition: https://external-secrets.io/latest/api/externalsecret/) and its
//! target Secret's data has changed.
//!
//! Any change of an annotation changes the "resource version" ESO compares
//! (`GetResourceVersion` hashes labels and annotations), so `Periodic` and
//! `OnChange` sync at once; `CreatedOnce` never syncs again after creation
//! (ESO's `shouldRefresh`), which preflight refuses.
//!
//! The Secret's values are only ever hashed in memory, never kept or printed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vsync_orchestrate_api::wait::{wait_until, Step, Waited};
use vsync_orchestrate_api::{Error, ErrorKind, Result, RunId};

use crate::error::bounded;

/// The annotation ESO's docs use to force a sync; any change of it does.
pub const FORCE_SYNC: &str = "force-sync";
/// When this tool set `force-sync`: a resumed restart of the same run waits for a
/// sync after that moment without annotating again.
pub const FORCE_SYNC_AT: &str = "vsync-orchestrate/force-sync-at";

const GROUP: &str = "external-secrets.io";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One ExternalSecret as read in preflight or before the sync.
struct Read {
    target: String,
    policy: String,
    ready: Option<(String, String, String)>,
    refresh_time: Option<Timestamp>,
    annotations: serde_json::Map<String, Value>,
    resource_version: Option<String>,
}

/// What a sync recorded, for the rollout's journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Synced {
    pub name: String,
    pub target: String,
    /// The `status.refreshTime` that showed the sync.
    pub refresh_time: String,
}

fn api(client: &Client, ns: &str, ar: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, ar)
}

/// The ExternalSecret resource at the version the cluster prefers: ESO serves
/// `v1` since 0.17 and has stopped serving `v1beta1` in later releases, while
/// older installs serve only `v1beta1`; the fields read here are the same in both.
async fn discover(client: &Client) -> Result<ApiResource> {
    let group = bounded(
        &format!("discover {GROUP}"),
        REQUEST_TIMEOUT,
        kube::discovery::oneshot::group(client, GROUP),
    )
    .await;
    let group = match group {
        Ok(g) => g,
        Err(e) if e.kind() == ErrorKind::Failed || e.kind() == ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "the cluster serves no {GROUP} API ({}): is External Secrets Operator \
                 installed? external_secrets needs its ExternalSecret resource",
                e.message()
            )))
        }
        Err(e) => return Err(e),
    };
    group
        .recommended_kind("ExternalSecret")
        .map(|(ar, _)| ar)
        .ok_or_else(|| {
            Error::not_found(format!(
                "the {GROUP} API group has no ExternalSecret resource in versions {}",
                group.versions().collect::<Vec<_>>().join(", ")
            ))
        })
}

/// The Role rules the option needs, ready to paste.
fn role_rules(names: &[String], targets: &[String]) -> String {
    let quote = |v: &[String]| {
        v.iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{apiGroups: [\"{GROUP}\"], resources: [\"externalsecrets\"], resourceNames: [{}], \
         verbs: [\"get\", \"patch\"]}}, {{apiGroups: [\"\"], resources: [\"secrets\"], \
         resourceNames: [{}], verbs: [\"get\"]}}",
        quote(names),
        quote(targets)
    )
}

fn read(obj: &DynamicObject) -> Read {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let d = &obj.data;
    let ready = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("status"), s("reason"), s("message"))
        });
    Read {
        target: d["spec"]["target"]["name"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(&name)
            .to_owned(),
        policy: d["spec"]["refreshPolicy"]
            .as_str()
            .unwrap_or("Periodic")
            .to_owned(),
        ready,
        refresh_time: d["status"]["refreshTime"]
            .as_str()
            .and_then(|t| t.parse().ok()),
        annotations: obj
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
        resource_version: obj.metadata.resource_version.clone(),
    }
}

async fn get(client: &Client, ar: &ApiResource, ns: &str, name: &str) -> Result<DynamicObject> {
    bounded(
        &format!("get externalsecret/{name}"),
        REQUEST_TIMEOUT,
        api(client, ns, ar).get(name),
    )
    .await
    .map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::not_found(format!(
                "externalsecret/{name} ({GROUP}) does not exist in namespace {ns}; \
                 external_secrets names the ExternalSecrets that fill the pods' Secret"
            ))
        } else {
            e
        }
    })
}

/// A digest of the target Secret's data, `None` while it does not exist.
async fn digest(client: &Client, ns: &str, name: &str) -> Result<Option<u64>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = bounded(
        &format!("get secret/{name}"),
        REQUEST_TIMEOUT,
        secrets.get_opt(name),
    )
    .await?;
    Ok(s.map(|s| {
        let mut h = DefaultHasher::new();
        for (k, v) in s.data.iter().flatten() {
            k.hash(&mut h);
            v.0.hash(&mut h);
        }
        h.finish()
    }))
}

async fn allowed(
    client: &Client,
    ns: &str,
    group: &str,
    resource: &str,
    verb: &str,
    name: &str,
) -> Result<bool> {
    let ssar: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_owned()),
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = bounded(
        "SelfSubjectAccessReview",
        REQUEST_TIMEOUT,
        ssar.create(&PostParams::default(), &review),
    )
    .await?;
    Ok(r.status.is_some_and(|s| s.allowed))
}

/// Preflight: every ExternalSecret exists, will sync on `force-sync`, and RBAC
/// lets this tool annotate it and read its target. Returns the warnings.
pub(crate) async fn preflight(
    client: &Client,
    ns: &str,
    names: &[String],
    kubectl_args: &str,
) -> Result<Vec<String>> {
    let ar = discover(client).await?;
    let mut warnings = Vec::new();
    let mut targets = Vec::new();
    let mut denied = Vec::new();
    for name in names {
        let obj = match get(client, &ar, ns, name).await {
            Err(e) if e.kind() == ErrorKind::Permission => {
                denied.push(format!("get externalsecrets.{GROUP} {name}"));
                continue;
            }
            other => other?,
        };
        let r = read(&obj);
        if r.policy == "CreatedOnce" {
            return Err(Error::unsupported(format!(
                "externalsecret/{name} has refreshPolicy CreatedOnce: ESO never syncs it again \
                 after creation, so its Secret would keep the old passphrase and the restarted \
                 pods would fail; use Periodic (the default) or OnChange: kubectl patch \
                 externalsecret {name}{kubectl_args} --type merge -p \
                 '{{\"spec\":{{\"refreshPolicy\":\"Periodic\"}}}}'"
            )));
        }
        if let Some((status, reason, message)) = &r.ready {
            if status != "True" {
                warnings.push(format!(
                    "externalsecret/{name} is not Ready ({reason}: {message}); the restart \
                     fails unless its next sync succeeds"
                ));
            }
        }
        for (group, resource, verb, n) in [
            (GROUP, "externalsecrets", "get", name),
            (GROUP, "externalsecrets", "patch", name),
            ("", "secrets", "get", &r.target),
        ] {
            match allowed(client, ns, group, resource, verb, n).await {
                Ok(true) => {}
                Ok(false) => denied.push(format!(
                    "{verb} {resource}{} {n}",
                    if group.is_empty() {
                        String::new()
                    } else {
                        format!(".{group}")
                    }
                )),
                Err(e) => warnings.push(format!("could not check RBAC ({})", e.message())),
            }
        }
        targets.push(r.target);
    }
    if !denied.is_empty() {
        denied.dedup();
        return Err(Error::permission(format!(
            "RBAC in namespace {ns} does not allow: {}; add these rules to the Role: {}",
            denied.join(", "),
            role_rules(names, &targets)
        )));
    }
    warnings.dedup();
    Ok(warnings)
}

/// What the sync of one ExternalSecret waits for.
struct Pending {
    name: String,
    target: String,
    /// When `force-sync` was set, cut to the second (`refreshTime` has no finer).
    since: Timestamp,
    /// The target's digest before the annotation; unknown on a resumed run.
    before: Option<Option<u64>>,
    /// The ExternalSecret's resourceVersion right after our patch: a `Ready=False`
    /// on that very version predates the sync we asked for.
    patched_rv: Option<String>,
}

/// After T1, before rolling: force-sync every ExternalSecret, then wait until each
/// has synced since, is Ready and its target Secret changed. A timeout or a sync
/// error fails here, so nothing is rolled onto a stale Secret.
pub(crate) async fn sync(
    client: &Client,
    ns: &str,
    names: &[String],
    run: &RunId,
    poll: Duration,
    deadline: Instant,
) -> Result<Vec<Synced>> {
    let ar = discover(client).await?;
    let mut pending = Vec::new();
    for name in names {
        let r = read(&get(client, &ar, ns, name).await?);
        // `<run>` when asked, `<run>.<n>` when asked again after a stale sync.
        let ours = r
            .annotations
            .get(FORCE_SYNC)
            .and_then(Value::as_str)
            .is_some_and(|v| {
                v == run.as_str()
                    || v.strip_prefix(run.as_str())
                        .is_some_and(|n| n.starts_with('.'))
            });
        let at = r
            .annotations
            .get(FORCE_SYNC_AT)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok());
        if let (true, Some(at)) = (ours, at) {
            // A resumed restart of this run: the sync was asked for already.
            pending.push(Pending {
                name: name.clone(),
                target: r.target,
                since: at,
                before: None,
                patched_rv: None,
            });
            continue;
        }
        let before = digest(client, ns, &r.target).await?;
        let now = Timestamp::now();
        let since = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let patch = json!({"metadata": {"annotations": {
            FORCE_SYNC: run.as_str(),
            FORCE_SYNC_AT: since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }}});
        let patched = annotate(client, &ar, ns, name, &patch, deadline).await?;
        pending.push(Pending {
            name: name.clone(),
            target: r.target,
            since,
            before: Some(before),
            patched_rv: patched.metadata.resource_version,
        });
    }
    let mut done = Vec::new();
    for p in pending {
        done.push(wait_one(client, &ar, ns, &p, run, poll, deadline).await?);
    }
    Ok(done)
}

/// Sets the force-sync annotation, asking again while the answer is lost or
/// temporary: the merge patch carries the same value each time, so a request that
/// did land, or lands late, asks ESO for the same sync (a late one arriving after a
/// re-ask restores `<run>`, a change ESO answers with one more sync of the same,
/// current value). Each attempt gets at most a quarter of what is left of the
/// sync's budget, so a held request leaves time to ask again.
async fn annotate(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
    patch: &Value,
    deadline: Instant,
) -> Result<DynamicObject> {
    let op = format!("annotate externalsecret/{name} {FORCE_SYNC}");
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let limit = REQUEST_TIMEOUT.min(left / 4).max(MIN_ATTEMPT);
        let sent = bounded(
            &op,
            limit,
            api(client, ns, ar).patch(name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await;
        match sent {
            Err(e) if e.is_temporary() && Instant::now() + MIN_ATTEMPT < deadline => {
                let pause = e
                    .wait_hint()
                    .unwrap_or_else(|| ramp(MAX_ANNOTATE_PAUSE, attempt));
                attempt += 1;
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
            other => return other,
        }
    }
}

/// The shortest an annotation attempt may take, and the longest pause between two.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
const MAX_ANNOTATE_PAUSE: Duration = Duration::from_secs(2);

/// How long a sync that left the Secret unchanged is given before it is asked for
/// again: the provider may have answered from before the activation (Secrets
/// Manager reads are eventually consistent; ESO may have read it just before).
const RESYNC_AFTER: Duration = Duration::from_secs(2);

/// The first pause of the sync wait; each next one doubles, up to the poll interval.
const FIRST_LOOK: Duration = Duration::from_millis(20);

fn ramp(poll: Duration, probes: u32) -> Duration {
    FIRST_LOOK.saturating_mul(1 << probes.min(16)).min(poll)
}

async fn wait_one(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    p: &Pending,
    run: &RunId,
    poll: Duration,
    deadline: Instant,
) -> Result<Synced> {
    let name = &p.name;
    // (when the Secret was last seen synced but unchanged, how many times asked again)
    let stale_since: std::sync::Mutex<(Option<Instant>, u32)> = std::sync::Mutex::new((None, 0));
    let stale_since = &stale_since;
    let probes = std::sync::atomic::AtomicU32::new(0);
    let probes = &probes;
    // ESO reconciles an annotation change within a second or so, and every pause
    // here is time pods wait and part of the window apps feel: look again soon,
    // then back off to the plan's poll interval.
    let next = move || {
        ramp(
            poll,
            probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    };
    let waited = wait_until(
        deadline,
        poll,
        String::from("no answer yet"),
        |_| async move {
            let obj = match get(client, ar, ns, name).await {
                Ok(o) => o,
                Err(e) if e.is_temporary() => {
                    return Step::PendingFor(e.message().to_owned(), next())
                }
                Err(e) => return Step::Ready(Err(e)),
            };
            let r = read(&obj);
            match &r.ready {
                Some((s, reason, message))
                    if s == "False"
                        && (p.patched_rv.is_none() || r.resource_version != p.patched_rv) =>
                {
                    return Step::Ready(Err(Error::failed(format!(
                        "externalsecret/{name} did not sync: Ready=False {reason}: {message}; \
                     nothing was restarted (pods would start with the old passphrase)"
                    ))));
                }
                _ => {}
            }
            let refreshed = r.refresh_time.is_some_and(|t| t >= p.since);
            let ready = r.ready.as_ref().is_some_and(|(s, _, _)| s == "True");
            if !(refreshed && ready) {
                return Step::PendingFor(
                    format!(
                        "refreshTime {} (asked at {}), Ready {}",
                        r.refresh_time
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "unset".into()),
                        p.since,
                        r.ready.as_ref().map(|c| c.0.as_str()).unwrap_or("unset")
                    ),
                    next(),
                );
            }
            if let Some(before) = p.before {
                match digest(client, ns, &p.target).await {
                    Ok(now) if now.is_some() && now != before => {}
                    Ok(_) => {
                        // Synced from a provider answer older than the activation: ask
                        // again (a changed force-sync value is a new request to ESO).
                        let again = {
                            let mut st = stale_since.lock().unwrap_or_else(|e| e.into_inner());
                            let first = *st.0.get_or_insert_with(Instant::now);
                            if first.elapsed() >= RESYNC_AFTER {
                                st.0 = Some(Instant::now());
                                st.1 += 1;
                                Some(st.1)
                            } else {
                                None
                            }
                        };
                        if let Some(n) = again {
                            let patch = json!({"metadata": {"annotations": {
                                FORCE_SYNC: format!("{}.{n}", run.as_str()),
                            }}});
                            let _ = bounded(
                                &format!("annotate externalsecret/{name} {FORCE_SYNC} again"),
                                REQUEST_TIMEOUT,
                                api(client, ns, ar).patch(
                                    name,
                                    &PatchParams::default(),
                                    &Patch::Merge(&patch),
                                ),
                            )
                            .await;
                        }
                        return Step::PendingFor(
                            format!(
                            "synced, but secret/{} still holds the value it held before the sync",
                            p.target
                        ),
                            next(),
                        );
                    }
                    Err(e) if e.is_temporary() => {
                        return Step::PendingFor(e.message().to_owned(), next())
                    }
                    Err(e) => return Step::Ready(Err(e)),
                }
            }
            Step::Ready(Ok(Synced {
                name: name.clone(),
                target: p.target.clone(),
                refresh_time: r.refresh_time.map(|t| t.to_string()).unwrap_or_default(),
            }))
        },
    )
    .await;
    match waited {
        Waited::Done(r) => r,
        Waited::TimedOut(last) => Err(Error::failed(format!(
            "externalsecret/{name} did not sync before the deadline ({last}); nothing was \
             restarted (pods would start with the old passphrase); is External Secrets \
             Operator running? kubectl describe externalsecret {name} -n {ns}"
        ))),
    }
}
