//! Stateful fakes of the Secret Manager v1 and Cloud Run Admin v2 REST APIs, on the
//! test kit's fake HTTP server, speaking what Google's Rust clients send and expect:
//! resource paths with `:verb` suffixes, camelCase JSON, int64 as strings, enums as
//! integers (the clients ask for `$alt=json;enum-encoding=int`), etags, Google error
//! bodies (`{"error":{"code","message","status"}}`), and long-running operations
//! whose `metadata` / `response` carry their `@type`.
//!
//! There is no official emulator for either service. `tests/e2e_gcp.rs` at the
//! repository root includes this module by path to run the real binary against it.

#![allow(dead_code)]

pub mod cloud_run;
pub mod secret_manager;

use serde_json::{json, Value};
use vsync_orchestrate_testkit::fake_http::{Request, Response};

/// A Google error body with its canonical status name.
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
