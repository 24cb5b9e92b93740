//! The client: one connection pool, a timeout per attempt and an optional
//! deadline per request, errors with kinds and without bodies.

use crate::status::{prefixed, status_error};
use crate::BearerToken;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Error, Result};
use zeroize::Zeroizing;

/// Header names that carry a request id on common platforms, checked in order.
pub const DEFAULT_REQUEST_ID_HEADERS: &[&str] = &[
    "x-request-id",
    "x-amzn-requestid",
    "x-vercel-id",
    "fly-request-id",
    "x-correlation-id",
];

/// How much of a response body is read unless a request says otherwise.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// Builds a [`Client`].
#[derive(Debug)]
pub struct Builder {
    attempt_timeout: Duration,
    connect_timeout: Duration,
    token: Option<Arc<BearerToken>>,
    user_agent: String,
    request_id_headers: Vec<String>,
    max_body: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            attempt_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token: None,
            user_agent: concat!("vsync-orchestrate/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_id_headers: DEFAULT_REQUEST_ID_HEADERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Builder {
    /// The longest one request may take, answer body included, unless the request
    /// sets its own (default 30 s).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// The longest opening a connection may take (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (marked sensitive,
    /// so no layer logs it). The caller says where the token comes from.
    pub fn bearer(mut self, token: BearerToken) -> Self {
        self.token = Some(Arc::new(token));
        self
    }

    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The headers a platform puts its request id in, checked in order; the first
    /// present is named in error messages, for the platform's support.
    pub fn request_id_headers(mut self, names: &[&str]) -> Self {
        self.request_id_headers = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        self
    }

    /// Bytes of a response body read at most (default 4 MiB); see [`Request::max_body`].
    pub fn max_body(mut self, n: usize) -> Self {
        self.max_body = n;
        self
    }

    pub fn build(self) -> Result<Client> {
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config())
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            // Redirects are answers, not something to follow: a health URL that
            // redirects is misconfigured, and a token must not travel elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::failed("cannot set up the HTTP client").with_source(e))?;
        Ok(Client {
            inner,
            token: self.token,
            attempt_timeout: self.attempt_timeout,
            request_id_headers: self.request_id_headers.into(),
            max_body: self.max_body,
        })
    }
}

/// The system's CA certificates, loaded once. Where there are none, https fails
/// with a clear certificate error instead of the whole tool refusing to start.
fn roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

fn tls_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports the default protocol versions")
    .with_root_certificates(roots().clone())
    .with_no_client_auth()
}

/// An HTTP(S) client. Cheap to clone: clones share the connection pool, so a
/// connection opened in preflight is the one a later step reuses.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    token: Option<Arc<BearerToken>>,
    attempt_timeout: Duration,
    request_id_headers: Arc<[String]>,
    max_body: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bearer", &self.token.as_ref().map(|_| "<redacted>"))
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn get(&self, url: &str) -> Request<'_> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Request<'_> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: &str) -> Request<'_> {
        self.request(Method::PUT, url)
    }

    pub fn patch(&self, url: &str) -> Request<'_> {
        self.request(Method::PATCH, url)
    }

    pub fn delete(&self, url: &str) -> Request<'_> {
        self.request(Method::DELETE, url)
    }

    pub fn request(&self, method: Method, url: &str) -> Request<'_> {
        let parsed =
            Url::parse(url).map_err(|e| Error::invalid_config(format!("not a usable URL: {e}")));
        let what = match &parsed {
            Ok(u) => format!("{method} {}", describe_url(u)),
            Err(_) => format!("{method} {}", redact_url(url)),
        };
        Request {
            client: self,
            method,
            url: parsed,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            deadline: None,
            what,
            auth: true,
            max_body: self.max_body,
            invalid: None,
        }
    }
}

/// A URL for messages: scheme, host, port and path, never the query or user info
/// (either may hold a token).
fn describe_url(u: &Url) -> String {
    let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(u.path());
    s
}

fn redact_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_owned()
}

/// One request being built.
#[must_use = "a request does nothing until it is sent"]
pub struct Request<'c> {
    client: &'c Client,
    method: Method,
    url: Result<Url>,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    what: String,
    auth: bool,
    max_body: usize,
    invalid: Option<Error>,
}

