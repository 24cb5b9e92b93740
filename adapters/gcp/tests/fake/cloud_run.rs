//! A stateful fake of the Cloud Run Admin API v2 `Services` resource: GET and
//! PATCH of a service (etag-checked; a template change creates a revision, a fixed
//! revision name that exists is `ALREADY_EXISTS`), and the long-running operation
//! each update returns, polled through `GET …/operations/ID` until it is done with
//! the updated Service or with an error.
//!
//! REST reference: <https://cloud.google.com/run/docs/reference/rest/v2>; each route
//! below names its page. Checked by `google-cloud-run` over REST
//! (tests/vendor_clients.rs): `get_service`, `update_service(...).result()` polling
//! the operation, a stale etag, and a failed rollout read back. (`gcloud run`
//! speaks the v1 Knative API, which this fake does not serve.)

use super::{google_error, int64};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Request, Response};

const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";

/// How a service's next revision behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The operation runs for two polls, then the revision is Ready and serves.
    Healthy,
    /// The revision's container never starts: the operation ends with an error and
    /// the service's Ready condition fails, quoting why.
    FailsToStart,
    /// The operation never finishes.
    Stalls,
    /// The operation itself fails (an internal error while deploying).
    OperationFails,
}

/// What the fake does on every new revision (the end-to-end test restarts demo
/// apps there): the updated service in, `Err(message)` fails the revision.
pub type Hook = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

pub const FAILED_TO_START: &str = "Revision 'REV' is not ready and cannot serve traffic. The \
     user-provided container failed to start and listen on the port defined provided by the \
     PORT=8080 environment variable within the allocated timeout.";

pub struct FakeService {
    pub json: Value,
    pub behaviour: Behaviour,
    pub revisions: Vec<String>,
    /// Each revision's template as it was created: a revision is an immutable
    /// snapshot of the service's template (…/rest/v2/projects.locations.services.revisions
    /// #Revision), so the instances it starts keep what it pinned, whatever the
    /// service's template says since.
    templates: BTreeMap<String, Value>,
}

/// Where the hook's thread leaves its result (`None` while it runs).
type HookSlot = Arc<Mutex<Option<Result<(), String>>>>;

struct Operation {
    service: String,
    polls: u32,
    /// Set by the hook's thread when it finishes.
    hook_result: Option<HookSlot>,
    finished: Option<Value>,
}

#[derive(Default)]
pub struct RunState {
    /// By full name, `projects/<p>/locations/<l>/services/<s>`.
    pub services: BTreeMap<String, FakeService>,
    ops: BTreeMap<String, Operation>,
    /// Applied updates per service: the restarts the platform saw.
    pub updates: BTreeMap<String, usize>,
    /// The next N updates find the etag moved (another deploy in between).
    pub concurrent_writes: usize,
    pub on_new_revision: Option<Hook>,
    next_op: u32,
}

/// A service template reading the passphrase from `secret` at `version` (an alias
/// or a number) through the env var `VSYNC_PASSPHRASE`.
pub fn template(secret: &str, version: &str) -> Value {
    json!({
        "labels": { "app": "shop" },
        "scaling": { "maxInstanceCount": 3 },
        "containers": [{
            "name": "app",
            "image": "europe-docker.pkg.dev/p/shop/app:1.4.2",
            "env": [
                { "name": "VSYNC_PASSPHRASE",
                  "valueSource": { "secretKeyRef": { "secret": secret, "version": version } } },
                { "name": "VSYNC_CONFIG_FILE", "value": "/etc/vsync/config" }
            ],
            "ports": [{ "name": "http1", "containerPort": 8080 }],
            "resources": { "limits": { "cpu": "1", "memory": "512Mi" }, "cpuIdle": true }
        }],
        "maxInstanceRequestConcurrency": 80,
        "serviceAccount": "shop@p.iam.gserviceaccount.com",
        "executionEnvironment": 2
    })
}

