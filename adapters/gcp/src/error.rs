//! Google API errors → the engine's error kinds.
//!
//! The Google crates' error can carry the raw HTTP payload (`http_payload`), and
//! their `Debug` prints it: it is never attached as a source and never formatted.
//! Messages are rebuilt from the status code, the service's own message and the HTTP
//! status only. Secret Manager never echoes a payload in an error message, so those
//! three are safe to show.

use google_cloud_gax::error::rpc::{Code, StatusDetails};
use google_cloud_gax::error::Error as GaxError;
use std::time::Duration;
use vsync_orchestrate_api::{Error, ErrorKind};

/// Maps an error of one API call (`op`, e.g. `UpdateSecret`) onto an [`ErrorKind`].
///
/// * `ABORTED` (an etag that no longer matches) is a retryable `Conflict`: the
///   engine repeats the idempotent step, which re-reads first.
/// * `RESOURCE_EXHAUSTED` / HTTP 429 and `UNAVAILABLE` / 5xx are `Temporary`, with
///   the wait the service asked for (`Retry-After`, or a `RetryInfo` detail).
/// * `FAILED_PRECONDITION` (a disabled or destroyed version, a service in a state
///   that refuses the call) is `Unsupported`; callers that know better (a discarded
///   stage, an etag check) re-map it.
pub(crate) fn gax_error(op: &str, e: &GaxError) -> Error {
    // The client's own retry loop gave up: classify the last attempt's error.
    if e.is_exhausted() {
        if let Some(inner) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<GaxError>())
        {
            return gax_error(op, inner);
        }
        return Error::temporary(format!("{op}: retries exhausted"));
    }
    let http = e.http_status_code();
    let wait = retry_after(e);
    if let Some(status) = e.status() {
        let code = if status.code == Code::Unknown {
            http.map(code_for_http).unwrap_or(Code::Unknown)
        } else {
            status.code
        };
        let kind = kind_for(code);
        let mut text = format!("{op}: {}", code.name());
        if let Some(h) = http {
            text.push_str(&format!(" (HTTP {h})"));
        }
        if !status.message.is_empty() {
            text.push_str(": ");
            text.push_str(&status.message);
        }
        let mut err = Error::new(kind, text);
        if code == Code::Aborted {
            err = err.retryable();
        }
        if let Some(w) = wait {
            err = err.retry_after(w);
        }
        return err;
    }
    if let Some(h) = http {
        // An answer that is not a Google status (a proxy, a load balancer): its
        // body is not shown.
        let code = code_for_http(h);
        let mut err = Error::new(kind_for(code), format!("{op}: HTTP {h}"));
        if code == Code::Aborted {
            err = err.retryable();
        }
        if let Some(w) = wait {
            err = err.retry_after(w);
        }
        return err;
    }
    if e.is_timeout() {
        return Error::temporary(format!("{op}: timed out"));
    }
    if e.is_authentication() {
        // Which credential failed and why (no token material is in the message).
        let detail = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let err = Error::permission(format!("{op}: credentials: {detail}"));
        return if e.is_transient_and_before_rpc() {
            err.retryable()
        } else {
            err
        };
    }
    if e.is_connect() || e.is_io() || e.is_transport() {
        let detail = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Error::temporary(format!("{op}: request not delivered: {detail}"));
    }
    if e.is_binding() {
        return Error::invalid_config(format!(
            "{op}: the resource name does not have the form the API expects"
        ));
    }
    if e.is_deserialization() {
        return Error::failed(format!("{op}: unreadable response"));
    }
    Error::failed(format!("{op}: unexpected client error"))
}

fn kind_for(code: Code) -> ErrorKind {
    match code {
        Code::NotFound => ErrorKind::NotFound,
        Code::PermissionDenied | Code::Unauthenticated => ErrorKind::Permission,
        Code::Aborted | Code::AlreadyExists => ErrorKind::Conflict,
        Code::ResourceExhausted
        | Code::Unavailable
        | Code::Internal
        | Code::DeadlineExceeded
        | Code::Cancelled => ErrorKind::Temporary,
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidConfig,
        Code::FailedPrecondition | Code::Unimplemented => ErrorKind::Unsupported,
        _ => ErrorKind::Failed,
    }
}

/// The canonical code an HTTP status stands for (google.rpc's mapping), for
/// answers that carry no status.
fn code_for_http(status: u16) -> Code {
    match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        s if s >= 500 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// `Retry-After: <seconds>`, or a `google.rpc.RetryInfo` detail.
fn retry_after(e: &GaxError) -> Option<Duration> {
    let header = e
        .http_headers()
        .and_then(|h| h.get("retry-after"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    header.or_else(|| {
        e.status()?.details.iter().find_map(|d| match d {
            StatusDetails::RetryInfo(r) => r.retry_delay.and_then(|d| Duration::try_from(d).ok()),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_gax::error::rpc::Status;

    fn service(code: Code, http: u16, headers: &[(&str, &str)]) -> GaxError {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        GaxError::service_with_http_metadata(
            Status::default()
                .set_code(code)
                .set_message("said the service"),
            Some(http),
            Some(h),
        )
    }

    #[test]
    fn codes_map_to_kinds() {
        let e = gax_error("UpdateSecret", &service(Code::Aborted, 409, &[]));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.is_temporary(), "an etag conflict is worth a re-read");
        assert_eq!(
            e.message(),
            "UpdateSecret: ABORTED (HTTP 409): said the service"
        );

        let e = gax_error(
            "AddSecretVersion",
            &service(Code::ResourceExhausted, 429, &[("retry-after", "7")]),
        );
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert_eq!(e.wait_hint(), Some(Duration::from_secs(7)));

        let e = gax_error("Access", &service(Code::FailedPrecondition, 400, &[]));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.is_temporary());

        for (code, kind) in [
            (Code::NotFound, ErrorKind::NotFound),
            (Code::PermissionDenied, ErrorKind::Permission),
            (Code::Unauthenticated, ErrorKind::Permission),
            (Code::Unavailable, ErrorKind::Temporary),
            (Code::InvalidArgument, ErrorKind::InvalidConfig),
        ] {
            assert_eq!(gax_error("x", &service(code, 400, &[])).kind(), kind);
        }
    }

    #[test]
    fn a_status_without_a_code_falls_back_to_the_http_status() {
        // What a body of {"error":{"code":503,"message":"…"}} (no "status") becomes.
        let e = gax_error("GetSecret", &service(Code::Unknown, 503, &[]));
        assert_eq!(e.kind(), ErrorKind::Temporary);
        let e = gax_error("GetSecret", &service(Code::Unknown, 409, &[]));
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.is_temporary());
    }

    #[test]
    fn bodies_that_are_not_a_status_are_not_shown() {
        let e = GaxError::http(
            502,
            http::HeaderMap::new(),
            bytes::Bytes::from_static(b"<html>secret-looking body</html>"),
        );
        let e = gax_error("GetSecret", &e);
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert!(!e.chain().contains("secret-looking"), "{}", e.chain());
    }
}
