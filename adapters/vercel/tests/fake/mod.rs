//! A stateful fake of the Vercel REST API on the test kit's fake HTTP server, in
//! the shapes Vercel documents (there is no emulator) and its own clients read:
//! `tests/clients.rs` drives this same fake with `@vercel/sdk` (which validates
//! every answer against its schemas) and the `vercel` CLI. Sources, cited again
//! at each route:
//!
//! * [API] the REST reference, https://vercel.com/docs/rest-api/reference, and the
//!   OpenAPI document `@vercel/sdk` is generated from (its `esm/models/*.d.ts`);
//! * [CLI] `vercel/vercel` `packages/cli/src/…` (the `vercel` CLI);
//! * [CLIENT] `vercel/vercel` `packages/client/src/…` (`@vercel/client`, which the
//!   CLI waits for deployments with).
//!
//! Every answer carries `x-vercel-id` (a request id, as Vercel's edge sends on every
//! response, https://vercel.com/docs/headers/response-headers#x-vercel-id) and every
//! failure the error body Vercel's clients read, `{"error":{"code","message"}}`
//! ([CLI] `util/response-error.ts`: `body.error`, its `message`, every other field
//! copied onto the `APIError`). Where a status or code is not documented the route
//! says so: the shape is the documented one, the words are ours.
//!
//! Routes:
//! * environment variables: `GET /v10/projects/{idOrName}/env` (`{envs:[…]}`,
//!   values of sensitive entries never listed), `GET /v1/projects/{idOrName}/env/{id}`
//!   (`decrypted:false` and no value for a sensitive entry),
//!   `POST /v10/projects/{idOrName}/env[?upsert=true]` (`{created, failed}`),
//!   `PATCH /v9/projects/{idOrName}/env/{id}` (and `/v10`, [CLI]
//!   `util/env/update-env-record.ts`), `DELETE /v9/projects/{idOrName}/env/{id}`;
//! * deployments: `GET /v9/projects/{idOrName}` (`targets.production`; the Instant
//!   Rollback state `lastAliasRequest`/`lastRollbackTarget` only with
//!   `?rollbackInfo=true`), `GET /v6/deployments` and `/v7/deployments` (filters
//!   `projectId`, `target`, `meta-KEY`), `POST /v13/deployments?forceNew=1` (a
//!   redeploy: `{name, deploymentId, target, meta}`), `GET /v13/deployments/{idOrUrl}`
//!   whose `readyState` advances QUEUED → BUILDING → READY over polls, with
//!   `aliasAssigned` set when production gets the alias, and
//!   `POST /v10/projects/{id}/promote/{deploymentId}`, a job the project's
//!   `lastAliasRequest.jobStatus` reports (pending → in-progress → succeeded over
//!   reads of the project);
//! * what the CLI asks before any command: `GET /v2/user`, `GET /v2/teams/{idOrSlug}`.
//!
//! Every request needs `Authorization: Bearer <token>` (else 403 `forbidden`) and,
//! when the fake has a team, `teamId=<team>` (else 404, as Vercel answers for a
//! project outside the token's scope). `tests/e2e_vercel.rs` at the repository
//! root includes this module by path to run the real binary against it.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Request, Response};

/// Word characters only: the CLI refuses a token with anything else (`index.ts`, `--token`).
pub const TOKEN: &str = "vercelTestToken4f8a";
pub const TEAM: &str = "team_fake123";
pub const PROJECT: &str = "shop";
pub const PROJECT_ID: &str = "prj_shop123";

/// How the next deployment's build behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// QUEUED, BUILDING, then READY with the production alias.
    Healthy,
    /// The build fails: ERROR / BUILD_FAILED with the build's message.
    Fails,
    /// Canceled while building.
    Canceled,
    /// READY, but assigning the production alias fails.
    AliasFails,
    /// Builds forever.
    Stalls,
    /// READY, but the deployment's checks conclude `failed` (no alias): [CLIENT]
    /// `check-deployment-status.ts` yields `checks-conclusion-failed`.
    ChecksFail,
}

