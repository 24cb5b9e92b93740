//! Health checks: the documented `/healthz` bodies of vsync apps
//! (`{"status":"fresh","gen":N}`, `stale`, `unknown`), polled over HTTP(S).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Http {
    pub fn new() -> Http {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .unwrap_or_else(|_| {
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots())
            })
            .https_or_http()
            .enable_http1()
            .build();
        Http {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// GET with a timeout; the body is capped at 64 KiB.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let fut = async {
            let resp = self.client.get(uri).await.map_err(|e| format!("{e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let body = String::from_utf8_lossy(&body[..body.len().min(65536)]).into_owned();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the system has no CA bundle, https health URLs fail with a clear error
/// instead of the whole tool refusing to start.
fn no_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default protocol versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth()
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
            Err(error) => Answer::Unreachable { error },
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
