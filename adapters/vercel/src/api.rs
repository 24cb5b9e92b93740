//! What both Vercel adapters share: where the API is, the team, the token (read
//! from the environment on first use), and one call helper that honours
//! `Retry-After` on the answers that say the request was not processed.

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Error, Finding, Result};
use vsync_orchestrate_http::{
    send_retrying_refused, BearerToken, Client, Method, Response, RetryRefused,
};

/// Vercel's REST API.
pub const DEFAULT_API_BASE: &str = "https://api.vercel.com";
/// Where the token is read from unless the plan names another variable.
pub const DEFAULT_TOKEN_ENV: &str = "VERCEL_TOKEN";

/// How many times a refused request (429, or 503 with `Retry-After`) is sent
/// again, and the longest wait honoured here; a longer one goes back to the caller
/// as the error's wait hint.
const REFUSED: RetryRefused = RetryRefused {
    retries: 3,
    longest_wait: Duration::from_secs(60),
};

/// One Vercel account's API: base URL, team and token.
pub(crate) struct Api {
    base: String,
    team_id: Option<String>,
    token_env: String,
    attempt_timeout: Duration,
    client: OnceLock<Client>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("team_id", &self.team_id)
            .field("token_env", &self.token_env)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(
        base: Option<&str>,
        team_id: Option<&str>,
        token_env: &str,
        attempt_timeout: Duration,
    ) -> Api {
        // A credential: no child process (a restart command, a hook) inherits it.
        vsync_orchestrate_api::child_env::register(token_env);
        Api {
            base: base
                .unwrap_or(DEFAULT_API_BASE)
                .trim_end_matches('/')
                .to_owned(),
            team_id: team_id.map(str::to_owned),
            token_env: token_env.to_owned(),
            attempt_timeout,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let raw = std::env::var(&self.token_env).map_err(|_| {
            Error::permission(format!(
                "no Vercel token: set {} (an access token of the project's team)",
                self.token_env
            ))
        })?;
        let token = BearerToken::new(raw)
            .map_err(|e| e.context(format!("the token in {}", self.token_env)))?;
        let client = Client::builder()
            .attempt_timeout(self.attempt_timeout)
            .request_id_headers(&["x-vercel-id", "x-request-id"])
            .bearer(token)
            .build()?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Sends one request and returns any answer. A 429 (or a 503 with
    /// `Retry-After`) means the request was refused, not processed, so it is sent
    /// again after the wait Vercel asked for (1 s, 2 s, 4 s when it named none), a
    /// few times and never past `deadline`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        what: &str,
        deadline: Option<Instant>,
    ) -> Result<Response> {
        let client = self.client()?;
        let url = format!("{}{path}", self.base);
        send_retrying_refused(REFUSED, || {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(t) = &self.team_id {
                q.push(("teamId", t));
            }
            let mut req = client
                .request(method.clone(), &url)
                .what(what.to_owned())
                .query(&q);
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(d) = deadline {
                req = req.deadline(d);
            }
            req
        })
        .await
    }

    /// [`Api::call`], then a non-2xx answer is an error of its kind.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        what: &str,
        deadline: Option<Instant>,
    ) -> Result<T> {
        self.call(method, path, query, body, what, deadline)
            .await?
            .error_for_status()?
            .json()
    }
}

/// A path segment as Vercel's URLs take it (project names and ids are
/// `[a-z0-9._-]`; anything else is percent-encoded).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The static checks both tables share.
pub(crate) fn check_common(
    project: &str,
    team_id: Option<&str>,
    token_env: &str,
    api_base: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if project.trim().is_empty() || project.contains(['/', ' ']) {
        out.push(Finding::error(
            Some("project"),
            format!("project {project:?} must be the project's name or id (prj_…)"),
        ));
    }
    if let Some(t) = team_id {
        if t.trim().is_empty() || t.contains(['/', ' ']) {
            out.push(Finding::error(
                Some("team_id"),
                format!("team_id {t:?} must be the team's id (team_…)"),
            ));
        }
    }
    if token_env.is_empty()
        || !token_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        out.push(Finding::error(
            Some("token_env"),
            format!("token_env {token_env:?} must name an environment variable (the token itself never goes in a plan)"),
        ));
    }
    if token_env.starts_with("vercel_") || token_env.len() > 64 {
        out.push(Finding::error(
            Some("token_env"),
            "token_env looks like a token, not the name of a variable: a plan never holds the token",
        ));
    }
    if let Some(b) = api_base {
        let ok = (b.starts_with("https://") || b.starts_with("http://"))
            && b.split("://").nth(1).is_some_and(|r| !r.is_empty());
        if !ok {
            out.push(Finding::error(
                Some("api_base"),
                format!("api_base {b:?} is not an http:// or https:// URL"),
            ));
        }
    }
    out
}

/// A time in milliseconds since the epoch (Vercel's timestamps), for messages.
pub(crate) fn millis_ago(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let secs = ((now - ms) / 1000).max(0) as u64;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        7200..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("my-app_1.x"), "my-app_1.x");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn common_checks_name_their_key() {
        let f = check_common("a/b", Some(""), "VERCEL TOKEN", Some("api.vercel.com"));
        let keys: Vec<_> = f.iter().map(|f| f.key.clone().unwrap()).collect();
        assert_eq!(keys, ["project", "team_id", "token_env", "api_base"]);
        assert!(check_common("shop", Some("team_x"), "VERCEL_TOKEN", None).is_empty());
    }
}