/// How the next promotion job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteJob {
    /// pending, in-progress, then succeeded: production moves.
    Succeeds,
    /// pending, in-progress, then failed: the aliases stay where they were.
    Fails,
    /// Answered 202: queued behind an active rolling release, then as `Succeeds`.
    Queued,
}

/// What the fake does when a build runs (the end-to-end test starts the demo
/// apps there): the project's env entries (with values) in, `Err(message)` fails
/// the build with that message.
pub type Hook = Arc<dyn Fn(&[Value]) -> Result<(), String> + Send + Sync>;

type HookSlot = Arc<Mutex<Option<Result<(), String>>>>;

pub struct Deployment {
    pub json: Value,
    pub build: Build,
    polls: u32,
    hook: Option<HookSlot>,
    /// The project's env entries (with values) as the build took them: what this
    /// deployment's functions get when they start, whatever the project's
    /// variables say since ("Changes to environment variables are not applied to
    /// previous deployments, they only apply to new deployments",
    /// https://vercel.com/docs/environment-variables/managing-environment-variables).
    /// `None` until its build has run.
    built_env: Option<Vec<Value>>,
}

pub struct VercelState {
    /// Every env entry, with its `value` (the fake's own view).
    pub envs: Vec<Value>,
    pub deployments: BTreeMap<String, Deployment>,
    pub production: Option<String>,
    /// Set by [`VercelState::roll_back`]: new deployments get no alias until one
    /// is promoted.
    pub rolled_back_to: Option<String>,
    pub build: Build,
    /// Redeploys created: the restarts the platform saw.
    pub redeploys: usize,
    /// Promotions asked for (`POST …/promote/…` answered 201 or 202).
    pub promotions: usize,
    pub promote_job: PromoteJob,
    /// The project's `lastAliasRequest` (a rollback's, or a promotion job that
    /// advances with each read of it).
    pub last_alias_request: Option<Value>,
    /// New variables are made sensitive whatever was asked (a team policy).
    pub force_sensitive: bool,
    pub on_build: Option<Hook>,
    next: u32,
    requests: u64,
    /// Refusals to come, set by [`VercelState::rate_limit`].
    rate_limits: Vec<RateLimit>,
}

impl Default for VercelState {
    fn default() -> Self {
        let mut st = VercelState {
            envs: Vec::new(),
            deployments: BTreeMap::new(),
            production: None,
            rolled_back_to: None,
            build: Build::Healthy,
            redeploys: 0,
            promotions: 0,
            promote_job: PromoteJob::Succeeds,
            last_alias_request: None,
            force_sensitive: false,
            on_build: None,
            next: 0,
            requests: 0,
            rate_limits: Vec::new(),
        };
        let id = st.id("dpl_");
        let mut d = deployment_json(&id, json!({}), "READY");
        d["aliasAssigned"] = json!(1_700_000_000_000u64);
        d["alias"] = json!([PRODUCTION_DOMAIN]);
        st.deployments.insert(
            id.clone(),
            Deployment {
                json: d,
                build: Build::Healthy,
                polls: 0,
                hook: None,
                built_env: None,
            },
        );
        st.production = Some(id);
        st
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct RateLimit {
    method: String,
    path_prefix: String,
    times: u32,
    retry_after: u64,
}

impl VercelState {
    /// The next `times` `method` requests whose path starts with `path_prefix`
    /// are refused as Vercel refuses a rate-limited one: 429, the code
    /// `rate_limited` ([CLI] `util/deploy/create-deploy.ts` and `index.ts` match
    /// on it) and `Retry-After` in seconds ([CLI] `util/errors-ts.ts` `APIError`,
    /// [CLIENT] `check-deployment-status.ts` `parseRetryAfterMs`: "The
    /// `Retry-After` header from the api tells us when the next rate limit token
    /// is available"). The message is ours.
    pub fn rate_limit(&mut self, method: &str, path_prefix: &str, times: u32, retry_after: u64) {
        self.rate_limits.push(RateLimit {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            times,
            retry_after,
        });
    }

    fn rate_limited(&mut self, req: &Request) -> Option<Response> {
        let l = self.rate_limits.iter_mut().find(|l| {
            l.times > 0 && l.method == req.method && req.path.starts_with(&l.path_prefix)
        })?;
        l.times -= 1;
        Some(
            error(429, "rate_limited", "Rate limit exceeded")
                .header("retry-after", &l.retry_after.to_string()),
        )
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:06}", self.next)
    }

    /// Adds an entry and returns its id.
    pub fn add_env(
        &mut self,
        key: &str,
        value: &str,
        kind: &str,
        target: &[&str],
        git_branch: Option<&str>,
    ) -> String {
        let id = self.id("env_");
        self.envs.push(json!({
            "id": id, "key": key, "value": value, "type": kind, "target": target,
            "gitBranch": git_branch, "customEnvironmentIds": [], "comment": null,
            "createdAt": now_ms(), "updatedAt": now_ms(),
        }));
        id
    }

    /// The value of `key` a production deployment gets now.
    pub fn production_value(&self, key: &str) -> Option<String> {
        self.envs
            .iter()
            .find(|e| {
                e["key"] == key
                    && e["target"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "production"))
                    && e["gitBranch"].is_null()
            })
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    }

