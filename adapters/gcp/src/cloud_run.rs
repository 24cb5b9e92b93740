//! The `cloud_run` restarter: a new revision of each service with no change but a
//! template annotation carrying the run id (and, where a service pins the secret to
//! a version number, that number), followed through its long-running operation to
//! a Ready service serving the new revision.
//!
//! Cloud Run resolves a secret referenced by an environment variable when an
//! instance starts, so the instances running now keep the old passphrase until a
//! new revision replaces them; that is the whole job here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use google_cloud_run_v2::client::Services;
use google_cloud_run_v2::model::{
    condition, env_var, volume, RevisionTemplate, Service, TrafficTargetAllocationType,
};
use tokio::sync::OnceCell;
use vsync_orchestrate_api::wait::{wait_until, Step, Waited};
use vsync_orchestrate_api::{
    async_trait, ActivatedVersion, Delivers, Error, ErrorKind, Preflight, RestartContext,
    Restarter, RestarterCapabilities, Result, Rollout, RolloutOutcome, Target,
};

use crate::common::{Auth, CredentialSource, SecretName, ServiceName};
use crate::error::gax_error;

pub(crate) const KIND: &str = "cloud_run";

/// The template annotation that carries the run id: it makes the revision differ
/// from the last one (a template change is what creates a revision), and it is the
/// marker a restart of the same run, from another process, finds.
pub const RUN_ANNOTATION: &str = "vsync-orchestrate/run-id";

/// The plan's `[[restart]] type = "cloud_run"` table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct CloudRunConfig {
    /// Full resource names, `projects/P/locations/L/services/S`, restarted
    /// together and waited on together.
    pub services: Vec<String>,
    /// An emulator or test fake; normally unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `"adc"` (default) or `"anonymous"` (emulators and fakes, with `endpoint`).
    #[serde(default)]
    pub credentials: CredentialSource,
    /// How long the rollout may take (default 10 minutes).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// How often `wait` asks for progress (default 5 s).
    #[serde(default = "CloudRunConfig::default_poll", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
}

impl CloudRunConfig {
    pub const DEFAULT_POLL: Duration = Duration::from_secs(5);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    fn default_poll() -> Duration {
        Self::DEFAULT_POLL
    }

    /// A minimal table for `services`, everything else defaulted.
    pub fn new<S: Into<String>>(services: impl IntoIterator<Item = S>) -> Self {
        CloudRunConfig {
            services: services.into_iter().map(Into::into).collect(),
            endpoint: None,
            credentials: CredentialSource::Adc,
            timeout: None,
            poll_interval: Self::DEFAULT_POLL,
        }
    }
}

/// What this process started on one service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Started {
    /// The service generation whose revision is ours.
    generation: i64,
    /// The long-running operation of the update, when this process sent it.
    #[serde(default)]
    operation: Option<String>,
    /// Secret version pins moved, for the report (`env X: 3 → 4`).
    #[serde(default)]
    pins: Vec<String>,
}

/// Cloud Run services restarted by a no-op template change.
pub struct CloudRunRestarter {
    cfg: CloudRunConfig,
    auth: Auth,
    client: OnceCell<Services>,
    /// Per (run, service): a retried `restart` in this process sends nothing new.
    started: Mutex<HashMap<(String, String), Started>>,
    /// What preflight saw: a service pins the secret to a version number, so new
    /// instances get the new passphrase only from the new revision.
    pins_a_version: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CloudRunRestarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudRunRestarter")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// One secret reference in a revision template: where, which secret, which version
/// (`""` = latest).
struct SecretRef {
    place: String,
    secret: String,
    version: String,
}

fn secret_refs(t: &RevisionTemplate) -> Vec<SecretRef> {
    let mut out = Vec::new();
    for c in &t.containers {
        for e in &c.env {
            if let Some(env_var::Values::ValueSource(src)) = &e.values {
                if let Some(k) = &src.secret_key_ref {
                    out.push(SecretRef {
                        place: format!("env {} of container {}", e.name, container_name(c)),
                        secret: k.secret.clone(),
                        version: k.version.clone(),
                    });
                }
            }
        }
    }
    for v in &t.volumes {
        if let Some(volume::VolumeType::Secret(s)) = &v.volume_type {
            if s.items.is_empty() {
                out.push(SecretRef {
                    place: format!("volume {}", v.name),
                    secret: s.secret.clone(),
                    version: String::new(),
                });
            }
            for i in &s.items {
                out.push(SecretRef {
                    place: format!("volume {} file {}", v.name, i.path),
                    secret: s.secret.clone(),
                    version: i.version.clone(),
                });
            }
        }
    }
    out
}

fn container_name(c: &google_cloud_run_v2::model::Container) -> &str {
    if c.name.is_empty() {
        "(unnamed)"
    } else {
        &c.name
    }
}

fn is_number(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_digit())
}

