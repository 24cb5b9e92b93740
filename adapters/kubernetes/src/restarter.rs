//! The restarter: preflight (reachable, present, restartable, permitted), restart
//! (kubectl's patch plus our run marker), wait (kubectl's rollout-status rules on a
//! watch with a resync, early failure on broken pods, our own deadline).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{
    Api, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vsync_orchestrate_api::wait::{wait_before, Step, Waited};
use vsync_orchestrate_api::{
    async_trait, Delivers, Error, ErrorKind, Preflight, RestartContext, Restarter,
    RestarterCapabilities, Result, Rollout, RolloutOutcome, RunId, Target,
};

use crate::error::{bounded, is_gone, kube_error, truncate};
use crate::status::{self, Progress};
use crate::workload::{Kind, WorkloadRef};
use crate::{KubernetesConfig, RESTARTED_AT, RUN_ANNOTATION};

const KIND: &str = "kubernetes";
/// One API request's limit; rollouts are followed by many short requests and one
/// long watch, never by a request that may hang for the whole deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Container states that mean the new pods will not come up by themselves: kubelet
/// is already backing off. (`ErrImagePull` is left out: it becomes `ImagePullBackOff`
/// after one retry, and a registry blip is not a failed rollout.)
const BROKEN: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// How many lines of a broken container's log are quoted.
const LOG_LINES: i64 = 5;

/// Rolling restarts of Deployments, StatefulSets and DaemonSets in one namespace of
/// one cluster, the way `kubectl rollout restart` does them.
pub struct KubernetesRestarter {
    cfg: KubernetesConfig,
    /// Opened on first use (preflight, restart or wait), never in `build`: building
    /// a plan must work offline and without a kubeconfig.
    client: tokio::sync::OnceCell<Client>,
}

impl Debug for KubernetesRestarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRestarter")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// One workload of a rollout as journaled: the generation our patch produced (or
/// found, when this run had already patched it), unset for a wave not yet started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    kind: Kind,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<i64>,
}

impl Entry {
    fn workload(&self) -> WorkloadRef {
        WorkloadRef::new(self.kind, self.name.clone())
    }
}

/// What `Rollout::extra` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    cluster: String,
    namespace: String,
    waves: Vec<Vec<Entry>>,
    /// The ExternalSecrets synced before the first wave was rolled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    external_secrets: Vec<crate::external_secrets::Synced>,
}

/// A workload as read, whatever its kind.
struct Snapshot {
    workload: WorkloadRef,
    generation: i64,
    /// The run id on the pod template, if a run put one there.
    marker: Option<String>,
    refusal: Option<String>,
    /// Its rollout state judged against its own generation (preflight's view).
    progress: Progress,
    counts: String,
    warnings: Vec<String>,
    /// Its pod template's Secrets Store CSI volumes, for preflight (crate::csi).
    csi: Option<crate::csi::Mounts>,
}

/// What following one workload saw so far: its last state, the last error
/// (both for a timeout's detail), and what the pod checks need.
struct Followed {
    last: Progress,
    last_error: Option<String>,
    /// Off once RBAC refused a look at the pods.
    pod_checks: bool,
    selector: Option<String>,
}

/// How one workload's wait ended.
enum Outcome {
    Done(String),
    Failed(String),
    TimedOut(String),
}

/// What every supported kind offers the generic code.
trait Workload:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    fn template_annotations(&self) -> Option<&BTreeMap<String, String>>;
    fn label_selector(&self) -> Option<&LabelSelector>;
    /// Why this tool will not restart it, with the command that fixes it.
    fn refusal(&self, kubectl_args: &str) -> Option<String>;
    fn progress(&self, since: i64) -> Progress;
    fn counts(&self) -> String;
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Workload for Deployment {
    const KIND: Kind = Kind::Deployment;
    fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()
    }
    fn label_selector(&self) -> Option<&LabelSelector> {
        self.spec.as_ref().map(|s| &s.selector)
    }
    fn refusal(&self, kubectl_args: &str) -> Option<String> {
        let name = self.metadata.name.as_deref().unwrap_or("");
        (self.spec.as_ref().and_then(|s| s.paused) == Some(true)).then(|| {
            format!(
                "deployment/{name} is paused: a paused Deployment never rolls out (kubectl \
                 refuses too: \"can't restart paused deployment\"); resume it first: kubectl \
                 rollout resume deployment/{name}{kubectl_args}"
            )
        })
    }
    fn progress(&self, since: i64) -> Progress {
        status::deployment(self, since)
    }
    fn counts(&self) -> String {
        let want = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        format!("{ready}/{want} available")
    }
    fn warnings(&self) -> Vec<String> {
        let name = self.metadata.name.as_deref().unwrap_or("");
        let mut w = Vec::new();
        if self.spec.as_ref().and_then(|s| s.replicas) == Some(0) {
            w.push(format!(
                "deployment/{name} has 0 replicas: restarting it starts no pod"
            ));
        }
        if self
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate")
        {
            w.push(format!(
                "deployment/{name} uses the Recreate strategy: every pod stops before new ones start"
            ));
        }
        w
    }
}