    pub fn env(&self, key: &str) -> Vec<&Value> {
        self.envs.iter().filter(|e| e["key"] == key).collect()
    }

    /// An Instant Rollback to the current production deployment.
    pub fn roll_back(&mut self) {
        self.rolled_back_to = self.production.clone();
        self.last_alias_request = self.rolled_back_to.as_ref().map(|to| {
            json!({ "fromDeploymentId": "dpl_newer", "toDeploymentId": to,
                    "jobStatus": "succeeded", "requestedAt": now_ms(), "type": "rollback" })
        });
    }

    pub fn deployment(&self, id: &str) -> &Value {
        &self.deployments[id].json
    }

    /// The env entries deployment `id` was built with (`None`: not built yet, or
    /// built before the fake started, as its first production deployment).
    pub fn built_env(&self, id: &str) -> Option<&[Value]> {
        self.deployments.get(id)?.built_env.as_deref()
    }

    /// `GET /v9/projects/{idOrName}` ([API] projects/get-a-project; required
    /// fields as `@vercel/sdk`'s `GetProjectResponseBody`). The Instant Rollback
    /// state only when asked for with `rollbackInfo` ([CLI]
    /// `util/projects/get-project-by-id-or-name.ts`, `includeRollbackInfo`; a
    /// plain read may leave them out, so the fake does).
    fn project_json(&mut self, rollback_info: bool) -> Value {
        if rollback_info {
            self.advance_alias_job();
        }
        let prod = self.production.as_ref().map(|id| {
            let d = &self.deployments[id].json;
            json!({
                "id": id, "readyState": d["readyState"], "url": d["url"],
                "createdAt": d["createdAt"], "alias": d["alias"], "aliasAssigned": d["aliasAssigned"],
                "aliasError": null, "builds": [], "createdIn": "iad1", "creator": creator(),
                "deploymentHostname": d["url"], "forced": false, "meta": d["meta"],
                "plan": "pro", "private": true, "readySubstate": "PROMOTED",
                "target": "production", "type": "LAMBDAS",
            })
        });
        let mut p = json!({
            "accountId": TEAM, "id": PROJECT_ID, "name": PROJECT, "framework": "nextjs",
            "alias": [], "directoryListing": false, "nodeVersion": "22.x",
            "createdAt": 1_690_000_000_000u64, "updatedAt": now_ms(),
            "defaultResourceConfig": { "fluid": true, "functionDefaultRegions": ["iad1"] },
            "resourceConfig": { "fluid": true, "functionDefaultRegions": ["iad1"] },
            "deploymentExpiration": { "expirationDays": 90 },
            "targets": { "production": prod },
        });
        if rollback_info {
            p["lastAliasRequest"] = self.last_alias_request.clone().unwrap_or(Value::Null);
            p["lastRollbackTarget"] = match &self.rolled_back_to {
                Some(_) => json!({}),
                None => Value::Null,
            };
        }
        p
    }

