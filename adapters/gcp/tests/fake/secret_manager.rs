//! A stateful fake of Secret Manager v1: secrets with numbered versions (ENABLED,
//! DISABLED, DESTROYED), version aliases guarded by an etag, `latest` as the most
//! recently created version whatever its state, payload CRC32C, and the service's
//! errors (`NOT_FOUND`, `FAILED_PRECONDITION` for a version that is not enabled and
//! for an etag that no longer matches).
//!
//! REST reference: <https://cloud.google.com/secret-manager/docs/reference/rest>;
//! each route below names its page. Checked by gcloud (`secrets versions add`,
//! `versions access`, `secrets update --update-version-aliases [--etag]`) and by
//! `google-cloud-secret-manager` over REST (tests/vendor_clients.rs).

use super::{crc32c, enum_value, google_error, int64, split_verb};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Request, Response};

/// The message of a [`SmState::precondition_refusals`] answer.
pub const PRECONDITION_REFUSAL: &str = "The secret cannot be modified in its current state.";

/// Responses name the project by number, as the real service does.
pub const PROJECT_NUMBER: &str = "123456789012";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionState {
    fn wire(self) -> (i64, &'static str) {
        match self {
            VersionState::Enabled => (1, "ENABLED"),
            VersionState::Disabled => (2, "DISABLED"),
            VersionState::Destroyed => (3, "DESTROYED"),
        }
    }
}

pub struct Version {
    pub data: Vec<u8>,
    pub state: VersionState,
}

#[derive(Default)]
pub struct Secret {
    /// Version N is `versions[N - 1]`.
    pub versions: Vec<Version>,
    pub aliases: BTreeMap<String, i64>,
    pub etag: u64,
    pub rotation: bool,
}

#[derive(Default)]
pub struct SmState {
    /// By `projects/<id>/secrets/<name>`.
    pub secrets: BTreeMap<String, Secret>,
    /// The next N alias writes find the etag moved, as if another writer had
    /// changed the secret between the client's read and its write.
    pub concurrent_writes: usize,
    /// The next N reads return a payload whose checksum does not match.
    pub corrupt_reads: usize,
    /// Every CRC32C an AddSecretVersion carried (`None`: none was sent).
    pub add_checksums: Vec<Option<i64>>,
    /// Alias writes refused for a stale etag.
    pub stale_etags: usize,
    /// The next N alias writes are refused with `FAILED_PRECONDITION` for a
    /// reason other than the etag ([`PRECONDITION_REFUSAL`]), the code the service
    /// shares between a stale etag and a resource in a state that refuses the call.
    pub precondition_refusals: usize,
}

impl SmState {
    pub fn add_secret(&mut self, name: &str) {
        self.secrets.insert(name.to_owned(), Secret::default());
    }

    /// Adds a version and returns its number.
    pub fn add_version(&mut self, secret: &str, data: &str) -> i64 {
        let s = self.secrets.get_mut(secret).expect("seeded secret");
        s.versions.push(Version {
            data: data.as_bytes().to_vec(),
            state: VersionState::Enabled,
        });
        s.versions.len() as i64
    }

    pub fn set_alias(&mut self, secret: &str, alias: &str, version: i64) {
        let s = self.secrets.get_mut(secret).expect("seeded secret");
        s.aliases.insert(alias.to_owned(), version);
        s.etag += 1;
    }

    pub fn secret(&self, name: &str) -> &Secret {
        &self.secrets[name]
    }

    /// The value a version, alias or `latest` resolves to, if it is enabled.
    pub fn value(&self, secret: &str, version: &str) -> Option<String> {
        let s = self.secrets.get(secret)?;
        let n = resolve(s, version)?;
        let v = s.versions.get((n - 1) as usize)?;
        (v.state == VersionState::Enabled).then(|| String::from_utf8(v.data.clone()).unwrap())
    }

    /// Every value any version holds: what no error message may contain.
    pub fn all_values(&self) -> Vec<String> {
        self.secrets
            .values()
            .flat_map(|s| s.versions.iter())
            .map(|v| String::from_utf8_lossy(&v.data).into_owned())
            .collect()
    }
}

