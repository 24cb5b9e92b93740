//! Stateful fakes of the Secret Manager v1 and Cloud Run Admin v2 REST APIs, on the
//! test kit's fake HTTP server, speaking what Google's Rust clients send and expect:
//! resource paths with `:verb` suffixes, camelCase JSON, int64 as strings, enums as
//! integers (the clients ask for `$alt=json;enum-encoding=int`), etags, Google error
//! bodies (`{"error":{"code","message","status"}}`), and long-running operations
//! whose `metadata` / `response` carry their `@type`.
//!
//! There is no official emulator for either service. `tests/e2e_gcp.rs` at the
//! repository root includes this module by path to run the real binary against it,
//! and `tests/vendor_clients.rs` drives these same fakes with Google's own clients
//! (`gcloud`, and the Python `google-cloud-secret-manager` / `google-cloud-run` over
//! REST), which build the requests and parse the answers.
//!
//! Where each answer comes from, so a reader can tell the documented from the
//! assumed (every route and failure answer in the two fakes cites one of these, or
//! says it is undocumented):
//!
//! * Error bodies: Google's error model, `{"error": {"code": <HTTP status>,
//!   "message", "status": "<canonical code name>"}}` with the HTTP status of the
//!   code's mapping table (INVALID_ARGUMENT and FAILED_PRECONDITION 400, NOT_FOUND
//!   404, ABORTED and ALREADY_EXISTS 409, …),
//!   <https://cloud.google.com/apis/design/errors#http_mapping>. The real service
//!   may add `details` (ErrorInfo, RetryInfo); no client here needs them, so the
//!   fakes send none. `Content-Type: application/json` as the real answers have.
//!   Headers: Google's APIs put a retry delay in a `RetryInfo` detail, not in
//!   `Retry-After`; the tests' `Fault::RetryAfter` is a proxy-style answer, and the
//!   fakes themselves send no retry header.
//! * JSON: proto3 JSON mapping (camelCase names, int64 as strings, enums by name
//!   or, with `$alt=json;enum-encoding=int`, by number),
//!   <https://protobuf.dev/programming-guides/json/>; checked by the Python
//!   clients, which ask for integer enums, and by gcloud, which asks for names.
//! * Long-running operations: `google.longrunning.Operation` with `metadata` and
//!   `response` as `Any` (carrying `@type`) and `error` as a `google.rpc.Status`,
//!   <https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.operations#Operation>;
//!   checked by the Python client's `update_service(...).result()`.
//! * A request for a route a fake does not implement is answered 400
//!   INVALID_ARGUMENT naming it: that answer is the fake's, not the vendor's (the
//!   real front end answers an unknown path with an HTML 404).

#![allow(dead_code)]

pub mod cloud_run;
pub mod secret_manager;

use serde_json::{json, Value};
use vsync_orchestrate_testkit::fake_http::{Request, Response};

/// A Google error body with its canonical status name
/// (<https://cloud.google.com/apis/design/errors#http_mapping>); `http` is the
/// status the mapping table gives `status`.
pub fn google_error(http: u16, status: &str, message: &str) -> Response {
    Response::json(
        http,
        &json!({ "error": { "code": http, "message": message, "status": status } }),
    )
}

/// Whether the client asked for enums as integers (`$alt=json;enum-encoding=int`).
pub fn wants_int_enums(req: &Request) -> bool {
    let q = req.query.as_deref().unwrap_or("");
    q.contains("enum-encoding%3Dint") || q.contains("enum-encoding=int")
}

/// An enum value as the client asked for it.
pub fn enum_value(req: &Request, number: i64, name: &str) -> Value {
    if wants_int_enums(req) {
        json!(number)
    } else {
        json!(name)
    }
}

/// `path` and its `:verb` (`…/secrets/s:addVersion` → (`…/secrets/s`, `addVersion`)).
pub fn split_verb(rest: &str) -> (&str, Option<&str>) {
    let last = rest.rsplit('/').next().unwrap_or("");
    match last.split_once(':') {
        Some((_, verb)) => (&rest[..rest.len() - verb.len() - 1], Some(verb)),
        None => (rest, None),
    }
}

/// An int64 JSON field, which the clients send as a string.
pub fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// CRC-32C, written here again so the fake checks the adapter's checksum with an
/// implementation of its own.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