    /// A promotion job moves on with each read of the project's rollback state,
    /// as [CLI] `promote/status.ts` sees it: pending, in-progress, then its end.
    fn advance_alias_job(&mut self) {
        let Some(req) = self.last_alias_request.as_mut() else {
            return;
        };
        if req["type"] != "promote" {
            return;
        }
        let next = match req["jobStatus"].as_str() {
            Some("pending") => "in-progress",
            Some("in-progress") => match self.promote_job {
                PromoteJob::Fails => "failed",
                PromoteJob::Succeeds | PromoteJob::Queued => "succeeded",
            },
            _ => return,
        };
        req["jobStatus"] = json!(next);
        if next == "succeeded" {
            let id = req["toDeploymentId"].as_str().unwrap_or("").to_owned();
            if let Some(d) = self.deployments.get_mut(&id) {
                d.json["aliasAssigned"] = json!(now_ms());
                d.json["alias"] = json!([PRODUCTION_DOMAIN]);
            }
            self.production = Some(id);
            self.rolled_back_to = None;
        }
    }

    /// One poll of a deployment: its lifecycle advances.
    pub fn advance(&mut self, id: &str) {
        let rolled_back = self.rolled_back_to.is_some();
        let envs = self.envs.clone();
        let hook = self.on_build.clone();
        let Some(d) = self.deployments.get_mut(id) else {
            return;
        };
        let state = d.json["readyState"].as_str().unwrap_or("").to_owned();
        if matches!(state.as_str(), "READY" | "ERROR" | "CANCELED") {
            return;
        }
        d.polls += 1;
        let set = |d: &mut Deployment, s: &str| {
            d.json["readyState"] = json!(s);
            d.json["state"] = json!(s);
        };
        match (d.build, d.polls) {
            (_, 1) => set(d, "BUILDING"),
            (Build::Stalls, _) => {}
            (Build::Canceled, _) => set(d, "CANCELED"),
            (Build::Fails, _) => {
                set(d, "ERROR");
                d.json["errorCode"] = json!("BUILD_FAILED");
                d.json["errorMessage"] = json!("Command \"npm run build\" exited with 1");
            }
            (Build::Healthy | Build::AliasFails | Build::ChecksFail, _) => {
                // The environment the build runs with (and the hook gets).
                d.built_env.get_or_insert_with(|| envs.clone());
                // The build runs the hook once, on a thread of its own; the
                // deployment stays BUILDING until it is done.
                if let Some(h) = &hook {
                    let slot = d.hook.get_or_insert_with(|| {
                        let slot: HookSlot = Arc::default();
                        let s = slot.clone();
                        let h = h.clone();
                        std::thread::spawn(move || {
                            let r = h(&envs);
                            *s.lock().unwrap() = Some(r);
                        });
                        slot
                    });
                    let result = slot.lock().unwrap().clone();
                    match result {
                        None => return,
                        Some(Err(m)) => {
                            set(d, "ERROR");
                            d.json["errorCode"] = json!("BUILD_FAILED");
                            d.json["errorMessage"] = json!(m);
                            return;
                        }
                        Some(Ok(())) => {}
                    }
                }
                set(d, "READY");
                if d.build == Build::ChecksFail {
                    d.json["checksState"] = json!("completed");
                    d.json["checksConclusion"] = json!("failed");
                } else if d.build == Build::AliasFails {
                    d.json["aliasError"] = json!({ "code": "DEPLOYMENT_ALIAS_FAILED", "message": "The domain shop.example.com is not verified" });
                } else if !rolled_back {
                    d.json["aliasAssigned"] = json!(now_ms());
                    d.json["alias"] = json!([PRODUCTION_DOMAIN]);
                    self.production = Some(id.to_owned());
                }
            }
        }
    }
}

/// Vercel's error body ([CLI] `util/response-error.ts`, [API] "Errors":
/// `{"error":{"code","message"}}`).
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// The domain production is served on.
pub const PRODUCTION_DOMAIN: &str = "shop.example.com";

