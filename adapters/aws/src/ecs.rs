//! The `ecs` restarter: a forced new deployment per service, followed until that very
//! deployment reports its rollout state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentRolloutState, Service};
use aws_sdk_ecs::Client;
use vsync_orchestrate_api::wait::{wait_until, Step, Waited};
use vsync_orchestrate_api::{
    async_trait, Error, ErrorKind, Preflight, RestartContext, Restarter, RestarterCapabilities,
    Result, Rollout, RolloutOutcome, Target,
};

use crate::common::{sdk_error, InvalidMeans};

const KIND: &str = "ecs";

/// A deployment this process forced: its id and its service-deployment ARN.
type Started = (String, Option<String>);
/// DescribeServices accepts at most this many services per call.
const DESCRIBE_BATCH: usize = 10;

/// The plan's `[[restart]] type = "ecs"` table.
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
pub struct EcsConfig {
    /// Name or ARN of the cluster.
    pub cluster: String,
    /// Names or ARNs of the services, restarted together and waited on together.
    pub services: Vec<String>,
    /// Overrides the region from the environment or profile.
    #[serde(default)]
    pub region: Option<String>,
    /// For emulators and VPC endpoints; normally unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A named profile from the shared config (SSO, assume-role, credential_process).
    #[serde(default)]
    pub profile: Option<String>,
    /// How long the rollout may take (default 10 minutes).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// How often `wait` asks ECS for progress (default 10 s). Rollouts take
    /// minutes; a few seconds keeps well inside the DescribeServices rate limit.
    #[serde(default = "EcsConfig::default_poll", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
}

impl EcsConfig {
    pub const DEFAULT_POLL: Duration = Duration::from_secs(10);

    fn default_poll() -> Duration {
        Self::DEFAULT_POLL
    }
}

/// Tags on the service that carry "this run already forced deployment D" across
/// processes: ECS's UpdateService takes no idempotency token.
const TAG_RUN: &str = "vsync-orchestrate:run";
const TAG_DEPLOYMENT: &str = "vsync-orchestrate:deployment";

/// ECS services restarted with `forceNewDeployment`, so tasks start again and resolve
/// their secrets (`AWSCURRENT`) anew.
///
/// Success is judged on the deployment this restart created, by id: a circuit-breaker
/// rollback ends in a steady service too, which is why the SDK's "services stable"
/// waiter is not used.
pub struct EcsRestarter {
    client: Client,
    cfg: EcsConfig,
    /// Deployments already started per (run, service), so a retried `restart` in the
    /// same process does not force a second deployment of services it already did.
    /// Value: the deployment id and its service-deployment ARN.
    started: Mutex<HashMap<(String, String), Started>>,
}