impl RunState {
    pub fn add_service(&mut self, name: &str, behaviour: Behaviour, template: Value) {
        let short = name.rsplit('/').next().unwrap().to_owned();
        let rev = format!("{name}/revisions/{short}-00001-aaa");
        let json = json!({
            "name": name,
            "uid": "6b0ab2a4-0000-4000-8000-000000000001",
            "generation": "1",
            "labels": {},
            "createTime": "2026-01-05T10:00:00Z",
            "updateTime": "2026-01-05T10:00:00Z",
            "creator": "deployer@p.iam.gserviceaccount.com",
            "lastModifier": "deployer@p.iam.gserviceaccount.com",
            "ingress": 1,
            "launchStage": 3,
            "template": template,
            "traffic": [{ "type": 1, "percent": 100 }],
            "observedGeneration": "1",
            "terminalCondition": ready(),
            "conditions": [ready()],
            "latestReadyRevision": rev,
            "latestCreatedRevision": rev,
            "trafficStatuses": [{ "type": 1, "percent": 100 }],
            "uri": format!("https://{short}-abc123-ew.a.run.app"),
            "reconciling": false,
            "etag": "\"s1\"",
        });
        let templates = BTreeMap::from([(rev.clone(), json["template"].clone())]);
        self.services.insert(
            name.to_owned(),
            FakeService {
                json,
                behaviour,
                revisions: vec![rev],
                templates,
            },
        );
    }

    pub fn service(&self, name: &str) -> &Value {
        &self.services[name].json
    }

    pub fn updates(&self, name: &str) -> usize {
        self.updates.get(name).copied().unwrap_or(0)
    }

