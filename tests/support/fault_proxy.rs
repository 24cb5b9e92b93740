//! An HTTP fault-injection proxy in front of a real service (moto). Every request
//! is read whole, matched against the rules, and then forwarded unchanged or given
//! the rule's fault. Each connection carries one request (`Connection: close` is
//! forced), so every request is inspected; the `Host` header is kept, so SigV4
//! signatures still verify.
//!
//! The faults are the ways a network loses a request or its answer:
//! * `ErrorBefore(status)`: answered with an error, never forwarded (not applied);
//! * `ErrorAfter(status)`: forwarded (applied), the real answer replaced by an error;
//! * `CutBefore`: the connection closed without forwarding;
//! * `CutAfter`: forwarded (applied), then the connection closed without an answer;
//! * `Stall(d)`: forwarded (applied), the answer held for `d` and then dropped — a
//!   client whose attempt timeout is shorter gives up first.
//! * `Hold(d)`: the request held for `d`, then forwarded (applied) whether or not
//!   the client is still there, and the answer passed back if it is: a slow path,
//!   a queued retry, a load balancer that lets a request through after the client
//!   has gone. `FaultProxy::landed` waits until every held request was forwarded.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    ErrorBefore(u16),
    ErrorAfter(u16),
    CutBefore,
    CutAfter,
    Stall(Duration),
    Hold(Duration),
}

impl Fault {
    /// Whether the request reaches the service (the write may have happened).
    pub fn applies(self) -> bool {
        !matches!(self, Fault::ErrorBefore(_) | Fault::CutBefore)
    }
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    /// Substring of the request target (path and query).
    pub path_contains: String,
    /// Substrings the headers or body must all contain (an `X-Amz-Target`, a
    /// JSON field).
    pub text_contains: Vec<String>,
    /// Matching requests let through before the fault starts.
    pub skip: usize,
    /// How many matching requests get the fault; `usize::MAX` for all.
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    /// The first `times` matching requests are answered `status` without being
    /// forwarded.
    pub fn status(method: &'static str, path: &str, status: u16, times: usize) -> Rule {
        Rule {
            method,
            path_contains: path.into(),
            text_contains: vec![],
            skip: 0,
            times,
            fault: Fault::ErrorBefore(status),
        }
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    /// How many requests got a fault.
    pub hits: Arc<Mutex<usize>>,
    /// Every request seen: method, target, and the first line of a JSON target.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// Held requests not yet forwarded, and a signal each time one starts or lands.
    pub holding: Arc<(Mutex<usize>, tokio::sync::Notify)>,
}

impl FaultProxy {
    /// Waits until a request is being held (at most `limit`); whether one was.
    pub async fn holding_one(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.holding.1.notified();
            if *self.holding.0.lock().unwrap() > 0 {
                return true;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return *self.holding.0.lock().unwrap() > 0;
            }
        }
    }

    /// Waits until every held request has been forwarded to the service (at most
    /// `limit`); whether they all were.
    pub async fn landed(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.holding.1.notified();
            if *self.holding.0.lock().unwrap() == 0 {
                // A moment for the service to apply what it was just sent.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if *self.holding.0.lock().unwrap() == 0 {
                    return true;
                }
                continue;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return *self.holding.0.lock().unwrap() == 0;
            }
        }
    }
}

pub async fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
    start_with_delay(upstream, rules, Duration::ZERO).await
}

/// Like `start`, and every forwarded request waits `delay` first: a network
/// round trip, for benchmarks on loopback.
pub async fn start_with_delay(upstream: &str, rules: Vec<Rule>, delay: Duration) -> FaultProxy {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let rules = Arc::new(Mutex::new(
        rules.into_iter().map(|r| (r, 0usize)).collect::<Vec<_>>(),
    ));
    let hits = Arc::new(Mutex::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::new((Mutex::new(0usize), tokio::sync::Notify::new()));
    let (h, sn, ho) = (hits.clone(), seen.clone(), holding.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (rules, upstream, hits, seen, holding) = (
                rules.clone(),
                upstream.clone(),
                h.clone(),
                sn.clone(),
                ho.clone(),
            );
            tokio::spawn(async move {
                let _ = handle(client, &upstream, rules, hits, seen, delay, holding).await;
            });
        }
    });
    FaultProxy {
        endpoint,
        hits,
        seen,
        holding,
    }
}

/// Reads one HTTP/1.1 message head and body (Content-Length or chunked).
async fn read_message(s: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end..].to_vec();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let expects_continue = header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if expects_continue && body.len() < len {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        while body.len() < len {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(Some((head, body)))
}

fn error_response(status: u16) -> Vec<u8> {
    let body = format!(
        "<Error><Code>Injected{status}</Code><Message>fault injected by the test proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: Arc<Mutex<Vec<(Rule, usize)>>>,
    hits: Arc<Mutex<usize>>,
    seen: Arc<Mutex<Vec<String>>>,
    delay: Duration,
    holding: Arc<(Mutex<usize>, tokio::sync::Notify)>,
) -> std::io::Result<()> {
    let Some((head, body)) = read_message(&mut client).await? else {
        return Ok(());
    };
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (
        first.next().unwrap_or("").to_owned(),
        first.next().unwrap_or("").to_owned(),
    );
    let text = format!("{head}{}", String::from_utf8_lossy(&body));
    let amz_target = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-amz-target:")
                .then(|| l[13..].trim().to_owned())
        })
        .unwrap_or_default();
    seen.lock()
        .unwrap()
        .push(format!("{method} {target} {amz_target}"));
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|(r, _)| {
                r.method == method
                    && target.contains(&r.path_contains)
                    && r.text_contains.iter().all(|t| text.contains(t.as_str()))
            })
            .and_then(|(r, n)| {
                *n += 1;
                (*n > r.skip && *n - r.skip <= r.times).then_some(r.fault)
            })
    };
    if fault.is_some() {
        *hits.lock().unwrap() += 1;
    }
    match fault {
        Some(Fault::ErrorBefore(status)) => {
            client.write_all(&error_response(status)).await?;
            return client.shutdown().await;
        }
        Some(Fault::CutBefore) => return Ok(()),
        _ => {}
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(Fault::Hold(d)) = fault {
        *holding.0.lock().unwrap() += 1;
        holding.1.notify_waiters();
        tokio::time::sleep(d).await;
        let forwarded = forward(&head, &body, upstream).await;
        *holding.0.lock().unwrap() -= 1;
        holding.1.notify_waiters();
        // The client has usually given up by now; if not, it gets the real answer.
        let response = forwarded?;
        let _ = client.write_all(&response).await;
        return client.shutdown().await;
    }
    let response = forward(&head, &body, upstream).await?;
    match fault {
        Some(Fault::ErrorAfter(status)) => client.write_all(&error_response(status)).await?,
        Some(Fault::CutAfter) => return Ok(()),
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            return Ok(());
        }
        _ => client.write_all(&response).await?,
    }
    client.shutdown().await
}

/// Sends one request to the service and returns its whole answer.
async fn forward(head: &str, body: &[u8], upstream: &str) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).await?;
    let rewritten: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:") && !l.starts_with("expect:")
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    server
        .write_all(format!("{rewritten}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    server.write_all(body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    Ok(response)
}