/// Whether a template's `secret` (a bare id in the service's project, or a full
/// name) is the secret a store activated. A project id and a project number cannot
/// be compared offline, so a mismatch in form alone does not rule it out.
fn refers_to(reference: &str, service: &ServiceName, activated: &SecretName) -> bool {
    let (project, secret) = match SecretName::parse(reference) {
        Some(n) => (n.project, n.secret),
        None if !reference.contains('/') => (service.project.clone(), reference.to_owned()),
        None => return false,
    };
    secret == activated.secret
        && (project == activated.project || is_number(&project) != is_number(&activated.project))
}

/// Moves every numeric version pin of an activated secret to its new version.
/// References through an alias or `latest` are left alone: they follow by
/// themselves. Returns what changed.
fn update_pins(
    t: &mut RevisionTemplate,
    service: &ServiceName,
    activated: &[ActivatedVersion],
) -> Vec<String> {
    let targets: Vec<(SecretName, &str)> = activated
        .iter()
        .filter(|a| a.target.kind == crate::secret_manager::KIND && is_number(&a.version))
        .filter_map(|a| SecretName::parse(&a.target.name).map(|n| (n, a.version.as_str())))
        .collect();
    let mut changed = Vec::new();
    let mut pin = |place: String, secret: &str, version: &mut String| {
        if !is_number(version) {
            return;
        }
        if let Some((_, new)) = targets.iter().find(|(n, _)| refers_to(secret, service, n)) {
            if version != new {
                changed.push(format!("{place}: version {version} → {new}"));
                *version = (*new).to_owned();
            }
        }
    };
    for c in &mut t.containers {
        let cname = container_name(c).to_owned();
        for e in &mut c.env {
            if let Some(env_var::Values::ValueSource(src)) = &mut e.values {
                if let Some(k) = &mut src.secret_key_ref {
                    let secret = k.secret.clone();
                    pin(
                        format!("env {} of container {cname}", e.name),
                        &secret,
                        &mut k.version,
                    );
                }
            }
        }
    }
    for v in &mut t.volumes {
        if let Some(volume::VolumeType::Secret(s)) = &mut v.volume_type {
            let secret = s.secret.clone();
            for i in &mut s.items {
                pin(
                    format!("volume {} file {}", v.name, i.path),
                    &secret,
                    &mut i.version,
                );
            }
        }
    }
    changed
}

