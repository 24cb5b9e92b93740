//! core/v1 Secrets as the API server serves them: get, list (also as the `Table`
//! kubectl asks for), create, strategic-merge and JSON-merge patch with a
//! `resourceVersion` precondition, delete with `DeleteOptions.preconditions`,
//! `immutable`, and RBAC on every verb.
//!
//! References for every route and failure answer:
//! * the Secret resource and its operations:
//!   https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/
//! * `Status` bodies (`kind: Status`, `reason`, `code`, `details`):
//!   https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind
//! * optimistic concurrency: a write whose `metadata.resourceVersion` is not the
//!   stored one is refused with `409 Conflict` ("the object has been modified"):
//!   https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency
//!   and https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
//! * immutable Secrets: "Once a Secret or ConfigMap is marked as immutable, it is
//!   not possible to revert this change nor to mutate the contents of the data
//!   field" (https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable);
//!   the API server's validation (`ValidateSecretUpdate` in
//!   kubernetes/pkg/apis/core/validation/validation.go) answers `422 Invalid` with
//!   `data: Forbidden: field is immutable when \`immutable\` is set`.
//! * delete preconditions (`uid`, `resourceVersion`) and their `409`:
//!   https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/
//! * server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//!   which `kubectl get` asks for; a Secret's columns are NAME, TYPE, DATA, AGE
//!   (kubernetes/pkg/printers/internalversion/printers.go, `secretColumnDefinitions`):
//!   https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use vsync_orchestrate_testkit::fake_http::{Request, Response};

use crate::custom::key;
use crate::{labels_of, merge, selector_matches, status, Cluster, PatchSeen, Query};

/// `secrets "x" not found`, with the details the API server adds
/// (`StatusReasonNotFound`, api-conventions.md#response-status-kind).
fn not_found(name: &str) -> Response {
    with_details(
        status(404, "NotFound", &format!("secrets \"{name}\" not found"), 0),
        json!({"name": name, "kind": "secrets"}),
    )
}

fn with_details(mut r: Response, details: Value) -> Response {
    let mut body: Value = serde_json::from_slice(&r.body).expect("json");
    body["details"] = details;
    r.body = body.to_string().into_bytes();
    r
}

/// A write whose `metadata.resourceVersion` is not the stored one
/// (api-conventions.md#concurrency-control-and-consistency: "409 Conflict").
fn conflict_modified(name: &str) -> Response {
    with_details(
        status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on secrets \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
            0,
        ),
        json!({"name": name, "kind": "secrets"}),
    )
}

/// The `422 Invalid` of `ValidateSecretUpdate` for an immutable Secret
/// (https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable).
fn immutable_refusal(name: &str, field: &str) -> Response {
    let m = "field is immutable when `immutable` is set";
    with_details(
        status(
            422,
            "Invalid",
            &format!("Secret \"{name}\" is invalid: {field}: Forbidden: {m}"),
            0,
        ),
        json!({"name": name, "kind": "Secret", "causes": [
            {"reason": "FieldValueForbidden", "message": format!("Forbidden: {m}"), "field": field}
        ]}),
    )
}

/// `stringData` is write-only: the API server folds it into `data` (base64).
fn fold_string_data(obj: &mut Value) {
    if let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        if let Some(sd) = sd.as_object() {
            for (k, v) in sd {
                let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or("").as_bytes().to_vec());
                obj["data"][k] = serde_json::to_value(bytes).expect("base64");
            }
        }
    }
}

