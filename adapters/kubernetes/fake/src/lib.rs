//! A stateful fake Kubernetes API server for tests, on the testkit's HTTP harness.
//!
//! It serves what kubectl and kube-rs use to restart and follow rollouts: discovery
//! (`/version`, `/api`, `/apis`, the group versions), Deployments, StatefulSets and
//! DaemonSets (get, list, watch with bookmarks and `sendInitialEvents`, strategic-
//! merge and JSON-merge patch), pods (list) and their logs, and
//! `SelfSubjectAccessReview`; core/v1 Secrets for the `kubernetes_secret` store
//! (`secrets`); and External Secrets Operator's `ExternalSecret` with a controller
//! that syncs it as ESO does (`external_secrets`); the Secrets Store CSI driver's
//! `SecretProviderClass`, pod templates that mount the driver and its DaemonSet
//! (`csi`). Every request is authorised
//! against RBAC rules when the test sets them. Objects are built from
//! `k8s-openapi`'s types, so every field name is the API's own; a background
//! controller advances rollouts one step per tick and can be scripted to stall,
//! exceed the progress deadline or crash-loop. A request can be held until
//! released, or preceded by another client's write, to test late and racing writes.

mod csi;
mod custom;
mod external_secrets;
mod secrets;
mod sim;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Request, Response, StreamSender};

pub use csi::{CSI_DRIVER, DRIVER_NAMESPACE};
pub use external_secrets::{parse_go_duration, FORCE_SYNC};
use sim::Work;
pub use sim::{Res, Script};

/// One RBAC rule (`rules:` of a Role), as the fake authorises requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

impl From<&k8s_openapi::api::rbac::v1::PolicyRule> for Rule {
    fn from(r: &k8s_openapi::api::rbac::v1::PolicyRule) -> Rule {
        Rule {
            api_groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            verbs: r.verbs.clone(),
            resource_names: r.resource_names.clone().unwrap_or_default(),
        }
    }
}

impl Rule {
    fn allows(&self, verb: &str, group: &str, resource: &str, name: Option<&str>) -> bool {
        let any = |v: &Vec<String>, x: &str| v.iter().any(|e| e == "*" || e == x);
        any(&self.api_groups, group)
            && any(&self.resources, resource)
            && any(&self.verbs, verb)
            && (self.resource_names.is_empty()
                || name.is_some_and(|n| self.resource_names.iter().any(|r| r == n)))
    }
}

/// A patch the fake received.
#[derive(Debug, Clone)]
pub struct PatchSeen {
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub content_type: String,
    pub body: Value,
    pub field_manager: Option<String>,
}

struct Event {
    rv: u64,
    res: Res,
    namespace: String,
    name: String,
    type_: &'static str,
    object: Value,
}

struct Watcher {
    res: Res,
    namespace: String,
    name: Option<String>,
    labels: Option<String>,
    bookmarks: bool,
    until: Instant,
    tx: StreamSender,
}

/// A change another client makes just before a matching request is served: the
/// write that lands between a client's read and its conditional write.
type Race = (String, String, Box<dyn FnOnce(&mut Cluster) + Send>);

/// Matching requests are held (no answer) until [`Cluster::release_held`].
struct HoldRule {
    method: String,
    path_contains: String,
    times: usize,
}

struct ApiFault {
    method: String,
    path_contains: String,
    times: usize,
    code: u16,
    retry_after: u32,
}

/// The cluster's state: objects, watch history and watchers, RBAC, faults.
pub struct Cluster {
    /// What `/version` says.
    pub git_version: String,
    /// The controller makes no progress while true.
    pub hold: bool,
    /// The user RBAC denials name.
    pub user: String,
    rv: u64,
    works: BTreeMap<(Res, String, String), Work>,
    history: Vec<Event>,
    /// Watches from a resourceVersion below this get `410 Expired`.
    compacted: u64,
    watchers: Vec<Watcher>,
    rbac: Option<Vec<Rule>>,
    faults: Vec<ApiFault>,
    patches: Vec<PatchSeen>,
    denials: Vec<String>,
    ticks: u64,
    /// core/v1 Secrets by (namespace, name), as the API serves them.
    secrets: custom::Objects,
    uids: u64,
    races: Vec<Race>,
    holds: Vec<HoldRule>,
    held: Vec<(Request, StreamSender)>,
    /// ExternalSecrets (external-secrets.io/v1beta1) by (namespace, name).
    externalsecrets: custom::Objects,
    /// The provider ESO reads: remote key → value.
    provider: BTreeMap<String, String>,
    eso_hold: bool,
    eso_syncs: u64,
    /// Every write in the order it happened, as `VERB RESOURCE/NAME` (`patch
    /// externalsecrets/app`, `sync secrets/app` for the ESO controller's write).
    writes: Vec<String>,
    /// External Secrets Operator is not installed: its API group is not served.
    pub eso_absent: bool,
    /// SecretProviderClasses (secrets-store.csi.x-k8s.io/v1) by (namespace, name).
    secretproviderclasses: custom::Objects,
    /// The Secrets Store CSI driver's CRDs are not installed: its group is not served.
    pub secrets_store_absent: bool,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            git_version: "v1.33.1".into(),
            hold: false,
            user: "system:serviceaccount:ops:vsync-orchestrate".into(),
            rv: 1000,
            works: BTreeMap::new(),
            history: Vec::new(),
            compacted: 0,
            watchers: Vec::new(),
            rbac: None,
            faults: Vec::new(),
            patches: Vec::new(),
            denials: Vec::new(),
            ticks: 0,
            secrets: BTreeMap::new(),
            uids: 0,
            races: Vec::new(),
            holds: Vec::new(),
            held: Vec::new(),
            externalsecrets: BTreeMap::new(),
            provider: BTreeMap::new(),
            eso_hold: false,
            eso_syncs: 0,
            writes: Vec::new(),
            eso_absent: false,
            secretproviderclasses: BTreeMap::new(),
            secrets_store_absent: false,
        }
    }
}

