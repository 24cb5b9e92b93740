//! The demo app: boots exactly like an app using the vsync runtime libraries
//! (`VSYNC_CONFIG[_FILE]`, `VSYNC_PASSPHRASE[_FILE]`), opens the vault once, dies
//! with the upstream error class when it cannot, and serves the documented
//! `/healthz` bodies.

use crate::vault::{bootstrap, Content, Vault, VaultErrorKind};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Runs until killed. Returns the process exit code on boot failure.
pub async fn run(port: u16) -> u8 {
    let env = |k: &str| std::env::var(k).ok();
    let boot = match bootstrap::bootstrap(&env) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {}", e.kind, e.detail);
            return 1;
        }
    };
    for w in &boot.warnings {
        eprintln!("warning: {w}");
    }
    let vault = match bootstrap::vault_for(&boot.config).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: {}", e.kind, e.detail);
            return 1;
        }
    };
    let opened = match vault.open(&boot.passphrase).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {}", e.kind, e.detail);
            return if e.kind == VaultErrorKind::WrongPassphrase {
                3
            } else {
                1
            };
        }
    };
    drop(boot);
    let keys: Vec<String> = match &opened.content {
        Content::Json { kv, .. } => kv.keys().cloned().collect(),
        Content::Zip(_) => vec![],
    };
    let local_gen = opened.gen;
    eprintln!(
        "demo app: opened {} at stamp {} gen {local_gen}; serving 127.0.0.1:{port}",
        vault.describe(),
        opened.stamp
    );
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            return 1;
        }
    };
    let vault = Arc::new(vault);
    let keys = Arc::new(keys);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let (vault, keys) = (vault.clone(), keys.clone());
        tokio::spawn(async move {
            // Read the whole request head, however many segments it arrives in.
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" => (200, healthz(&vault, local_gen).await),
                "/" => (
                    200,
                    serde_json::json!({ "app": "vsync-demo", "gen": local_gen, "keys": *keys })
                        .to_string(),
                ),
                _ => (404, "{\"error\":\"not found\"}".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// The documented pattern: stale when the remote generation moved past ours,
/// unknown (not "restart me") when the remote check fails.
async fn healthz(vault: &Vault, local_gen: u64) -> String {
    match vault.status().await {
        Ok(Some(st)) if st.gen > local_gen => {
            serde_json::json!({ "status": "stale", "local_gen": local_gen, "remote_gen": st.gen })
                .to_string()
        }
        Ok(Some(_)) => serde_json::json!({ "status": "fresh", "gen": local_gen }).to_string(),
        _ => serde_json::json!({ "status": "unknown", "gen": local_gen }).to_string(),
    }
}