impl std::fmt::Debug for EcsRestarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsRestarter")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl EcsRestarter {
    /// Resolves credentials and region through the standard chain with the plan's
    /// `profile`, `region` and `endpoint` applied.
    pub async fn new(cfg: EcsConfig) -> Result<Self> {
        crate::common::check_endpoint(cfg.endpoint.as_deref())?;
        let ctx = vsync_orchestrate_api::BuildContext::new();
        let sdk = vsync_orchestrate_aws_auth::sdk_config(
            &ctx,
            cfg.profile.as_deref(),
            cfg.region.as_deref(),
        )
        .await?;
        Self::from_sdk_config(cfg, &sdk)
    }

    /// Builds on an already loaded chain, so several adapters share one credential
    /// resolution. `cfg.region` and `cfg.endpoint` still override; `cfg.profile` is not
    /// consulted (the credentials come from `sdk`).
    pub fn from_sdk_config(cfg: EcsConfig, sdk: &aws_config::SdkConfig) -> Result<Self> {
        if cfg.cluster.trim().is_empty() {
            return Err(Error::invalid_config("ecs: cluster is empty"));
        }
        if cfg.services.is_empty() || cfg.services.iter().any(|s| s.trim().is_empty()) {
            return Err(Error::invalid_config(
                "ecs: services must name at least one service",
            ));
        }
        if cfg.poll_interval.is_zero() {
            return Err(Error::invalid_config("ecs: poll interval must be positive"));
        }
        crate::common::check_endpoint(cfg.endpoint.as_deref())?;
        let mut b = aws_sdk_ecs::config::Builder::from(sdk);
        if let Some(r) = &cfg.region {
            b = b.region(aws_sdk_ecs::config::Region::new(r.clone()));
        }
        if let Some(e) = &cfg.endpoint {
            b = b.endpoint_url(e);
        }
        Ok(EcsRestarter {
            client: Client::from_conf(b.build()),
            cfg,
            started: Mutex::default(),
        })
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("ecs cluster {}", self.cfg.cluster))
    }

    /// DescribeServices for `names`, keyed by the name as the plan gave it.
    /// A service ECS reports as missing is an error.
    async fn describe_services(&self, names: &[&str]) -> Result<HashMap<String, Service>> {
        let mut found = HashMap::new();
        for chunk in names.chunks(DESCRIBE_BATCH) {
            let out = self
                .client
                .describe_services()
                .cluster(&self.cfg.cluster)
                .set_services(Some(chunk.iter().map(|s| s.to_string()).collect()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| ecs_error("DescribeServices", e))
                .map_err(|e| self.ctx(e))?;
            if let Some(f) = out.failures().first() {
                let what = f.arn().unwrap_or("a service");
                let reason = f.reason().unwrap_or("unknown reason");
                let e = if reason == "MISSING" {
                    Error::not_found(format!("service {what} does not exist"))
                } else {
                    Error::failed(format!("service {what}: {reason}"))
                };
                return Err(self.ctx(e));
            }
            for svc in out.services() {
                if let Some(name) = chunk.iter().find(|n| names_service(n, svc)) {
                    found.insert(name.to_string(), svc.clone());
                }
            }
            if let Some(missing) = chunk.iter().find(|n| !found.contains_key(**n)) {
                return Err(self.ctx(Error::not_found(format!(
                    "service {missing} does not exist"
                ))));
            }
        }
        Ok(found)
    }
}

/// The deployment this run already forced on `svc`, if its marker says so and
/// that deployment still exists.
fn marked(run: &str, svc: &Service) -> Option<Started> {
    let tag = |k: &str| {
        svc.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
    };
    if tag(TAG_RUN) != Some(run) {
        return None;
    }
    let id = tag(TAG_DEPLOYMENT)?;
    svc.deployments()
        .iter()
        .any(|d| d.id() == Some(id))
        .then(|| (id.to_owned(), None))
}

impl EcsRestarter {
    /// Records on the service that `run` forces (`deployment` = [`PENDING`]) or
    /// forced `deployment`, so a restart of the same run from another process (after
    /// a crash before the journal was written) finds it instead of forcing another.
    ///
    /// Called with [`PENDING`] before UpdateService, so a service ECS will not tag
    /// (no `ecs:TagResource`, or an old short ARN) stops the restart before anything
    /// is deployed, and a retry after the fix deploys once. A crash between
    /// UpdateService and the second call still forces a second deployment on retry:
    /// harmless, the tasks just restart twice.
    async fn mark(&self, service_arn: &str, run: &str, deployment: &str) -> Result<()> {
        let tag = |k: &str, v: &str| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build();
        self.client
            .tag_resource()
            .resource_arn(service_arn)
            .tags(tag(TAG_RUN, run))
            .tags(tag(TAG_DEPLOYMENT, deployment))
            .send()
            .await
            .map_err(|e| tag_error(service_arn, ecs_error("TagResource", e)))
            .map_err(|e| self.ctx(e))?;
        Ok(())
    }
}

/// The marker's deployment value between tagging and UpdateService's answer.
const PENDING: &str = "pending";

/// The account setting and migration that let ECS tag an old service, named in
/// every message about a short ARN.
const LONG_ARN_FIX: &str = "enable the long ARN format (`aws ecs put-account-setting --name \
     serviceLongArnFormat --value enabled`) and migrate the service to it (Amazon ECS \
     Developer Guide, \"Migrate an Amazon ECS short service ARN to a long ARN\")";

