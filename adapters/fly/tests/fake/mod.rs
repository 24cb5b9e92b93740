//! A stateful fake of the Fly.io Machines API (`/v1/apps/{app}/machines…`) on the
//! test kit's fake HTTP server. No Fly client installs here, so its shapes are
//! checked by hand against Fly's own Go client, superfly/fly-go (read at commit
//! 22d6e518, 2025-08-21): the request each route takes is what `flaps/flaps_machines.go`
//! and `flaps/flaps_machines_wait.go` send, the bodies are the JSON of the structs
//! in `machine_types.go`, and failures are what `flaps/flaps.go` reads back:
//!
//! * every answer carries `fly-request-id` (`flaps.go`: `headerFlyRequestId`, kept
//!   in `FlapsError.FlyRequestId`);
//! * a failure is any status > 299 with `{"error": "…"}` (`flaps.go`,
//!   `handleAPIError`: `{error, message?}`; `flaps_error.go`, `errorResponse`
//!   also has `status`), so its text reaches the caller as `error`.
//!
//! Routes (each cited again where it is served):
//!
//! * `GET /v1/apps/{app}/machines` (`Client.List`) → `[Machine]` and
//!   `GET …/machines/{id}` (`Client.Get`) → `Machine`: `{id, name, state, region,
//!   instance_id, private_ip, image_ref, config{metadata{fly_process_group}},
//!   checks[MachineCheckStatus{name, status, output, updated_at}],
//!   events[MachineEvent{type, status, source, timestamp (ms)}]}`. Flaps adds
//!   `bg_deployments_compat*` checks for old flyctl versions, which fly-go drops
//!   (`Machine.RemoveCompatChecks`); [`FlyState::add_compat_check`] adds one;
//! * `POST …/{id}/lease?ttl=N` (`Client.AcquireLease`) → `MachineLease{status,
//!   data{nonce, expires_at (s), owner, version}}`; 409 while someone else holds
//!   it (the status `AcquireLease` retries on); `DELETE …/{id}/lease` with
//!   `fly-machine-lease-nonce` (`Client.ReleaseLease`, `NonceHeader`);
//! * `POST …/{id}/restart?force_stop=false` with the nonce (`Client.Restart`); 409
//!   when the nonce does not match a held lease. The machine then goes `stopping` →
//!   `starting` → `started` over polls and its checks `critical` → `passing` (or
//!   stay critical, or it never starts, as the machine's [`Behaviour`] says);
//! * `GET …/{id}/wait?state=started&timeout=N` (`Client.Wait`): 200 once the state
//!   is reached, else 408 at once (the real server holds the request up to
//!   `timeout`; the fake answers immediately, the client polls). The 408 is from
//!   the Machines API reference, not from fly-go, which passes any status through;
//! * `POST …/{id}/metadata/{key}` `{"value": …}` (`Client.SetMetadata`).
//!
//! Every request needs `Authorization` with the fake's token (403 otherwise).
//! Never seen on a real account: the exact error texts, and the 408 and 403.
//! `tests/e2e_fly.rs` at the repository root includes this module by path.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Request, Response};

pub const TOKEN: &str = "FlyV1 fm2_lJPECAAAAAAAAfake,fm2_lJPETestMacaroon";
pub const APP: &str = "shop-web";

/// How a machine behaves when restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Starts, then its checks pass.
    Healthy,
    /// Starts, but its check stays critical (the app cannot open the vault).
    FailingCheck,
    /// Never gets past `starting`.
    NeverStarts,
    /// Exits right after starting: `stopped`.
    Crashes,
}

/// Run on a restart (the end-to-end test restarts a demo app there), on a thread
/// of its own; `Err` makes the machine's check critical with that output.
pub type Hook = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
type HookSlot = Arc<Mutex<Option<Result<(), String>>>>;

pub struct FakeMachine {
    pub json: Value,
    pub behaviour: Behaviour,
    /// Polls since the last restart.
    polls: u32,
    hook: Option<HookSlot>,
    /// (nonce, owner) of the lease held now.
    pub lease: Option<(String, String)>,
}