fn creator() -> Value {
    json!({ "uid": USER_ID, "username": "vsync-test", "email": "ci@example.com" })
}

pub const USER_ID: &str = "usr_fake456";

fn team_json() -> Value {
    json!({ "id": TEAM, "slug": TEAM_SLUG, "name": "Fake team", "avatar": null,
            "createdAt": 1_690_000_000_000u64, "creatorId": USER_ID,
            "membership": { "role": "OWNER", "confirmed": true, "createdAt": 1_690_000_000_000u64 } })
}
pub const TEAM_SLUG: &str = "fake-team";

/// A deployment as `GET /v13/deployments/{idOrUrl}` answers it ([API]
/// deployments/get-a-deployment-by-id-or-url; the fields `@vercel/sdk`'s
/// `GetDeploymentResponseBody` requires). `uid`/`state` are the v6 list's names
/// ([CLIENT] `utils/ready-state.ts` reads both), kept for the list.
fn deployment_json(id: &str, meta: Value, state: &str) -> Value {
    let url = format!("{PROJECT}-{}.vercel.app", id.to_lowercase());
    json!({
        "id": id, "uid": id, "name": PROJECT, "url": url,
        "readyState": state, "state": state, "target": "production",
        "aliasAssigned": null, "aliasError": null, "alias": [], "meta": meta,
        "projectId": PROJECT_ID, "createdAt": now_ms(), "buildingAt": now_ms(),
        "createdIn": "iad1", "creator": creator(), "public": false, "status": state,
        "type": "LAMBDAS", "version": 2, "regions": ["iad1"], "routes": null,
        "plan": "pro", "ownerId": TEAM, "bootedAt": now_ms(), "lambdas": [],
        "inspectorUrl": format!("https://vercel.com/{TEAM_SLUG}/{PROJECT}/{}", id.trim_start_matches("dpl_")),
        "source": "redeploy", "team": { "id": TEAM, "name": "Fake team", "slug": TEAM_SLUG },
        "env": [], "build": { "env": [] }, "aliasAssignedAt": null, "readySubstate": null,
        "project": { "id": PROJECT_ID, "name": PROJECT, "framework": "nextjs" },
        "isInConcurrentBuildsQueue": false, "isFirstBranchDeployment": false,
    })
}

/// Authorization and team scope, as every Vercel route checks them: a missing or
/// wrong token is 403 `forbidden` ([API] "Authentication"; the CLI's
/// `util/client.ts` reads 403 as a token without access), a request outside the
/// token's team 404 (what Vercel answers for a project it will not show; the
/// exact message is ours).
fn refused(req: &Request) -> Option<Response> {
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(
            403,
            "forbidden",
            "Not authorized: Trying to access resource under scope",
        ));
    }
    // The user's own record and teams are not team-scoped.
    if req.path == "/v2/user"
        || req.path.starts_with("/v1/teams")
        || req.path.starts_with("/v2/teams")
    {
        return None;
    }
    if req.query_param("teamId").as_deref() != Some(TEAM) {
        return Some(error(404, "not_found", "Project not found"));
    }
    None
}

fn is_project(p: &str) -> bool {
    p == PROJECT || p == PROJECT_ID
}

/// A listed entry: encrypted values stay encrypted, sensitive ones are absent.
/// `securityIssues` is required in every listed entry (`@vercel/sdk`
/// `FilterProjectEnvsResponseBody2.envs`).
fn listed(e: &Value) -> Value {
    let mut e = e.clone();
    e["securityIssues"] = json!([]);
    if e["type"] == "sensitive" {
        e.as_object_mut().unwrap().remove("value");
    } else {
        e["value"] = json!("eyJ2IjoiZW5jcnlwdGVkIn0=");
    }
    e
}

pub async fn start(state: VercelState) -> FakeHttp<VercelState> {
    FakeHttp::builder(state)
        .route("*", "/**", |req, st: &mut VercelState| {
            st.requests += 1;
            // Every Vercel answer names its request (x-vercel-id).
            let id = format!("iad1::fake-{:08}", st.requests);
            let r = match refused(req).or_else(|| st.rate_limited(req)) {
                Some(r) => r,
                None => route(req, st),
            };
            r.header("x-vercel-id", &id)
        })
        .start()
        .await
}

