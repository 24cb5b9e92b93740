//! A fake HTTP server for platform fakes: routes over a scriptable state, a log of
//! every request, and fault injection (status codes, `Retry-After`, delays, and
//! connections cut before or after the request took effect).
//!
//! The Kubernetes, GCP, Vercel and Fly fakes are meant to be built on it, as the ECS
//! fake is; it replaces the hand-written HTTP parsers the first tests had.
//!
//! A handler answers at once, holding the state's lock, so it cannot wait for the
//! state to change. Long-lived answers (a Kubernetes watch) use
//! [`Response::streaming`] instead: the handler keeps the [`StreamSender`] in the
//! state, and whatever later changes the state writes to it.
//!
//! ```no_run
//! # use vsync_orchestrate_testkit::fake_http::{FakeHttp, Response, Fault, When};
//! # async fn demo() {
//! let fake = FakeHttp::builder(0u32)
//!     .route("POST", "/v1/things/{id}", |req, n: &mut u32| {
//!         *n += 1;
//!         Response::json(200, &serde_json::json!({ "id": req.param("id") }))
//!     })
//!     .start()
//!     .await;
//! fake.inject(When::path("/v1/things/a").times(1), Fault::RetryAfter { status: 429, seconds: 1 });
//! # }
//! ```

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// A request as the handler and the log see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// `{name}` segments of the matched route.
    pub params: BTreeMap<String, String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A query parameter's value.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_owned())
        })
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Set by [`Response::streaming`]: the rest of the body comes from its sender.
    stream: Option<Streamed>,
}

/// The receiving half of a streamed body, taken once when the answer is sent.
#[derive(Debug, Clone)]
struct Streamed(Arc<Mutex<Option<mpsc::UnboundedReceiver<Vec<u8>>>>>);

/// Writes the rest of a [`Response::streaming`] body, chunk by chunk, as the state
/// changes. Dropping every clone ends the response; a client that went away makes
/// [`StreamSender::send`] return false, so the state can forget it.
#[derive(Debug, Clone)]
pub struct StreamSender(mpsc::UnboundedSender<Vec<u8>>);

impl StreamSender {
    /// Queues `chunk` for the client; false once the client has gone.
    pub fn send(&self, chunk: impl Into<Vec<u8>>) -> bool {
        self.0.send(chunk.into()).is_ok()
    }

    /// Whether the client has gone (the connection closed).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl Response {
    /// A response sent without a length: `body` (often empty) first, then every
    /// chunk given to the returned sender until it is dropped.
    pub fn streaming(status: u16, content_type: &str) -> (Response, StreamSender) {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = Response {
            status,
            headers: vec![("content-type".into(), content_type.to_owned())],
            body: Vec::new(),
            stream: Some(Streamed(Arc::new(Mutex::new(Some(rx))))),
        };
        (r, StreamSender(tx))
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            stream: None,
        }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            stream: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A failure to inject instead of (or around) the normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with a small JSON error body; the handler does not run.
    Status(u16),
    /// Answer `status` with `Retry-After: seconds`; the handler does not run.
    RetryAfter { status: u16, seconds: u64 },
    /// Wait, then answer normally (an attempt timeout in the client fires first).
    Delay(Duration),
    /// Close the connection without an answer; the handler does not run.
    CutBefore,
    /// Run the handler (the state changes), then close without an answer: the
    /// client cannot know its request took effect.
    CutAfter,
}

type Matcher = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Which requests a fault applies to, and how many times.
#[derive(Clone)]
pub struct When {
    method: Option<String>,
    path: Option<String>,
    matches: Option<Matcher>,
    times: usize,
}

impl When {
    /// Every request (once, unless [`When::times`] says otherwise).
    pub fn any() -> When {
        When {
            method: None,
            path: None,
            matches: None,
            times: 1,
        }
    }

    pub fn path(path: &str) -> When {
        When {
            path: Some(path.to_owned()),
            ..When::any()
        }
    }