impl Workload for StatefulSet {
    const KIND: Kind = Kind::StatefulSet;
    fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()
    }
    fn label_selector(&self) -> Option<&LabelSelector> {
        self.spec.as_ref().map(|s| &s.selector)
    }
    fn refusal(&self, _: &str) -> Option<String> {
        status::statefulset_refusal(self)
    }
    fn progress(&self, since: i64) -> Progress {
        status::statefulset(self, since)
    }
    fn counts(&self) -> String {
        let want = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        format!("{ready}/{want} ready")
    }
}

impl Workload for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;
    fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()
    }
    fn label_selector(&self) -> Option<&LabelSelector> {
        self.spec.as_ref().map(|s| &s.selector)
    }
    fn refusal(&self, _: &str) -> Option<String> {
        status::daemonset_refusal(self)
    }
    fn progress(&self, since: i64) -> Progress {
        status::daemonset(self, since)
    }
    fn counts(&self) -> String {
        let s = self.status.clone().unwrap_or_default();
        format!(
            "{}/{} available",
            s.number_available.unwrap_or(0),
            s.desired_number_scheduled
        )
    }
}

/// A `LabelSelector` as the `labelSelector` query parameter writes it.
fn selector_string(s: &LabelSelector) -> String {
    let mut terms: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        terms.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    terms.join(",")
}

fn snapshot<K: Workload>(obj: &K, kubectl_args: &str) -> Snapshot {
    let name = obj.meta().name.clone().unwrap_or_default();
    let generation = obj.meta().generation.unwrap_or(0);
    Snapshot {
        workload: WorkloadRef::new(K::KIND, name),
        generation,
        marker: obj
            .template_annotations()
            .and_then(|a| a.get(RUN_ANNOTATION))
            .cloned(),
        refusal: obj.refusal(kubectl_args),
        progress: obj.progress(generation),
        counts: obj.counts(),
        warnings: obj.warnings(),
        csi: crate::csi::mounts(obj),
    }
}

fn until(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(REQUEST_TIMEOUT)
}

