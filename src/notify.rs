//! Notifications for unattended runs: a Slack incoming webhook, a generic JSON
//! webhook and the `[notify] command`, sent on start, success, failure and "window
//! still open".
//!
//! A notification is about a rotation, never part of it: a webhook that fails or
//! hangs is reported on stderr and costs the run at most `[notify] timeout`, and the
//! exit code is the rotation's. Payloads are built from the summary and the audit
//! row, which never hold a passphrase; the URLs themselves are credentials, read
//! from the environment or a file and never printed.

use crate::engine::events::{Event, Step, Subscriber};
use crate::engine::summary::Summary;
use crate::plan::{LoadedPlan, NotifyOn, NotifySection, SecretRef, WebhookSection};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long one delivery may take unless the plan says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Slack,
    Webhook,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Webhook => "webhook",
        }
    }
}

struct Sink {
    kind: Kind,
    /// Held only as long as the run; never printed.
    url: zeroize::Zeroizing<String>,
}

/// Facts gathered from the event stream for the start message.
#[derive(Default)]
struct Seen {
    started: bool,
    gen_before: Option<u64>,
    vault: String,
}

/// One plan's notifications for one run or resume.
pub struct Notifier {
    env: String,
    section: NotifySection,
    sinks: Vec<Sink>,
    timeout: Duration,
    client: vsync_orchestrate_http::Client,
    seen: Mutex<Seen>,
    pending: Mutex<Vec<JoinHandle<()>>>,
}

impl Notifier {
    /// The plan's notifier, or `None` without a `[notify]` table. A URL that
    /// cannot be read is a warning (on stderr) and that sink is left out: a
    /// rotation is never refused because its announcement cannot be sent.
    pub fn from_plan(loaded: &LoadedPlan) -> Option<Arc<Notifier>> {
        let section = loaded.plan.notify.clone()?;
        let mut sinks = Vec::new();
        for (kind, w) in [
            (Kind::Slack, &section.slack),
            (Kind::Webhook, &section.webhook),
        ] {
            let Some(w) = w else { continue };
            match read_url(w) {
                Ok(url) => sinks.push(Sink { kind, url }),
                Err(why) => eprintln!(
                    "warning: notify.{}: {why}; no {} notifications this run",
                    kind.as_str(),
                    kind.as_str()
                ),
            }
        }
        let timeout = section.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let client = vsync_orchestrate_http::Client::builder()
            .attempt_timeout(timeout)
            .connect_timeout(timeout)
            .max_body(16 * 1024)
            .build()
            .ok()?;
        Some(Arc::new(Notifier {
            env: loaded.plan.env.clone(),
            section,
            sinks,
            timeout,
            client,
            seen: Mutex::new(Seen::default()),
            pending: Mutex::new(Vec::new()),
        }))
    }

    /// The plan's notifier, set as the run's observer so it sees the start.
    pub fn attach(
        loaded: &LoadedPlan,
        opts: &mut crate::engine::RunOptions,
    ) -> Option<Arc<Notifier>> {
        let n = Notifier::from_plan(loaded)?;
        opts.observer = Some(crate::engine::Observers(n.clone()));
        Some(n)
    }

    fn wants(&self, on: NotifyOn) -> bool {
        self.section.on.contains(&on)
    }

    /// Sends `payload` to every webhook in the background; `finish` waits for them.
    fn send(&self, on: NotifyOn, payload: Value) {
        if !self.wants(on) || self.sinks.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut pending = self.pending.lock().expect("notify tasks");
        for sink in &self.sinks {
            let body = match sink.kind {
                Kind::Slack => json!({ "text": slack_text(&payload) }),
                Kind::Webhook => payload.clone(),
            };
            let (client, url, timeout) = (self.client.clone(), sink.url.clone(), self.timeout);
            let kind = sink.kind;
            pending.push(rt.spawn(async move {
                let request = client
                    .post(&url)
                    .what(format!("notify.{}", kind.as_str()))
                    .timeout(timeout)
                    .json(&body);
                match request.send_ok().await {
                    Ok(_) => tracing::debug!(
                        sink = kind.as_str(),
                        event = on.as_str(),
                        "notification sent"
                    ),
                    Err(e) => eprintln!(
                        "warning: the {} notification ({}) was not delivered: {}",
                        on.as_str(),
                        kind.as_str(),
                        e.message()
                    ),
                }
            }));
        }
    }