fn route(req: &Request, st: &mut VercelState) -> Response {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        // [API] projects/retrieve-the-environment-variables-of-a-project-by-id-or-name
        // (`@vercel/sdk` `filterProjectEnvs`: `{envs, pagination}`).
        ("GET", ["v10", "projects", p, "env"]) if is_project(p) => Response::json(
            200,
            &json!({
                "envs": st.envs.iter().map(listed).collect::<Vec<_>>(),
                "pagination": { "count": st.envs.len(), "next": null, "prev": null },
            }),
        ),
        // [API] projects/retrieve-the-decrypted-value-of-an-environment-variable-of-a-project-by-id
        // (`getProjectEnv`); a sensitive entry "cannot be decrypted once created"
        // ([API docs] sensitive-environment-variables): no value, `decrypted: false`.
        ("GET", ["v1", "projects", p, "env", id]) if is_project(p) => {
            match st.envs.iter().find(|e| e["id"] == *id) {
                None => error(404, "not_found", "Environment Variable not found"),
                Some(e) if e["type"] == "sensitive" => {
                    let mut e = listed(e);
                    e["decrypted"] = json!(false);
                    Response::json(200, &e)
                }
                Some(e) => {
                    let mut e = e.clone();
                    e["decrypted"] = json!(true);
                    Response::json(200, &e)
                }
            }
        }
        // [API] projects/create-one-or-more-environment-variables (`createProjectEnv`,
        // 201 `{created, failed}`).
        ("POST", ["v10", "projects", p, "env"]) if is_project(p) => create_env(req, st),
        // [API] projects/edit-an-environment-variable (`type` optional in the
        // OpenAPI body; [CLI] `util/env/update-env-record.ts` sends the entry's
        // own). A sensitive entry cannot change type nor an entry become
        // sensitive in place ([API docs] environment-variables/sensitive-environment-variables:
        // "To mark an existing environment variable as sensitive, remove and
        // re-add it"): 400, our words.
        ("PATCH", ["v9" | "v10", "projects", p, "env", id]) if is_project(p) => {
            let body = req.json();
            let Some(e) = st.envs.iter_mut().find(|e| e["id"] == *id) else {
                return error(404, "not_found", "Environment Variable not found");
            };
            if let Some(t) = body["type"].as_str() {
                if !matches!(t, "system" | "encrypted" | "plain" | "sensitive") {
                    return error(400, "bad_request", "Invalid request: `type` must be one of system, encrypted, plain, sensitive");
                }
                if (e["type"] == "sensitive") != (t == "sensitive") {
                    return error(
                        400,
                        "bad_request",
                        "A sensitive Environment Variable cannot change type: remove and re-add it",
                    );
                }
            }
            for k in ["value", "comment", "type", "target", "gitBranch"] {
                if !body[k].is_null() {
                    e[k] = body[k].clone();
                }
            }
            e["updatedAt"] = json!(now_ms());
            Response::json(200, &listed(e))
        }
        // [API] projects/remove-an-environment-variable (`removeProjectEnv`, 200
        // with the removed entry).
        ("DELETE", ["v9", "projects", p, "env", id]) if is_project(p) => {
            match st.envs.iter().position(|e| e["id"] == *id) {
                None => error(404, "not_found", "Environment Variable not found"),
                Some(i) => {
                    let e = st.envs.remove(i);
                    Response::json(200, &listed(&e))
                }
            }
        }
        ("GET", ["v9", "projects", p]) if is_project(p) => {
            let info = req.query_param("rollbackInfo").as_deref() == Some("true");
            Response::json(200, &st.project_json(info))
        }
        ("GET", ["v9", "projects", _]) => error(404, "not_found", "Project not found"),
        // [API] deployments/list-deployments (v6 is what the CLI lists with,
        // `util/deploy/get-deployments…`; the SDK asks v7 for the same list).
        ("GET", ["v6" | "v7", "deployments"]) => {
            let q = |k: &str| req.query_param(k);
            let list: Vec<Value> = st
                .deployments
                .values()
                .map(|d| &d.json)
                .filter(|d| q("projectId").is_none_or(|p| d["projectId"] == p.as_str()))
                .filter(|d| q("target").is_none_or(|t| d["target"] == t.as_str()))
                .filter(|d| {
                    req.query
                        .as_deref()
                        .unwrap_or("")
                        .split('&')
                        .filter_map(|kv| kv.strip_prefix("meta-"))
                        .all(|kv| {
                            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                            d["meta"][k] == v
                        })
                })
                .map(|d| {
                    json!({ "uid": d["id"], "name": d["name"], "url": d["url"], "state": d["readyState"],
                            "readyState": d["readyState"], "target": d["target"], "meta": d["meta"],
                            "created": d["createdAt"], "createdAt": d["createdAt"], "type": "LAMBDAS",
                            "creator": d["creator"], "inspectorUrl": d["inspectorUrl"],
                            "projectId": d["projectId"], "aliasAssigned": d["aliasAssigned"],
                            "aliasError": d["aliasError"], "source": d["source"] })
                })
                .rev()
                .collect();
            let count = list.len();
            Response::json(
                200,
                &json!({ "deployments": list, "pagination": { "count": count, "next": null, "prev": null } }),
            )
        }
        // [API] deployments/create-a-new-deployment; a redeploy as [CLI]
        // `commands/redeploy/index.ts` sends it.
        ("POST", ["v13", "deployments"]) => {
            let body = req.json();
            let from = body["deploymentId"].as_str().unwrap_or("");
            if body["name"] != PROJECT || !st.deployments.contains_key(from) {
                return error(
                    400,
                    "bad_request",
                    "Invalid request: `deploymentId` not found",
                );
            }
            if body["target"] != "production" {
                return error(400, "bad_request", "target must be production here");
            }
            let id = st.id("dpl_");
            let d = deployment_json(&id, body["meta"].clone(), "QUEUED");
            let build = st.build;
            st.deployments.insert(
                id.clone(),
                Deployment {
                    json: d.clone(),
                    build,
                    polls: 0,
                    hook: None,
                    built_env: None,
                },
            );
            st.redeploys += 1;
            Response::json(200, &d)
        }
        // [API] deployments/get-a-deployment-by-id-or-url: the CLI asks by url too.
        ("GET", ["v13", "deployments", id_or_url]) => {
            let id = st
                .deployments
                .iter()
                .find(|(id, d)| id == id_or_url || d.json["url"] == *id_or_url)
                .map(|(id, _)| id.clone());
            let Some(id) = id else {
                return error(404, "not_found", "Deployment not found");
            };
            st.advance(&id);
            Response::json(200, st.deployment(&id))
        }
        // [API] projects/points-all-production-domains-for-a-project-to-the-given-deploy:
        // 201 started, 202 queued behind a rolling release ([CLI]
        // `promote/request-promote.ts`), no body (`@vercel/sdk` reads it as
        // nothing). The CLI sends `{}` ("required"); the SDK sends no body, so both
        // are taken and anything else is a 400.
        ("POST", ["v10", "projects", p, "promote", id]) if is_project(p) => {
            if !req.body.is_empty() && !req.json().is_object() {
                return error(400, "bad_request", "Invalid request body");
            }
            let Some(d) = st.deployments.get(*id) else {
                return error(404, "not_found", "Deployment not found");
            };
            if d.json["readyState"] != "READY" {
                return error(400, "bad_request", "Deployment is not ready");
            }
            let from = st.production.clone();
            st.last_alias_request = Some(json!({
                "fromDeploymentId": from, "toDeploymentId": id, "jobStatus": "pending",
                "requestedAt": now_ms(), "type": "promote",
            }));
            st.promotions += 1;
            let status = if st.promote_job == PromoteJob::Queued {
                202
            } else {
                201
            };
            let mut r = Response::text(status, "");
            r.headers.clear();
            r
        }
        // [API] user/get-the-user; [CLI] `util/get-user.ts` reads `user`.
        ("GET", ["v2", "user"]) => Response::json(
            200,
            &json!({ "user": {
                "id": USER_ID, "uid": USER_ID, "username": "vsync-test", "email": "ci@example.com",
                "name": "vsync test", "defaultTeamId": TEAM, "version": "northstar",
                "createdAt": 1_690_000_000_000u64, "softBlock": null, "billing": null,
                "resourceConfig": {}, "stagingPrefix": "vsync", "avatar": null,
            } }),
        ),
        // The project's custom environments: [CLI]
        // `util/target/get-custom-environments.ts` asks the unversioned path (a 404
        // there means "not flagged for custom environments"); the SDK asks v9.
        (
            "GET",
            ["projects", p, "custom-environments"] | ["v9", "projects", p, "custom-environments"],
        ) if is_project(p) => Response::json(200, &json!({ "environments": [] })),
        // [API] teams/list-all-teams: the CLI resolves `--scope` from `/v1/teams`
        // (`util/teams/get-teams.ts`, `body.teams`); v2 pages the same list.
        ("GET", ["v1" | "v2", "teams"]) => Response::json(
            200,
            &json!({ "teams": [team_json()], "pagination": { "count": 1, "next": null, "prev": null } }),
        ),
        // [API] teams/get-a-team, by id or slug; [CLI] `util/teams/get-team-by-id.ts`.
        ("GET", ["v1" | "v2", "teams", t]) if *t == TEAM || *t == TEAM_SLUG => {
            Response::json(200, &team_json())
        }
        ("GET", ["v1" | "v2", "teams", _]) => error(404, "not_found", "Team not found"),
        _ => error(
            404,
            "not_found",
            // Not Vercel's: a route the fake lacks says so.
            &format!("no fake route for {} {}", req.method, req.path),
        ),
    }
}

