//! Refused requests, sent again: the `Retry-After` loop of the REST adapters.
//!
//! A 429, or a 503 that names a `Retry-After`, says the server did not process the
//! request, so sending it again is safe even for a write. How long to wait is the
//! server's to say; how often and how long at most is the caller's
//! ([`RetryRefused`]); the request's own deadline bounds it all.

use crate::client::{Request, Response};
use crate::status::parse_retry_after;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::Result;

/// How often, and after how long a wait at most, a refused request is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRefused {
    /// Sends after the first, at most.
    pub retries: u32,
    /// The longest wait honoured here; a refusal asking for longer is the answer
    /// (its error carries the wait, for the engine's own retry).
    pub longest_wait: Duration,
}

impl RetryRefused {
    /// Three more sends, a minute's wait at most.
    pub const DEFAULT: RetryRefused = RetryRefused {
        retries: 3,
        longest_wait: Duration::from_secs(60),
    };
}

impl Default for RetryRefused {
    fn default() -> Self {
        RetryRefused::DEFAULT
    }
}

/// Whether an answer says the request was refused, not processed: a 429, or a
/// 503 with `Retry-After`.
pub fn is_refused(resp: &Response) -> bool {
    resp.status() == 429 || (resp.status() == 503 && resp.header("retry-after").is_some())
}

/// Sends the request `build` makes and returns any answer; a refusal
/// ([`is_refused`]) is sent again (a fresh request from `build`) after the wait
/// the server asked for, or 1 s, 2 s, 4 s … when it named none or an unreadable
/// one. At most `policy.retries` times, never for a wait longer than
/// `policy.longest_wait`, and never when the wait would reach the request's
/// deadline: then the refusal itself is the answer. Errors (no answer) are
/// returned at once.
pub async fn send_retrying_refused<'c>(
    policy: RetryRefused,
    mut build: impl FnMut() -> Request<'c>,
) -> Result<Response> {
    let mut attempt: u32 = 0;
    loop {
        let req = build();
        let deadline = req.deadline_at();
        let resp = req.send().await?;
        if !is_refused(&resp) || attempt >= policy.retries {
            return Ok(resp);
        }
        let wait = resp
            .header("retry-after")
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .unwrap_or_else(|| Duration::from_secs(1u64.checked_shl(attempt).unwrap_or(u64::MAX)));
        if wait > policy.longest_wait || deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return Ok(resp);
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}
