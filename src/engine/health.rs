//! Health checks: the documented `/healthz` bodies of vsync apps
//! (`{"status":"fresh","gen":N}`, `stale`, `unknown`), polled over HTTP(S).

use std::time::{Duration, Instant};

/// The health-check client: the project's one HTTP stack (`vsync-orchestrate-http`),
/// without credentials. Redirects are answers (a health URL that redirects is
/// misconfigured), and only the first 64 KiB of a body is read.
#[derive(Clone)]
pub struct Http {
    client: vsync_orchestrate_http::Client,
}

/// Health bodies are a few bytes; anything longer is not one.
const MAX_BODY: usize = 64 * 1024;

impl Http {
    pub fn new() -> Http {
        Http {
            client: vsync_orchestrate_http::Client::builder()
                .max_body(MAX_BODY)
                .build()
                // Only a TLS set-up the client itself preconfigures can fail here.
                .expect("the health-check HTTP client"),
        }
    }

    /// GET with a timeout; the body is capped at 64 KiB. The error says what went
    /// wrong without repeating the URL (callers print it beside).
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), HealthError> {
        let r = self
            .client
            .get(url)
            .what("")
            .timeout(timeout)
            .send()
            .await
            .map_err(HealthError::NoAnswer)?;
        Ok((r.status(), r.text()))
    }
}

/// Why a health URL gave no answer to classify (a status of any kind is an
/// answer). The HTTP client's error is kept for its kind: a timeout or refused
/// connection is temporary, a URL the client cannot use is not.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Shown as the client's message alone: the caller prints the URL beside it.
    #[error("{}", .0.message())]
    NoAnswer(#[source] vsync_orchestrate_api::Error),
}

impl HealthError {
    pub fn kind(&self) -> vsync_orchestrate_api::ErrorKind {
        match self {
            HealthError::NoAnswer(e) => e.kind(),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// What one answer said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Answer {
    Fresh {
        gen: u64,
    },
    Stale {
        local_gen: u64,
        remote_gen: u64,
    },
    Unknown {
        gen: Option<u64>,
    },
    /// The app could not open the vault.
    WrongPassphrase,
    Unreachable {
        error: String,
    },
    Other {
        status: u16,
        body: String,
    },
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Fresh { gen } => write!(f, "fresh gen={gen}"),
            Answer::Stale {
                local_gen,
                remote_gen,
            } => write!(f, "stale (runs gen={local_gen}, vault at gen={remote_gen})"),
            Answer::Unknown { gen } => write!(
                f,
                "unknown (gen={})",
                gen.map(|g| g.to_string()).unwrap_or("?".into())
            ),
            Answer::WrongPassphrase => f.write_str("WrongPassphraseError"),
            Answer::Unreachable { error } => write!(f, "unreachable: {error}"),
            Answer::Other { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

pub fn classify(status: u16, body: &str) -> Answer {
    if body.contains("WrongPassphrase") {
        return Answer::WrongPassphrase;
    }
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            return Answer::Other {
                status,
                body: body.chars().take(200).collect(),
            }
        }
    };
    let n = |k: &str| v[k].as_u64();
    match v["status"].as_str() {
        Some("fresh") if n("gen").is_some() => Answer::Fresh {
            gen: n("gen").unwrap_or(0),
        },
        Some("stale") => Answer::Stale {
            local_gen: n("local_gen").unwrap_or(0),
            remote_gen: n("remote_gen").unwrap_or(0),
        },
        Some("unknown") => Answer::Unknown { gen: n("gen") },
        _ => Answer::Other {
            status,
            body: body.chars().take(200).collect(),
        },
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UrlResult {
    pub url: String,
    pub ok: bool,
    pub samples: u32,
    pub last: Answer,
}

/// Polls `url` until it answers fresh at `want_gen` `samples` times in a row (a
/// load balancer can hide one old instance behind several fresh ones), or the
/// deadline passes.
pub async fn wait_fresh(
    http: &Http,
    url: &str,
    want_gen: u64,
    samples: u32,
    interval: Duration,
    deadline: Instant,
) -> UrlResult {
    let mut streak = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match http
            .get(
                url,
                left.clamp(Duration::from_millis(200), Duration::from_secs(5)),
            )
            .await
        {
            Ok((status, body)) => classify(status, &body),
            Err(error) => Answer::Unreachable {
                error: error.to_string(),
            },
        };
        if last == (Answer::Fresh { gen: want_gen }) {
            streak += 1;
            if streak >= samples {
                return UrlResult {
                    url: url.to_owned(),
                    ok: true,
                    samples: streak,
                    last,
                };
            }
        } else {
            streak = 0;
        }
        if Instant::now() + interval >= deadline {
            return UrlResult {
                url: url.to_owned(),
                ok: false,
                samples: streak,
                last,
            };
        }
        tokio::time::sleep(if streak > 0 {
            Duration::from_millis(50)
        } else {
            interval
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, Response, When};

    /// An app whose generation the test moves on.
    async fn app() -> FakeHttp<u64> {
        FakeHttp::builder(0u64)
            .route("GET", "/healthz", |_, gen: &mut u64| {
                Response::json(200, &serde_json::json!({ "status": "fresh", "gen": *gen }))
            })
            .route("GET", "/broken", |_, _| {
                Response::text(500, "WrongPassphraseError: cannot open the vault")
            })
            .start()
            .await
    }

    #[tokio::test]
    async fn get_classifies_answers_and_failures() {
        let a = app().await;
        let http = Http::new();
        let url = format!("{}/healthz", a.url());
        let (status, body) = http.get(&url, Duration::from_secs(2)).await.unwrap();
        assert_eq!(classify(status, &body), Answer::Fresh { gen: 0 });
        let (status, body) = http
            .get(&format!("{}/broken", a.url()), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(classify(status, &body), Answer::WrongPassphrase);

        a.inject(When::any(), Fault::Delay(Duration::from_secs(3)));
        let e = http
            .get(&url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no answer within 200ms");
        assert_eq!(e.kind(), vsync_orchestrate_api::ErrorKind::Temporary);
        a.inject(When::any(), Fault::CutBefore);
        let e = http.get(&url, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e, HealthError::NoAnswer(_)), "{e:?}");
        assert!(
            !e.to_string().contains(&url),
            "the caller names the URL: {e}"
        );
    }

    #[tokio::test]
    async fn wait_fresh_needs_samples_in_a_row_at_the_wanted_generation() {
        let a = app().await;
        let http = Http::new();
        let url = format!("{}/healthz", a.url());
        *a.state() = 1;
        // One failing answer in the middle restarts the streak.
        a.inject(When::any(), Fault::Status(503));
        let r = wait_fresh(
            &http,
            &url,
            1,
            3,
            Duration::from_millis(20),
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        assert!(r.ok && r.samples == 3, "{r:?}");
        assert_eq!(r.last, Answer::Fresh { gen: 1 });
        assert!(a.requests().len() >= 4);

        // Still on the old generation at the deadline: not ok, the last answer kept.
        let r = wait_fresh(
            &http,
            &url,
            2,
            1,
            Duration::from_millis(50),
            Instant::now() + Duration::from_millis(400),
        )
        .await;
        assert!(!r.ok, "{r:?}");
        assert_eq!(r.last, Answer::Fresh { gen: 1 });
    }
}