/// Whether `arn` is a service ARN in the old format without the cluster
/// (`arn:aws:ecs:region:account:service/name`), which TagResource refuses with
/// InvalidParameterException (API reference, TagResource, `resourceArn`).
fn short_service_arn(arn: &str) -> bool {
    arn.split_once(":service/")
        .is_some_and(|(_, rest)| !rest.contains('/'))
}

/// Says what to do about a TagResource failure: the tag is this tool's own
/// idempotency marker, which an operator would not guess from the bare code.
fn tag_error(service_arn: &str, e: Error) -> Error {
    let why = "the tag records the deployment this run forces, so a resumed run does not \
               force a second";
    match e.kind() {
        ErrorKind::Permission => e.context(format!(
            "tagging {service_arn} needs ecs:TagResource on the service ({why})"
        )),
        ErrorKind::InvalidConfig if e.message().contains("Long arn format") => {
            Error::unsupported(format!("{}; {LONG_ARN_FIX}", e.message()))
                .context(format!("tagging {service_arn} ({why})"))
        }
        _ => e.context(format!("tagging {service_arn}")),
    }
}

/// Whether the plan's `name` (a name or an ARN) designates `svc`.
fn names_service(name: &str, svc: &Service) -> bool {
    svc.service_name() == Some(name) || svc.service_arn() == Some(name)
}

fn ecs_error<E>(op: &str, e: aws_sdk_ecs::error::SdkError<E>) -> Error
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = sdk_error(op, e, InvalidMeans::BadInput);
    // ECS reports missing permissions as a generic ClientException.
    if err.kind() == ErrorKind::Failed && err.message().contains("not authorized") {
        return Error::permission(err.message().to_owned());
    }
    err
}

