//! External Secrets Operator in the fake: the `ExternalSecret` resource
//! (`external-secrets.io/v1beta1`) served like the CRD, and a controller that
//! syncs it from a scriptable provider into its target Secret the way ESO does.
//!
//! References:
//! * the resource and its fields (`spec.refreshInterval`, `spec.refreshPolicy`,
//!   `spec.target`, `spec.data[].remoteRef`, `status.refreshTime`,
//!   `status.syncedResourceVersion`, the `Ready` condition):
//!   https://external-secrets.io/latest/api/externalsecret/ and
//!   https://external-secrets.io/latest/api/spec/
//! * when it syncs: ESO's `shouldRefresh` (pkg/controllers/externalsecret/
//!   externalsecret_controller.go): `CreatedOnce` syncs only while never synced;
//!   `OnChange` when never synced or when the "resource version" it synced —
//!   `<metadata.generation>-<hash of labels and annotations>` — is no longer the
//!   object's; `Periodic` (the default) on that change too, and once
//!   `refreshTime + refreshInterval` has passed, unless the interval is 0.
//! * forcing a sync: "kubectl annotate es my-es force-sync=$(date +%s) --overwrite"
//!   (https://external-secrets.io/latest/introduction/faq/): an annotation change
//!   changes the synced resource version, so `Periodic` and `OnChange` sync at once;
//!   `CreatedOnce` never does.
//! * the conditions ESO writes: `Ready`/`True`/`SecretSynced`/"secret synced", and
//!   on a provider error `Ready`/`False`/`SecretSyncedError`/"could not get secret
//!   data from provider"
//!   (https://external-secrets.io/latest/api/externalsecret/#status).
//! * custom resources take JSON merge and JSON patches, not strategic merge:
//!   https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#advanced-topics
//!   ("strategic merge patch ... is not supported" for custom resources; 415).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use vsync_orchestrate_testkit::fake_http::{Request, Response};

use crate::custom::{self, key};
use crate::{merge, status, Cluster, Query};

pub(crate) const GROUP: &str = "external-secrets.io";
pub(crate) const VERSION: &str = "v1beta1";
/// The annotation ESO's docs use to force a sync (any change of it does).
pub const FORCE_SYNC: &str = "force-sync";

fn not_found(name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("externalsecrets.{GROUP} \"{name}\" not found"),
        0,
    )
}

fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A Go `time.Duration` string as `metav1.Duration` takes it (`1h`, `15m30s`,
/// `500ms`, `0`).
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// ESO's `GetResourceVersion`: the generation and a hash of labels and
/// annotations, so a metadata change (the force-sync annotation) counts.
fn resource_version_of(es: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let labels: BTreeMap<String, String> =
        serde_json::from_value(es["metadata"]["labels"].clone()).unwrap_or_default();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(es["metadata"]["annotations"].clone()).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&annotations, &labels).hash(&mut h);
    format!(
        "{}-{:016x}",
        es["metadata"]["generation"].as_i64().unwrap_or(1),
        h.finish()
    )
}

/// ESO's `shouldRefresh`.
fn should_refresh(es: &Value, now: Timestamp) -> bool {
    let synced = es["status"]["syncedResourceVersion"].as_str().unwrap_or("");
    let refreshed = es["status"]["refreshTime"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let never = synced.is_empty() || refreshed.is_none();
    let changed = synced != resource_version_of(es);
    match es["spec"]["refreshPolicy"].as_str().unwrap_or("Periodic") {
        "CreatedOnce" => never,
        "OnChange" => never || changed,
        _ => {
            if changed {
                return true;
            }
            let interval = es["spec"]["refreshInterval"]
                .as_str()
                .and_then(parse_go_duration)
                .unwrap_or(std::time::Duration::from_secs(3600));
            if interval.is_zero() && !synced.is_empty() {
                return false;
            }
            match refreshed {
                None => true,
                Some(t) => {
                    let due = t + SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX);
                    due <= now
                }
            }
        }
    }
}

fn condition(ready: bool, before: &Value) -> Value {
    let (status_, reason, message) = if ready {
        ("True", "SecretSynced", "secret synced")
    } else {
        (
            "False",
            "SecretSyncedError",
            "could not get secret data from provider",
        )
    };
    let previous = before["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let since = match previous {
        Some(p) if p["status"] == status_ => p["lastTransitionTime"].clone(),
        _ => json!(now_rfc3339()),
    };
    json!({"type": "Ready", "status": status_, "reason": reason, "message": message,
        "lastTransitionTime": since})
}

impl Cluster {
    /// What the provider (Secrets Manager, Secret Manager…) holds under `key`; a
    /// `remoteRef.property` reads one member of a JSON value.
    pub fn set_provider_value(&mut self, remote_key: &str, value: &str) {
        self.provider
            .insert(remote_key.to_owned(), value.to_owned());
    }