/// Whether the body is a valid Secret (base64 data, known fields), as decoding it
/// in the API server would be.
fn decodes(obj: &Value) -> Result<(), String> {
    serde_json::from_value::<Secret>(obj.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn age(created: &str) -> String {
    let secs = created
        .parse::<Timestamp>()
        .ok()
        .map(|t| (Timestamp::now().as_second() - t.as_second()).max(0))
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

fn wants_table(req: &Request) -> bool {
    req.header("accept").is_some_and(|a| a.contains("as=Table"))
}

fn table(rows: &[Value], rv: u64) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|o| {
            let data = o["data"].as_object().map_or(0, |m| m.len());
            json!({
                "cells": [o["metadata"]["name"], o["type"], data,
                    age(o["metadata"]["creationTimestamp"].as_str().unwrap_or(""))],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Type", "type": "string", "format": "", "description": "Used to facilitate programmatic handling of secret data.", "priority": 0},
            {"name": "Data", "type": "string", "format": "", "description": "Data contains the secret data.", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

impl Cluster {
    /// A Secret holding `data` (plain text values), like
    /// `kubectl create secret generic NAME --from-literal=K=V`.
    pub fn add_secret(&mut self, ns: &str, name: &str, data: &[(&str, &str)]) -> &mut Self {
        let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns}, "stringData": {}});
        for (k, v) in data {
            obj["stringData"][*k] = json!(v);
        }
        self.store_new_secret(ns, obj);
        self
    }

    pub(crate) fn store_new_secret(&mut self, ns: &str, mut obj: Value) -> Value {
        self.rv += 1;
        self.uids += 1;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        fold_string_data(&mut obj);
        obj["apiVersion"] = json!("v1");
        obj["kind"] = json!("Secret");
        if obj["type"].is_null() {
            obj["type"] = json!("Opaque");
        }
        let m = &mut obj["metadata"];
        m["namespace"] = json!(ns);
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uids));
        m["resourceVersion"] = json!(self.rv.to_string());
        m["creationTimestamp"] = json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        self.secrets.insert(key(ns, &name), obj.clone());
        obj
    }

    /// Marks the Secret `immutable: true`, as its owner would have created it.
    pub fn make_immutable(&mut self, ns: &str, name: &str) {
        self.edit_secret(ns, name, |o| o["immutable"] = json!(true));
    }

    /// Changes a Secret as another client's write would (a new resourceVersion).
    pub fn edit_secret(&mut self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        self.rv += 1;
        let rv = self.rv;
        let o = self
            .secrets
            .get_mut(&key(ns, name))
            .unwrap_or_else(|| panic!("no secret {ns}/{name} in the fake"));
        f(o);
        fold_string_data(o);
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
    }

    /// Sets one key's plain-text value (another writer, or a test's view).
    pub fn set_secret_value(&mut self, ns: &str, name: &str, k: &str, v: &str) {
        let k = k.to_owned();
        let v = v.to_owned();
        self.edit_secret(ns, name, move |o| o["stringData"] = json!({ k: v }));
    }

    /// The Secret as stored, if it exists.
    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.secrets
            .get(&key(ns, name))
            .map(|o| serde_json::from_value(o.clone()).expect("a valid Secret"))
    }

    /// One key's value as text, as a pod reading it would get it.
    pub fn secret_value(&self, ns: &str, name: &str, k: &str) -> Option<String> {
        let s = self.secret(ns, name)?;
        let b = s.data?.remove(k)?;
        Some(String::from_utf8(b.0).expect("UTF-8"))
    }

    /// Every Secret name in `ns`.
    pub fn secret_names(&self, ns: &str) -> Vec<String> {
        self.secrets
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Patches of secrets that changed something.
    pub fn secret_patches(&self, ns: &str, name: &str) -> usize {
        self.patches
            .iter()
            .filter(|p| p.resource == "secrets" && p.namespace == ns && p.name == name)
            .count()
    }

    pub(crate) fn get_secret(&mut self, ns: &str, name: &str, req: &Request) -> Response {
        if let Some(denied) = self.authorize("get", "", "secrets", ns, Some(name)) {
            return denied;
        }
        match self.secrets.get(&key(ns, name)) {
            Some(o) if wants_table(req) => {
                Response::json(200, &table(std::slice::from_ref(o), self.rv))
            }
            Some(o) => Response::json(200, o),
            None => not_found(name),
        }
    }

    pub(crate) fn list_secrets(&mut self, ns: &str, req: &Request, q: &Query) -> Response {
        if let Some(denied) = self.authorize("list", "", "secrets", ns, q.field_name().as_deref()) {
            return denied;
        }
        let name = q.field_name();
        let labels = q.get("labelSelector");
        let items: Vec<Value> = self
            .secrets
            .iter()
            .filter(|((n, nm), _)| n == ns && name.as_deref().is_none_or(|x| x == nm))
            .map(|(_, o)| o.clone())
            .filter(|o| labels.is_none_or(|s| selector_matches(s, &labels_of(o))))
            .collect();
        if wants_table(req) {
            return Response::json(200, &table(&items, self.rv));
        }
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut o| {
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        Response::json(
            200,
            &json!({"kind": "SecretList", "apiVersion": "v1",
                "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
        )
    }

    pub(crate) fn create_secret(&mut self, ns: &str, req: &Request, q: &Query) -> Response {
        if let Some(denied) = self.authorize("create", "", "secrets", ns, None) {
            return denied;
        }
        let media = req.header("content-type").unwrap_or("application/json");
        if media.starts_with("application/vnd.kubernetes.protobuf") {
            // The API server also takes protobuf (typed client-go clients send it);
            // this fake does not, and says so rather than misreading the body.
            return status(415, "UnsupportedMediaType", "this fake API server accepts application/json bodies only, not application/vnd.kubernetes.protobuf", 0);
        }
        let Ok(mut obj) = serde_json::from_slice::<Value>(&req.body) else {
            return status(
                400,
                "BadRequest",
                "the body of the request was not valid JSON",
                0,
            );
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            return status(
                422,
                "Invalid",
                "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required",
                0,
            );
        }
        if let Err(e) = decodes(&obj) {
            return status(
                400,
                "BadRequest",
                &format!("Secret in version \"v1\" cannot be handled as a Secret: {e}"),
                0,
            );
        }
        // `409 AlreadyExists` (api-conventions.md#response-status-kind).
        if self.secrets.contains_key(&key(ns, &name)) {
            return with_details(
                status(
                    409,
                    "AlreadyExists",
                    &format!("secrets \"{name}\" already exists"),
                    0,
                ),
                json!({"name": name, "kind": "secrets"}),
            );
        }
        if q.get("dryRun").is_some_and(|d| d == "All") {
            fold_string_data(&mut obj);
            return Response::json(201, &obj);
        }
        let stored = self.store_new_secret(ns, obj);
        Response::json(201, &stored)
    }

    /// PATCH (https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/#patch-partially-update-the-specified-secret):
    /// strategic merge and JSON merge patch of maps are the same merge (RFC 7386).
    pub(crate) fn patch_secret(
        &mut self,
        ns: &str,
        name: &str,
        req: &Request,
        q: &Query,
    ) -> Response {
        if let Some(denied) = self.authorize("patch", "", "secrets", ns, Some(name)) {
            return denied;
        }
        let content_type = req.header("content-type").unwrap_or("").to_owned();
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media != "application/strategic-merge-patch+json"
            && media != "application/merge-patch+json"
        {
            return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {media:?})"), 0);
        }
        let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
            return status(400, "BadRequest", "error decoding patch: invalid JSON", 0);
        };
        let Some(before) = self.secrets.get(&key(ns, name)).cloned() else {
            return not_found(name);
        };
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
            if Some(rv) != before["metadata"]["resourceVersion"].as_str() {
                return conflict_modified(name);
            }
        }
        let mut merged = before.clone();
        merge(&mut merged, &patch);
        fold_string_data(&mut merged);
        for fixed in ["name", "namespace", "uid", "creationTimestamp"] {
            merged["metadata"][fixed] = before["metadata"][fixed].clone();
        }
        merged["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"].clone();
        if let Err(e) = decodes(&merged) {
            return status(
                400,
                "BadRequest",
                &format!("Secret in version \"v1\" cannot be handled as a Secret: {e}"),
                0,
            );
        }
        if before["immutable"] == json!(true) {
            if merged["immutable"] != json!(true) {
                return immutable_refusal(name, "immutable");
            }
            let no_data = json!({});
            let data = |o: &Value| {
                if o["data"].is_null() {
                    no_data.clone()
                } else {
                    o["data"].clone()
                }
            };
            if data(&merged) != data(&before) {
                return immutable_refusal(name, "data");
            }
        }
        if q.get("dryRun").is_some_and(|d| d == "All") {
            return Response::json(200, &merged);
        }
        let changed = merged != before;
        self.patches.push(PatchSeen {
            resource: "secrets".into(),
            namespace: ns.into(),
            name: name.into(),
            content_type,
            body: patch,
            field_manager: q.get("fieldManager").map(str::to_owned),
        });
        if changed {
            self.rv += 1;
            merged["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        }
        self.secrets.insert(key(ns, name), merged.clone());
        Response::json(200, &merged)
    }

    pub(crate) fn delete_secret(&mut self, ns: &str, name: &str, req: &Request) -> Response {
        if let Some(denied) = self.authorize("delete", "", "secrets", ns, Some(name)) {
            return denied;
        }
        let Some(obj) = self.secrets.get(&key(ns, name)).cloned() else {
            return not_found(name);
        };
        // DeleteOptions.preconditions: a mismatch is `409 Conflict`
        // (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/).
        let opts = req.json();
        let pre = &opts["preconditions"];
        for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = pre[field].as_str() {
                let have = obj["metadata"][field].as_str().unwrap_or("");
                if want != have {
                    return with_details(
                        status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on secrets \"{name}\": \
                                 Precondition failed: {what} in precondition: {want}, \
                                 {what} in object meta: {have}"
                            ),
                            0,
                        ),
                        json!({"name": name, "kind": "secrets"}),
                    );
                }
            }
        }
        self.secrets.remove(&key(ns, name));
        self.rv += 1;
        Response::json(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": "secrets", "uid": obj["metadata"]["uid"]}}),
        )
    }
}
