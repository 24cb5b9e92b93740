//! The `vercel` restarter: an environment variable reaches only new deployments,
//! so the current production deployment is redeployed exactly as `vercel
//! redeploy` does (`POST /v13/deployments` with its id, target production, meta
//! `action = redeploy`) and followed until it is READY with the production alias
//! assigned. The deployment's meta carries the run id: a restart of the same run,
//! from another process, finds it instead of building again.
//!
//! After an Instant Rollback Vercel stops assigning the production domains to new
//! deployments until one is promoted; preflight explains it and refuses, unless
//! the plan says `promote = true`, in which case the redeployed build is promoted
//! when it is ready, as `vercel promote` does: `POST /v10/projects/{id}/promote/{deployment}`
//! with the body `{}` (the CLI's `request-promote.ts`: "required"), answered 201
//! (started) or 202 (queued behind a rolling release); the promotion runs as a job
//! the project's `lastAliasRequest.jobStatus` reports (`promote/status.ts` polls
//! it), so that, not the deployment, says when it is done.
//!
//! The project is always read with `?rollbackInfo=true`, as the CLI does
//! (`util/projects/get-project-by-id-or-name.ts`, `includeRollbackInfo`): a plain
//! read may leave `lastAliasRequest` and `lastRollbackTarget` out, and then an
//! Instant Rollback would go unseen.
//!
//! A deployment has failed when `@vercel/client` says so
//! (`check-deployment-status.ts`, `utils/ready-state.ts`): `readyState` (else
//! `state`) `ERROR` or any `*_ERROR`, an `aliasError`, a failed
//! `deployment-alias` check, or `checksConclusion = failed`.

use crate::api::{seg, Api, DEFAULT_TOKEN_ENV};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::wait::{wait_until, Step, Waited};
use vsync_orchestrate_api::{
    async_trait, Delivers, Error, Preflight, RestartContext, Restarter, RestarterCapabilities,
    Result, Rollout, RolloutOutcome, Target,
};
use vsync_orchestrate_http::Method;

/// The deployment meta key that carries the run id.
pub const RUN_META: &str = "vsyncRunId";

/// The plan's `[[restart]] type = "vercel"` table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct VercelRedeployConfig {
    /// The project's name or id.
    pub project: String,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default = "VercelRedeployConfig::default_token_env")]
    pub token_env: String,
    #[serde(default)]
    pub api_base: Option<String>,
    /// After an Instant Rollback, promote the redeployed build to production.
    #[serde(default)]
    pub promote: bool,
    /// How long the build and alias may take (default 15 minutes).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// How often `wait` asks (default 5 s).
    #[serde(
        default = "VercelRedeployConfig::default_poll",
        with = "humantime_serde"
    )]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
}

impl VercelRedeployConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
    pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

    fn default_token_env() -> String {
        DEFAULT_TOKEN_ENV.to_owned()
    }
    fn default_poll() -> Duration {
        Self::DEFAULT_POLL
    }

    pub fn new(project: impl Into<String>) -> Self {
        VercelRedeployConfig {
            project: project.into(),
            team_id: None,
            token_env: Self::default_token_env(),
            api_base: None,
            promote: false,
            timeout: None,
            poll_interval: Self::DEFAULT_POLL,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Project {
    id: String,
    name: String,
    #[serde(default)]
    targets: Value,
    #[serde(default)]
    last_rollback_target: Value,
    #[serde(default)]
    last_alias_request: Value,
}

/// The project's last alias job (`lastAliasRequest`), when it is about `id`.
fn alias_job<'a>(p: &'a Project, id: &str) -> Option<&'a Value> {
    let r = &p.last_alias_request;
    (r["toDeploymentId"] == id).then_some(r)
}

impl Project {
    fn production(&self) -> Option<&str> {
        self.targets["production"]["id"].as_str()
    }

    /// Whether production is pinned by an Instant Rollback (new deployments do
    /// not get the production domains), in words. `lastAliasRequest` decides, as
    /// it does for the CLI (which moved off `lastRollbackTarget`, vercel/vercel
    /// #10019): a rollback pins, a promotion that succeeded unpins; only without
    /// either does the older `lastRollbackTarget` count.
    fn rolled_back(&self) -> Option<String> {
        let req = &self.last_alias_request;
        if req["type"] == "rollback" {
            return Some(format!(
                "production was rolled back to {}",
                req["toDeploymentId"]
                    .as_str()
                    .unwrap_or("an earlier deployment")
            ));
        }
        if req["type"] == "promote" && req["jobStatus"] == "succeeded" {
            return None;
        }
        if self.last_rollback_target.is_object() {
            return Some("production is in an Instant Rollback state".to_owned());
        }
        None
    }
}