    pub fn method(mut self, method: &str) -> When {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Requests for which `f` is true (e.g. an AWS JSON `X-Amz-Target`).
    pub fn matching(mut self, f: impl Fn(&Request) -> bool + Send + Sync + 'static) -> When {
        self.matches = Some(Arc::new(f));
        self
    }

    pub fn times(mut self, n: usize) -> When {
        self.times = n;
        self
    }

    fn applies(&self, r: &Request) -> bool {
        self.method.as_ref().is_none_or(|m| *m == r.method)
            && self.path.as_ref().is_none_or(|p| *p == r.path)
            && self.matches.as_ref().is_none_or(|f| f(r))
    }
}

type Handler<S> = Arc<dyn Fn(&Request, &mut S) -> Response + Send + Sync>;

struct Route<S> {
    method: String,
    segments: Vec<String>,
    handler: Handler<S>,
}

impl<S> Route<S> {
    fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "*" && self.method != method {
            return None;
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut params = BTreeMap::new();
        let mut i = 0;
        for seg in &self.segments {
            if seg == "**" {
                params.insert("rest".to_owned(), parts[i.min(parts.len())..].join("/"));
                return Some(params);
            }
            let part = parts.get(i)?;
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.insert(name.to_owned(), (*part).to_owned());
            } else if seg != part {
                return None;
            }
            i += 1;
        }
        (i == parts.len()).then_some(params)
    }
}

struct Shared<S> {
    state: Mutex<S>,
    routes: Vec<Route<S>>,
    faults: Mutex<Vec<(When, Fault)>>,
    log: Mutex<Vec<Request>>,
}

/// Collects routes before the server starts.
pub struct Builder<S> {
    state: S,
    routes: Vec<Route<S>>,
}

impl<S: Send + 'static> Builder<S> {
    /// `method` is `GET`, `POST`, … or `*`; `path` segments may be `{name}`
    /// (one segment, in [`Request::params`]) or a final `**` (the rest, as `rest`).
    pub fn route(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&Request, &mut S) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            segments: path
                .trim_start_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect(),
            handler: Arc::new(handler),
        });
        self
    }

    /// Listens on a free loopback port until the [`FakeHttp`] is dropped.
    pub async fn start(self) -> FakeHttp<S> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(self.state),
            routes: self.routes,
            faults: Mutex::default(),
            log: Mutex::default(),
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let sh = sh.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(sh.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        FakeHttp { addr, shared, task }
    }
}