fn key(res: Res, ns: &str, name: &str) -> (Res, String, String) {
    (res, ns.to_owned(), name.to_owned())
}

impl Cluster {
    fn add(&mut self, res: Res, ns: &str, name: &str, replicas: i32) -> &mut Work {
        self.rv += 1;
        let mut w = Work::new(res, ns, name, replicas);
        w.obj["metadata"]["resourceVersion"] = self.rv.to_string().into();
        self.works.insert(key(res, ns, name), w);
        self.works.get_mut(&key(res, ns, name)).expect("inserted")
    }

    /// A Deployment with `replicas` ready pods, its last rollout complete.
    pub fn add_deployment(&mut self, ns: &str, name: &str, replicas: i32) -> &mut Self {
        self.add(Res::Deployments, ns, name, replicas);
        self
    }

    pub fn add_statefulset(&mut self, ns: &str, name: &str, replicas: i32) -> &mut Self {
        self.add(Res::StatefulSets, ns, name, replicas);
        self
    }

    /// A DaemonSet on `nodes` nodes.
    pub fn add_daemonset(&mut self, ns: &str, name: &str, nodes: i32) -> &mut Self {
        self.add(Res::DaemonSets, ns, name, nodes);
        self
    }

    fn work(&mut self, res: Res, ns: &str, name: &str) -> &mut Work {
        self.works
            .get_mut(&key(res, ns, name))
            .unwrap_or_else(|| panic!("no {} {ns}/{name} in the fake", res.plural()))
    }

    /// How the workload's next rollouts go.
    pub fn script(&mut self, res: Res, ns: &str, name: &str, script: Script) -> &mut Self {
        self.work(res, ns, name).script = script;
        self
    }

    /// Pauses a Deployment (`kubectl rollout pause`).
    pub fn pause(&mut self, ns: &str, name: &str) -> &mut Self {
        self.work(Res::Deployments, ns, name).set_paused(true);
        self.emit(Res::Deployments, ns, name, "MODIFIED");
        self
    }

    /// Changes the object as a client's update would (`f` edits its JSON), with
    /// the generation and events that follow.
    pub fn edit(&mut self, res: Res, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let w = self.work(res, ns, name);
        let before = w.obj.clone();
        f(&mut w.obj);
        w.spec_changed(&before);
        self.emit(res, ns, name, "MODIFIED");
    }

    /// Authorise every request against these rules (`None`: allow everything).
    pub fn set_rbac(&mut self, rules: Option<Vec<Rule>>) -> &mut Self {
        self.rbac = rules;
        self
    }

    /// The next `times` requests with this method whose path contains
    /// `path_contains` are answered with a `Status` of `code` (and, when
    /// `retry_after > 0`, `Retry-After` and `details.retryAfterSeconds`).
    pub fn fail(
        &mut self,
        method: &str,
        path_contains: &str,
        times: usize,
        code: u16,
        retry_after: u32,
    ) {
        self.faults.push(ApiFault {
            method: method.to_ascii_uppercase(),
            path_contains: path_contains.to_owned(),
            times,
            code,
            retry_after,
        });
    }

    /// Forgets the watch history: a watch from any earlier resourceVersion gets
    /// `410 Expired`, as after an etcd compaction.
    pub fn compact(&mut self) {
        self.compacted = self.rv + 1;
        self.history.clear();
    }

    /// Ends every open watch, as an API server restart does.
    pub fn drop_watches(&mut self) {
        self.watchers.clear();
    }