/// `restartedAt` exactly as `kubectl rollout restart` writes it: RFC 3339, seconds.
fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl KubernetesRestarter {
    /// Checks the table; opens nothing.
    pub fn new(cfg: KubernetesConfig) -> Result<Self> {
        use vsync_orchestrate_api::{RestarterConfig, Severity};
        if let Some(f) = cfg
            .check()
            .into_iter()
            .find(|f| f.severity == Severity::Error)
        {
            return Err(Error::invalid_config(format!(
                "kubernetes{}: {}",
                f.key.map(|k| format!(" {k}")).unwrap_or_default(),
                f.message
            )));
        }
        Ok(KubernetesRestarter {
            cfg,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// `-n NS --context CTX`, for the commands messages suggest.
    /// With a leading space: messages append it to a command.
    fn kubectl_args(&self) -> String {
        format!(
            " {}",
            crate::connect::kubectl_args(&self.cfg.namespace, self.cfg.context.as_deref())
        )
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!(
            "kubernetes {}/{}",
            self.cfg.cluster_label(),
            self.cfg.namespace
        ))
    }

    async fn load_config(&self) -> Result<kube::Config> {
        crate::connect::load_config(
            self.cfg.kubeconfig.as_deref(),
            self.cfg.context.as_deref(),
            self.cfg.in_cluster,
        )
        .await
    }

    async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| async {
                let config = self.load_config().await?;
                Client::try_from(config).map_err(|e| kube_error("client", e))
            })
            .await
            .cloned()
            .map_err(|e| self.ctx(e))
    }

    fn api<K: Workload>(&self, client: &Client) -> Api<K> {
        Api::namespaced(client.clone(), &self.cfg.namespace)
    }

    async fn get_typed<K: Workload>(&self, client: &Client, name: &str) -> Result<Snapshot> {
        let op = format!("get {}/{name}", K::KIND);
        let obj = bounded(&op, REQUEST_TIMEOUT, self.api::<K>(client).get(name))
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::not_found(format!(
                        "{}/{name} does not exist in namespace {}",
                        K::KIND,
                        self.cfg.namespace
                    ))
                } else {
                    e
                }
            })?;
        Ok(snapshot(&obj, &self.kubectl_args()))
    }

    async fn get(&self, client: &Client, w: &WorkloadRef) -> Result<Snapshot> {
        match w.kind {
            Kind::Deployment => self.get_typed::<Deployment>(client, &w.name).await,
            Kind::StatefulSet => self.get_typed::<StatefulSet>(client, &w.name).await,
            Kind::DaemonSet => self.get_typed::<DaemonSet>(client, &w.name).await,
        }
    }

    async fn list_typed<K: Workload>(
        &self,
        client: &Client,
        selector: &str,
    ) -> Result<Vec<Snapshot>> {
        let op = format!("list {} -l {selector}", K::KIND.resource());
        let list = bounded(
            &op,
            REQUEST_TIMEOUT,
            self.api::<K>(client)
                .list(&ListParams::default().labels(selector)),
        )
        .await?;
        Ok(list
            .items
            .iter()
            .map(|o| snapshot(o, &self.kubectl_args()))
            .collect())
    }

    /// Every workload the selector matches, in kind then name order.
    async fn select(&self, client: &Client, selector: &str) -> Result<Vec<Snapshot>> {
        let mut out = self.list_typed::<Deployment>(client, selector).await?;
        out.extend(self.list_typed::<StatefulSet>(client, selector).await?);
        out.extend(self.list_typed::<DaemonSet>(client, selector).await?);
        out.sort_by(|a, b| a.workload.cmp(&b.workload));
        Ok(out)
    }

    /// The workloads of the first wave (the selector expanded) and the later waves.
    async fn resolve(&self, client: &Client) -> Result<Vec<Vec<Snapshot>>> {
        let mut waves = Vec::new();
        for (i, wave) in self.cfg.named_waves().iter().enumerate() {
            let mut snaps = Vec::new();
            for w in wave {
                snaps.push(self.get(client, w).await?);
            }
            if i == 0 {
                if let Some(sel) = &self.cfg.selector {
                    let found = self.select(client, sel).await?;
                    if found.is_empty() {
                        return Err(Error::not_found(format!(
                            "selector {sel:?} matches no Deployment, StatefulSet or DaemonSet in \
                             namespace {}",
                            self.cfg.namespace
                        )));
                    }
                    for s in found {
                        if !snaps.iter().any(|x| x.workload == s.workload) {
                            snaps.push(s);
                        }
                    }
                }
            }
            waves.push(snaps);
        }
        Ok(waves)
    }

    async fn patch_typed<K: Workload>(
        &self,
        client: &Client,
        name: &str,
        run: &RunId,
    ) -> Result<Snapshot> {
        let body = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT: now_rfc3339(),
                RUN_ANNOTATION: run.as_str(),
            }}}}
        });
        let params = PatchParams {
            field_manager: Some("vsync-orchestrate".into()),
            ..Default::default()
        };
        let op = format!("patch {}/{name}", K::KIND);
        let obj = bounded(
            &op,
            REQUEST_TIMEOUT,
            self.api::<K>(client)
                .patch(name, &params, &Patch::Strategic(&body)),
        )
        .await?;
        Ok(snapshot(&obj, &self.kubectl_args()))
    }

    /// Restarts one workload unless this run already did (its template carries the
    /// run id); returns the generation to wait for.
    async fn restart_one(&self, client: &Client, w: &WorkloadRef, run: &RunId) -> Result<i64> {
        let current = self.get(client, w).await?;
        if current.marker.as_deref() == Some(run.as_str()) {
            return Ok(current.generation);
        }
        if let Some(r) = current.refusal {
            return Err(Error::unsupported(r));
        }
        let patched = match w.kind {
            Kind::Deployment => self.patch_typed::<Deployment>(client, &w.name, run).await?,
            Kind::StatefulSet => {
                self.patch_typed::<StatefulSet>(client, &w.name, run)
                    .await?
            }
            Kind::DaemonSet => self.patch_typed::<DaemonSet>(client, &w.name, run).await?,
        };
        Ok(patched.generation)
    }

    async fn restart_wave(
        &self,
        client: &Client,
        wave: &[Entry],
        run: &RunId,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for e in wave {
            let generation = match e.generation {
                Some(g) => g,
                None => self.restart_one(client, &e.workload(), run).await?,
            };
            out.push(Entry {
                generation: Some(generation),
                ..e.clone()
            });
        }
        Ok(out)
    }

    /// Pods of the new template (they carry this run's id) that kubelet is backing
    /// off on, named with the reason and the last lines of their log.
    async fn broken_pods(
        &self,
        client: &Client,
        w: &WorkloadRef,
        selector: &str,
        run: &RunId,
    ) -> Result<Option<String>> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.cfg.namespace);
        let list = bounded(
            &format!("list pods -l {selector}"),
            REQUEST_TIMEOUT,
            pods.list(&ListParams::default().labels(selector)),
        )
        .await?;
        let mut broken: Vec<(String, ContainerStatus, String)> = Vec::new();
        for pod in &list.items {
            let ours = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(RUN_ANNOTATION))
                .map(String::as_str)
                == Some(run.as_str());
            if !ours || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let status = pod.status.clone().unwrap_or_default();
            let all = status
                .init_container_statuses
                .into_iter()
                .flatten()
                .chain(status.container_statuses.into_iter().flatten());
            for c in all {
                let reason = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_default();
                if BROKEN.contains(&reason.as_str()) {
                    broken.push((pod.metadata.name.clone().unwrap_or_default(), c, reason));
                }
            }
        }
        let Some((pod, c, reason)) = broken.first() else {
            return Ok(None);
        };
        let mut text = format!("{w}: pod {pod} container {} is in {reason}", c.name);
        if c.restart_count > 0 {
            text.push_str(&format!(" (restarted {} times)", c.restart_count));
        }
        if let Some(m) = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.as_deref())
            .filter(|m| !m.is_empty() && reason != "CrashLoopBackOff")
        {
            text.push_str(&format!(": {}", truncate(m, 200)));
        }
        if reason == "CrashLoopBackOff"
            || reason == "CreateContainerConfigError"
            || c.restart_count > 0
        {
            text.push_str(
                &self
                    .log_tail(&pods, pod, &c.name, c.restart_count > 0)
                    .await,
            );
        }
        let others: Vec<&str> = broken
            .iter()
            .skip(1)
            .map(|(p, _, _)| p.as_str())
            .filter(|p| p != pod)
            .collect();
        if !others.is_empty() {
            text.push_str(&format!("; also {}", others.join(", ")));
        }
        Ok(Some(text))
    }

    /// `; its log ends: "…" | "…"`, or why it could not be read.
    async fn log_tail(
        &self,
        pods: &Api<Pod>,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> String {
        let params = |previous| LogParams {
            container: Some(container.to_owned()),
            tail_lines: Some(LOG_LINES),
            limit_bytes: Some(8192),
            previous,
            ..Default::default()
        };
        let op = format!("get pods/{pod}/log");
        let mut r = bounded(&op, REQUEST_TIMEOUT, pods.logs(pod, &params(previous))).await;
        if previous && r.as_ref().is_err_and(|e| e.kind() != ErrorKind::Permission) {
            // No terminated container to read yet: the running one's log instead.
            r = bounded(&op, REQUEST_TIMEOUT, pods.logs(pod, &params(false))).await;
        }
        match r {
            Ok(log) => {
                let lines: Vec<String> = log
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{:?}", truncate(l, 240)))
                    .collect();
                if lines.is_empty() {
                    "; its log is empty".to_owned()
                } else {
                    let tail = &lines[lines.len().saturating_sub(3)..];
                    format!("; its log ends: {}", tail.join(" | "))
                }
            }
            Err(e) if e.kind() == ErrorKind::Permission => {
                "; its log is not readable (RBAC: get pods/log)".to_owned()
            }
            Err(_) => "; its log could not be read".to_owned(),
        }
    }

    /// Follows one workload until its rollout is done, failed, or `deadline`.
    async fn wait_typed<K: Workload>(
        &self,
        client: &Client,
        name: &str,
        since: i64,
        run: &RunId,
        deadline: Instant,
    ) -> Result<Outcome> {
        let w = WorkloadRef::new(K::KIND, name);
        let api = self.api::<K>(client);
        let by_name = format!("metadata.name={name}");
        let timed_out = |seen: &Followed| {
            let mut d = format!("{w}: {}", seen.last.text());
            if let Some(e) = &seen.last_error {
                d.push_str(&format!(" (last error: {e})"));
            }
            Outcome::TimedOut(d)
        };
        let seen = Followed {
            last: Progress::Waiting("status not read yet".into()),
            last_error: None,
            pod_checks: true,
            selector: None,
        };
        let (w, api, by_name, timed_out) = (&w, &api, &by_name, &timed_out);
        // Each probe lists, then watches until the resync, a clean end of the watch
        // (list again at once) or a broken one (list again after a pause).
        let pause = self.cfg.poll_interval.min(Duration::from_secs(1));
        let waited = wait_before(deadline, pause, seen, |mut seen| async move {
            // List (not get): its resourceVersion is where the watch starts, as
            // kubectl's list-then-watch does.
            let listed = bounded(
                &format!("list {}", w),
                until(deadline),
                api.list(&ListParams::default().fields(by_name)),
            )
            .await;
            let list = match listed {
                Ok(l) => l,
                Err(e) if e.is_temporary() => {
                    seen.last_error = Some(e.message().to_owned());
                    return Step::Pending(seen);
                }
                Err(e) => return Step::Ready(Err(e)),
            };
            let Some(obj) = list.items.first() else {
                return Step::Ready(Ok(Outcome::Failed(format!(
                    "{w} was deleted during the rollout"
                ))));
            };
            seen.last = obj.progress(since);
            if seen.selector.is_none() {
                seen.selector = obj.label_selector().map(selector_string);
            }
            match &seen.last {
                Progress::Done(d) => return Step::Ready(Ok(Outcome::Done(format!("{w}: {d}")))),
                Progress::Failed(f) => {
                    return Step::Ready(Ok(Outcome::Failed(format!("{w}: {f}"))))
                }
                Progress::Waiting(_) => {}
            }
            let rv = list.metadata.resource_version.clone().unwrap_or_default();
            let params = WatchParams::default()
                .fields(by_name)
                .timeout(self.cfg.resync.as_secs().clamp(1, 290) as u32);
            let stream = match bounded(
                &format!("watch {w}"),
                until(deadline),
                api.watch(&params, &rv),
            )
            .await
            {
                Ok(s) => s,
                Err(e) if e.is_temporary() => {
                    seen.last_error = Some(e.message().to_owned());
                    return Step::Pending(seen);
                }
                Err(e) => return Step::Ready(Err(e)),
            };
            let mut stream = std::pin::pin!(stream);
            let resync_at = tokio::time::Instant::now() + self.cfg.resync;
            let mut ticker = tokio::time::interval(self.cfg.poll_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut errored = false;
            loop {
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                            seen.last = o.progress(since);
                            match &seen.last {
                                Progress::Done(d) => return Step::Ready(Ok(Outcome::Done(format!("{w}: {d}")))),
                                Progress::Failed(f) => return Step::Ready(Ok(Outcome::Failed(format!("{w}: {f}")))),
                                Progress::Waiting(_) => {}
                            }
                        }
                        Some(Ok(WatchEvent::Deleted(_))) => {
                            return Step::Ready(Ok(Outcome::Failed(format!("{w} was deleted during the rollout"))));
                        }
                        Some(Ok(WatchEvent::Bookmark(_))) => {}
                        Some(Ok(WatchEvent::Error(s))) => {
                            // 410 Gone: our resourceVersion is too old; list afresh.
                            if !is_gone(&s) {
                                seen.last_error = Some(crate::error::status_error(&format!("watch {w}"), &s).message().to_owned());
                                errored = true;
                            }
                            break;
                        }
                        Some(Err(e)) => {
                            seen.last_error = Some(kube_error(&format!("watch {w}"), e).message().to_owned());
                            errored = true;
                            break;
                        }
                        // The server ended the watch (its timeout): list afresh.
                        None => break,
                    },
                    _ = ticker.tick(), if seen.pod_checks && seen.selector.is_some() => {
                        let sel = seen.selector.clone().unwrap_or_default();
                        match self.broken_pods(client, w, &sel, run).await {
                            Ok(Some(f)) => return Step::Ready(Ok(Outcome::Failed(f))),
                            Ok(None) => {}
                            Err(e) if e.kind() == ErrorKind::Permission => seen.pod_checks = false,
                            Err(e) => seen.last_error = Some(e.message().to_owned()),
                        }
                    }
                    _ = tokio::time::sleep_until(resync_at) => break,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        return Step::Ready(Ok(timed_out(&seen)));
                    }
                }
            }
            if errored {
                Step::Pending(seen)
            } else {
                Step::PendingFor(seen, Duration::ZERO)
            }
        })
        .await;
        match waited {
            Waited::Done(outcome) => outcome,
            Waited::TimedOut(seen) => Ok(timed_out(&seen)),
        }
    }

    async fn wait_one(
        &self,
        client: &Client,
        e: &Entry,
        run: &RunId,
        deadline: Instant,
    ) -> Result<Outcome> {
        let since = e.generation.unwrap_or(0);
        match e.kind {
            Kind::Deployment => {
                self.wait_typed::<Deployment>(client, &e.name, since, run, deadline)
                    .await
            }
            Kind::StatefulSet => {
                self.wait_typed::<StatefulSet>(client, &e.name, since, run, deadline)
                    .await
            }
            Kind::DaemonSet => {
                self.wait_typed::<DaemonSet>(client, &e.name, since, run, deadline)
                    .await
            }
        }
    }

    /// Waits for every workload of one wave together; the first failure ends it.
    async fn wait_wave(
        &self,
        client: &Client,
        wave: &[Entry],
        run: &RunId,
        deadline: Instant,
    ) -> Result<Outcome> {
        let mut pending: FuturesUnordered<_> = wave
            .iter()
            .map(|e| self.wait_one(client, e, run, deadline))
            .collect();
        let mut done = Vec::new();
        let mut late = Vec::new();
        while let Some(r) = pending.next().await {
            match r? {
                Outcome::Done(d) => done.push(d),
                Outcome::Failed(f) => return Ok(Outcome::Failed(f)),
                Outcome::TimedOut(t) => late.push(t),
            }
        }
        if late.is_empty() {
            Ok(Outcome::Done(done.join("; ")))
        } else {
            late.extend(done);
            Ok(Outcome::TimedOut(late.join("; ")))
        }
    }

    /// Starts a later wave, retrying what the server calls temporary until `deadline`.
    async fn start_wave(
        &self,
        client: &Client,
        wave: &[Entry],
        run: &RunId,
        deadline: Instant,
    ) -> Result<Option<Vec<Entry>>> {
        loop {
            match self.restart_wave(client, wave, run).await {
                Ok(w) => return Ok(Some(w)),
                Err(e) if e.is_temporary() && Instant::now() < deadline => {
                    let wait = e
                        .wait_hint()
                        .unwrap_or(self.cfg.poll_interval)
                        .max(Duration::from_millis(100));
                    tokio::time::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                Err(e) if e.is_temporary() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    async fn check_rbac(&self, client: &Client, waves: &[Vec<Snapshot>]) -> Result<Vec<String>> {
        let ssar: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let ns = self.cfg.namespace.clone();
        let mut asks: Vec<(String, &'static str, String, Option<String>, bool)> = Vec::new();
        for s in waves.iter().flatten() {
            let name = if self.cfg.selector.is_some() {
                None
            } else {
                Some(s.workload.name.clone())
            };
            for verb in ["get", "list", "watch", "patch"] {
                asks.push((
                    "apps".into(),
                    s.workload.kind.resource(),
                    verb.into(),
                    name.clone(),
                    true,
                ));
            }
        }
        if self.cfg.selector.is_some() {
            for k in Kind::ALL {
                asks.push(("apps".into(), k.resource(), "list".into(), None, true));
            }
        }
        asks.push(("".into(), "pods", "list".into(), None, false));
        asks.push(("".into(), "pods/log", "get".into(), None, false));
        asks.dedup();
        let reviews = asks.iter().map(|(group, resource, verb, name, _)| {
            let (resource, sub) = resource
                .split_once('/')
                .map(|(r, s)| (r, Some(s)))
                .unwrap_or((resource, None));
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.clone()),
                        verb: Some(verb.clone()),
                        group: Some(group.clone()),
                        resource: Some(resource.to_owned()),
                        subresource: sub.map(str::to_owned),
                        name: name.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let ssar = ssar.clone();
            async move {
                bounded(
                    "SelfSubjectAccessReview",
                    REQUEST_TIMEOUT,
                    ssar.create(&PostParams::default(), &review),
                )
                .await
            }
        });
        let answers = futures_util::future::join_all(reviews).await;
        let mut denied = Vec::new();
        let mut warnings = Vec::new();
        for ((group, resource, verb, name, required), answer) in asks.iter().zip(answers) {
            let what = format!(
                "{verb} {resource}{}{}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                },
                name.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
            );
            match answer {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                Ok(_) if *required => denied.push(what),
                Ok(_) if *resource == "pods" => warnings.push(format!(
                    "RBAC does not allow {what}: pods of the new template that crash-loop are only noticed at the timeout"
                )),
                Ok(_) => warnings.push(format!(
                    "RBAC does not allow {what}: a crash-looping pod is named without its log"
                )),
                Err(e) => {
                    warnings.push(format!("could not check RBAC ({})", e.message()));
                    break;
                }
            }
        }
        if !denied.is_empty() {
            return Err(Error::permission(format!(
                "RBAC in namespace {ns} does not allow: {}; grant the Role in the kubernetes \
                 restarter's README section",
                denied.join(", ")
            )));
        }
        warnings.dedup();
        Ok(warnings)
    }
}

fn record(rollout: &Rollout) -> Result<Record> {
    serde_json::from_value(rollout.extra.clone())
        .ok()
        .filter(|r: &Record| !r.waves.is_empty())
        .ok_or_else(|| {
            Error::invalid_config("kubernetes rollout record has no workloads to wait for")
        })
}

fn names(wave: &[Entry]) -> String {
    wave.iter()
        .map(|e| e.workload().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl Restarter for KubernetesRestarter {
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default().delivering(if self.cfg.external_secrets.is_empty() {
            Delivers::Nothing
        } else {
            Delivers::WhenStarted
        })
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!(
                "{}/{}: {}",
                self.cfg.cluster_label(),
                self.cfg.namespace,
                self.cfg.describe_workloads()
            ),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let client = self.client().await?;
        let version = bounded("GET /version", REQUEST_TIMEOUT, client.apiserver_version())
            .await
            .map_err(|e| self.ctx(e.context("the cluster is not reachable")))?;
        let waves = self.resolve(&client).await.map_err(|e| self.ctx(e))?;
        let mut warnings = Vec::new();
        let mut parts = Vec::new();
        for s in waves.iter().flatten() {
            if let Some(r) = &s.refusal {
                return Err(self.ctx(Error::unsupported(r.clone())));
            }
            warnings.extend(s.warnings.iter().cloned());
            if let Progress::Waiting(w) | Progress::Failed(w) = &s.progress {
                warnings.push(format!(
                    "{} has a rollout in progress ({w}); the restart replaces it",
                    s.workload
                ));
            }
            parts.push(format!("{} {}", s.workload, s.counts));
        }
        warnings.extend(
            self.check_rbac(&client, &waves)
                .await
                .map_err(|e| self.ctx(e))?,
        );
        if !self.cfg.external_secrets.is_empty() {
            warnings.extend(
                crate::external_secrets::preflight(
                    &client,
                    &self.cfg.namespace,
                    &self.cfg.external_secrets,
                    &self.kubectl_args(),
                )
                .await
                .map_err(|e| self.ctx(e))?,
            );
        }
        // Secrets Store CSI driver (crate::csi): information only, never a refusal.
        let csi = waves
            .iter()
            .flatten()
            .filter_map(|s| Some((&s.workload, s.csi.as_ref()?)));
        warnings.extend(
            crate::csi::preflight(&client, &self.cfg.namespace, csi, &self.kubectl_args()).await,
        );
        let mut detail = format!(
            "{} (Kubernetes {}), namespace {}: {}",
            self.cfg.cluster_label(),
            version.git_version,
            self.cfg.namespace,
            parts.join(", ")
        );
        if waves.len() > 1 {
            detail.push_str(&format!(" in {} waves", waves.len()));
        }
        Ok(Preflight {
            detail,
            warnings,
            ..Default::default()
        })
    }

    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let client = self.client().await?;
        let waves = self.resolve(&client).await.map_err(|e| self.ctx(e))?;
        let mut entries: Vec<Vec<Entry>> = waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|s| Entry {
                        kind: s.workload.kind,
                        name: s.workload.name.clone(),
                        generation: None,
                    })
                    .collect()
            })
            .collect();
        // The Secret the pods read must hold the new value before any pod restarts:
        // a pod started on the stale one crash-loops until ESO's next refresh.
        let synced = if self.cfg.external_secrets.is_empty() {
            Vec::new()
        } else {
            crate::external_secrets::sync(
                &client,
                &self.cfg.namespace,
                &self.cfg.external_secrets,
                &ctx.run,
                self.cfg.poll_interval,
                Instant::now() + self.cfg.sync_timeout(),
            )
            .await
            .map_err(|e| self.ctx(e))?
        };
        entries[0] = self
            .restart_wave(&client, &entries[0], &ctx.run)
            .await
            .map_err(|e| self.ctx(e))?;
        let id = entries[0]
            .iter()
            .map(|e| format!("{}@{}", e.workload(), e.generation.unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(",");
        let rec = Record {
            cluster: self.cfg.cluster_label(),
            namespace: self.cfg.namespace.clone(),
            waves: entries,
            external_secrets: synced,
        };
        Ok(Rollout {
            target: self.describe(),
            run: ctx.run.clone(),
            id,
            // Pods read the Secret External Secrets fills: a pod that starts now
            // gets the new value only because the sync above has happened.
            delivers: if rec.external_secrets.is_empty() {
                Delivers::Nothing
            } else {
                Delivers::WhenStarted
            },
            extra: serde_json::to_value(&rec).map_err(|e| Error::failed(e.to_string()))?,
        })
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let rec = record(rollout)?;
        let client = self.client().await?;
        let run = &rollout.run;
        let mut details = Vec::new();
        let total = rec.waves.len();
        for (i, wave) in rec.waves.iter().enumerate() {
            let label = if total > 1 {
                format!("wave {}/{total}: ", i + 1)
            } else {
                String::new()
            };
            let not_started = || {
                rec.waves[i + 1..]
                    .iter()
                    .map(|w| format!("; not started: {}", names(w)))
                    .collect::<String>()
            };
            let started = if wave.iter().all(|e| e.generation.is_some()) {
                wave.clone()
            } else {
                match self
                    .start_wave(&client, wave, run, deadline)
                    .await
                    .map_err(|e| self.ctx(e))?
                {
                    Some(w) => w,
                    None => {
                        return Ok(RolloutOutcome::TimedOut {
                            detail: format!(
                                "{label}could not start {}{}",
                                names(wave),
                                not_started()
                            ),
                        })
                    }
                }
            };
            match self
                .wait_wave(&client, &started, run, deadline)
                .await
                .map_err(|e| self.ctx(e))?
            {
                Outcome::Done(d) => details.push(format!("{label}{d}")),
                Outcome::Failed(reason) => {
                    return Ok(RolloutOutcome::Failed {
                        reason: format!("{label}{reason}{}", not_started()),
                    })
                }
                Outcome::TimedOut(d) => {
                    return Ok(RolloutOutcome::TimedOut {
                        detail: format!("{label}{d}{}", not_started()),
                    })
                }
            }
        }
        Ok(RolloutOutcome::Done {
            detail: details.join("; "),
        })
    }
}
