//! The one HTTP stack of vsync-orchestrate: the health checks of `verify` and the
//! REST adapters are built on it, so timeouts, `Retry-After`, the meaning of a
//! status and the rule that a response body never reaches an error message are
//! written once.
//!
//! * [`Client`]: a connection pool (opened connections are reused, so a step after
//!   preflight costs one request), a timeout per attempt that covers the answer's
//!   body, and an optional deadline per request.
//! * Status → [`ErrorKind`](vsync_orchestrate_api::ErrorKind) ([`kind_for_status`]):
//!   401/403 permission, 404/410 not found, 409/412 conflict, 408/429/5xx
//!   temporary with `Retry-After` (seconds or an HTTP-date) as the error's wait,
//!   400/422 invalid configuration.
//! * Errors name the caller's short description, the status and the platform's
//!   request id; never the body (an API may echo a token or a secret value back)
//!   and never a URL's query.
//! * Refused requests sent again ([`send_retrying_refused`]): a 429, or a 503 with
//!   `Retry-After`, was not processed, so it is sent again after the wait the
//!   server asked for (1 s, 2 s, 4 s … when it named none), a few times, never for
//!   a longer wait than the caller allows ([`RetryRefused`]) nor past the
//!   request's deadline. The REST adapters (Fly, Vercel) send through it; the
//!   engine's own retries (by error kind, within its deadlines) stay the engine's.
//! * [`BearerToken`]: a credential the caller supplies (from its own config), sent
//!   as a sensitive header and redacted everywhere else.
//!
//! TLS is rustls with aws-lc-rs, the provider the binary installs at start, and the
//! system's CA certificates.

mod client;
mod retry;
mod status;
mod token;

pub use client::{
    Builder, Client, Request, Response, DEFAULT_MAX_BODY, DEFAULT_REQUEST_ID_HEADERS,
};
pub use reqwest::Method;
pub use retry::{is_refused, send_retrying_refused, RetryRefused};
pub use status::{kind_for_status, parse_retry_after, status_error};
pub use token::BearerToken;