    pub fn open_watches(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// Every patch received, oldest first.
    pub fn patches(&self) -> Vec<PatchSeen> {
        self.patches.clone()
    }

    /// Patches received for one workload.
    pub fn patch_count(&self, res: Res, ns: &str, name: &str) -> usize {
        self.patches
            .iter()
            .filter(|p| p.resource == res.plural() && p.namespace == ns && p.name == name)
            .count()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Deployment {
        serde_json::from_value(self.works[&key(Res::Deployments, ns, name)].obj.clone())
            .expect("a valid Deployment")
    }

    pub fn statefulset(&self, ns: &str, name: &str) -> StatefulSet {
        serde_json::from_value(self.works[&key(Res::StatefulSets, ns, name)].obj.clone())
            .expect("a valid StatefulSet")
    }

    pub fn daemonset(&self, ns: &str, name: &str) -> DaemonSet {
        serde_json::from_value(self.works[&key(Res::DaemonSets, ns, name)].obj.clone())
            .expect("a valid DaemonSet")
    }

    /// The workload's pods as the API serves them.
    pub fn pods(&self, res: Res, ns: &str, name: &str) -> Vec<Pod> {
        self.works[&key(res, ns, name)].pods(self.rv)
    }

    /// One controller step for every workload; bookmarks and watch timeouts.
    pub fn tick(&mut self) {
        self.ticks += 1;
        let now = Instant::now();
        self.watchers.retain(|w| w.until > now && !w.tx.is_closed());
        if !self.hold {
            let keys: Vec<_> = self.works.keys().cloned().collect();
            for k in keys {
                if self.works.get_mut(&k).is_some_and(|w| w.tick()) {
                    self.emit(k.0, &k.1, &k.2, "MODIFIED");
                }
            }
        }
        self.eso_tick();
        if self.ticks.is_multiple_of(5) {
            let rv = self.rv.to_string();
            for w in self.watchers.iter().filter(|w| w.bookmarks) {
                let ev = json!({"type": "BOOKMARK", "object": {
                    "kind": w.res.kind(), "apiVersion": "apps/v1",
                    "metadata": {"resourceVersion": rv}}});
                w.tx.send(format!("{ev}\n"));
            }
        }
    }

    fn emit(&mut self, res: Res, ns: &str, name: &str, type_: &'static str) {
        self.rv += 1;
        let rv = self.rv;
        let w = self
            .works
            .get_mut(&key(res, ns, name))
            .expect("emitted object exists");
        w.obj["metadata"]["resourceVersion"] = rv.to_string().into();
        let object = w.obj.clone();
        let labels = labels_of(&object);
        let line = format!("{}\n", json!({"type": type_, "object": object}));
        self.watchers.retain(|watch| {
            if watch.res == res
                && watch.namespace == ns
                && watch.name.as_deref().is_none_or(|n| n == name)
                && watch
                    .labels
                    .as_deref()
                    .is_none_or(|s| selector_matches(s, &labels))
            {
                watch.tx.send(line.clone())
            } else {
                !watch.tx.is_closed()
            }
        });
        self.history.push(Event {
            rv,
            res,
            namespace: ns.to_owned(),
            name: name.to_owned(),
            type_,
            object,
        });
    }

    /// Every write so far, in order, as `VERB RESOURCE/NAME`: a workload or
    /// ExternalSecret patch (`patch deployments/api`), the ESO controller's write
    /// of a target Secret (`sync secrets/app`).
    pub fn writes(&self) -> Vec<String> {
        self.writes.clone()
    }

    /// Every request RBAC refused, as `verb resource name`.
    pub fn denials(&self) -> Vec<String> {
        self.denials.clone()
    }

    /// RBAC: a request no rule allows is `403 Forbidden`, with the authorizer's
    /// `User "…" cannot VERB resource "…" in API group "…" in the namespace "…"`
    /// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/,
    /// https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-whether-a-request-is-allowed-or-denied).
    fn authorize(
        &mut self,
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: Option<&str>,
    ) -> Option<Response> {
        let rules = self.rbac.as_ref()?;
        if rules.iter().any(|r| r.allows(verb, group, resource, name)) {
            return None;
        }
        self.denials.push(
            format!("{verb} {resource} {}", name.unwrap_or(""))
                .trim()
                .to_owned(),
        );
        let (plain, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let qualified = if group.is_empty() {
            plain.to_owned()
        } else {
            format!("{plain}.{group}")
        };
        let what = match name {
            Some(n) => format!("{qualified} \"{n}\" is forbidden"),
            None => format!("{qualified} is forbidden"),
        };
        let sub = if sub.is_empty() {
            String::new()
        } else {
            format!("/{sub}")
        };
        Some(status(
            403,
            "Forbidden",
            &format!(
                "{what}: User \"{}\" cannot {verb} resource \"{plain}{sub}\" in API group \"{group}\" in the namespace \"{ns}\"",
                self.user
            ),
            0,
        ))
    }

    fn fault(&mut self, req: &Request) -> Option<Response> {
        let i = self.faults.iter().position(|f| {
            f.times > 0 && f.method == req.method && req.path.contains(&f.path_contains)
        })?;
        self.faults[i].times -= 1;
        let f = &self.faults[i];
        let reason = match f.code {
            409 => "Conflict",
            429 => "TooManyRequests",
            403 => "Forbidden",
            404 => "NotFound",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Failure",
        };
        let r = status(f.code, reason, "injected by the fake", f.retry_after);
        Some(if f.retry_after > 0 {
            r.header("retry-after", &f.retry_after.to_string())
        } else {
            r
        })
    }

    /// Runs `f` on the cluster just before the next request with this method whose
    /// path contains `path_contains` is served: another client's write landing
    /// between a read and the write that was based on it.
    pub fn before_next(
        &mut self,
        method: &str,
        path_contains: &str,
        f: impl FnOnce(&mut Cluster) + Send + 'static,
    ) {
        self.races.push((
            method.to_ascii_uppercase(),
            path_contains.to_owned(),
            Box::new(f),
        ));
    }

    /// Holds the next `times` matching requests: each gets its response headers
    /// and then nothing, so the client gives up on it, until
    /// [`Cluster::release_held`] applies it: a request a slow path or a proxy
    /// delivers after its client has moved on.
    pub fn hold(&mut self, method: &str, path_contains: &str, times: usize) {
        self.holds.push(HoldRule {
            method: method.to_ascii_uppercase(),
            path_contains: path_contains.to_owned(),
            times,
        });
    }

    /// How many requests are held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Applies every held request, oldest first, as the server would have when it
    /// arrived now; returns the status code each got. The held client's answer
    /// ends without a body (it has given up by then).
    pub fn release_held(&mut self) -> Vec<u16> {
        let held = std::mem::take(&mut self.held);
        held.into_iter()
            .map(|(req, tx)| {
                let code = self.route(&req).status;
                drop(tx);
                code
            })
            .collect()
    }

    /// Serves one request.
    pub fn handle(&mut self, req: &Request) -> Response {
        if let Some(i) = self
            .races
            .iter()
            .position(|(m, p, _)| *m == req.method && req.path.contains(p.as_str()))
        {
            let (_, _, f) = self.races.remove(i);
            f(self);
        }
        if let Some(r) = self.fault(req) {
            return r;
        }
        if let Some(h) = self.holds.iter_mut().find(|h| {
            h.times > 0 && h.method == req.method && req.path.contains(h.path_contains.as_str())
        }) {
            h.times -= 1;
            let (resp, tx) = Response::streaming(200, "application/json");
            self.held.push((req.clone(), tx));
            return resp;
        }
        self.route(req)
    }

    fn route(&mut self, req: &Request) -> Response {
        let q = Query::parse(req.query.as_deref());
        let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["version"]) => Response::json(
                200,
                &json!({
                "major": "1", "minor": self.git_version.split('.').nth(1).unwrap_or("33"),
                "gitVersion": self.git_version, "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-06-01T00:00:00Z",
                "goVersion": "go1.24.4", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            ("GET", ["api"]) => Response::json(
                200,
                &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]}),
            ),
            ("GET", ["apis"]) => Response::json(
                200,
                &discovery_groups(!self.eso_absent, !self.secrets_store_absent),
            ),
            // A group no CRD or aggregated API serves is not found at any path.
            (_, ["apis", external_secrets::GROUP, ..]) if self.eso_absent => not_found_path(),
            (_, ["apis", csi::GROUP, ..]) if self.secrets_store_absent => not_found_path(),
            ("GET", ["apis", csi::GROUP, csi::VERSION]) => Response::json(200, &csi::resources()),
            ("GET", ["apis", csi::GROUP, csi::VERSION, "namespaces", ns, csi::PLURAL]) => {
                self.list_secret_provider_classes(ns)
            }
            ("GET", ["apis", csi::GROUP, csi::VERSION, "namespaces", ns, csi::PLURAL, name]) => {
                self.get_secret_provider_class(ns, name)
            }
            ("GET", ["api", "v1"]) => Response::json(
                200,
                &resource_list(
                    "v1",
                    &[
                        ("pods", "Pod", true, &["get", "list", "watch"], &["po"]),
                        ("pods/log", "Pod", true, &["get"], &[]),
                        (
                            "secrets",
                            "Secret",
                            true,
                            &[
                                "create",
                                "delete",
                                "deletecollection",
                                "get",
                                "list",
                                "patch",
                                "update",
                                "watch",
                            ],
                            &[],
                        ),
                        ("namespaces", "Namespace", false, &["get", "list"], &["ns"]),
                    ],
                ),
            ),
            ("GET", ["apis", "apps", "v1"]) => Response::json(
                200,
                &resource_list(
                    "apps/v1",
                    &[
                        (
                            "deployments",
                            "Deployment",
                            true,
                            &["get", "list", "watch", "patch", "update"],
                            &["deploy"],
                        ),
                        (
                            "deployments/status",
                            "Deployment",
                            true,
                            &["get", "patch", "update"],
                            &[],
                        ),
                        (
                            "statefulsets",
                            "StatefulSet",
                            true,
                            &["get", "list", "watch", "patch", "update"],
                            &["sts"],
                        ),
                        (
                            "statefulsets/status",
                            "StatefulSet",
                            true,
                            &["get", "patch", "update"],
                            &[],
                        ),
                        (
                            "daemonsets",
                            "DaemonSet",
                            true,
                            &["get", "list", "watch", "patch", "update"],
                            &["ds"],
                        ),
                        (
                            "daemonsets/status",
                            "DaemonSet",
                            true,
                            &["get", "patch", "update"],
                            &[],
                        ),
                    ],
                ),
            ),
            ("GET", ["apis", external_secrets::GROUP, external_secrets::VERSION]) => {
                Response::json(
                    200,
                    &resource_list(
                        "external-secrets.io/v1beta1",
                        &[
                            (
                                "externalsecrets",
                                "ExternalSecret",
                                true,
                                &[
                                    "delete",
                                    "deletecollection",
                                    "get",
                                    "list",
                                    "patch",
                                    "create",
                                    "update",
                                    "watch",
                                ],
                                &["es"],
                            ),
                            (
                                "externalsecrets/status",
                                "ExternalSecret",
                                true,
                                &["get", "patch", "update"],
                                &[],
                            ),
                        ],
                    ),
                )
            }
            (
                "GET",
                ["apis", external_secrets::GROUP, external_secrets::VERSION, "namespaces", ns, "externalsecrets"],
            ) => self.list_external_secrets(ns),
            (
                "POST",
                ["apis", external_secrets::GROUP, external_secrets::VERSION, "namespaces", ns, "externalsecrets"],
            ) => self.create_external_secret(ns, req),
            (
                "GET",
                ["apis", external_secrets::GROUP, external_secrets::VERSION, "namespaces", ns, "externalsecrets", name],
            ) => self.get_external_secret(ns, name),
            (
                "PATCH",
                ["apis", external_secrets::GROUP, external_secrets::VERSION, "namespaces", ns, "externalsecrets", name],
            ) => self.patch_external_secret(ns, name, req, &q),
            ("GET", ["apis", "authorization.k8s.io", "v1"]) => Response::json(
                200,
                &resource_list(
                    "authorization.k8s.io/v1",
                    &[(
                        "selfsubjectaccessreviews",
                        "SelfSubjectAccessReview",
                        false,
                        &["create"],
                        &[],
                    )],
                ),
            ),
            ("POST", ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]) => {
                self.review(req)
            }
            ("GET", ["apis", "apps", "v1", "namespaces", ns, res]) => match Res::parse(res) {
                Some(r) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                    self.watch(r, ns, &q)
                }
                Some(r) => self.list(r, ns, &q),
                None => not_found_path(),
            },
            ("GET", ["apis", "apps", "v1", "namespaces", ns, res, name]) => match Res::parse(res) {
                Some(r) => self.get(r, ns, name),
                None => not_found_path(),
            },
            ("PATCH", ["apis", "apps", "v1", "namespaces", ns, res, name]) => match Res::parse(res)
            {
                Some(r) => self.patch(r, ns, name, req, &q),
                None => not_found_path(),
            },
            ("GET", ["api", "v1", "namespaces", ns, "pods"]) => self.list_pods(ns, &q),
            // Every namespace exists (kubectl reads one after a `NotFound`, to say
            // whether the object or its namespace is missing):
            // https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/namespace-v1/
            ("GET", ["api", "v1", "namespaces", ns]) => {
                if let Some(denied) = self.authorize("get", "", "namespaces", "", Some(ns)) {
                    return denied;
                }
                Response::json(
                    200,
                    &json!({"kind": "Namespace", "apiVersion": "v1",
                        "metadata": {"name": ns, "uid": format!("uid-ns-{ns}"),
                            "resourceVersion": "1", "labels": {"kubernetes.io/metadata.name": ns}},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
                )
            }
            ("GET", ["api", "v1", "namespaces", ns, "secrets"]) => self.list_secrets(ns, req, &q),
            ("POST", ["api", "v1", "namespaces", ns, "secrets"]) => self.create_secret(ns, req, &q),
            ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.get_secret(ns, name, req)
            }
            ("PATCH", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.patch_secret(ns, name, req, &q)
            }
            ("DELETE", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.delete_secret(ns, name, req)
            }
            ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => self.log(ns, name, &q),
            _ => not_found_path(),
        }
    }

