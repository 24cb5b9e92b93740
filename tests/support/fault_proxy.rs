//! An HTTP fault-injection proxy in front of a real service (moto): forwards every
//! request unchanged except those matching a rule, which get the rule's status.
//! Each connection carries one request (`Connection: close` is forced), so every
//! request is inspected.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    /// Substring of the request target (path and query).
    pub path_contains: String,
    pub status: u16,
    /// How many matching requests to fail; `usize::MAX` for all.
    pub times: usize,
}

pub struct FaultProxy {
    pub endpoint: String,
    pub hits: Arc<Mutex<usize>>,
}

pub async fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
    start_with_delay(upstream, rules, std::time::Duration::ZERO).await
}

/// Like `start`, and every forwarded request waits `delay` first: a network
/// round trip, for benchmarks on loopback.
pub async fn start_with_delay(
    upstream: &str,
    rules: Vec<Rule>,
    delay: std::time::Duration,
) -> FaultProxy {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let rules = Arc::new(Mutex::new(rules));
    let hits = Arc::new(Mutex::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (rules, upstream, hits) = (rules.clone(), upstream.clone(), h.clone());
            tokio::spawn(async move {
                let _ = handle(client, &upstream, rules, hits, delay).await;
            });
        }
    });
    FaultProxy { endpoint, hits }
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: Arc<Mutex<Vec<Rule>>>,
    hits: Arc<Mutex<usize>>,
    delay: std::time::Duration,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let matched = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.method == method && target.contains(&r.path_contains) && r.times > 0)
            .map(|r| {
                r.times = r.times.saturating_sub(1);
                r.status
            })
    };
    if let Some(status) = matched {
        *hits.lock().unwrap() += 1;
        let body = format!("<Error><Code>Injected{status}</Code><Message>fault injected by the test proxy</Message></Error>");
        let resp = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        client.shutdown().await?;
        // Drain what the client still sends so it reads our answer, not a reset.
        let mut sink = [0u8; 8192];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        return Ok(());
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    let rewritten: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let rewritten = rewritten.trim_end_matches("\r\n").to_owned() + "\r\nConnection: close\r\n\r\n";
    server.write_all(rewritten.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
