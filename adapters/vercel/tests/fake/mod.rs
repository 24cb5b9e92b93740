//! A stateful fake of the Vercel REST API on the test kit's fake HTTP server, in
//! the shapes Vercel documents (there is no emulator):
//!
//! * environment variables: `GET /v10/projects/{idOrName}/env` (`{envs:[…]}`,
//!   values of sensitive entries never listed), `GET /v1/projects/{idOrName}/env/{id}`
//!   (`decrypted:false` and no value for a sensitive entry),
//!   `POST /v10/projects/{idOrName}/env[?upsert=true]` (`{created, failed}`),
//!   `PATCH /v9/projects/{idOrName}/env/{id}`, `DELETE /v9/projects/{idOrName}/env/{id}`;
//! * deployments: `GET /v9/projects/{idOrName}` (`targets.production`, Instant
//!   Rollback state), `GET /v6/deployments` (filters `projectId`, `target`,
//!   `meta-KEY`), `POST /v13/deployments?forceNew=1` (a redeploy:
//!   `{name, deploymentId, target, meta}`), `GET /v13/deployments/{id}` whose
//!   `readyState` advances QUEUED → BUILDING → READY over polls, with
//!   `aliasAssigned` set when production gets the alias, and
//!   `POST /v10/projects/{id}/promote/{deploymentId}`.
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

pub const TOKEN: &str = "vercel-test-token-4f8a";
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
    pub promotions: usize,
    /// New variables are made sensitive whatever was asked (a team policy).
    pub force_sensitive: bool,
    pub on_build: Option<Hook>,
    next: u32,
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
            force_sensitive: false,
            on_build: None,
            next: 0,
        };
        let id = st.id("dpl_");
        st.deployments.insert(
            id.clone(),
            Deployment {
                json: json!({
                    "id": id, "uid": id, "name": PROJECT, "url": format!("{PROJECT}-{}.vercel.app", id.to_lowercase()),
                    "readyState": "READY", "state": "READY", "target": "production",
                    "aliasAssigned": 1_700_000_000_000u64, "aliasError": null, "meta": {},
                    "projectId": PROJECT_ID,
                }),
                build: Build::Healthy,
                polls: 0,
                hook: None,
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

impl VercelState {
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
    }

    pub fn deployment(&self, id: &str) -> &Value {
        &self.deployments[id].json
    }

    fn project_json(&self) -> Value {
        let prod = self.production.as_ref().map(|id| {
            let d = &self.deployments[id].json;
            json!({ "id": id, "readyState": d["readyState"], "url": d["url"] })
        });
        let rollback = self.rolled_back_to.as_ref().map(|to| {
            json!({ "fromDeploymentId": "dpl_newer", "toDeploymentId": to, "jobStatus": "succeeded", "requestedAt": now_ms() })
        });
        json!({
            "id": PROJECT_ID, "name": PROJECT, "framework": "nextjs",
            "targets": { "production": prod },
            "lastRollbackTarget": rollback,
            "lastAliasRequest": self.rolled_back_to.as_ref().map(|to| json!({
                "type": "rollback", "toDeploymentId": to, "jobStatus": "succeeded"
            })),
        })
    }

    /// One poll of a deployment: its lifecycle advances.
    fn advance(&mut self, id: &str) {
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
            (Build::Healthy | Build::AliasFails, _) => {
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
                if d.build == Build::AliasFails {
                    d.json["aliasError"] = json!({ "code": "DEPLOYMENT_ALIAS_FAILED", "message": "The domain shop.example.com is not verified" });
                } else if !rolled_back {
                    d.json["aliasAssigned"] = json!(now_ms());
                    self.production = Some(id.to_owned());
                }
            }
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// Authorization and team scope, as every Vercel route checks them.
fn refused(req: &Request) -> Option<Response> {
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(
            403,
            "forbidden",
            "Not authorized: Trying to access resource under scope",
        ));
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
fn listed(e: &Value) -> Value {
    let mut e = e.clone();
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
            if let Some(r) = refused(req) {
                return r;
            }
            route(req, st)
        })
        .start()
        .await
}

fn route(req: &Request, st: &mut VercelState) -> Response {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["v10", "projects", p, "env"]) if is_project(p) => Response::json(
            200,
            &json!({ "envs": st.envs.iter().map(listed).collect::<Vec<_>>(), "pagination": null }),
        ),
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
        ("POST", ["v10", "projects", p, "env"]) if is_project(p) => create_env(req, st),
        ("PATCH", ["v9", "projects", p, "env", id]) if is_project(p) => {
            let body = req.json();
            let Some(e) = st.envs.iter_mut().find(|e| e["id"] == *id) else {
                return error(404, "not_found", "Environment Variable not found");
            };
            for k in ["value", "comment", "type", "target", "gitBranch"] {
                if !body[k].is_null() {
                    e[k] = body[k].clone();
                }
            }
            e["updatedAt"] = json!(now_ms());
            Response::json(200, &listed(e))
        }
        ("DELETE", ["v9", "projects", p, "env", id]) if is_project(p) => {
            match st.envs.iter().position(|e| e["id"] == *id) {
                None => error(404, "not_found", "Environment Variable not found"),
                Some(i) => {
                    let e = st.envs.remove(i);
                    Response::json(200, &listed(&e))
                }
            }
        }
        ("GET", ["v9", "projects", p]) if is_project(p) => Response::json(200, &st.project_json()),
        ("GET", ["v6", "deployments"]) => {
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
                            "readyState": d["readyState"], "target": d["target"], "meta": d["meta"] })
                })
                .rev()
                .collect();
            Response::json(200, &json!({ "deployments": list, "pagination": {} }))
        }
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
            let d = json!({
                "id": id, "name": PROJECT, "url": format!("{PROJECT}-{}.vercel.app", id.to_lowercase()),
                "readyState": "QUEUED", "state": "QUEUED", "target": "production",
                "aliasAssigned": null, "aliasError": null, "meta": body["meta"],
                "projectId": PROJECT_ID, "createdAt": now_ms(),
            });
            let build = st.build;
            st.deployments.insert(
                id.clone(),
                Deployment {
                    json: d.clone(),
                    build,
                    polls: 0,
                    hook: None,
                },
            );
            st.redeploys += 1;
            Response::json(200, &d)
        }
        ("GET", ["v13", "deployments", id]) => {
            if !st.deployments.contains_key(*id) {
                return error(404, "not_found", "Deployment not found");
            }
            st.advance(id);
            Response::json(200, st.deployment(id))
        }
        ("POST", ["v10", "projects", p, "promote", id]) if is_project(p) => {
            let Some(d) = st.deployments.get_mut(*id) else {
                return error(404, "not_found", "Deployment not found");
            };
            if d.json["readyState"] != "READY" {
                return error(400, "bad_request", "Deployment is not ready");
            }
            d.json["aliasAssigned"] = json!(now_ms());
            st.production = Some((*id).to_owned());
            st.rolled_back_to = None;
            st.promotions += 1;
            Response::json(201, &json!({}))
        }
        _ => error(
            404,
            "not_found",
            &format!("no fake route for {} {}", req.method, req.path),
        ),
    }
}

fn create_env(req: &Request, st: &mut VercelState) -> Response {
    let body = req.json();
    let key = body["key"].as_str().unwrap_or("").to_owned();
    let Some(value) = body["value"].as_str().map(str::to_owned) else {
        return error(400, "bad_request", "value is required");
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