    fn review(&mut self, req: &Request) -> Response {
        let mut body = req.json();
        let a = body["spec"]["resourceAttributes"].clone();
        let s = |k: &str| a[k].as_str().unwrap_or("").to_owned();
        let resource = match s("subresource") {
            sub if sub.is_empty() => s("resource"),
            sub => format!("{}/{sub}", s("resource")),
        };
        let name = a["name"].as_str().filter(|n| !n.is_empty());
        let allowed = self.rbac.as_ref().is_none_or(|rules| {
            rules
                .iter()
                .any(|r| r.allows(&s("verb"), &s("group"), &resource, name))
        });
        body["status"] = json!({"allowed": allowed});
        if !allowed {
            body["status"]["reason"] = json!("no RBAC rule matched");
        }
        body["metadata"] = json!({"creationTimestamp": null});
        Response::json(201, &body)
    }

    fn get(&mut self, res: Res, ns: &str, name: &str) -> Response {
        if let Some(denied) = self.authorize("get", "apps", res.plural(), ns, Some(name)) {
            return denied;
        }
        match self.works.get(&key(res, ns, name)) {
            Some(w) => Response::json(200, &w.obj),
            None => not_found(res, name),
        }
    }

    fn matching(&self, res: Res, ns: &str, q: &Query) -> Vec<Value> {
        let name = q.field_name();
        let labels = q.get("labelSelector");
        self.works
            .iter()
            .filter(|((r, n, nm), _)| {
                *r == res && n == ns && name.as_deref().is_none_or(|x| x == nm)
            })
            .map(|(_, w)| w.obj.clone())
            .filter(|o| labels.is_none_or(|s| selector_matches(s, &labels_of(o))))
            .collect()
    }