/// Whether traffic goes to something other than the latest revision, in words.
fn traffic_pinned(svc: &Service) -> Option<String> {
    if svc.traffic.is_empty() {
        return None; // Cloud Run's default: 100% to the latest ready revision
    }
    let latest: i32 = svc
        .traffic
        .iter()
        .filter(|t| t.r#type == TrafficTargetAllocationType::Latest)
        .map(|t| t.percent)
        .sum();
    if latest >= 100 {
        return None;
    }
    let pinned: Vec<String> = svc
        .traffic
        .iter()
        .filter(|t| t.r#type != TrafficTargetAllocationType::Latest && t.percent > 0)
        .map(|t| format!("{} {}%", short(&t.revision), t.percent))
        .collect();
    Some(format!(
        "the latest revision gets {latest}% of the traffic ({}), so the new revision would \
         serve {}; move the traffic to the latest revision (gcloud run services \
         update-traffic --to-latest) or expect verify to name the stragglers",
        if pinned.is_empty() {
            "the rest to no revision".to_owned()
        } else {
            format!("pinned: {}", pinned.join(", "))
        },
        if latest == 0 {
            "nothing".to_owned()
        } else {
            format!("only {latest}%")
        }
    ))
}

fn short(resource: &str) -> &str {
    resource.rsplit('/').next().unwrap_or(resource)
}

fn condition_text(c: &google_cloud_run_v2::model::Condition) -> String {
    let reason = match &c.reasons {
        Some(condition::Reasons::Reason(r)) => r.name().map(str::to_owned),
        Some(condition::Reasons::RevisionReason(r)) => r.name().map(str::to_owned),
        Some(condition::Reasons::ExecutionReason(r)) => r.name().map(str::to_owned),
        _ => None,
    };
    match (c.message.is_empty(), reason) {
        (false, Some(r)) => format!("{} ({r})", c.message),
        (false, None) => c.message.clone(),
        (true, Some(r)) => r,
        (true, None) => "no message".to_owned(),
    }
}

/// What the polls of `wait` saw so far: the services done, the operations seen
/// to finish, and the last poll's view of the others (the detail of a timeout).
#[derive(Default)]
struct Seen {
    done: BTreeMap<String, String>,
    finished_ops: HashSet<String>,
    waiting: Vec<String>,
    last_error: Option<Error>,
}

/// Where one service's rollout stands.
enum Progress {
    Done(String),
    Failed(String),
    Waiting(String),
}

/// Judges the service itself: Ready, the spec we wrote observed, and the newest
/// revision the one that is ready.
///
/// A failed reconciliation is judged before `observed_generation`: Cloud Run then
/// leaves `observed_generation`, `latest_ready_revision` and `traffic_statuses` at
/// the last serving revision (v2 `Service.reconciling`: "If reconciliation failed,
/// traffic_statuses, observed_generation, and latest_ready_revision will have the
/// state of the last serving revision",
/// <https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services#Service>),
/// so waiting for it to reach our generation would wait for the timeout. Once the
/// service is at our generation (or later) and no longer reconciling, its terminal
/// condition is about our rollout.
fn judge(name: &str, svc: &Service, generation: i64) -> Progress {
    let label = short(name);
    if svc.generation < generation || svc.reconciling {
        return Progress::Waiting(format!(
            "{label}: generation {} being rolled out (observed {})",
            svc.generation, svc.observed_generation
        ));
    }
    let Some(cond) = &svc.terminal_condition else {
        return Progress::Waiting(format!("{label}: no Ready condition yet"));
    };
    match cond.state {
        condition::State::ConditionFailed => Progress::Failed(format!(
            "{label}: not Ready: {} (generation {}, still serving {})",
            condition_text(cond),
            svc.generation,
            short(&svc.latest_ready_revision)
        )),
        _ if svc.observed_generation < svc.generation => Progress::Waiting(format!(
            "{label}: generation {} not observed yet (observed {})",
            svc.generation, svc.observed_generation
        )),
        condition::State::ConditionSucceeded if cond.r#type == "Ready" => {
            if !svc.latest_created_revision.is_empty()
                && svc.latest_ready_revision == svc.latest_created_revision
            {
                Progress::Done(format!(
                    "{label}: revision {} ready (generation {})",
                    short(&svc.latest_ready_revision),
                    svc.generation
                ))
            } else {
                Progress::Waiting(format!(
                    "{label}: revision {} not ready yet (serving {})",
                    short(&svc.latest_created_revision),
                    short(&svc.latest_ready_revision)
                ))
            }
        }
        _ => Progress::Waiting(format!("{label}: {}", condition_text(cond))),
    }
}

impl CloudRunRestarter {
    /// A restarter with its own credentials (ADC or anonymous, as the table says).
    pub fn new(cfg: CloudRunConfig) -> Result<Self> {
        let auth = Auth::new(cfg.credentials);
        Self::with_auth(cfg, auth)
    }

    pub(crate) fn with_auth(cfg: CloudRunConfig, auth: Auth) -> Result<Self> {
        if cfg.services.is_empty() {
            return Err(Error::invalid_config(
                "cloud_run: services must name at least one service",
            ));
        }
        for s in &cfg.services {
            if ServiceName::parse(s).is_none() {
                return Err(Error::invalid_config(format!(
                    "cloud_run: {s:?} is not a full service name like \
                     \"projects/my-project/locations/europe-west1/services/api\""
                )));
            }
        }
        if cfg.poll_interval.is_zero() {
            return Err(Error::invalid_config(
                "cloud_run: poll_interval must be positive",
            ));
        }
        if let Some(m) = crate::common::check_endpoint(cfg.endpoint.as_deref()) {
            return Err(Error::invalid_config(m));
        }
        Ok(CloudRunRestarter {
            cfg,
            auth,
            client: OnceCell::new(),
            started: Mutex::default(),
            pins_a_version: Default::default(),
        })
    }

    async fn client(&self) -> Result<&Services> {
        self.client
            .get_or_try_init(|| async {
                let mut b = Services::builder()
                    .with_credentials(self.auth.credentials().await?)
                    .with_retry_policy(crate::common::retry_policy())
                    .with_attempt_timeout(Duration::from_secs(30));
                if let Some(e) = &self.cfg.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build().await.map_err(|e| {
                    Error::temporary(format!("Cloud Run client could not be set up: {e}"))
                })
            })
            .await
    }

    async fn get_service(&self, name: &str) -> Result<Service> {
        self.client()
            .await?
            .get_service()
            .set_name(name)
            .send()
            .await
            .map_err(|e| gax_error("GetService", &e).context(format!("service {name}")))
    }

    /// Starts (or finds) this run's revision of one service.
    async fn restart_one(&self, name: &str, ctx: &RestartContext) -> Result<Started> {
        let run = ctx.run.as_str();
        let key = (run.to_owned(), name.to_owned());
        if let Some(s) = self.started.lock().expect("poisoned").get(&key) {
            return Ok(s.clone());
        }
        let sn = ServiceName::parse(name).expect("checked when built");
        let mut last = None;
        // Read-modify-write guarded by the etag; a conflict or a lost answer is
        // followed by a fresh read, which also finds an update that did land.
        for _ in 0..3 {
            let mut svc = self.get_service(name).await?;
            let template = svc.template.get_or_insert_default();
            if template.annotations.get(RUN_ANNOTATION).map(String::as_str) == Some(run) {
                let found = Started {
                    generation: svc.generation,
                    operation: None,
                    pins: Vec::new(),
                };
                self.started
                    .lock()
                    .expect("poisoned")
                    .insert(key, found.clone());
                return Ok(found);
            }
            template
                .annotations
                .insert(RUN_ANNOTATION.to_owned(), run.to_owned());
            // A fixed revision name cannot be used twice (409 already exists).
            template.revision.clear();
            let pins = update_pins(template, &sn, &ctx.activated);
            let before = svc.generation;
            let sent = self
                .client()
                .await?
                .update_service()
                .set_service(svc)
                .send()
                .await;
            match sent {
                Ok(op) => {
                    let from_metadata = op
                        .metadata
                        .as_ref()
                        .and_then(|m| m.to_msg::<Service>().ok())
                        .filter(|s| s.generation > before)
                        .map(|s| s.generation);
                    let generation = match from_metadata {
                        Some(g) => g,
                        None => self.get_service(name).await?.generation,
                    };
                    let started = Started {
                        generation,
                        operation: (!op.name.is_empty()).then_some(op.name),
                        pins,
                    };
                    self.started
                        .lock()
                        .expect("poisoned")
                        .insert(key, started.clone());
                    return Ok(started);
                }
                Err(e) => {
                    let err = gax_error("UpdateService", &e).context(format!("service {name}"));
                    if !err.is_temporary() {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::temporary(format!("service {name}: not updated"))))
    }

    /// One poll of one service: its operation first (while it runs), then the
    /// service's own conditions.
    async fn progress(
        &self,
        name: &str,
        s: &Started,
        finished_ops: &mut HashSet<String>,
    ) -> Result<Progress> {
        if let Some(op) = s.operation.as_ref().filter(|o| !finished_ops.contains(*o)) {
            let polled = self
                .client()
                .await?
                .get_operation()
                .set_name(op)
                .send()
                .await;
            match polled {
                Ok(o) if !o.done => {
                    return Ok(Progress::Waiting(format!(
                        "{}: operation {} running",
                        short(name),
                        short(op)
                    )))
                }
                Ok(o) => {
                    if let Some(status) = o.error() {
                        let mut reason = format!(
                            "{}: the rollout failed: {}",
                            short(name),
                            if status.message.is_empty() {
                                "no message"
                            } else {
                                &status.message
                            }
                        );
                        // The service's condition usually says which revision and why.
                        if let Ok(svc) = self.get_service(name).await {
                            if let Some(c) = svc.terminal_condition.as_ref().filter(|c| {
                                c.state == condition::State::ConditionFailed
                                    && !c.message.is_empty()
                                    && c.message != status.message
                            }) {
                                reason.push_str(&format!("; Ready: {}", condition_text(c)));
                            }
                        }
                        return Ok(Progress::Failed(reason));
                    }
                    finished_ops.insert(op.clone());
                }
                // Operations expire: the service's conditions still tell.
                Err(e) if gax_error("GetOperation", &e).kind() == ErrorKind::NotFound => {
                    finished_ops.insert(op.clone());
                }
                Err(e) => return Err(gax_error("GetOperation", &e)),
            }
        }
        let svc = self.get_service(name).await?;
        Ok(judge(name, &svc, s.generation))
    }
}

#[async_trait]
impl Restarter for CloudRunRestarter {
    /// A new revision cannot be called back; Cloud Run keeps serving the last
    /// ready revision when the new one fails.
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default().delivering(
            if self
                .pins_a_version
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                Delivers::WhenDone
            } else {
                Delivers::Nothing
            },
        )
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            self.cfg
                .services
                .iter()
                .map(|s| short(s))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let mut parts = Vec::new();
        let mut warnings = Vec::new();
        for name in &self.cfg.services {
            let svc = self.get_service(name).await?;
            let label = short(name);
            let Some(t) = &svc.template else {
                return Err(Error::unsupported(format!(
                    "service {name} has no revision template"
                )));
            };
            if let Some(w) = traffic_pinned(&svc) {
                warnings.push(format!("{label}: {w}"));
            }
            if svc.reconciling {
                warnings.push(format!(
                    "{label}: a rollout is in progress; the restart's revision follows it"
                ));
            }
            if let Some(c) = svc
                .terminal_condition
                .as_ref()
                .filter(|c| c.state == condition::State::ConditionFailed)
            {
                warnings.push(format!("{label}: not Ready now: {}", condition_text(c)));
            }
            if !t.revision.is_empty() {
                warnings.push(format!(
                    "{label}: the template names its revision {:?}; the restart clears the \
                     name so Cloud Run can create a new one",
                    t.revision
                ));
            }
            let mut pinned = Vec::new();
            for r in secret_refs(t) {
                if r.version.is_empty() || r.version == "latest" {
                    warnings.push(format!(
                        "{label}: {} reads secret {} at `latest`: a newly added version \
                         reaches new instances before it is activated; reference an alias \
                         (`current`) or a version number",
                        r.place, r.secret
                    ));
                } else if is_number(&r.version) {
                    self.pins_a_version
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    pinned.push(format!(
                        "{} pins {} to version {}",
                        r.place, r.secret, r.version
                    ));
                }
            }
            let mut part = format!(
                "{label} (generation {}, serving {})",
                svc.generation,
                short(&svc.latest_ready_revision)
            );
            if !pinned.is_empty() {
                part.push_str(&format!(
                    "; {} — moved to the activated version on restart",
                    pinned.join(", ")
                ));
            }
            parts.push(part);
        }
        Ok(Preflight {
            detail: parts.join("; "),
            warnings,
            ..Default::default()
        })
    }

    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let mut services = BTreeMap::new();
        for name in &self.cfg.services {
            services.insert(name.clone(), self.restart_one(name, ctx).await?);
        }
        Ok(Rollout {
            target: self.describe(),
            run: ctx.run.clone(),
            id: services
                .iter()
                .map(|(n, s)| format!("{}@{}", short(n), s.generation))
                .collect::<Vec<_>>()
                .join(","),
            // A pinned version number reaches new instances only through the new
            // revision; `latest` and aliases are resolved as each instance starts.
            delivers: if services.values().any(|s| !s.pins.is_empty()) {
                Delivers::WhenDone
            } else {
                Delivers::Nothing
            },
            extra: serde_json::json!({ "services": services }),
        })
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let services: BTreeMap<String, Started> = rollout
            .extra
            .get("services")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|m: &BTreeMap<String, Started>| !m.is_empty())
            .ok_or_else(|| {
                Error::invalid_config("cloud_run rollout record names no service to wait for")
            })?;
        let services = &services;
        let waited = wait_until(
            deadline,
            self.cfg.poll_interval,
            Seen::default(),
            |mut seen| async move {
                seen.waiting.clear();
                seen.last_error = None;
                let pending: Vec<(&String, &Started)> = services
                    .iter()
                    .filter(|(n, _)| !seen.done.contains_key(*n))
                    .collect();
                for (name, s) in pending {
                    match self.progress(name, s, &mut seen.finished_ops).await {
                        Ok(Progress::Done(d)) => {
                            let d = if s.pins.is_empty() {
                                d
                            } else {
                                format!("{d}; {}", s.pins.join(", "))
                            };
                            seen.done.insert(name.clone(), d);
                        }
                        Ok(Progress::Failed(reason)) => {
                            return Step::Ready(Ok(RolloutOutcome::Failed { reason }))
                        }
                        Ok(Progress::Waiting(w)) => seen.waiting.push(w),
                        // A blip while polling is not a failed rollout.
                        Err(e) if e.is_temporary() => {
                            seen.waiting
                                .push(format!("{}: status unknown", short(name)));
                            seen.last_error = Some(e);
                        }
                        Err(e) => return Step::Ready(Err(e)),
                    }
                }
                if seen.done.len() == services.len() {
                    let detail = seen.done.into_values().collect::<Vec<_>>().join("; ");
                    return Step::Ready(Ok(RolloutOutcome::Done { detail }));
                }
                Step::Pending(seen)
            },
        )
        .await;
        match waited {
            Waited::Done(outcome) => outcome,
            Waited::TimedOut(seen) => {
                let mut detail = seen.waiting.join("; ");
                if let Some(e) = seen.last_error {
                    detail.push_str(&format!(" (last error: {e})"));
                }
                Ok(RolloutOutcome::TimedOut { detail })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_run_v2::model::{
        Container, EnvVar, EnvVarSource, SecretKeySelector, SecretVolumeSource, VersionToPath,
        Volume,
    };
    use vsync_orchestrate_api::Target;

    fn template(env_secret: &str, env_version: &str, vol_version: &str) -> RevisionTemplate {
        RevisionTemplate::new()
            .set_containers([Container::new().set_name("app").set_env([
                EnvVar::new().set_name("VSYNC_PASSPHRASE").set_value_source(
                    EnvVarSource::new().set_secret_key_ref(
                        SecretKeySelector::new()
                            .set_secret(env_secret)
                            .set_version(env_version),
                    ),
                ),
                EnvVar::new().set_name("PLAIN").set_value("x"),
            ])])
            .set_volumes([Volume::new().set_name("keys").set_secret(
                SecretVolumeSource::new()
                    .set_secret("projects/123456/secrets/vsync")
                    .set_items([VersionToPath::new()
                        .set_path("pass")
                        .set_version(vol_version)]),
            )])
    }

    fn activated(name: &str, v: &str) -> ActivatedVersion {
        ActivatedVersion {
            target: Target::new("gcp_secret_manager", name),
            version: v.into(),
        }
    }

    #[test]
    fn numeric_pins_of_the_activated_secret_move() {
        let svc = ServiceName::parse("projects/shop/locations/l/services/api").unwrap();
        let mut t = template("vsync", "3", "3");
        let changed = update_pins(
            &mut t,
            &svc,
            &[activated("projects/shop/secrets/vsync", "4")],
        );
        assert_eq!(changed.len(), 2, "{changed:?}");
        let refs = secret_refs(&t);
        assert!(refs.iter().all(|r| r.version == "4"));

        // An alias follows by itself; another secret is not ours.
        let mut t = template("vsync", "current", "3");
        let moved = update_pins(
            &mut t,
            &svc,
            &[activated("projects/shop/secrets/other", "9")],
        );
        assert!(moved.is_empty());
        // Another project is not ours either, except that a project number and a
        // project id cannot be compared offline: the volume's `projects/123456/…`
        // may be `elsewhere`, so its pin follows.
        let moved = update_pins(
            &mut t,
            &svc,
            &[activated("projects/elsewhere/secrets/vsync", "9")],
        );
        assert_eq!(moved, ["volume keys file pass: version 3 → 9"]);
        assert_eq!(secret_refs(&t)[0].version, "current");
    }

    #[test]
    fn traffic_away_from_latest_is_named() {
        use google_cloud_run_v2::model::TrafficTarget;
        let mut svc = Service::new();
        assert!(traffic_pinned(&svc).is_none());
        svc.traffic = vec![TrafficTarget::new()
            .set_type(TrafficTargetAllocationType::Revision)
            .set_revision("projects/p/locations/l/services/s/revisions/s-00001-abc")
            .set_percent(100)];
        let w = traffic_pinned(&svc).unwrap();
        assert!(
            w.contains("s-00001-abc 100%") && w.contains("nothing"),
            "{w}"
        );
        svc.traffic = vec![TrafficTarget::new()
            .set_type(TrafficTargetAllocationType::Latest)
            .set_percent(100)];
        assert!(traffic_pinned(&svc).is_none());
    }
}