    /// The end of a run or resume: its outcome to every sink and the summary to the
    /// command, then waits for every delivery (each bounded by the timeout).
    pub async fn finish(&self, s: &Summary) {
        let on = outcome(s);
        if let Some(on) = on {
            self.send(on, self.payload(on, s));
        }
        let command = async {
            if !self.section.command.is_empty() && on.is_some_and(|o| self.wants(o)) {
                run_command(&self.section.command, s, self.timeout).await;
            }
        };
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.pending.lock().expect("notify tasks"));
        let webhooks = async {
            for t in tasks {
                // Each request is bounded by the client's timeout; this bounds a
                // task that somehow is not.
                if tokio::time::timeout(self.timeout + Duration::from_secs(1), t)
                    .await
                    .is_err()
                {
                    eprintln!("warning: a notification did not finish within its timeout");
                }
            }
        };
        tokio::join!(command, webhooks);
    }

    /// What a webhook receives: the summary's facts, never a passphrase.
    fn payload(&self, on: NotifyOn, s: &Summary) -> Value {
        let failed = s.targets.iter().find(|t| !t.ok);
        let mut p = json!({
            "event": on.as_str(),
            "env": s.env,
            "run_id": s.run_id,
            "command": s.command,
            "vault": s.vault,
            "exit_code": s.exit_code,
            "outcome": s.outcome,
            "gen_before": s.gen_before,
            "gen_after": s.gen_after,
            "new_version": s.new_stamp,
            "window_ms": s.window_ms,
            "audit_row": s.audit_row,
            "next_steps": s.next_steps,
        });
        if let Some(t) = failed {
            p["phase"] = json!(t.phase);
            p["target"] = json!(t.label());
            p["detail"] = json!(t.detail);
        }
        if !s.warnings.is_empty() {
            p["warnings"] = json!(s.warnings);
        }
        p
    }
}

impl Subscriber for Notifier {
    fn event(&self, run: &str, e: &Event) {
        let mut seen = self.seen.lock().expect("notify state");
        match e {
            Event::Vault(v) => seen.vault = v.clone(),
            Event::Facts(f) if f.gen_before.is_some() => seen.gen_before = f.gen_before,
            Event::Phase {
                step: Step::Stage, ..
            } if !seen.started => {
                seen.started = true;
                let start = json!({
                    "event": NotifyOn::Start.as_str(),
                    "env": self.env,
                    "run_id": run,
                    "vault": seen.vault,
                    "gen_before": seen.gen_before,
                    "gen_after": seen.gen_before.map(|g| g + 1),
                });
                drop(seen);
                self.send(NotifyOn::Start, start);
            }
            _ => {}
        }
    }
}

/// Which moment a finished run is: `None` for a run that had nothing to do.
fn outcome(s: &Summary) -> Option<NotifyOn> {
    match s.exit_code {
        0 if s.gen_after.is_some() && s.gen_after != s.gen_before => Some(NotifyOn::Success),
        0 => None,
        14 => Some(NotifyOn::WindowOpen),
        _ => Some(NotifyOn::Failure),
    }
}

/// Why a webhook URL could not be had. The URL is a credential (whoever holds it
/// can post): no variant quotes it or any part of it.
#[derive(Debug, thiserror::Error)]
enum UrlError {
    #[error("the environment variable {var} (the URL) is not set")]
    EnvUnset { var: String },
    #[error("the environment variable {var} (the URL) is not UTF-8")]
    EnvNotUtf8 { var: String },
    #[error("reading the URL from {}: {source}", .path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the URL does not start with https:// or http://")]
    NotHttp,
}

fn read_url(w: &WebhookSection) -> Result<zeroize::Zeroizing<String>, UrlError> {
    let raw = zeroize::Zeroizing::new(match &w.url {
        SecretRef::Env { env } => std::env::var(env).map_err(|e| match e {
            std::env::VarError::NotPresent => UrlError::EnvUnset { var: env.clone() },
            std::env::VarError::NotUnicode(_) => UrlError::EnvNotUtf8 { var: env.clone() },
        })?,
        SecretRef::File { file } => {
            std::fs::read_to_string(file).map_err(|source| UrlError::File {
                path: file.clone(),
                source,
            })?
        }
    });
    let url = raw.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(UrlError::NotHttp);
    }
    Ok(zeroize::Zeroizing::new(url.to_owned()))
}

