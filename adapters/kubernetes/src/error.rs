//! kube errors → the engine's error kinds. The API server's `Status` (reason, code,
//! message, `retryAfterSeconds`) is what decides; a response body is never copied.

use std::time::Duration;
use vsync_orchestrate_api::{Error, ErrorKind};

/// The longest API-server message quoted: they are one sentence, but a proxy in
/// front of the cluster can answer with a whole page.
const MAX_MESSAGE: usize = 300;

pub(crate) fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Maps a kube error for operation `op` (`patch deployment/api`).
pub(crate) fn kube_error(op: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) => status_error(op, &s),
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::LinesCodecMaxLineLengthExceeded => {
            Error::temporary(format!("{op}: the API server did not answer: {e}"))
        }
        kube::Error::Auth(a) => Error::permission(format!("{op}: credentials: {a}")),
        kube::Error::InferConfig(_) | kube::Error::InferKubeconfig(_) => {
            Error::invalid_config(format!("{op}: {e}"))
        }
        kube::Error::TlsRequired | kube::Error::RustlsTls(_) => {
            Error::invalid_config(format!("{op}: TLS: {e}"))
        }
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => {
            Error::failed(format!("{op}: unreadable answer from the API server ({e})"))
        }
        other => Error::failed(format!("{op}: {other}")),
    }
}

/// The kind of a `Status` answer. 409 is a conflict worth retrying (someone wrote
/// between our read and our write); 429 and 5xx are temporary, with the server's
/// `retryAfterSeconds` when it gave one.
pub(crate) fn status_error(op: &str, s: &kube::core::Status) -> Error {
    let reason = if s.reason.is_empty() {
        "Failure"
    } else {
        s.reason.as_str()
    };
    let text = format!(
        "{op}: {reason} (HTTP {}): {}",
        s.code,
        truncate(&s.message, MAX_MESSAGE)
    );
    let retry_after = s
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|n| *n > 0)
        .map(|n| Duration::from_secs(n.into()));
    let kind = kind_for(s.code, reason);
    let mut e = Error::new(kind, text);
    if kind == ErrorKind::Conflict {
        e = e.retryable();
    }
    if kind == ErrorKind::Temporary {
        e = e.retry_after(retry_after.unwrap_or(if s.code == 429 {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        }));
    }
    e
}

fn kind_for(code: u16, reason: &str) -> ErrorKind {
    match (code, reason) {
        // An answer that was not the API server's Status (a proxy or load balancer
        // in front of it): kube cannot tell its HTTP code, and such answers are
        // nearly always a gateway's momentary failure.
        (0, _) => ErrorKind::Temporary,
        (401 | 403, _) | (_, "Unauthorized" | "Forbidden") => ErrorKind::Permission,
        (404, _) | (_, "NotFound") => ErrorKind::NotFound,
        (409, _) | (_, "Conflict" | "AlreadyExists") => ErrorKind::Conflict,
        (410, _) | (_, "Expired" | "Gone") => ErrorKind::Temporary,
        (429, _) | (_, "TooManyRequests" | "ServerTimeout" | "Timeout") => ErrorKind::Temporary,
        (500..=599, _) | (_, "ServiceUnavailable" | "InternalError") => ErrorKind::Temporary,
        (422, _) | (_, "Invalid") => ErrorKind::InvalidConfig,
        _ => ErrorKind::Failed,
    }
}

/// Whether `e` is the API server saying a watch's resourceVersion is too old.
pub(crate) fn is_gone(s: &kube::core::Status) -> bool {
    s.code == 410 || s.reason == "Expired" || s.reason == "Gone"
}

/// `fut`, or a temporary error once `limit` has passed: every API request of the
/// store, the restarter and the External Secrets wait goes through it.
pub(crate) async fn bounded<T>(
    op: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = kube::Result<T>>,
) -> vsync_orchestrate_api::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| kube_error(op, e)),
        Err(_) => Err(Error::temporary(format!(
            "{op}: no answer within {}",
            humantime_serde::re::humantime::format_duration(limit)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, retry: u32) -> kube::core::Status {
        let mut s = kube::core::Status::failure("msg", reason);
        s.code = code;
        if retry > 0 {
            s.details = Some(kube::core::response::StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: vec![],
                retry_after_seconds: retry,
            });
        }
        s
    }

    #[test]
    fn status_codes_map_to_kinds() {
        let e = status_error("get", &status(404, "NotFound", 0));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_temporary());
        let e = status_error("patch", &status(409, "Conflict", 0));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.is_temporary());
        let e = status_error("patch", &status(429, "TooManyRequests", 7));
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert_eq!(e.wait_hint(), Some(Duration::from_secs(7)));
        let e = status_error("patch", &status(429, "TooManyRequests", 0));
        assert_eq!(e.wait_hint(), Some(Duration::from_secs(1)));
        assert_eq!(
            status_error("x", &status(403, "Forbidden", 0)).kind(),
            ErrorKind::Permission
        );
        assert_eq!(
            status_error("x", &status(503, "ServiceUnavailable", 0)).kind(),
            ErrorKind::Temporary
        );
        assert_eq!(
            status_error("x", &status(422, "Invalid", 0)).kind(),
            ErrorKind::InvalidConfig
        );
        assert!(is_gone(&status(410, "Expired", 0)));
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(400);
        let t = truncate(&long, 301);
        assert!(t.len() <= 304 && t.ends_with('…'));
    }
}