    fn list(&mut self, res: Res, ns: &str, q: &Query) -> Response {
        if let Some(denied) =
            self.authorize("list", "apps", res.plural(), ns, q.field_name().as_deref())
        {
            return denied;
        }
        let items: Vec<Value> = self
            .matching(res, ns, q)
            .into_iter()
            .map(|mut o| {
                // A list's items carry no apiVersion and kind, as the API server's.
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        Response::json(
            200,
            &json!({
                "kind": format!("{}List", res.kind()), "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": self.rv.to_string()},
                "items": items,
            }),
        )
    }

    fn watch(&mut self, res: Res, ns: &str, q: &Query) -> Response {
        let name = q.field_name();
        if let Some(denied) = self.authorize("watch", "apps", res.plural(), ns, name.as_deref()) {
            return denied;
        }
        let (resp, tx) = Response::streaming(200, "application/json");
        let from = q
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0);
        let initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
        let line = |type_: &str, o: &Value| format!("{}\n", json!({"type": type_, "object": o}));
        if initial || from.is_none() {
            for o in self.matching(res, ns, q) {
                tx.send(line("ADDED", &o));
            }
            if initial {
                tx.send(line(
                    "BOOKMARK",
                    &json!({"kind": res.kind(), "apiVersion": "apps/v1",
                    "metadata": {"resourceVersion": self.rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}),
                ));
            }
        } else if let Some(from) = from {
            if from < self.compacted {
                let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": format!("too old resource version: {from} ({})", self.compacted),
                    "reason": "Expired", "code": 410});
                tx.send(line("ERROR", &gone));
                return resp; // the sender drops here: the watch ends
            }
            let labels = q.get("labelSelector");
            for e in self.history.iter().filter(|e| {
                e.rv > from
                    && e.res == res
                    && e.namespace == ns
                    && name.as_deref().is_none_or(|n| n == e.name)
                    && labels.is_none_or(|s| selector_matches(s, &labels_of(&e.object)))
            }) {
                tx.send(line(e.type_, &e.object));
            }
        }
        let secs = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800u64);
        self.watchers.push(Watcher {
            res,
            namespace: ns.to_owned(),
            name,
            labels: q.get("labelSelector").map(str::to_owned),
            bookmarks,
            until: Instant::now() + Duration::from_secs(secs),
            tx,
        });
        resp
    }

    fn patch(&mut self, res: Res, ns: &str, name: &str, req: &Request, q: &Query) -> Response {
        if let Some(denied) = self.authorize("patch", "apps", res.plural(), ns, Some(name)) {
            return denied;
        }
        let content_type = req.header("content-type").unwrap_or("").to_owned();
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media != "application/strategic-merge-patch+json"
            && media != "application/merge-patch+json"
        {
            return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/strategic-merge-patch+json, application/merge-patch+json (got {media:?})"), 0);
        }
        let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
            return status(400, "BadRequest", "error decoding patch: invalid JSON", 0);
        };
        let Some(w) = self.works.get_mut(&key(res, ns, name)) else {
            return not_found(res, name);
        };
        let before = w.obj.clone();
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
            if Some(rv) != before["metadata"]["resourceVersion"].as_str() {
                return status(409, "Conflict", &format!("Operation cannot be fulfilled on {}.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again", res.plural()), 0);
            }
        }
        let mut merged = before.clone();
        merge(&mut merged, &patch);
        merged["status"] = before["status"].clone();
        merged["metadata"]["generation"] = before["metadata"]["generation"].clone();
        let valid = match res {
            Res::Deployments => serde_json::from_value::<Deployment>(merged.clone()).map(|_| ()),
            Res::StatefulSets => serde_json::from_value::<StatefulSet>(merged.clone()).map(|_| ()),
            Res::DaemonSets => serde_json::from_value::<DaemonSet>(merged.clone()).map(|_| ()),
        };
        if let Err(e) = valid {
            return status(
                422,
                "Invalid",
                &format!("{}.apps \"{name}\" is invalid: {e}", res.plural()),
                0,
            );
        }
        w.obj = merged;
        let changed = w.obj != before;
        w.spec_changed(&before);
        self.writes.push(format!("patch {}/{name}", res.plural()));
        self.patches.push(PatchSeen {
            resource: res.plural().into(),
            namespace: ns.into(),
            name: name.into(),
            content_type,
            body: patch,
            field_manager: q.get("fieldManager").map(str::to_owned),
        });
        if changed {
            self.emit(res, ns, name, "MODIFIED");
        }
        Response::json(200, &self.works[&key(res, ns, name)].obj)
    }

    fn list_pods(&mut self, ns: &str, q: &Query) -> Response {
        if let Some(denied) = self.authorize("list", "", "pods", ns, None) {
            return denied;
        }
        let selector = q.get("labelSelector");
        let pods: Vec<Value> = self
            .works
            .values()
            .filter(|w| w.namespace() == ns)
            .flat_map(|w| w.pods(self.rv))
            .map(|p| {
                let mut v = serde_json::to_value(p).expect("serializable");
                if let Some(m) = v.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                v
            })
            .filter(|p| selector.is_none_or(|s| selector_matches(s, &labels_of(p))))
            .collect();
        Response::json(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": self.rv.to_string()}, "items": pods}),
        )
    }

    fn log(&mut self, ns: &str, pod: &str, q: &Query) -> Response {
        if let Some(denied) = self.authorize("get", "", "pods/log", ns, Some(pod)) {
            return denied;
        }
        let Some((log, crashed)) = self
            .works
            .values()
            .filter(|w| w.namespace() == ns)
            .find_map(|w| w.log(pod))
        else {
            return status(404, "NotFound", &format!("pods \"{pod}\" not found"), 0);
        };
        if q.get("previous").is_some_and(|p| p == "true") && !crashed {
            return status(
                400,
                "BadRequest",
                &format!("previous terminated container \"app\" in pod \"{pod}\" not found"),
                0,
            );
        }
        let mut lines: Vec<&str> = log.lines().collect();
        if let Some(n) = q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
            lines = lines.split_off(lines.len().saturating_sub(n));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        if let Some(limit) = q.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
            text.truncate(limit);
        }
        Response::text(200, &text)
    }
}