/// A running fake; stops when dropped.
pub struct FakeHttp<S> {
    addr: SocketAddr,
    shared: Arc<Shared<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for FakeHttp<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> FakeHttp<S> {
    pub fn builder(state: S) -> Builder<S> {
        Builder {
            state,
            routes: Vec::new(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The scripted state, to seed or inspect.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `fault` to the next `when.times` matching requests.
    pub fn inject(&self, when: When, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((when, fault));
    }

    /// Every request seen so far, in order (faulted ones included).
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests matched `when` (its `times` is ignored).
    pub fn count(&self, when: &When) -> usize {
        self.requests().iter().filter(|r| when.applies(r)).count()
    }
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by fault injection")
    }
}

impl std::error::Error for Cut {}

/// An answer's body: all of it at once (with a length), or a first part followed by
/// the chunks of a [`StreamSender`] (chunked).
struct Body {
    first: Option<Bytes>,
    rest: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match self.rest.as_mut() {
            None => Poll::Ready(None),
            Some(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(Bytes::from(c))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.first.as_ref().is_none_or(|b| b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.rest, &self.first) {
            (None, Some(b)) => SizeHint::with_exact(b.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (Some(_), _) => SizeHint::default(),
        }
    }
}

fn take_fault<S>(shared: &Shared<S>, req: &Request) -> Option<Fault> {
    let mut faults = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
    let i = faults
        .iter()
        .position(|(w, _)| w.times > 0 && w.applies(req))?;
    faults[i].0.times -= 1;
    let fault = faults[i].1.clone();
    if faults[i].0.times == 0 {
        faults.remove(i);
    }
    Some(fault)
}

async fn serve<S>(
    shared: Arc<Shared<S>>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Cut> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Cut)?.to_bytes().to_vec();
    let mut request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
        params: BTreeMap::new(),
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request.clone());
    let fault = take_fault(&shared, &request);
    let error = |status: u16| {
        Response::json(
            status,
            &serde_json::json!({ "error": { "code": status, "message": "injected fault" } }),
        )
    };
    let mut cut_after = false;
    let answer = match fault {
        Some(Fault::Status(s)) => error(s),
        Some(Fault::RetryAfter { status, seconds }) => {
            error(status).header("retry-after", &seconds.to_string())
        }
        Some(Fault::CutBefore) => return Err(Cut),
        other => {
            if let Some(Fault::Delay(d)) = other {
                tokio::time::sleep(d).await;
            }
            cut_after = matches!(other, Some(Fault::CutAfter));
            let found = shared.routes.iter().find_map(|r| {
                r.matches(&request.method, &request.path)
                    .map(|p| (r.handler.clone(), p))
            });
            match found {
                Some((handler, params)) => {
                    request.params = params;
                    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    handler(&request, &mut state)
                }
                None => Response::json(
                    404,
                    &serde_json::json!({ "error": { "code": 404, "message": format!("no fake route for {} {}", request.method, request.path) } }),
                ),
            }
        }
    };
    if cut_after {
        return Err(Cut);
    }
    let mut b = hyper::Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        b = b.header(k, v);
    }
    let rest = answer
        .stream
        .and_then(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    Ok(b.body(Body {
        first: Some(Bytes::from(answer.body)),
        rest,
    })
    .expect("a valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn raw(url: &str, req: &str) -> String {
        let addr = url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    }

    async fn counter() -> FakeHttp<u32> {
        FakeHttp::builder(0u32)
            .route("GET", "/items/{id}", |r, n: &mut u32| {
                *n += 1;
                Response::json(200, &serde_json::json!({ "id": r.param("id"), "n": *n }))
            })
            .start()
            .await
    }

    #[tokio::test]
    async fn routes_state_and_log() {
        let f = counter().await;
        let a = raw(&f.url(), &get("/items/a")).await;
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert!(a.contains(r#""id":"a""#) && a.contains(r#""n":1"#), "{a}");
        let missing = raw(&f.url(), &get("/nope")).await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        assert_eq!(*f.state(), 1);
        assert_eq!(f.count(&When::path("/items/a")), 1);
        assert_eq!(f.requests().len(), 2);
    }

    #[tokio::test]
    async fn faults_apply_the_given_number_of_times() {
        let f = counter().await;
        f.inject(
            When::path("/items/a").times(2),
            Fault::RetryAfter {
                status: 429,
                seconds: 3,
            },
        );
        for _ in 0..2 {
            let r = raw(&f.url(), &get("/items/a")).await;
            assert!(r.starts_with("HTTP/1.1 429"), "{r}");
            assert!(r.to_ascii_lowercase().contains("retry-after: 3"), "{r}");
        }
        assert!(raw(&f.url(), &get("/items/a"))
            .await
            .starts_with("HTTP/1.1 200"));
        assert_eq!(*f.state(), 1, "faulted requests did not reach the handler");
    }

    #[tokio::test]
    async fn cut_after_changes_state_but_gives_no_answer() {
        let f = counter().await;
        f.inject(When::any(), Fault::CutAfter);
        assert_eq!(raw(&f.url(), &get("/items/a")).await, "");
        assert_eq!(*f.state(), 1);
        f.inject(When::any(), Fault::CutBefore);
        assert_eq!(raw(&f.url(), &get("/items/a")).await, "");
        assert_eq!(*f.state(), 1);
        f.inject(When::any(), Fault::Status(503));
        assert!(raw(&f.url(), &get("/items/a"))
            .await
            .starts_with("HTTP/1.1 503"));
    }

    #[tokio::test]
    async fn streamed_answers_follow_the_state() {
        let f = FakeHttp::builder(Vec::<StreamSender>::new())
            .route("GET", "/watch", |_, watchers: &mut Vec<StreamSender>| {
                let (r, tx) = Response::streaming(200, "application/json");
                tx.send("first\n");
                watchers.push(tx);
                r
            })
            .start()
            .await;
        let url = f.url();
        let reader = tokio::spawn(async move { raw(&url, &get("/watch")).await });
        while f.state().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(f.state()[0].send("second\n"));
        f.state().clear(); // the state forgets the watcher: the answer ends
        let text = reader.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"));
        assert!(text.contains("first") && text.contains("second"), "{text}");
    }

    #[tokio::test]
    async fn delays_hold_the_answer() {
        let f = counter().await;
        f.inject(When::any(), Fault::Delay(Duration::from_millis(300)));
        let t = std::time::Instant::now();
        assert!(raw(&f.url(), &get("/items/b"))
            .await
            .starts_with("HTTP/1.1 200"));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }
}