/// A deployment as `GET /v13/deployments/{id}` (`id`, `readyState`) or the v6
/// list (`uid`, `state`) gives it; some answers carry both spellings.
#[derive(Debug, Deserialize)]
#[serde(from = "RawDeployment")]
struct Deployment {
    id: String,
    ready_state: String,
    url: Option<String>,
    alias_assigned: Value,
    alias_error: Value,
    error_code: Option<String>,
    error_message: Option<String>,
    checks: Value,
    checks_conclusion: Option<String>,
}

impl From<RawDeployment> for Deployment {
    fn from(r: RawDeployment) -> Self {
        Deployment {
            id: r.id.or(r.uid).unwrap_or_default(),
            // `isFailed` reads `readyState` and only without it `state`.
            ready_state: r.ready_state.or(r.state).unwrap_or_default(),
            url: r.url,
            alias_assigned: r.alias_assigned,
            alias_error: r.alias_error,
            error_code: r.error_code,
            error_message: r.error_message,
            checks: r.checks,
            checks_conclusion: r.checks_conclusion,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDeployment {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    ready_state: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    alias_assigned: Value,
    #[serde(default)]
    alias_error: Value,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    checks: Value,
    #[serde(default)]
    checks_conclusion: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentList {
    #[serde(default)]
    deployments: Vec<Deployment>,
}

/// What the rollout record carries besides the deployment id.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
struct Record {
    project_id: String,
    /// The deployment that was redeployed.
    #[serde(default)]
    from: Option<String>,
    /// The redeployed build is promoted when ready (Instant Rollback + `promote`).
    #[serde(default)]
    promote: bool,
}

/// Redeploys a Vercel project's production deployment.
pub struct VercelRedeploy {
    cfg: VercelRedeployConfig,
    api: Api,
    started: Mutex<HashMap<String, Rollout>>,
}

impl std::fmt::Debug for VercelRedeploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VercelRedeploy")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

enum Progress {
    Done(String),
    Failed(String),
    Waiting(String),
}

/// Where a deployment is. With `promote` (an Instant Rollback is being undone) a
/// READY build is not done until the promotion job says so, whatever its
/// `aliasAssigned`: that is the job's answer to read (see [`VercelRedeploy::follow_promotion`]).
fn judge(d: &Deployment, promote: bool) -> Progress {
    let name = d.name();
    if d.alias_error.is_object() {
        return Progress::Failed(format!(
            "deployment {name}: the production alias failed: {}{}",
            d.alias_error["code"].as_str().unwrap_or("error"),
            d.alias_error["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if d.checks["deployment-alias"]["state"] == "failed" {
        return Progress::Failed(format!(
            "deployment {name}: the deployment-alias check failed"
        ));
    }
    // `@vercel/client` ends its wait on `checks-conclusion-failed`.
    if d.checks_conclusion.as_deref() == Some("failed") {
        return Progress::Failed(format!(
            "deployment {name}: its checks failed (checksConclusion = failed)"
        ));
    }
    let s = d.ready_state.as_str();
    // `isFailed`: `ERROR`, or any state ending in `_ERROR`.
    if s == "ERROR" || s.ends_with("_ERROR") {
        let state = if s == "ERROR" {
            String::new()
        } else {
            format!(" in state {s}")
        };
        return Progress::Failed(format!(
            "deployment {name} failed{state}{}{}",
            d.error_code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            d.error_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    match s {
        "CANCELED" => Progress::Failed(format!(
            "deployment {name} was canceled before it was ready"
        )),
        "READY" if promote => Progress::Waiting(format!(
            "deployment {name} READY, to be promoted to production"
        )),
        "READY" if truthy(&d.alias_assigned) => Progress::Done(format!(
            "deployment {name} READY, production alias assigned"
        )),
        "READY" => Progress::Waiting(format!(
            "deployment {name} READY, waiting for the production alias"
        )),
        s if d.error_code.as_deref() == Some("BUILD_FAILED") => {
            Progress::Failed(format!("deployment {name}: the build failed ({s})"))
        }
        "" => Progress::Waiting(format!("deployment {name}: no state yet")),
        s => Progress::Waiting(format!("deployment {name} {s}")),
    }
}

impl Deployment {
    fn name(&self) -> String {
        self.url
            .as_deref()
            .map(|u| format!("{} ({u})", self.id))
            .unwrap_or_else(|| self.id.clone())
    }
}

impl VercelRedeploy {
    pub fn new(cfg: VercelRedeployConfig) -> Result<Self> {
        if let Some(f) = crate::config::redeploy_findings(&cfg)
            .into_iter()
            .find(|f| f.severity == vsync_orchestrate_api::Severity::Error)
        {
            return Err(Error::invalid_config(format!("vercel: {}", f.message)));
        }
        let api = Api::new(
            cfg.api_base.as_deref(),
            cfg.team_id.as_deref(),
            &cfg.token_env,
            Duration::from_secs(30),
        );
        Ok(VercelRedeploy {
            cfg,
            api,
            started: Mutex::default(),
        })
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("vercel {}", self.cfg.project))
    }

    async fn project(&self, deadline: Option<Instant>) -> Result<Project> {
        self.api
            .json(
                Method::GET,
                &format!("/v9/projects/{}", seg(&self.cfg.project)),
                &[("rollbackInfo", "true")],
                None,
                "reading the project",
                deadline,
            )
            .await
    }

    fn rollback_refusal(&self, why: &str) -> Error {
        Error::unsupported(format!(
            "{why}: after an Instant Rollback Vercel assigns the production domains to no \
             new deployment until one is promoted, so a redeploy would build with the new \
             passphrase and serve nothing. Promote a deployment (or undo the rollback) in \
             the dashboard first, or set `promote = true` to have the redeployed build \
             promoted to production when it is ready"
        ))
    }

    async fn find(&self, project_id: &str, run: &str) -> Result<Option<Deployment>> {
        let meta = format!("meta-{RUN_META}");
        let l: DeploymentList = self
            .api
            .json(
                Method::GET,
                "/v6/deployments",
                &[
                    ("projectId", project_id),
                    ("target", "production"),
                    (meta.as_str(), run),
                    ("limit", "5"),
                ],
                None,
                "looking for this run's deployment",
                None,
            )
            .await?;
        Ok(l.deployments.into_iter().find(|d| !d.id.is_empty()))
    }

    async fn deployment(&self, id: &str, deadline: Instant) -> Result<Deployment> {
        self.api
            .json(
                Method::GET,
                &format!("/v13/deployments/{}", seg(id)),
                &[],
                None,
                "reading the deployment",
                Some(deadline),
            )
            .await
    }

    /// Asks for the promotion as `vercel promote` does; `true` when Vercel queued it
    /// (202: it starts when the active rolling release completes).
    async fn promote(&self, rec: &Record, id: &str, deadline: Instant) -> Result<bool> {
        let resp = self
            .api
            .call(
                Method::POST,
                &format!("/v10/projects/{}/promote/{}", seg(&rec.project_id), seg(id)),
                &[],
                Some(&json!({})),
                "promoting the deployment to production",
                Some(deadline),
            )
            .await?;
        // 409: a promotion of it is already under way.
        if resp.status() == 409 {
            return Ok(false);
        }
        let resp = resp.error_for_status()?;
        Ok(resp.status() == 202)
    }

    /// One step of a promotion of the READY deployment `d`, read the way
    /// `vercel promote` reads it (`promote/status.ts`): the project's
    /// `lastAliasRequest` for this deployment and its `jobStatus`. Asks for the
    /// promotion when no job for it is there and this wait has not asked yet.
    async fn follow_promotion(
        &self,
        rec: &Record,
        d: &Deployment,
        asked: &mut bool,
        deadline: Instant,
    ) -> Result<Progress> {
        let name = d.name();
        let p = self.project(Some(deadline)).await?;
        if let Some(job) = alias_job(&p, &d.id) {
            let status = job["jobStatus"].as_str().unwrap_or("");
            return Ok(match status {
                "succeeded" => {
                    Progress::Done(format!("deployment {name} READY, promoted to production"))
                }
                "failed" => Progress::Failed(format!(
                    "deployment {name}: Vercel's promotion to production failed \
                     (lastAliasRequest.jobStatus = failed; `vercel promote status` lists the \
                     aliases that were not moved)"
                )),
                "skipped" if p.production() == Some(d.id.as_str()) => Progress::Done(format!(
                    "deployment {name} READY and already production (promotion skipped)"
                )),
                "skipped" => Progress::Failed(format!(
                    "deployment {name}: Vercel skipped its promotion to production"
                )),
                "pending" | "in-progress" => {
                    Progress::Waiting(format!("deployment {name} READY, promotion {status}"))
                }
                // The CLI gives up on a status it does not know, so does this.
                other => Progress::Failed(format!(
                    "deployment {name}: unknown promotion status {other:?}"
                )),
            });
        }
        if *asked {
            return Ok(Progress::Waiting(format!(
                "deployment {name} READY, promotion requested; the project shows no job for it yet"
            )));
        }
        let queued = self.promote(rec, &d.id, deadline).await?;
        *asked = true;
        Ok(Progress::Waiting(if queued {
            format!("deployment {name} READY, promotion queued behind the active rolling release")
        } else {
            format!("deployment {name} READY, promotion requested")
        }))
    }
}

#[async_trait]
impl Restarter for VercelRedeploy {
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default().delivering(Delivers::WhenDone)
    }

    fn describe(&self) -> Target {
        Target::new(
            crate::store::KIND,
            format!("{} (redeploy)", self.cfg.project),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let p = self.project(None).await.map_err(|e| self.ctx(e))?;
        let Some(prod) = p.production() else {
            return Err(self.ctx(Error::not_found(
                "the project has no production deployment to redeploy",
            )));
        };
        let mut warnings = Vec::new();
        if let Some(why) = p.rolled_back() {
            if !self.cfg.promote {
                return Err(self.ctx(self.rollback_refusal(&why)));
            }
            warnings.push(format!(
                "{why}: the redeployed build will be promoted to production (promote = true)"
            ));
        }
        let state = p.targets["production"]["readyState"]
            .as_str()
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        Ok(Preflight {
            detail: format!("{} ({}): production is {prod}{state}", p.name, p.id),
            warnings,
            ..Default::default()
        })
    }

    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let run = ctx.run.as_str();
        if let Some(r) = self.started.lock().expect("poisoned").get(run) {
            return Ok(r.clone());
        }
        let p = self.project(None).await.map_err(|e| self.ctx(e))?;
        let rollback = p.rolled_back();
        let promote = rollback.is_some() && self.cfg.promote;
        let rollout = |id: String, from: Option<String>| Rollout {
            target: self.describe(),
            run: ctx.run.clone(),
            id,
            extra: json!(Record {
                project_id: p.id.clone(),
                from,
                promote,
            }),
            // A variable reaches new deployments only: this one, once it holds the
            // production alias.
            delivers: Delivers::WhenDone,
        };
        let found = self.find(&p.id, run).await.map_err(|e| self.ctx(e))?;
        let r = match found {
            Some(d) => rollout(d.id, None),
            None => {
                if let Some(why) = &rollback {
                    if !self.cfg.promote {
                        return Err(self.ctx(self.rollback_refusal(why)));
                    }
                }
                let Some(from) = p.production().map(str::to_owned) else {
                    return Err(self.ctx(Error::not_found(
                        "the project has no production deployment to redeploy",
                    )));
                };
                // What `vercel redeploy` sends.
                let body = json!({
                    "name": p.name,
                    "deploymentId": from,
                    "target": "production",
                    "meta": { "action": "redeploy", RUN_META: run },
                });
                let d: Deployment = self
                    .api
                    .json(
                        Method::POST,
                        "/v13/deployments",
                        &[("forceNew", "1")],
                        Some(&body),
                        "redeploying production",
                        None,
                    )
                    .await
                    .map_err(|e| self.ctx(e))?;
                if d.id.is_empty() {
                    return Err(self.ctx(Error::failed(
                        "redeploying production: the answer names no deployment",
                    )));
                }
                rollout(d.id, Some(from))
            }
        };
        self.started
            .lock()
            .expect("poisoned")
            .insert(run.to_owned(), r.clone());
        Ok(r)
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let rec: Record = serde_json::from_value(rollout.extra.clone()).unwrap_or_default();
        let rec = &rec;
        // Whether this wait asked for the promotion, and what the last poll saw.
        let seen = (false, String::from("no answer yet"));
        let waited = wait_until(
            deadline,
            self.cfg.poll_interval,
            seen,
            |(mut promoted, mut last)| async move {
                let mut pause = self.cfg.poll_interval;
                let step = match self.deployment(&rollout.id, deadline).await {
                    Ok(d) => match judge(&d, rec.promote) {
                        Progress::Waiting(_) if rec.promote && d.ready_state == "READY" => {
                            self.follow_promotion(rec, &d, &mut promoted, deadline)
                                .await
                        }
                        p => Ok(p),
                    },
                    Err(e) => Err(e),
                };
                match step {
                    Ok(Progress::Done(detail)) => {
                        return Step::Ready(Ok(RolloutOutcome::Done { detail }))
                    }
                    Ok(Progress::Failed(reason)) => {
                        return Step::Ready(Ok(RolloutOutcome::Failed { reason }))
                    }
                    Ok(Progress::Waiting(w)) => last = w,
                    // A blip while polling is not a failed rollout.
                    Err(e) if e.is_temporary() => {
                        pause = e.wait_hint().unwrap_or(pause);
                        last = format!("{last} (last poll: {e})");
                    }
                    Err(e) => return Step::Ready(Err(self.ctx(e))),
                }
                Step::PendingFor((promoted, last), pause)
            },
        )
        .await;
        match waited {
            Waited::Done(outcome) => outcome,
            Waited::TimedOut((_, last)) => Ok(RolloutOutcome::TimedOut { detail: last }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn states_are_judged() {
        let ok =
            dep(json!({"id": "dpl_1", "readyState": "READY", "aliasAssigned": 1700000000000u64}));
        assert!(matches!(judge(&ok, false), Progress::Done(_)));
        let no_alias = dep(json!({"id": "dpl_1", "readyState": "READY", "aliasAssigned": null}));
        assert!(matches!(judge(&no_alias, false), Progress::Waiting(_)));
        let err = dep(
            json!({"uid": "dpl_2", "state": "ERROR", "errorCode": "BUILD_FAILED", "errorMessage": "Command \"npm run build\" exited with 1"}),
        );
        match judge(&err, false) {
            Progress::Failed(r) => assert!(
                r.contains("BUILD_FAILED") && r.contains("exited with 1"),
                "{r}"
            ),
            _ => panic!(),
        }
        let alias = dep(
            json!({"id": "dpl_3", "readyState": "READY", "aliasError": {"code": "DOMAIN_VERIFICATION", "message": "not verified"}}),
        );
        assert!(
            matches!(judge(&alias, false), Progress::Failed(r) if r.contains("DOMAIN_VERIFICATION"))
        );
        let canceled = dep(json!({"id": "dpl_4", "readyState": "CANCELED"}));
        assert!(matches!(judge(&canceled, false), Progress::Failed(r) if r.contains("canceled")));
    }

    #[test]
    fn a_succeeded_promotion_ends_the_rollback_whatever_the_old_field_says() {
        let p = |v: Value| serde_json::from_value::<Project>(v).unwrap();
        let base = json!({"id": "prj_1", "name": "shop"});
        let mut rb = base.clone();
        rb["lastAliasRequest"] =
            json!({"type": "rollback", "toDeploymentId": "dpl_1", "jobStatus": "succeeded"});
        assert!(p(rb).rolled_back().unwrap().contains("dpl_1"));
        let mut promoted = base.clone();
        promoted["lastAliasRequest"] =
            json!({"type": "promote", "toDeploymentId": "dpl_2", "jobStatus": "succeeded"});
        promoted["lastRollbackTarget"] = json!({});
        assert_eq!(p(promoted).rolled_back(), None);
        let mut failed = base.clone();
        failed["lastAliasRequest"] =
            json!({"type": "promote", "toDeploymentId": "dpl_2", "jobStatus": "failed"});
        failed["lastRollbackTarget"] = json!({});
        assert!(p(failed).rolled_back().is_some());
        assert_eq!(p(base).rolled_back(), None);
    }

    /// `@vercel/client`'s `isFailed` (any `*_ERROR`, `readyState` before `state`)
    /// and its `checks-conclusion-failed` end the wait with the state named.
    #[test]
    fn any_error_state_and_failed_checks_are_failures() {
        let init = dep(json!({"id": "dpl_5", "readyState": "INITIALIZING_ERROR"}));
        assert!(
            matches!(judge(&init, false), Progress::Failed(r) if r.contains("in state INITIALIZING_ERROR")),
        );
        let legacy = dep(json!({"uid": "dpl_6", "state": "DEPLOYMENT_ERROR"}));
        assert!(
            matches!(judge(&legacy, false), Progress::Failed(r) if r.contains("DEPLOYMENT_ERROR"))
        );
        let checks = dep(
            json!({"id": "dpl_7", "readyState": "READY", "aliasAssigned": null,
            "checksState": "completed", "checksConclusion": "failed"}),
        );
        assert!(
            matches!(judge(&checks, false), Progress::Failed(r) if r.contains("checksConclusion = failed"))
        );
        // READY with the alias, but a promotion is what says done.
        let ok =
            dep(json!({"id": "dpl_8", "readyState": "READY", "aliasAssigned": 1700000000000u64}));
        assert!(matches!(judge(&ok, true), Progress::Waiting(_)));
    }
}
