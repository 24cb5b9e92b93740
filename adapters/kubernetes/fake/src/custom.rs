//! Namespaced objects the fake keeps as JSON (Secrets and the custom resources:
//! ExternalSecrets, SecretProviderClasses), and how the API server serves a custom
//! resource: unstructured, so list items keep their `apiVersion` and `kind`
//! (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use vsync_orchestrate_testkit::fake_http::Response;

/// Namespaced objects by (namespace, name).
pub(crate) type Objects = BTreeMap<(String, String), Value>;

pub(crate) fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

/// `GET …/namespaces/{ns}/{plural}/{name}`: the object, or `not_found`.
pub(crate) fn get(objects: &Objects, ns: &str, name: &str, not_found: Response) -> Response {
    match objects.get(&key(ns, name)) {
        Some(o) => Response::json(200, o),
        None => not_found,
    }
}

/// `GET …/namespaces/{ns}/{plural}`: a `<Kind>List` of the namespace's objects.
pub(crate) fn list(
    objects: &Objects,
    ns: &str,
    list_kind: &str,
    api_version: &str,
    rv: u64,
) -> Response {
    let items: Vec<Value> = objects
        .iter()
        .filter(|((n, _), _)| n == ns)
        .map(|(_, o)| o.clone())
        .collect();
    Response::json(
        200,
        &json!({"kind": list_kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    )
}