    /// The revision that serves all of the service's traffic now (full name), as
    /// `trafficStatuses` says: a `LATEST` target is the latest *ready* revision,
    /// which a rollout moves only when it is done (`Service.traffic_statuses`,
    /// `latest_ready_revision`, …/rest/v2/projects.locations.services#Service).
    /// `None` when the traffic is split.
    pub fn serving_revision(&self, name: &str) -> Option<String> {
        let svc = &self.services[name].json;
        let all = svc["trafficStatuses"]
            .as_array()?
            .iter()
            .find(|t| t["percent"].as_i64() == Some(100))?;
        let latest =
            all["type"] == json!(1) || all["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
        match all["revision"].as_str() {
            Some(rev) if !latest && !rev.is_empty() => Some(format!("{name}/revisions/{rev}")),
            _ => svc["latestReadyRevision"].as_str().map(str::to_owned),
        }
    }

    /// The template `revision` (full name) was created with.
    pub fn revision_template(&self, name: &str, revision: &str) -> Option<&Value> {
        self.services[name].templates.get(revision)
    }
}

fn ready() -> Value {
    json!({
        "type": "Ready",
        "state": 4,
        "lastTransitionTime": "2026-01-05T10:00:00Z",
    })
}

pub async fn start(state: RunState) -> FakeHttp<RunState> {
    FakeHttp::builder(state)
        .route("*", "/v2/**", handle)
        .start()
        .await
}

fn handle(req: &Request, st: &mut RunState) -> Response {
    let name = req.param("rest").to_owned();
    if name.contains("/operations/") {
        return match req.method.as_str() {
            // GET /v2/{name=projects/*/locations/*/operations/*} → Operation
            // (…/rest/v2/projects.locations.operations/get)
            "GET" => get_operation(st, &name),
            // The fake's own answer, not the vendor's (see fake/mod.rs).
            _ => google_error(400, "INVALID_ARGUMENT", "the fake only GETs operations"),
        };
    }
    if !st.services.contains_key(&name) {
        // 404 NOT_FOUND (error model). The message is the form gcloud quotes for a
        // missing service; it is not documented, and nothing here parses it.
        let part = |key: &str| {
            name.split('/')
                .skip_while(|p| *p != key)
                .nth(1)
                .unwrap_or("")
                .to_owned()
        };
        return google_error(
            404,
            "NOT_FOUND",
            &format!(
                "Resource '{}' of kind 'SERVICE' in region '{}' in project '{}' does not exist.",
                part("services"),
                part("locations"),
                part("projects")
            ),
        );
    }
    match req.method.as_str() {
        // GET /v2/{name=projects/*/locations/*/services/*} → Service
        // (…/rest/v2/projects.locations.services/get)
        "GET" => {
            // The platform rolls out whether or not anyone polls the operation.
            let in_flight: Vec<String> = st
                .ops
                .iter()
                .filter(|(_, o)| o.service == name && o.finished.is_none())
                .map(|(n, _)| n.clone())
                .collect();
            for op in in_flight {
                advance(st, &op);
            }
            Response::json(200, &st.services[&name].json)
        }
        // PATCH /v2/{service.name=projects/*/locations/*/services/*} → Operation
        // (…/rest/v2/projects.locations.services/patch)
        "PATCH" => update(req, st, &name),
        // The fake's own answer, not the vendor's (see fake/mod.rs).
        _ => google_error(400, "INVALID_ARGUMENT", "not faked"),
    }
}

fn etag_number(v: &Value) -> u64 {
    v["etag"]
        .as_str()
        .and_then(|e| e.trim_matches('"').strip_prefix('s'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn update(req: &Request, st: &mut RunState, name: &str) -> Response {
    let body = req.json();
    if st.concurrent_writes > 0 {
        st.concurrent_writes -= 1;
        let svc = &mut st.services.get_mut(name).unwrap().json;
        svc["etag"] = json!(format!("\"s{}\"", etag_number(svc) + 1));
    }
    let svc = st.services.get_mut(name).unwrap();
    // Service.etag is "a system-generated fingerprint … May be used to detect
    // modification conflict during updates" (…/rest/v2/projects.locations.services
    // #Service); the code of a mismatch is not given there. AIP-154, which the v2
    // API follows: "If the user sends back an etag that does not match the current
    // etag, the service must send an ABORTED error response"
    // (https://google.aip.dev/154), 409 in the error model.
    if let Some(e) = body["etag"].as_str().filter(|e| !e.is_empty()) {
        if e != svc.json["etag"].as_str().unwrap_or("") {
            return google_error(
                409,
                "ABORTED",
                "The etag provided does not match the service's current etag; read it again.",
            );
        }
    }
    let short = name.rsplit('/').next().unwrap().to_owned();
    let fixed = body["template"]["revision"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    // A fixed revision name already taken: 409 ALREADY_EXISTS, "Revision named
    // '…' with different configuration already exists." as gcloud quotes it (not
    // documented on the reference pages; RevisionTemplate.revision only says the
    // name must be unique, …/rest/v2/RevisionTemplate).
    if !fixed.is_empty()
        && svc
            .revisions
            .iter()
            .any(|r| r.ends_with(&format!("/{fixed}")))
    {
        return google_error(
            409,
            "ALREADY_EXISTS",
            &format!("Revision named '{fixed}' with different configuration already exists."),
        );
    }
    let generation = int64(&svc.json["generation"]).unwrap_or(1) + 1;
    let rev_name = if fixed.is_empty() {
        format!("{short}-{generation:05}-r{generation}x")
    } else {
        fixed
    };
    let rev = format!("{name}/revisions/{rev_name}");
    for field in ["template", "traffic", "labels", "annotations", "scaling"] {
        if !body[field].is_null() {
            svc.json[field] = body[field].clone();
        }
    }
    svc.templates
        .insert(rev.clone(), svc.json["template"].clone());
    let j = &mut svc.json;
    j["generation"] = json!(generation.to_string());
    j["reconciling"] = json!(true);
    j["latestCreatedRevision"] = json!(rev);
    j["terminalCondition"] =
        json!({ "type": "Ready", "state": 2, "lastTransitionTime": "2026-01-05T10:01:00Z" });
    j["etag"] = json!(format!("\"s{}\"", etag_number(j) + 1));
    j["updateTime"] = json!("2026-01-05T10:01:00Z");
    svc.revisions.push(rev);
    *st.updates.entry(name.to_owned()).or_default() += 1;

    st.next_op += 1;
    let op_name = format!(
        "{}/operations/op-{}",
        name.split("/services/").next().unwrap(),
        st.next_op
    );
    let hook_result = match (&st.on_new_revision, svc.behaviour) {
        (Some(hook), Behaviour::Healthy) => {
            let slot = Arc::new(Mutex::new(None));
            let (hook, slot2, service) = (hook.clone(), slot.clone(), svc.json.clone());
            std::thread::spawn(move || {
                let r = hook(&service);
                *slot2.lock().unwrap() = Some(r);
            });
            Some(slot)
        }
        _ => None,
    };
    st.ops.insert(
        op_name.clone(),
        Operation {
            service: name.to_owned(),
            polls: 0,
            hook_result,
            finished: None,
        },
    );
    let mut metadata = st.services[name].json.clone();
    metadata["@type"] = json!(SERVICE_TYPE);
    Response::json(
        200,
        &json!({ "name": op_name, "done": false, "metadata": metadata }),
    )
}

fn get_operation(st: &mut RunState, op_name: &str) -> Response {
    // An unknown (or expired) operation: 404 NOT_FOUND. Operations are kept only
    // for a while (AIP-151, https://google.aip.dev/151); the message is the fake's.
    if !st.ops.contains_key(op_name) {
        return google_error(404, "NOT_FOUND", "operation not found");
    }
    Response::json(200, &advance(st, op_name))
}

/// One step of an operation's rollout; returns the operation as GET shows it.
fn advance(st: &mut RunState, op_name: &str) -> Value {
    let op = st.ops.get_mut(op_name).expect("known operation");
    if let Some(done) = &op.finished {
        return done.clone();
    }
    op.polls += 1;
    let (polls, service) = (op.polls, op.service.clone());
    let hook = op.hook_result.as_ref().map(|s| s.lock().unwrap().clone());
    let svc = st.services.get_mut(&service).unwrap();
    let rev = svc.json["latestCreatedRevision"]
        .as_str()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    // A failed rollout ends the operation with a `google.rpc.Status`. Its code is
    // not documented: FAILED_PRECONDITION (9) for a revision that cannot become
    // ready, INTERNAL (13) for the platform's own failure. The message is Cloud
    // Run's for a container that does not listen
    // (https://cloud.google.com/run/docs/troubleshooting#container-failed-to-start).
    let outcome: Option<Result<(), (i64, String, String)>> = match (svc.behaviour, hook) {
        (_, Some(None)) => None,
        (_, Some(Some(Ok(())))) => Some(Ok(())),
        (_, Some(Some(Err(m)))) => Some(Err((9, m.clone(), m))),
        (Behaviour::Healthy, None) if polls >= 2 => Some(Ok(())),
        (Behaviour::FailsToStart, None) => {
            let m = FAILED_TO_START.replace("REV", &rev);
            Some(Err((9, m.clone(), m)))
        }
        (Behaviour::OperationFails, None) => Some(Err((
            13,
            "Internal error while deploying the revision; retry the deployment.".to_owned(),
            format!("Revision '{rev}' could not be created: the deployment was interrupted."),
        ))),
        _ => None,
    };
    let mut metadata = svc.json.clone();
    metadata["@type"] = json!(SERVICE_TYPE);
    let Some(outcome) = outcome else {
        return json!({ "name": op_name, "done": false, "metadata": metadata });
    };
    let j = &mut svc.json;
    j["reconciling"] = json!(false);
    let answer = match outcome {
        Ok(()) => {
            j["observedGeneration"] = j["generation"].clone();
            j["latestReadyRevision"] = j["latestCreatedRevision"].clone();
            j["trafficStatuses"] = json!([{ "type": 1, "percent": 100 }]);
            j["terminalCondition"] = ready();
            let mut response = j.clone();
            response["@type"] = json!(SERVICE_TYPE);
            json!({ "name": op_name, "done": true, "metadata": metadata, "response": response })
        }
        // `Service.reconciling`: "If reconciliation failed, traffic_statuses,
        // observed_generation, and latest_ready_revision will have the state of the
        // last serving revision" — so none of them moves here.
        Err((code, op_message, condition_message)) => {
            j["terminalCondition"] = json!({
                "type": "Ready",
                "state": 3,
                "message": condition_message,
                "lastTransitionTime": "2026-01-05T10:02:00Z",
                "severity": 1,
                "reason": 3,
            });
            json!({
                "name": op_name, "done": true, "metadata": metadata,
                "error": { "code": code, "message": op_message }
            })
        }
    };
    op_finish(st, op_name, answer.clone());
    answer
}

fn op_finish(st: &mut RunState, op_name: &str, answer: Value) {
    if let Some(op) = st.ops.get_mut(op_name) {
        op.finished = Some(answer);
    }
}