fn resolve(s: &Secret, version: &str) -> Option<i64> {
    let n = if version == "latest" {
        s.versions.len() as i64
    } else if let Ok(n) = version.parse::<i64>() {
        n
    } else {
        *s.aliases.get(version)?
    };
    (n >= 1 && n as usize <= s.versions.len()).then_some(n)
}

/// A secret seeded with one version, `current` pointing at it.
pub fn seeded(secret: &str, value: &str) -> SmState {
    let mut st = SmState::default();
    st.add_secret(secret);
    let v = st.add_version(secret, value);
    st.set_alias(secret, "current", v);
    st
}

pub async fn start(state: SmState) -> FakeHttp<SmState> {
    FakeHttp::builder(state)
        .route("*", "/v1/**", handle)
        .start()
        .await
}

/// The name the service answers with: the project as its number.
fn public_name(secret_key: &str) -> String {
    let mut parts: Vec<&str> = secret_key.split('/').collect();
    parts[1] = PROJECT_NUMBER;
    parts.join("/")
}

fn secret_json(req: &Request, key: &str, s: &Secret) -> Value {
    let aliases: BTreeMap<&String, String> =
        s.aliases.iter().map(|(k, v)| (k, v.to_string())).collect();
    let mut j = json!({
        "name": public_name(key),
        "replication": { "automatic": {} },
        "createTime": "2026-01-05T10:00:00Z",
        "etag": format!("\"e{}\"", s.etag),
        "versionAliases": aliases,
        "secretType": enum_value(req, 0, "SECRET_TYPE_UNSPECIFIED"),
    });
    if s.rotation {
        j["rotation"] = json!({
            "nextRotationTime": "2026-04-05T10:00:00Z",
            "rotationPeriod": "7776000s"
        });
    }
    j
}

fn version_json(req: &Request, key: &str, n: i64, v: &Version) -> Value {
    let (num, name) = v.state.wire();
    json!({
        "name": format!("{}/versions/{n}", public_name(key)),
        "createTime": "2026-01-05T10:00:00Z",
        "state": enum_value(req, num, name),
        "replicationStatus": { "automatic": {} },
        "etag": format!("\"v{n}\""),
        "clientSpecifiedPayloadChecksum": true,
    })
}

/// 404 NOT_FOUND. The message is the one the service gives for a missing
/// secret or version as clients quote it ("Secret [projects/…/secrets/s] not found
/// or has no versions."); the status and shape are the error model's.
fn not_found(what: &str) -> Response {
    google_error(
        404,
        "NOT_FOUND",
        &format!("{what} not found or has no versions."),
    )
}

/// `projects/<id or number>/[locations/<l>/]secrets/<s>` → the state's key.
fn find_secret(st: &SmState, path: &[&str]) -> Option<String> {
    let (project, secret) = match path {
        ["projects", p, "secrets", s, ..] => (*p, *s),
        ["projects", p, "locations", _, "secrets", s, ..] => (*p, *s),
        _ => return None,
    };
    st.secrets.keys().find_map(|k| {
        let parts: Vec<&str> = k.split('/').collect();
        let same_project = parts[1] == project || project == PROJECT_NUMBER;
        (same_project && parts.last() == Some(&secret)).then(|| k.clone())
    })
}

