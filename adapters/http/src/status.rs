//! What an HTTP answer means for the engine: an [`ErrorKind`], whether to retry,
//! and how long the server asked to wait.

use std::time::{Duration, SystemTime};
use vsync_orchestrate_api::{Error, ErrorKind};

/// The kind of a non-2xx status, in the terms the engine decides on.
///
/// 408, 429 and 5xx are temporary (the same call may succeed later); 401 and 403
/// are a credential problem; 404 and 410 a missing target; 409 and 412 someone
/// else's change; 400 and 422 a request the platform will never accept as built
/// from this plan. Anything else that is not a success is a plain failure.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Permission,
        404 | 410 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        408 | 429 | 500..=599 => ErrorKind::Temporary,
        400 | 422 => ErrorKind::InvalidConfig,
        _ => ErrorKind::Failed,
    }
}

/// A `Retry-After` value as a wait from `now`: delta-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, a date in the past is no wait).
/// `None` when the value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time", not garbage.
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The error for a non-2xx answer. Its message names only `what` (the caller's
/// short description), the status and the request id: never the body, which may
/// echo a credential or a secret value back.
pub fn status_error(
    what: &str,
    status: u16,
    request_id: Option<&str>,
    retry_after: Option<&str>,
) -> Error {
    let kind = kind_for_status(status);
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let id = request_id
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    let mut e = Error::new(kind, prefixed(what, &format!("HTTP {status}{reason}{id}")));
    // A wait is only worth honouring where a retry is: a 403 that carries one is
    // still a refusal.
    if kind == ErrorKind::Temporary {
        if let Some(wait) = retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) {
            e = e.retry_after(wait);
        }
    }
    e
}

/// `what: detail`, or the detail alone when the caller chose no description.
pub(crate) fn prefixed(what: &str, detail: &str) -> String {
    if what.is_empty() {
        detail.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        for (s, k) in [
            (400, ErrorKind::InvalidConfig),
            (401, ErrorKind::Permission),
            (403, ErrorKind::Permission),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Temporary),
            (409, ErrorKind::Conflict),
            (410, ErrorKind::NotFound),
            (412, ErrorKind::Conflict),
            (418, ErrorKind::Failed),
            (422, ErrorKind::InvalidConfig),
            (429, ErrorKind::Temporary),
            (500, ErrorKind::Temporary),
            (502, ErrorKind::Temporary),
            (503, ErrorKind::Temporary),
            (599, ErrorKind::Temporary),
            (302, ErrorKind::Failed),
        ] {
            assert_eq!(kind_for_status(s), k, "{s}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn status_errors_carry_kind_status_id_and_wait_only() {
        let e = status_error("reading the secret", 429, Some("req-1"), Some("7"));
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert_eq!(e.wait_hint(), Some(Duration::from_secs(7)));
        assert_eq!(
            e.message(),
            "reading the secret: HTTP 429 Too Many Requests (request id req-1)"
        );
        let e = status_error("x", 403, None, Some("7"));
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert!(!e.is_temporary() && e.wait_hint().is_none());
        let e = status_error("", 599, None, None);
        assert_eq!(e.message(), "HTTP 599");
        assert!(e.is_temporary());
    }
}