    /// Deletes `key` from the provider: ESO's next sync of an ExternalSecret that
    /// reads it fails (`Ready`/`False`/`SecretSyncedError`).
    pub fn remove_provider_value(&mut self, remote_key: &str) {
        self.provider.remove(remote_key);
    }

    /// Stops (`true`) or restarts the ESO controller: nothing syncs while stopped.
    pub fn hold_external_secrets(&mut self, hold: bool) {
        self.eso_hold = hold;
    }

    /// How many syncs the controller has done.
    pub fn external_secret_syncs(&self) -> u64 {
        self.eso_syncs
    }

    /// The ExternalSecret as served.
    pub fn external_secret(&self, ns: &str, name: &str) -> Option<Value> {
        self.externalsecrets.get(&key(ns, name)).cloned()
    }

    /// Creates an ExternalSecret from its JSON, as `kubectl create -f` would.
    pub fn add_external_secret(&mut self, ns: &str, mut es: Value) {
        self.rv += 1;
        self.uids += 1;
        let name = es["metadata"]["name"].as_str().unwrap_or("").to_owned();
        es["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
        es["kind"] = json!("ExternalSecret");
        let m = &mut es["metadata"];
        m["namespace"] = json!(ns);
        m["generation"] = json!(1);
        m["uid"] = json!(format!("00000000-0000-4000-9000-{:012}", self.uids));
        m["resourceVersion"] = json!(self.rv.to_string());
        m["creationTimestamp"] = json!(now_rfc3339());
        if es["spec"]["refreshInterval"].is_null() {
            es["spec"]["refreshInterval"] = json!("1h"); // the CRD's default
        }
        if es["spec"]["target"]["creationPolicy"].is_null() {
            es["spec"]["target"]["creationPolicy"] = json!("Owner");
        }
        self.externalsecrets.insert(key(ns, &name), es);
    }

    /// One controller pass: every ExternalSecret `shouldRefresh` picks is synced.
    pub(crate) fn eso_tick(&mut self) {
        if self.eso_hold {
            return;
        }
        let now = Timestamp::now();
        let due: Vec<(String, String)> = self
            .externalsecrets
            .iter()
            .filter(|(_, es)| should_refresh(es, now))
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in due {
            self.sync_external_secret(&ns, &name);
        }
    }

    fn sync_external_secret(&mut self, ns: &str, name: &str) {
        let Some(before) = self.externalsecrets.get(&key(ns, name)).cloned() else {
            return;
        };
        let mut data = BTreeMap::new();
        let mut ok = true;
        for d in before["spec"]["data"].as_array().into_iter().flatten() {
            let remote = d["remoteRef"]["key"].as_str().unwrap_or("");
            let value =
                self.provider
                    .get(remote)
                    .and_then(|v| match d["remoteRef"]["property"].as_str() {
                        None => Some(v.clone()),
                        Some(p) => serde_json::from_str::<Value>(v)
                            .ok()?
                            .get(p)?
                            .as_str()
                            .map(str::to_owned),
                    });
            match value {
                Some(v) => {
                    data.insert(d["secretKey"].as_str().unwrap_or("").to_owned(), v);
                }
                None => ok = false,
            }
        }
        self.eso_syncs += 1;
        let target = before["spec"]["target"]["name"]
            .as_str()
            .unwrap_or(name)
            .to_owned();
        if ok {
            self.writes.push(format!("sync secrets/{target}"));
            let string_data: serde_json::Map<String, Value> =
                data.into_iter().map(|(k, v)| (k, json!(v))).collect();
            if self.secrets.contains_key(&key(ns, &target)) {
                // creationPolicy Owner: ESO owns the data and writes all of it.
                self.edit_secret(ns, &target, |o| {
                    o["data"] = json!({});
                    o["stringData"] = Value::Object(string_data);
                });
            } else {
                self.store_new_secret(
                    ns,
                    json!({"metadata": {"name": target, "ownerReferences": [{
                        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "ExternalSecret",
                        "name": name, "uid": before["metadata"]["uid"],
                        "controller": true, "blockOwnerDeletion": true}]},
                        "type": "Opaque", "stringData": Value::Object(string_data)}),
                );
            }
        }
        self.rv += 1;
        let rv = self.rv;
        let es = self
            .externalsecrets
            .get_mut(&key(ns, name))
            .expect("synced object exists");
        let mut st = json!({"conditions": [condition(ok, &before)]});
        if ok {
            st["refreshTime"] = json!(now_rfc3339());
            st["syncedResourceVersion"] = json!(resource_version_of(&before));
            st["binding"] = json!({"name": target});
        } else {
            for k in ["refreshTime", "syncedResourceVersion", "binding"] {
                st[k] = before["status"][k].clone();
            }
        }
        es["status"] = st;
        es["metadata"]["resourceVersion"] = json!(rv.to_string());
    }

    pub(crate) fn get_external_secret(&mut self, ns: &str, name: &str) -> Response {
        if let Some(denied) = self.authorize("get", GROUP, "externalsecrets", ns, Some(name)) {
            return denied;
        }
        custom::get(&self.externalsecrets, ns, name, not_found(name))
    }

    pub(crate) fn list_external_secrets(&mut self, ns: &str) -> Response {
        if let Some(denied) = self.authorize("list", GROUP, "externalsecrets", ns, None) {
            return denied;
        }
        custom::list(
            &self.externalsecrets,
            ns,
            "ExternalSecretList",
            &format!("{GROUP}/{VERSION}"),
            self.rv,
        )
    }

    pub(crate) fn create_external_secret(&mut self, ns: &str, req: &Request) -> Response {
        if let Some(denied) = self.authorize("create", GROUP, "externalsecrets", ns, None) {
            return denied;
        }
        let Ok(obj) = serde_json::from_slice::<Value>(&req.body) else {
            return status(
                400,
                "BadRequest",
                "the body of the request was not valid JSON",
                0,
            );
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if self.externalsecrets.contains_key(&key(ns, &name)) {
            return status(
                409,
                "AlreadyExists",
                &format!("externalsecrets.{GROUP} \"{name}\" already exists"),
                0,
            );
        }
        if let Some(p) = obj["spec"]["refreshPolicy"].as_str() {
            if !["CreatedOnce", "Periodic", "OnChange"].contains(&p) {
                return status(422, "Invalid", &format!("ExternalSecret.{GROUP} \"{name}\" is invalid: spec.refreshPolicy: Unsupported value: \"{p}\": supported values: \"CreatedOnce\", \"Periodic\", \"OnChange\""), 0);
            }
        }
        self.add_external_secret(ns, obj);
        Response::json(201, &self.externalsecrets[&key(ns, &name)])
    }

    pub(crate) fn patch_external_secret(
        &mut self,
        ns: &str,
        name: &str,
        req: &Request,
        _q: &Query,
    ) -> Response {
        if let Some(denied) = self.authorize("patch", GROUP, "externalsecrets", ns, Some(name)) {
            return denied;
        }
        let media = req
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if media != "application/merge-patch+json" {
            return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {media:?})"), 0);
        }
        let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
            return status(400, "BadRequest", "error decoding patch: invalid JSON", 0);
        };
        let Some(before) = self.externalsecrets.get(&key(ns, name)).cloned() else {
            return not_found(name);
        };
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
            if Some(rv) != before["metadata"]["resourceVersion"].as_str() {
                return status(409, "Conflict", &format!("Operation cannot be fulfilled on externalsecrets.{GROUP} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"), 0);
            }
        }
        let mut merged = before.clone();
        merge(&mut merged, &patch);
        // The main resource's writes leave status alone (status is a subresource).
        merged["status"] = before["status"].clone();
        for fixed in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            merged["metadata"][fixed] = before["metadata"][fixed].clone();
        }
        if merged["spec"] != before["spec"] {
            let g = before["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            merged["metadata"]["generation"] = json!(g);
        }
        self.writes.push(format!("patch externalsecrets/{name}"));
        if merged != before {
            self.rv += 1;
            merged["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        }
        self.externalsecrets.insert(key(ns, name), merged.clone());
        Response::json(200, &merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1h"),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parse_go_duration("1m30s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_go_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_go_duration("0"), Some(std::time::Duration::ZERO));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn when_eso_refreshes() {
        let now = Timestamp::now();
        let mut es = json!({"metadata": {"generation": 1, "annotations": {}},
            "spec": {"refreshInterval": "1h"}, "status": {}});
        assert!(should_refresh(&es, now), "never synced");
        es["status"] = json!({"refreshTime": now_rfc3339(),
            "syncedResourceVersion": resource_version_of(&es)});
        assert!(!should_refresh(&es, now), "within the interval");
        es["metadata"]["annotations"][FORCE_SYNC] = json!("1");
        assert!(should_refresh(&es, now), "force-sync");
        es["spec"]["refreshPolicy"] = json!("CreatedOnce");
        assert!(!should_refresh(&es, now), "CreatedOnce ignores force-sync");
        es["spec"]["refreshPolicy"] = json!("OnChange");
        assert!(
            should_refresh(&es, now),
            "OnChange takes the annotation change"
        );
        es["spec"]["refreshPolicy"] = json!("Periodic");
        es["status"]["syncedResourceVersion"] = json!(resource_version_of(&es));
        let later = now + SignedDuration::from_secs(3601);
        assert!(should_refresh(&es, later), "the interval passed");
        es["spec"]["refreshInterval"] = json!("0");
        assert!(!should_refresh(&es, later), "interval 0: only on change");
    }
}