fn handle(req: &Request, st: &mut SmState) -> Response {
    let rest = req.param("rest").to_owned();
    let (path, verb) = split_verb(&rest);
    let parts: Vec<&str> = path.split('/').collect();
    let Some(key) = find_secret(st, &parts) else {
        return not_found(&format!("Secret [{path}]"));
    };
    let version_part = parts
        .iter()
        .position(|p| *p == "versions")
        .and_then(|i| parts.get(i + 1))
        .map(|s| s.to_string());
    match (req.method.as_str(), version_part, verb) {
        // GET /v1/{name=projects/*/secrets/*} → Secret
        // (…/rest/v1/projects.secrets/get)
        ("GET", None, None) => Response::json(200, &secret_json(req, &key, &st.secrets[&key])),
        // PATCH /v1/{secret.name=projects/*/secrets/*}?updateMask=… → Secret
        // (…/rest/v1/projects.secrets/patch)
        ("PATCH", None, None) => update_secret(req, st, &key),
        // POST /v1/{parent=projects/*/secrets/*}:addVersion → SecretVersion
        // (…/rest/v1/projects.secrets/addVersion)
        ("POST", None, Some("addVersion")) => add_version(req, st, &key),
        // GET /v1/{name=projects/*/secrets/*/versions/*}:access →
        // AccessSecretVersionResponse (…/rest/v1/projects.secrets.versions/access)
        ("GET", Some(v), Some("access")) => access(req, st, &key, &v),
        // GET /v1/{name=projects/*/secrets/*/versions/*} → SecretVersion
        // (…/rest/v1/projects.secrets.versions/get)
        ("GET", Some(v), None) => {
            let s = &st.secrets[&key];
            match resolve(s, &v) {
                Some(n) => Response::json(
                    200,
                    &version_json(req, &key, n, &s.versions[(n - 1) as usize]),
                ),
                None => not_found(&format!(
                    "Secret Version [{}/versions/{v}]",
                    public_name(&key)
                )),
            }
        }
        // POST /v1/{name=projects/*/secrets/*/versions/*}:disable|:enable|:destroy
        // → SecretVersion (…/rest/v1/projects.secrets.versions/disable, /enable,
        // /destroy). DESTROYED is terminal: enabling or disabling one is
        // FAILED_PRECONDITION with the message access gives (not documented for
        // these two calls; the state is: "DESTROYED … cannot be re-enabled",
        // …/rest/v1/projects.secrets.versions#State).
        ("POST", Some(v), Some(op @ ("disable" | "enable" | "destroy"))) => {
            let s = st.secrets.get_mut(&key).unwrap();
            let Some(n) = resolve(s, &v) else {
                return not_found(&format!(
                    "Secret Version [{}/versions/{v}]",
                    public_name(&key)
                ));
            };
            let ver = &mut s.versions[(n - 1) as usize];
            if ver.state == VersionState::Destroyed && op != "destroy" {
                return google_error(
                    400,
                    "FAILED_PRECONDITION",
                    &format!(
                        "Secret Version [{}/versions/{n}] is in DESTROYED state.",
                        public_name(&key)
                    ),
                );
            }
            ver.state = match op {
                "disable" => VersionState::Disabled,
                "enable" => VersionState::Enabled,
                _ => {
                    ver.data.clear();
                    VersionState::Destroyed
                }
            };
            Response::json(200, &version_json(req, &key, n, ver))
        }
        // The fake's own answer, not the vendor's (see fake/mod.rs).
        _ => google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("the fake has no {} {}", req.method, req.path),
        ),
    }
}

fn update_secret(req: &Request, st: &mut SmState, key: &str) -> Response {
    // The mask's path in either spelling: Google's Rust client sends the JSON
    // name (`versionAliases`), gcloud the proto name (`version_aliases`, what
    // `gcloud secrets update --update-version-aliases` sends; tests/vendor_clients.rs).
    let mask = req.query_param("updateMask");
    // Other fields are not faked: the fake's own refusal, not the vendor's.
    if !matches!(mask.as_deref(), Some("versionAliases" | "version_aliases")) {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "the fake only updates versionAliases (updateMask=versionAliases)",
        );
    }
    if st.concurrent_writes > 0 {
        st.concurrent_writes -= 1;
        st.secrets.get_mut(key).unwrap().etag += 1;
    }
    if st.precondition_refusals > 0 {
        st.precondition_refusals -= 1;
        return google_error(400, "FAILED_PRECONDITION", PRECONDITION_REFUSAL);
    }
    let body = req.json();
    // https://cloud.google.com/secret-manager/docs/etags: "If an ETag is provided
    // and matches the current resource ETag, the request succeeds; otherwise, it
    // fails with a FAILED_PRECONDITION error and an HTTP status code 400."
    let current = format!("\"e{}\"", st.secrets[key].etag);
    if let Some(etag) = body["etag"].as_str().filter(|e| !e.is_empty()) {
        if etag != current {
            st.stale_etags += 1;
            return google_error(
                400,
                "FAILED_PRECONDITION",
                "The etag provided in the request does not match the current etag of the secret.",
            );
        }
    }
    let s = st.secrets.get_mut(key).unwrap();
    // A map left out of the body with the mask set is the empty map (proto3).
    let mut aliases = BTreeMap::new();
    if let Some(m) = body["versionAliases"].as_object() {
        for (alias, v) in m {
            // "You cannot use `Latest` or `New` (case-insensitive) as an alias name"
            // (https://cloud.google.com/secret-manager/docs/assign-alias-to-secret-version);
            // the status is not documented: INVALID_ARGUMENT, the code for a request
            // field the service refuses (https://cloud.google.com/apis/design/errors).
            if alias.eq_ignore_ascii_case("latest") || alias.eq_ignore_ascii_case("new") {
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    &format!("Version alias name {alias} is reserved."),
                );
            }
            // Not documented: INVALID_ARGUMENT for a value that is not a version
            // number, the error model's code for a malformed field.
            let Some(n) = int64(v) else {
                return google_error(400, "INVALID_ARGUMENT", "version alias is not an int64");
            };
            // Not documented: an alias on a destroyed or missing version. The
            // fake refuses both (FAILED_PRECONDITION / INVALID_ARGUMENT, the error
            // model's codes for a resource state and a bad field); no test here
            // depends on which.
            match s.versions.get((n - 1).max(0) as usize) {
                Some(ver) if n >= 1 && ver.state != VersionState::Destroyed => {}
                Some(_) if n >= 1 => {
                    return google_error(
                        400,
                        "FAILED_PRECONDITION",
                        &format!("alias {alias} would point at destroyed version {n}"),
                    )
                }
                _ => {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("alias {alias}: version {n} does not exist"),
                    )
                }
            }
            aliases.insert(alias.clone(), n);
        }
    }
    s.aliases = aliases;
    s.etag += 1;
    Response::json(200, &secret_json(req, key, s))
}