fn create_env(req: &Request, st: &mut VercelState) -> Response {
    let body = req.json();
    let key = body["key"].as_str().unwrap_or("").to_owned();
    let Some(value) = body["value"].as_str().map(str::to_owned) else {
        // [CLI] `util/env/known-error.ts` lists the env codes the API answers.
        return error(400, "MISSING_VALUE", "value is required");
    };
    let targets: Vec<String> = match &body["target"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    };
    let mut kind = body["type"].as_str().unwrap_or("encrypted").to_owned();
    if st.force_sensitive && targets.iter().all(|t| t != "development") {
        kind = "sensitive".into();
    }
    // [API docs] sensitive-environment-variables: "You can only create sensitive
    // environment variables in the preview and production environments"; the
    // code and words are ours.
    if kind == "sensitive" && targets.iter().any(|t| t == "development") {
        return error(
            400,
            "bad_request",
            "Sensitive variables cannot target development",
        );
    }
    let branch = body["gitBranch"].clone();
    let upsert = req.query_param("upsert").as_deref() == Some("true");
    let existing = st.envs.iter().position(|e| {
        e["key"] == key.as_str()
            && e["gitBranch"] == branch
            && e["target"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| targets.iter().any(|x| t == x.as_str())))
    });
    let entry = match existing {
        // 400 `ENV_ALREADY_EXISTS` ([CLI] `util/env/known-error.ts`); the status is
        // our reading.
        Some(_) if !upsert => {
            return error(
                400,
                "ENV_ALREADY_EXISTS",
                "A variable with the same key and environment already exists",
            )
        }
        Some(i) => {
            let e = &mut st.envs[i];
            e["value"] = json!(value);
            e["type"] = json!(kind);
            e["comment"] = body["comment"].clone();
            e["updatedAt"] = json!(now_ms());
            e.clone()
        }
        None => {
            let id = st.id("env_");
            let e = json!({
                "id": id, "key": key, "value": value, "type": kind, "target": targets,
                "gitBranch": branch, "customEnvironmentIds": [], "comment": body["comment"],
                "createdAt": now_ms(), "updatedAt": now_ms(),
            });
            st.envs.push(e.clone());
            e
        }
    };
    Response::json(201, &json!({ "created": listed(&entry), "failed": [] }))
}