#[derive(Default)]
pub struct FlyState {
    pub machines: BTreeMap<String, FakeMachine>,
    /// Restarts applied, per machine: the restarts the platform saw.
    pub restarts: BTreeMap<String, usize>,
    /// Machines in the order they were restarted.
    pub order: Vec<String>,
    /// Leases granted and released, per machine.
    pub leases_granted: usize,
    pub leases_released: usize,
    pub on_restart: Option<Hook>,
    clock: u64,
    next: u32,
    requests: u64,
}

const CHECK_OUTPUT_OK: &str =
    "HTTP GET http://172.19.5.2:8080/healthz: 200 OK Output: \"{\\\"status\\\":\\\"fresh\\\"}\"";
const CONNECTION_REFUSED: &str = "connect: connection refused";
const CHECK_OUTPUT_BAD: &str = "HTTP GET http://172.19.5.2:8080/healthz: 503 Service Unavailable Output: \"WrongPassphraseError: the vault cannot be decrypted\"";

impl FlyState {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        1_764_000_000_000 + self.clock
    }

    /// Adds a machine in `group` (`app`, `worker`, `fly_app_release_command`, …)
    /// and returns its id.
    pub fn add_machine(
        &mut self,
        region: &str,
        group: &str,
        state: &str,
        behaviour: Behaviour,
    ) -> String {
        self.next += 1;
        let id = format!("{:014x}", 0x3d8d_9e1a_0000_u64 + u64::from(self.next));
        let t = self.tick();
        self.machines.insert(
            id.clone(),
            FakeMachine {
                json: json!({
                    "id": id, "name": format!("{group}-{}", self.next), "state": state,
                    "region": region, "instance_id": format!("01J{:023}", t),
                    "private_ip": "fdaa:0:1::3", "image_ref": { "repository": "shop/web", "tag": "v42" },
                    "config": {
                        "image": "registry.fly.io/shop-web:deployment-01J",
                        "metadata": { "fly_process_group": group, "fly_release_id": "rel_1", "fly_platform_version": "v2" },
                        "checks": { "http": { "type": "http", "port": 8080, "path": "/healthz", "interval": "5s" } },
                    },
                    "checks": [{ "name": "servicecheck-00-http-8080", "status": "passing", "output": CHECK_OUTPUT_OK, "updated_at": "2026-11-30T05:00:00Z" }],
                    "events": [{ "type": "start", "status": "started", "source": "flyd", "timestamp": t }],
                }),
                behaviour,
                polls: 0,
                hook: None,
                lease: None,
            },
        );
        id
    }

    /// Adds the kind of check flaps inserts for old flyctl blue-green deploys
    /// (fly-go `machine_types.go`, `RemoveCompatChecks`: names starting
    /// `bg_deployments_compat`; the suffix here is made up), in `status`, after the
    /// machine's own check.
    pub fn add_compat_check(&mut self, id: &str, status: &str) {
        let m = self.machines.get_mut(id).unwrap();
        m.json["checks"].as_array_mut().unwrap().push(json!({
            "name": "bg_deployments_compat_http",
            "status": status,
            "output": "compatibility check for flyctl bluegreen deployments",
            "updated_at": "2026-11-30T05:00:00Z",
        }));
    }

    /// Someone else (a deploy) holds the machine's lease.
    pub fn hold_lease(&mut self, id: &str) {
        self.machines.get_mut(id).unwrap().lease =
            Some(("other-nonce".into(), "deploy@example.com".into()));
    }

    pub fn release_foreign_lease(&mut self, id: &str) {
        self.machines.get_mut(id).unwrap().lease = None;
    }

    pub fn machine(&self, id: &str) -> &Value {
        &self.machines[id].json
    }

    pub fn total_restarts(&self) -> usize {
        self.restarts.values().sum()
    }

    pub fn leases_held(&self) -> Vec<String> {
        self.machines
            .iter()
            .filter(|(_, m)| m.lease.as_ref().is_some_and(|(_, o)| o == "vsync@test"))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// One poll of a machine after a restart: its lifecycle advances.
    fn advance(&mut self, id: &str) {
        let t = self.tick();
        let hook = self.on_restart.clone();
        let Some(m) = self.machines.get_mut(id) else {
            return;
        };
        if m.polls == 0 && m.json["state"] != "stopping" && m.json["state"] != "starting" {
            return; // not restarting
        }
        m.polls += 1;
        let state = m.json["state"].as_str().unwrap_or("").to_owned();
        match (state.as_str(), m.behaviour) {
            ("stopping", _) => {
                m.json["state"] = json!("starting");
                m.json["events"].as_array_mut().unwrap().push(json!({ "type": "exit", "status": "stopped", "source": "flyd", "timestamp": t }));
            }
            ("starting", Behaviour::NeverStarts) => {}
            ("starting", b) => {
                if let Some(h) = &hook {
                    let slot = m.hook.get_or_insert_with(|| {
                        let slot: HookSlot = Arc::default();
                        let (s, h, id) = (slot.clone(), h.clone(), id.to_owned());
                        std::thread::spawn(move || {
                            let r = h(&id);
                            *s.lock().unwrap() = Some(r);
                        });
                        slot
                    });
                    let r = slot.lock().unwrap().clone();
                    match r {
                        None => return,
                        Some(Err(out)) => {
                            m.json["checks"][0]["output"] = json!(out);
                            m.behaviour = Behaviour::FailingCheck;
                        }
                        Some(Ok(())) => {}
                    }
                }
                if b == Behaviour::Crashes {
                    m.json["state"] = json!("stopped");
                    m.json["events"].as_array_mut().unwrap().push(json!({ "type": "exit", "status": "stopped", "source": "flyd", "timestamp": t, "request": { "exit_event": { "exit_code": 1 } } }));
                    m.polls = 0;
                    return;
                }
                m.json["state"] = json!("started");
                m.json["events"].as_array_mut().unwrap().push(json!({ "type": "start", "status": "started", "source": "flyd", "timestamp": t }));
            }
            ("started", _) => {
                if m.behaviour != Behaviour::FailingCheck {
                    m.json["checks"][0]["status"] = json!("passing");
                    m.json["checks"][0]["output"] = json!(CHECK_OUTPUT_OK);
                    m.polls = 0;
                } else if m.json["checks"][0]["output"] == CHECK_OUTPUT_OK
                    || m.json["checks"][0]["output"] == CONNECTION_REFUSED
                {
                    m.json["checks"][0]["output"] = json!(CHECK_OUTPUT_BAD);
                }
            }
            _ => {}
        }
    }
}