/// A `Status` answer, as the API server writes it.
pub fn status(code: u16, reason: &str, message: &str, retry_after: u32) -> Response {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code});
    if retry_after > 0 {
        s["details"] = json!({"retryAfterSeconds": retry_after});
    }
    Response::json(code, &s)
}

fn not_found(res: Res, name: &str) -> Response {
    let mut r = status(
        404,
        "NotFound",
        &format!("{}.apps \"{name}\" not found", res.plural()),
        0,
    );
    let mut body: Value = serde_json::from_slice(&r.body).expect("json");
    body["details"] = json!({"name": name, "group": "apps", "kind": res.plural()});
    r.body = body.to_string().into_bytes();
    r
}

fn not_found_path() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        0,
    )
}

fn discovery_groups(eso_installed: bool, secrets_store_installed: bool) -> Value {
    let group = |name: &str| {
        json!({"name": name, "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
            "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}})
    };
    let eso = json!({"name": "external-secrets.io",
        "versions": [{"groupVersion": "external-secrets.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "external-secrets.io/v1beta1", "version": "v1beta1"}});
    let mut groups = vec![group("apps"), group("authorization.k8s.io")];
    if eso_installed {
        groups.push(eso);
    }
    if secrets_store_installed {
        groups.push(group(csi::GROUP));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

type ResourceRow<'a> = (&'a str, &'a str, bool, &'a [&'a str], &'a [&'a str]);

fn resource_list(group_version: &str, rows: &[ResourceRow<'_>]) -> Value {
    let resources: Vec<Value> = rows
        .iter()
        .map(|(name, kind, namespaced, verbs, short)| {
            let singular = if name.contains('/') {
                String::new()
            } else {
                kind.to_ascii_lowercase()
            };
            let mut r = json!({"name": name, "singularName": singular, "namespaced": namespaced,
                "kind": kind, "verbs": verbs});
            if !short.is_empty() {
                r["shortNames"] = json!(short);
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": resources})
}

/// JSON merge patch (RFC 7386), which is what a strategic-merge patch of maps is.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if k.starts_with("$") {
                    continue; // strategic-merge directives: none apply to maps of strings
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => {
            if patch.is_object() {
                *target = json!({});
                merge(target, patch);
            } else {
                *target = patch.clone();
            }
        }
    }
}

fn labels_of(o: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(o["metadata"]["labels"].clone()).unwrap_or_default()
}

/// Label-selector matching: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
/// `k`, `!k`, joined by commas.
pub fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .all(|t| {
            let set = |s: &str| -> Vec<String> {
                s.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|x| x.trim().to_owned())
                    .collect()
            };
            if let Some((k, v)) = t.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some((k, v)) = t.split_once(" notin ") {
                labels.get(k.trim()).is_none_or(|l| !set(v).contains(l))
            } else if let Some((k, v)) = t.split_once(" in ") {
                labels.get(k.trim()).is_some_and(|l| set(v).contains(l))
            } else if let Some(k) = t.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(t)
            }
        })
}

/// Decoded query parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    /// The name a `fieldSelector=metadata.name=NAME` asks for.
    fn field_name(&self) -> Option<String> {
        self.get("fieldSelector")?.split(',').find_map(|t| {
            t.trim()
                .strip_prefix("metadata.name=")
                .map(|n| n.trim_start_matches('=').to_owned())
        })
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running fake cluster: the API server and its controller.
pub struct FakeCluster {
    http: Arc<FakeHttp<Cluster>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl FakeCluster {
    /// Starts an empty cluster whose controller steps every 40 ms.
    pub async fn start() -> FakeCluster {
        Self::with_tick(Duration::from_millis(40)).await
    }

    pub async fn with_tick(tick: Duration) -> FakeCluster {
        let http = Arc::new(
            FakeHttp::builder(Cluster::default())
                .route("*", "/**", |req, c: &mut Cluster| c.handle(req))
                .start()
                .await,
        );
        let weak: Weak<FakeHttp<Cluster>> = Arc::downgrade(&http);
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            loop {
                every.tick().await;
                let Some(h) = weak.upgrade() else { return };
                h.state().tick();
            }
        });
        FakeCluster { http, ticker }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.http.url()
    }

    pub fn state(&self) -> MutexGuard<'_, Cluster> {
        self.http.state()
    }

    /// The HTTP harness: its request log and transport faults.
    pub fn http(&self) -> &FakeHttp<Cluster> {
        &self.http
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.ticker.abort();
        self.http.state().drop_watches();
    }
}

/// A kubeconfig naming one context per `(context, server URL)`, plain HTTP, a
/// static token; `current` is its current context.
pub fn kubeconfig(contexts: &[(&str, &str)], namespace: &str, current: &str) -> String {
    let mut clusters = String::new();
    let mut ctxs = String::new();
    for (i, (name, url)) in contexts.iter().enumerate() {
        clusters.push_str(&format!(
            "- name: cluster-{i}\n  cluster:\n    server: {url}\n"
        ));
        ctxs.push_str(&format!(
            "- name: {name:?}\n  context:\n    cluster: cluster-{i}\n    user: tester\n    namespace: {namespace}\n"
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{ctxs}current-context: {current:?}\nusers:\n- name: tester\n  user:\n    token: fake-token\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_decoding() {
        let l = BTreeMap::from([
            ("app".to_owned(), "api".to_owned()),
            ("tier".to_owned(), "web".to_owned()),
        ]);
        assert!(selector_matches("app=api", &l));
        assert!(selector_matches("app in (api,db),tier!=batch", &l));
        assert!(!selector_matches("app notin (api)", &l));
        assert!(selector_matches("tier,!canary", &l));
        assert_eq!(decode("metadata.name%3Dapi"), "metadata.name=api");
        assert_eq!(decode("a+b%2"), "a b%2");
        let q = Query::parse(Some("fieldSelector=metadata.name%3Dapi&watch=1"));
        assert_eq!(q.field_name().as_deref(), Some("api"));
    }

    #[test]
    fn merge_patch_of_maps() {
        let mut t =
            json!({"spec": {"template": {"metadata": {"annotations": {"a": "1", "b": "2"}}}}});
        merge(
            &mut t,
            &json!({"spec": {"template": {"metadata": {"annotations": {"a": null, "c": "3"}}}}}),
        );
        assert_eq!(
            t["spec"]["template"]["metadata"]["annotations"],
            json!({"b": "2", "c": "3"})
        );
    }
}