/// Slack's `text`: the lines an on-call engineer needs first.
fn slack_text(p: &Value) -> String {
    let env = p["env"].as_str().unwrap_or("?");
    let gens = match (p["gen_before"].as_u64(), p["gen_after"].as_u64()) {
        (Some(a), Some(b)) => format!("gen {a} → {b}"),
        (Some(a), None) => format!("gen {a}"),
        _ => String::new(),
    };
    let run = p["run_id"].as_str().unwrap_or("");
    let mut lines = vec![match p["event"].as_str().unwrap_or("") {
        "start" => format!(":arrows_counterclockwise: vsync {env}: rotation starting ({gens}), run {run}"),
        "success" => format!(
            ":white_check_mark: vsync {env}: rotated, {gens}, window {} ms, run {run}",
            p["window_ms"].as_f64().map(|w| format!("{w:.0}")).unwrap_or_else(|| "?".into())
        ),
        "window_open" => format!(
            ":rotating_light: vsync {env}: URGENT, the window is still open or the outcome is unknown (exit 14), run {run}"
        ),
        _ => format!(
            ":x: vsync {env}: rotation failed (exit {}), run {run}: {}",
            p["exit_code"],
            p["outcome"].as_str().unwrap_or("")
        ),
    }];
    if let (Some(phase), Some(target)) = (p["phase"].as_str(), p["target"].as_str()) {
        lines.push(format!(
            "{phase} · {target}: {}",
            p["detail"].as_str().unwrap_or("")
        ));
    }
    if let Some(row) = p["audit_row"].as_str() {
        lines.push(format!("audit: `{row}`"));
    }
    if let Some(steps) = p["next_steps"].as_array() {
        for s in steps.iter().filter_map(Value::as_str) {
            lines.push(format!("• {s}"));
        }
    }
    lines.join("\n")
}

/// `[notify] command`: the JSON summary on stdin, killed at the timeout.
async fn run_command(argv: &[String], s: &Summary, timeout: Duration) {
    let body = serde_json::to_vec(s).expect("the summary serialises");
    let mut cmd = tokio::process::Command::new(&argv[0]);
    crate::api::child_env::scrub_tokio(&mut cmd);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: notify: cannot run {:?}: {e}", argv[0]);
            return;
        }
    };
    let talk = async {
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(timeout, talk).await {
        Ok(Ok(st)) if st.success() => {}
        Ok(Ok(st)) => eprintln!("warning: notify: {:?} exited with {st}", argv[0]),
        Ok(Err(e)) => eprintln!("warning: notify: {:?}: {e}", argv[0]),
        Err(_) => eprintln!(
            "warning: notify: {:?} did not finish within {}; stopped",
            argv[0],
            humantime::format_duration(timeout)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, UrlError> {
        read_url(&WebhookSection {
            url: SecretRef::File {
                file: path.to_owned(),
            },
        })
    }

    #[test]
    fn a_url_that_cannot_be_had_says_why_without_quoting_it() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing");
        match from_file(&missing) {
            Err(UrlError::File { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let ftp = d.path().join("ftp");
        std::fs::write(&ftp, "ftp://hooks.example/T0/secret-token\n").unwrap();
        let e = from_file(&ftp).unwrap_err();
        assert!(matches!(e, UrlError::NotHttp), "{e:?}");
        assert!(!e.to_string().contains("secret-token"), "{e}");
        let ok = d.path().join("ok");
        std::fs::write(&ok, "  https://hooks.example/T0/x\n").unwrap();
        assert_eq!(
            from_file(&ok).unwrap().as_str(),
            "https://hooks.example/T0/x"
        );

        let var = "VSYNC_ORCHESTRATE_TEST_NOTIFY_URL_NEVER_SET";
        let e = read_url(&WebhookSection {
            url: SecretRef::Env { env: var.into() },
        })
        .unwrap_err();
        assert!(
            matches!(&e, UrlError::EnvUnset { var: v } if v == var),
            "{e:?}"
        );
    }
}