/// fly-go `flaps.go` `handleAPIError`: `{"error": …}` for any status > 299.
fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

fn nonce_ok(req: &Request, m: &FakeMachine) -> bool {
    match &m.lease {
        None => true,
        Some((n, _)) => req.header("fly-machine-lease-nonce") == Some(n.as_str()),
    }
}

pub async fn start(state: FlyState) -> FakeHttp<FlyState> {
    FakeHttp::builder(state)
        .route("*", "/**", |req, st: &mut FlyState| {
            st.requests += 1;
            let id = format!("01JFAKE{:019}", st.requests);
            let auth = req.header("authorization");
            let answer = if auth != Some(TOKEN) && auth != Some("Bearer fly-personal-token") {
                error(403, "unauthorized")
            } else {
                route(req, st)
            };
            answer.header("fly-request-id", &id)
        })
        .start()
        .await
}

fn route(req: &Request, st: &mut FlyState) -> Response {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        (_, ["v1", "apps", app, ..]) if *app != APP => error(404, "app not found"),
        // fly-go `Client.List`: `GET /apps/{app}/machines` → `[]*fly.Machine`.
        ("GET", ["v1", "apps", _, "machines"]) => {
            let ids: Vec<String> = st.machines.keys().cloned().collect();
            for id in &ids {
                st.advance(id);
            }
            Response::json(
                200,
                &json!(st
                    .machines
                    .values()
                    .map(|m| m.json.clone())
                    .collect::<Vec<_>>()),
            )
        }
        // fly-go `Client.Get`: `GET /apps/{app}/machines/{id}` → `fly.Machine`.
        ("GET", ["v1", "apps", _, "machines", id]) => {
            if !st.machines.contains_key(*id) {
                return error(404, "machine not found");
            }
            st.advance(id);
            Response::json(200, st.machine(id))
        }
        // fly-go `Client.AcquireLease`: `POST …/{id}/lease?ttl=N`, no body →
        // `fly.MachineLease`; a 409 is the status it retries on (lease held).
        ("POST", ["v1", "apps", _, "machines", id, "lease"]) => {
            let t = st.tick();
            let Some(m) = st.machines.get_mut(*id) else {
                return error(404, "machine not found");
            };
            if m.lease.is_some() {
                return error(
                    409,
                    "lease currently held by deploy@example.com, expires at 2026-11-30T05:10:00Z",
                );
            }
            let nonce = format!("nonce-{t:x}");
            m.lease = Some((nonce.clone(), "vsync@test".into()));
            st.leases_granted += 1;
            Response::json(
                200,
                &json!({ "status": "success", "data": { "nonce": nonce, "expires_at": t / 1000 + 300, "owner": "vsync@test", "version": "01J" } }),
            )
        }
        // fly-go `Client.ReleaseLease`: `DELETE …/{id}/lease` with
        // `fly-machine-lease-nonce`; the body is not read.
        ("DELETE", ["v1", "apps", _, "machines", id, "lease"]) => {
            let Some(m) = st.machines.get_mut(*id) else {
                return error(404, "machine not found");
            };
            if m.lease.is_none() {
                return error(404, "no lease");
            }
            if !nonce_ok(req, m) {
                return error(409, "lease nonce mismatch");
            }
            m.lease = None;
            st.leases_released += 1;
            Response::json(200, &json!({ "ok": true }))
        }
        // fly-go `Client.Restart`: `POST …/{id}/restart?force_stop=false` with the
        // lease nonce, no body; the answer's body is not read.
        ("POST", ["v1", "apps", _, "machines", id, "restart"]) => {
            let t = st.tick();
            let Some(m) = st.machines.get_mut(*id) else {
                return error(404, "machine not found");
            };
            if !nonce_ok(req, m) {
                return error(
                    409,
                    "machine is leased by someone else: fly-machine-lease-nonce does not match",
                );
            }
            m.json["state"] = json!("stopping");
            m.json["checks"][0]["status"] = json!("critical");
            m.json["checks"][0]["output"] = json!(CONNECTION_REFUSED);
            m.json["events"].as_array_mut().unwrap().push(json!({ "type": "restart", "status": "stopping", "source": "user", "timestamp": t }));
            m.polls = 1;
            m.hook = None;
            *st.restarts.entry((*id).to_owned()).or_default() += 1;
            st.order.push((*id).to_owned());
            Response::json(200, &json!({ "ok": true }))
        }
        // fly-go `Client.Wait` (`flaps_machines_wait.go`): `GET …/{id}/wait?
        // state=started&timeout=N` (seconds); the body is not read, a status > 299
        // is the error.
        ("GET", ["v1", "apps", _, "machines", id, "wait"]) => {
            if !st.machines.contains_key(*id) {
                return error(404, "machine not found");
            }
            st.advance(id);
            let want = req.query_param("state").unwrap_or_else(|| "started".into());
            if st.machine(id)["state"] == want.as_str() {
                Response::json(200, &json!({ "ok": true }))
            } else if st.machine(id)["state"] == "stopped" && want == "started" {
                error(400, "machine is stopped, not waiting for started")
            } else {
                error(
                    408,
                    "deadline_exceeded: timeout waiting for machine to be started",
                )
            }
        }
        // fly-go `Client.SetMetadata`: `POST …/{id}/metadata/{key}` with
        // `{"value": "…"}`; the body of the answer is not read.
        ("POST", ["v1", "apps", _, "machines", id, "metadata", key]) => {
            let value = req.json()["value"].clone();
            let Some(m) = st.machines.get_mut(*id) else {
                return error(404, "machine not found");
            };
            if !nonce_ok(req, m) {
                return error(409, "lease nonce mismatch");
            }
            m.json["config"]["metadata"][*key] = value;
            Response::json(200, &json!({}))
        }
        _ => error(
            404,
            &format!("no fake route for {} {}", req.method, req.path),
        ),
    }
}