fn add_version(req: &Request, st: &mut SmState, key: &str) -> Response {
    let body = req.json();
    let data = match base64::engine::general_purpose::STANDARD
        .decode(body["payload"]["data"].as_str().unwrap_or(""))
    {
        Ok(d) => d,
        Err(_) => return google_error(400, "INVALID_ARGUMENT", "payload.data is not base64"),
    };
    let sent = int64(&body["payload"]["dataCrc32c"]);
    st.add_checksums.push(sent);
    // SecretPayload.dataCrc32c: "If specified, SecretManagerService will verify the
    // integrity of the received data" (…/rest/v1/SecretPayload). The code of a
    // mismatch is not documented; INVALID_ARGUMENT is the error model's for a bad
    // field.
    if let Some(sum) = sent {
        if sum != i64::from(crc32c(&data)) {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Checksum mismatch: the payload's data_crc32c does not match the data.",
            );
        }
    }
    let s = st.secrets.get_mut(key).unwrap();
    s.versions.push(Version {
        data,
        state: VersionState::Enabled,
    });
    let n = s.versions.len() as i64;
    Response::json(
        200,
        &version_json(req, key, n, &s.versions[(n - 1) as usize]),
    )
}

fn access(_req: &Request, st: &mut SmState, key: &str, v: &str) -> Response {
    let corrupt = st.corrupt_reads > 0;
    if corrupt {
        st.corrupt_reads -= 1;
    }
    let s = &st.secrets[key];
    let Some(n) = resolve(s, v) else {
        return not_found(&format!(
            "Secret Version [{}/versions/{v}]",
            public_name(key)
        ));
    };
    let ver = &s.versions[(n - 1) as usize];
    // A version that is not ENABLED cannot be read: 400 FAILED_PRECONDITION,
    // "Secret Version [projects/…/versions/4] is in DESTROYED state." — the body as
    // the service sent it, quoted in
    // google-github-actions/get-secretmanager-secrets#268.
    if ver.state != VersionState::Enabled {
        return google_error(
            400,
            "FAILED_PRECONDITION",
            &format!(
                "Secret Version [{}/versions/{n}] is in {} state.",
                public_name(key),
                ver.state.wire().1
            ),
        );
    }
    let mut sum = i64::from(crc32c(&ver.data));
    if corrupt {
        sum ^= 1;
    }
    Response::json(
        200,
        &json!({
            "name": format!("{}/versions/{n}", public_name(key)),
            "payload": {
                "data": base64::engine::general_purpose::STANDARD.encode(&ver.data),
                "dataCrc32c": sum.to_string(),
            }
        }),
    )
}