impl Request<'_> {
    /// What this request is for, in a few words (`reading env var VSYNC_KEY`): the
    /// start of every error message. By default `METHOD scheme://host/path`; empty
    /// means no prefix at all (the caller adds its own context).
    pub fn what(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    /// This attempt's timeout, answer body included (instead of the client's).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The request gets at most until `deadline` (with its timeout, whichever is
    /// first); one sent after it fails at once, as temporary.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The deadline set by [`Request::deadline`], if any.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => {
                self.invalid
                    .get_or_insert_with(|| Error::invalid_config(format!("invalid header {name}")));
            }
        }
        self
    }

    /// Appends `key=value` pairs to the query, percent-encoded.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        if let Ok(u) = &mut self.url {
            u.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// A JSON body (`content-type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(b) => {
                self.body = Some(b);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => {
                self.invalid = Some(Error::failed(format!(
                    "cannot encode the request body ({:?} error)",
                    e.classify()
                )));
            }
        }
        self
    }

    pub fn body(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.body = Some(bytes);
        self = self.header("content-type", content_type);
        self
    }

    /// Leaves the client's bearer token off this request (a health URL, a
    /// pre-signed link).
    pub fn without_auth(mut self) -> Self {
        self.auth = false;
        self
    }

    /// Bytes of the answer read at most; the rest is dropped and
    /// [`Response::truncated`] says so ([`Response::json`] then refuses).
    pub fn max_body(mut self, n: usize) -> Self {
        self.max_body = n;
        self
    }

    /// Sends the request; any status is an `Ok` answer. Transport failures (no
    /// connection, a cut, no answer in time) are temporary errors: the request may
    /// or may not have taken effect, which only the caller can find out.
    pub async fn send(self) -> Result<Response> {
        let what = self.what;
        let in_context = |e: Error| {
            if what.is_empty() {
                e
            } else {
                e.context(&what)
            }
        };
        if let Some(e) = self.invalid {
            return Err(in_context(e));
        }
        let url = self.url.map_err(in_context)?;
        let mut limit = self.timeout.unwrap_or(self.client.attempt_timeout);
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::temporary(prefixed(
                    &what,
                    "the deadline passed before the request was sent",
                )));
            }
            limit = limit.min(left);
        }
        let mut req = self
            .client
            .inner
            .request(self.method, url)
            .headers(self.headers);
        if self.auth {
            if let Some(t) = &self.client.token {
                req = req.header(AUTHORIZATION, t.header_value());
            }
        }
        if let Some(b) = self.body {
            req = req.body(b);
        }
        let max_body = self.max_body;
        let ids = self.client.request_id_headers.clone();
        let exchange = async {
            let mut resp = req.send().await.map_err(|e| transport_error(&what, e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut body = Zeroizing::new(Vec::new());
            let mut truncated = false;
            while let Some(chunk) = resp.chunk().await.map_err(|e| {
                Error::temporary(prefixed(
                    &what,
                    &format!("HTTP {status}, then the connection broke while reading the answer"),
                ))
                .with_source(e.without_url())
            })? {
                let room = max_body.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                request_id: request_id(&headers, &ids),
                status,
                headers,
                body,
                truncated,
                what: what.clone(),
            })
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::temporary(prefixed(
                &what,
                &format!("no answer within {}", format_duration(limit)),
            ))),
        }
    }

    /// [`Request::send`], then a non-2xx status is an error of its kind (see
    /// [`crate::kind_for_status`]), with `Retry-After` as the error's wait.
    pub async fn send_ok(self) -> Result<Response> {
        self.send().await?.error_for_status()
    }

    /// [`Request::send_ok`], then the body as JSON.
    pub async fn send_json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        self.send_ok().await?.json()
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn request_id(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        let v = headers.get(n.as_str())?.to_str().ok()?.trim();
        // Only something that looks like an id: short, one printable token.
        (!v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
            .then(|| v.to_owned())
    })
}

/// A failure before an answer arrived. The reqwest error's URL is dropped (its
/// query may hold a token); what remains is the transport's own description.
fn transport_error(what: &str, e: reqwest::Error) -> Error {
    let detail = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "no answer in time"
    } else if e.is_builder() {
        return Error::invalid_config(prefixed(what, "cannot build the request"))
            .with_source(e.without_url());
    } else {
        "the connection broke before an answer"
    };
    Error::temporary(prefixed(what, detail)).with_source(e.without_url())
}

/// An answer: status, headers and (up to the limit) the body, which is zeroized on
/// drop because it may carry a secret value.
pub struct Response {
    status: u16,
    headers: HeaderMap,
    body: Zeroizing<Vec<u8>>,
    truncated: bool,
    request_id: Option<String>,
    what: String,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish_non_exhaustive()
    }
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value, where it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The platform's request id, from the first of the client's request-id headers
    /// that is present.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced). For bodies that are not secret.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the body was longer than the limit and was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The body as JSON. A parse failure names the line and column only: serde's
    /// own message quotes the offending value, which may be the secret.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if self.truncated {
            return Err(Error::failed(prefixed(
                &self.what,
                &format!("HTTP {}: the answer is larger than expected", self.status),
            )));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::failed(prefixed(
                &self.what,
                &format!(
                    "HTTP {}: the answer is not the expected JSON ({} error at line {} column {})",
                    self.status,
                    match e.classify() {
                        serde_json::error::Category::Io => "read",
                        serde_json::error::Category::Syntax => "syntax",
                        serde_json::error::Category::Data => "data",
                        serde_json::error::Category::Eof => "end of input",
                    },
                    e.line(),
                    e.column()
                ),
            ))
        })
    }

    /// This answer as an error of its status's kind, whatever the status.
    pub fn to_error(&self) -> Error {
        status_error(
            &self.what,
            self.status,
            self.request_id(),
            self.header("retry-after"),
        )
    }

    /// `Ok` for a 2xx answer, else [`Response::to_error`].
    pub fn error_for_status(self) -> Result<Response> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.to_error())
        }
    }
}