/// Why a service cannot be restarted this way, if it cannot.
fn refusal(name: &str, svc: &Service) -> Option<Error> {
    let status = svc.status().unwrap_or("UNKNOWN");
    if status != "ACTIVE" {
        return Some(Error::unsupported(format!(
            "service {name} is {status}, not ACTIVE"
        )));
    }
    let controller = svc.deployment_controller().map(|c| c.r#type());
    match controller {
        None | Some(DeploymentControllerType::Ecs) => None,
        Some(other) => Some(Error::unsupported(format!(
            "service {name} uses the {} deployment controller; only rolling (ECS) \
             deployments report a rollout state this tool can follow. Restart it through \
             {} instead",
            other.as_str(),
            if *other == DeploymentControllerType::CodeDeploy {
                "CodeDeploy"
            } else {
                "the external deployment tooling"
            }
        ))),
    }
}

fn warnings_for(name: &str, svc: &Service) -> Vec<String> {
    let mut w = Vec::new();
    if svc.desired_count() == 0 {
        w.push(format!(
            "service {name} has desiredCount 0: restarting it starts no task"
        ));
    }
    let breaker = svc
        .deployment_configuration()
        .and_then(|c| c.deployment_circuit_breaker())
        .is_some_and(|b| b.enable());
    if !breaker {
        w.push(format!(
            "service {name} has no deployment circuit breaker: a failing rollout is only \
             noticed at the timeout"
        ));
    }
    if svc.deployments().len() > 1 {
        w.push(format!(
            "service {name} already has a deployment in progress; the restart replaces it"
        ));
    }
    if let Some(arn) = svc.service_arn().filter(|a| short_service_arn(a)) {
        w.push(format!(
            "service {name} has the old short ARN {arn}, which ECS refuses to tag (\"Long \
             arn format must be used for tagging operations\"): this run forces its \
             deployment without the tag that keeps a resumed run from forcing a second \
             one; {LONG_ARN_FIX}"
        ));
    }
    w
}

/// What the polls of `wait` saw so far: the services done, and the last poll's
/// view of the others (the detail of a timeout).
#[derive(Default)]
struct Seen {
    done: BTreeMap<String, String>,
    waiting: Vec<String>,
    last_error: Option<Error>,
}

/// Where one service's deployment stands.
enum Progress {
    Done(String),
    Failed(String),
    Waiting(String),
}

fn progress(name: &str, deployment_id: &str, svc: &Service) -> Progress {
    let Some(d) = svc
        .deployments()
        .iter()
        .find(|d| d.id() == Some(deployment_id))
    else {
        return Progress::Failed(format!(
            "{name}: deployment {deployment_id} disappeared (rolled back by the deployment \
             circuit breaker, or replaced)"
        ));
    };
    let counts = format!("{}/{} running", d.running_count(), d.desired_count());
    // Judged before the status: a circuit-breaker rollback marks this deployment
    // FAILED (with the reason) and makes the rollback deployment PRIMARY in the same
    // update (API reference, Deployment: `rolloutState`), so "superseded" would hide
    // why.
    if d.rollout_state() == Some(&DeploymentRolloutState::Failed) {
        return Progress::Failed(format!(
            "{name}: deployment {deployment_id} failed: {} ({} failed tasks)",
            d.rollout_state_reason().unwrap_or("no reason given"),
            d.failed_tasks()
        ));
    }
    if d.status() != Some("PRIMARY") {
        // A newer deployment took over: a rollback, or someone else's deploy. Either way
        // this restart's tasks are not the ones that will stay.
        let primary = svc
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .unwrap_or("another deployment");
        return Progress::Failed(format!(
            "{name}: deployment {deployment_id} was superseded by {primary}"
        ));
    }
    match d.rollout_state() {
        Some(DeploymentRolloutState::Completed) => {
            Progress::Done(format!("{name}: {deployment_id} completed ({counts})"))
        }
        Some(DeploymentRolloutState::InProgress) => {
            Progress::Waiting(format!("{name}: {deployment_id} in progress ({counts})"))
        }
        // No rollout state (e.g. behind a Classic Load Balancer): fall back to "ours is
        // the only deployment and it runs everything it should".
        _ => {
            if svc.deployments().len() == 1
                && d.desired_count() > 0
                && d.running_count() == d.desired_count()
            {
                Progress::Done(format!("{name}: {deployment_id} steady ({counts})"))
            } else {
                Progress::Waiting(format!("{name}: {deployment_id} starting ({counts})"))
            }
        }
    }
}

#[async_trait]
impl Restarter for EcsRestarter {
    /// A forced deployment cannot be called back; ECS's own circuit breaker is what
    /// stops a bad one.
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default()
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!("{}/{}", self.cfg.cluster, self.cfg.services.join(",")),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let names: Vec<&str> = self.cfg.services.iter().map(String::as_str).collect();
        let found = self.describe_services(&names).await?;
        let mut warnings = Vec::new();
        let mut parts = Vec::new();
        for name in &names {
            let svc = &found[*name];
            if let Some(e) = refusal(name, svc) {
                return Err(self.ctx(e));
            }
            warnings.extend(warnings_for(name, svc));
            parts.push(format!(
                "{name} ({}/{} running)",
                svc.running_count(),
                svc.desired_count()
            ));
        }
        Ok(Preflight {
            detail: parts.join(", "),
            warnings,
            ..Default::default()
        })
    }

    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let run = &ctx.run;
        let mut deployments = BTreeMap::new();
        let mut arns = BTreeMap::new();
        let mut unmarked = BTreeMap::new();
        let names: Vec<&str> = self.cfg.services.iter().map(String::as_str).collect();
        let current = self.describe_services(&names).await?;
        let mut todo = Vec::new();
        for name in &self.cfg.services {
            let key = (run.as_str().to_owned(), name.clone());
            let known = self
                .started
                .lock()
                .expect("poisoned")
                .get(&key)
                .cloned()
                .or_else(|| marked(run.as_str(), &current[name.as_str()]));
            match known {
                Some((id, arn)) => {
                    deployments.insert(name.clone(), id);
                    if let Some(arn) = arn {
                        arns.insert(name.clone(), arn);
                    }
                }
                None => todo.push(name),
            }
        }
        // Every marker first: a service ECS will not tag stops the restart before
        // any service is deployed. A short ARN cannot be tagged at all (preflight
        // warned); that service goes without the marker.
        let mut taggable = BTreeMap::new();
        for name in &todo {
            let Some(service_arn) = current[name.as_str()]
                .service_arn()
                .filter(|a| !short_service_arn(a))
            else {
                continue;
            };
            self.mark(service_arn, run.as_str(), PENDING).await?;
            taggable.insert(name.as_str(), service_arn.to_owned());
        }
        for name in todo {
            let key = (run.as_str().to_owned(), name.clone());
            let out = self
                .client
                .update_service()
                .cluster(&self.cfg.cluster)
                .service(name)
                .force_new_deployment(true)
                .send()
                .await
                .map_err(|e| ecs_error("UpdateService", e))
                .map_err(|e| self.ctx(e.context(format!("service {name}"))))?;
            let svc = out.service().ok_or_else(|| {
                self.ctx(Error::failed(format!(
                    "UpdateService for {name} returned no service"
                )))
            })?;
            let id = svc
                .deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"))
                .and_then(|d| d.id())
                .ok_or_else(|| {
                    self.ctx(Error::failed(format!(
                        "UpdateService for {name} returned no PRIMARY deployment"
                    )))
                })?
                .to_owned();
            let arn = svc.current_service_deployment().map(str::to_owned);
            if let Some(arn) = &arn {
                arns.insert(name.clone(), arn.clone());
            }
            // Remembered before the second tag, so a retry in this process never
            // forces again, whatever that tag does.
            self.started
                .lock()
                .expect("poisoned")
                .insert(key, (id.clone(), arn));
            deployments.insert(name.clone(), id.clone());
            if let Some(service_arn) = taggable.get(name.as_str()) {
                // The deployment is forced and must be followed: a failure here
                // (the same permission just worked) only weakens the marker back to
                // "pending", and is kept in the record rather than failing the step.
                if let Err(e) = self.mark(service_arn, run.as_str(), &id).await {
                    unmarked.insert(name.clone(), e.to_string());
                }
            }
        }
        let mut extra = serde_json::json!({
            "cluster": self.cfg.cluster,
            "deployments": deployments,
            "service_deployment_arns": arns,
        });
        if !unmarked.is_empty() {
            extra["unmarked"] = serde_json::json!(unmarked);
        }
        Ok(Rollout {
            target: self.describe(),
            run: run.clone(),
            id: deployments.values().cloned().collect::<Vec<_>>().join(","),
            extra,
            // Tasks read AWSCURRENT as they start.
            delivers: Default::default(),
        })
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let deployments: BTreeMap<String, String> = rollout
            .extra
            .get("deployments")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .filter(|m: &BTreeMap<String, String>| !m.is_empty())
            .ok_or_else(|| {
                Error::invalid_config("ecs rollout record has no deployments to wait for")
            })?;
        let deployments = &deployments;
        let waited = wait_until(
            deadline,
            self.cfg.poll_interval,
            Seen::default(),
            |mut seen| async move {
                let pending: Vec<&str> = deployments
                    .keys()
                    .filter(|n| !seen.done.contains_key(*n))
                    .map(String::as_str)
                    .collect();
                seen.waiting.clear();
                seen.last_error = None;
                match self.describe_services(&pending).await {
                    Ok(found) => {
                        for name in &pending {
                            match progress(name, &deployments[*name], &found[*name]) {
                                Progress::Done(d) => {
                                    seen.done.insert(name.to_string(), d);
                                }
                                Progress::Failed(reason) => {
                                    return Step::Ready(Ok(RolloutOutcome::Failed { reason }));
                                }
                                Progress::Waiting(w) => seen.waiting.push(w),
                            }
                        }
                    }
                    // A blip while polling is not a failed rollout; keep going until the deadline.
                    Err(e) if e.kind() == ErrorKind::Temporary => {
                        seen.waiting = pending
                            .iter()
                            .map(|n| format!("{n}: status unknown"))
                            .collect();
                        seen.last_error = Some(e);
                    }
                    Err(e) => return Step::Ready(Err(e)),
                }
                if seen.done.len() == deployments.len() {
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
