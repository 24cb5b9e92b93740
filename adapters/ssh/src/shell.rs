//! Running fixed commands on a host: over SSH (one multiplexed master per host) or
//! on this machine. Secrets only ever travel on stdin.
//!
//! A master dies with the tool: it is started with a short `ControlPersist` (the
//! `idle_timeout`, 10 s by default) and, for as long as the tool holds the
//! connection, kept busy by one idle channel (see [`Conn`]). When the process ends,
//! however it ends (SIGKILL included), the kernel closes its end of that channel, the
//! master ends the remote session, finds itself idle and exits `idle_timeout` later.

use crate::config::{HostKeyPolicy, HostSpec, SshOptions, Transport};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use vsync_orchestrate_api::{Error, ErrorKind, Result};
use zeroize::Zeroizing;

/// What a command left behind. `stdout` may hold a secret: it is zeroized on drop and
/// must never be put into a message.
pub(crate) struct Output {
    pub code: Option<i32>,
    pub stdout: Zeroizing<Vec<u8>>,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stderr, trimmed and shortened for an error message.
    pub fn stderr_line(&self) -> String {
        let s = self.stderr.trim();
        let s: String = s.chars().take(600).collect();
        if s.is_empty() {
            format!(
                "exit status {}",
                self.code.map_or("signal".into(), |c| c.to_string())
            )
        } else {
            s.replace('\n', "; ")
        }
    }

    /// stdout as text; only for outputs that are not secret.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A place to run commands: the seam that keeps SSH out of the adapters' logic.
#[async_trait::async_trait]
pub(crate) trait RemoteShell: Send + Sync {
    /// `host` or `host:port`, or `localhost`.
    fn label(&self) -> &str;

    /// Open (or check) the connection, so later commands cost one round trip.
    async fn connect(&self) -> Result<()>;

    /// Run `argv` (program and arguments, each passed as one word: over SSH each is
    /// shell-escaped for the remote shell). `stdin` is the only channel for secrets.
    async fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output>;

    /// Starts an SFTP server on the host and speaks its first words (INIT), so a
    /// later rename is one message to an already-running process. `Ok(None)` where
    /// there is no remote end (this machine). With `sudo`, `sftp-server` runs as
    /// root through the same `sudo -n /bin/sh` rule the scripts use.
    async fn sftp(&self, _sudo: bool, _timeout: Duration) -> Result<Option<SftpSession>> {
        Ok(None)
    }

    /// Close the connection, if any.
    async fn close(&self);
}

/// An SFTP session over an SSH channel, and the process that carries it.
pub(crate) struct SftpSession {
    pub channel: crate::sftp::Channel<BoxWrite, BoxRead>,
    /// Kept alive for as long as the channel is used.
    _carrier: Box<dyn std::any::Any + Send>,
}

impl SftpSession {
    pub fn new(
        channel: crate::sftp::Channel<BoxWrite, BoxRead>,
        carrier: Box<dyn std::any::Any + Send>,
    ) -> Self {
        SftpSession {
            channel,
            _carrier: carrier,
        }
    }
}

pub(crate) type BoxWrite = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
pub(crate) type BoxRead = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// Where `sftp-server` lives on the common distributions; run with `sudo` because
/// the `sftp` subsystem would run as the login user.
const SFTP_SERVER: &str = r#"for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server; do
  [ -x "$p" ] && exec "$p"
done
echo "no sftp-server found" >&2
exit 6
"#;

/// Builds the shells for a transport.
pub(crate) fn shells(
    transport: &Transport,
    opts: &SshOptions,
) -> Result<Vec<Arc<dyn RemoteShell>>> {
    match transport {
        Transport::Local => Ok(vec![Arc::new(LocalShell::new(opts.command_timeout))]),
        Transport::Ssh(hosts) => {
            check_hosts(hosts)?;
            Ok(hosts
                .iter()
                .map(|h| Arc::new(SshShell::new(h.clone(), opts.clone())) as Arc<dyn RemoteShell>)
                .collect())
        }
    }
}

/// Static checks of a host list: at least one, each valid, none twice.
pub(crate) fn check_hosts(hosts: &[HostSpec]) -> Result<()> {
    if hosts.is_empty() {
        return Err(Error::invalid_config(
            "no hosts given for the ssh transport",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for h in hosts {
        validate_host(h)?;
        if !seen.insert((h.host.clone(), h.port, h.user.clone())) {
            return Err(Error::invalid_config(format!(
                "host {} is listed twice",
                h.label()
            )));
        }
    }
    Ok(())
}

fn validate_host(h: &HostSpec) -> Result<()> {
    let bad = |v: &str| {
        v.is_empty() || v.starts_with('-') || v.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if bad(&h.host) {
        return Err(Error::invalid_config(format!(
            "invalid host name {:?}",
            h.host
        )));
    }
    if let Some(u) = &h.user {
        if bad(u) || u.contains('@') {
            return Err(Error::invalid_config(format!(
                "invalid user {u:?} for host {}",
                h.host
            )));
        }
    }
    if h.port == Some(0) {
        return Err(Error::invalid_config(format!("port 0 for host {}", h.host)));
    }
    Ok(())
}

/// Prefix `argv` with `sudo -n` when asked.
pub(crate) fn with_sudo<'a>(sudo: bool, argv: &[&'a str]) -> Vec<&'a str> {
    let mut v = Vec::with_capacity(argv.len() + 2);
    if sudo {
        v.push("sudo");
        v.push("-n");
    }
    v.extend_from_slice(argv);
    v
}

/// Whether stderr says sudo refused to run without a password or a rule.
pub(crate) fn sudo_refused(stderr: &str) -> bool {
    stderr.contains("sudo:")
        && (stderr.contains("password is required")
            || stderr.contains("not allowed")
            || stderr.contains("not in the sudoers")
            || stderr.contains("may not run sudo"))
}

// ---------------------------------------------------------------------------------
// Local

pub(crate) struct LocalShell {
    timeout: Duration,
}

impl LocalShell {
    pub fn new(timeout: Duration) -> Self {
        LocalShell { timeout }
    }
}

#[async_trait::async_trait]
impl RemoteShell for LocalShell {
    fn label(&self) -> &str {
        "localhost"
    }

    async fn connect(&self) -> Result<()> {
        Ok(())
    }

    async fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        let (prog, args) = argv.split_first().expect("argv is never empty");
        let mut cmd = tokio::process::Command::new(prog);
        vsync_orchestrate_api::child_env::scrub_tokio(&mut cmd);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let run = async {
            let mut child = cmd.spawn().map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    ErrorKind::Unsupported
                } else {
                    ErrorKind::Failed
                };
                Error::new(kind, format!("cannot run {prog}")).with_source(e)
            })?;
            if let Some(input) = stdin {
                let mut w = child.stdin.take().expect("stdin is piped");
                // A command that exits early closes the pipe; its exit status says why.
                let _ = w.write_all(input).await;
                let _ = w.shutdown().await;
                drop(w);
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| Error::failed(format!("waiting for {prog}")).with_source(e))?;
            Ok(Output {
                code: out.status.code(),
                stdout: Zeroizing::new(out.stdout),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::temporary(format!(
                "{prog} on localhost did not finish within {}s",
                self.timeout.as_secs()
            ))),
        }
    }

    async fn close(&self) {}
}

// ---------------------------------------------------------------------------------
// SSH

pub(crate) struct SshShell {
    spec: HostSpec,
    label: String,
    opts: SshOptions,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// The remote command that holds a master open: it reads a stdin nobody ever writes
/// to and writes nothing, so it carries no data; it ends on EOF, which comes when
/// this process drops (or loses, by dying) its end of the pipe.
const KEEPALIVE: &str = "cat";

/// An open master connection and the channel that keeps it from idling out.
///
/// The master runs with `ControlPersist=<idle_timeout>`: it exits that long after its
/// last channel closed. The keep-alive is such a channel, open for as long as this
/// value lives, so a rollout may wait minutes between two commands; its pipes and
/// its control-socket connection belong to this process, so they close when the
/// process dies and the master follows `idle_timeout` later, together with its
/// remote session.
struct Conn {
    /// Dropped before `session` (field order): dropping only closes our file
    /// descriptors, it never waits for the host.
    keepalive: Option<openssh::Child<Arc<Session>>>,
    session: Arc<Session>,
}

impl SshShell {
    pub fn new(spec: HostSpec, opts: SshOptions) -> Self {
        SshShell {
            label: spec.label(),
            spec,
            opts,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    fn builder(&self) -> SessionBuilder {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match self.opts.host_key_policy {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        });
        b.connect_timeout(self.opts.connect_timeout);
        b.server_alive_interval(Duration::from_secs(15));
        let idle = usize::try_from(self.opts.idle_timeout.as_secs()).unwrap_or(usize::MAX);
        if let Some(idle) = NonZeroUsize::new(idle) {
            b.control_persist(ControlPersist::IdleFor(idle));
        }
        if let Some(dir) = &self.opts.control_directory {
            b.control_directory(dir);
        }
        if let Some(f) = &self.opts.config_file {
            b.config_file(f);
        }
        if let Some(p) = self.spec.port {
            b.port(p);
        }
        if let Some(u) = &self.spec.user {
            b.user(u.clone());
        }
        if let Some(k) = &self.spec.identity_file {
            b.keyfile(k);
        }
        if let Some(k) = &self.spec.known_hosts_file {
            b.user_known_hosts_file(k);
        }
        b
    }

    async fn open(&self) -> Result<Conn> {
        let b = self.builder();
        let session = match b.connect_mux(&self.spec.host).await {
            Ok(s) => Arc::new(s),
            Err(e) => return Err(connect_error(&self.label, e)),
        };
        let keepalive = self.keepalive(&session).await;
        Ok(Conn { keepalive, session })
    }

    /// Opens the keep-alive channel on a fresh master. Best effort: without it the
    /// master may idle out between two commands, and `exec`/`connect` then
    /// reconnect once, which every command here tolerates.
    async fn keepalive(&self, session: &Arc<Session>) -> Option<openssh::Child<Arc<Session>>> {
        let mut cmd = Session::arc_command(session.clone(), KEEPALIVE);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match tokio::time::timeout(self.opts.connect_timeout, cmd.spawn()).await {
            Ok(Ok(child)) => Some(child),
            _ => None,
        }
    }

    async fn session(&self) -> Result<Arc<Session>> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.session.clone());
        }
        let c = self.open().await?;
        let s = c.session.clone();
        *guard = Some(c);
        Ok(s)
    }

    /// Drop a session that turned out dead, and its keep-alive, so the next call
    /// reconnects.
    async fn forget(&self, dead: &Arc<Session>) {
        let gone = {
            let mut guard = self.conn.lock().await;
            if guard
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.session, dead))
            {
                guard.take()
            } else {
                None
            }
        };
        drop(gone);
    }

    async fn run_once(
        &self,
        session: &Arc<Session>,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> std::result::Result<Output, openssh::Error> {
        let (prog, args) = argv.split_first().expect("argv is never empty");
        let mut cmd = session.command(*prog);
        cmd.args(args.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().await?;
        if let Some(input) = stdin {
            if let Some(mut w) = child.stdin().take() {
                let _ = w.write_all(input).await;
                let _ = w.shutdown().await;
            }
        }
        let out = child.wait_with_output().await?;
        Ok(Output {
            code: out.status.code(),
            stdout: Zeroizing::new(out.stdout),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[async_trait::async_trait]
impl RemoteShell for SshShell {
    fn label(&self) -> &str {
        &self.label
    }

    async fn connect(&self) -> Result<()> {
        let s = self.session().await?;
        if let Err(e) = s.check().await {
            self.forget(&s).await;
            // One fresh attempt: the master may have idled out.
            let s = self
                .session()
                .await
                .map_err(|e2| e2.context(format!("after {e}")))?;
            s.check().await.map_err(|e| connect_error(&self.label, e))?;
        }
        Ok(())
    }

    async fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        let prog = argv[0];
        let attempt = async {
            let s = self.session().await?;
            match self.run_once(&s, argv, stdin).await {
                Ok(o) => Ok(o),
                Err(e) if master_may_be_gone(&e) => {
                    if s.check().await.is_ok() {
                        return Err(command_error(&self.label, prog, e));
                    }
                    // The master is gone (idled out, killed, network blip). Every
                    // command this crate runs is idempotent, so reconnect once and run
                    // it again.
                    self.forget(&s).await;
                    let s = self
                        .session()
                        .await
                        .map_err(|e2| e2.context(format!("after {e}")))?;
                    self.run_once(&s, argv, stdin)
                        .await
                        .map_err(|e| command_error(&self.label, prog, e))
                }
                Err(e) => Err(command_error(&self.label, prog, e)),
            }
        };
        match tokio::time::timeout(self.opts.command_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::temporary(format!(
                "{prog} on {} did not finish within {}s",
                self.label,
                self.opts.command_timeout.as_secs()
            ))),
        }
    }

    async fn sftp(&self, sudo: bool, timeout: Duration) -> Result<Option<SftpSession>> {
        let session = self.session().await?;
        let mut cmd = if sudo {
            let mut c = Session::to_command(session, "sudo");
            c.args(["-n", "/bin/sh", "-c", SFTP_SERVER]);
            c
        } else {
            Session::to_subsystem(session, "sftp")
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .await
            .map_err(|e| command_error(&self.label, "sftp", e))?;
        let (Some(w), Some(r)) = (child.stdin().take(), child.stdout().take()) else {
            return Err(Error::failed("the SFTP channel has no pipes"));
        };
        let channel =
            crate::sftp::Channel::open(Box::new(w) as BoxWrite, Box::new(r) as BoxRead, timeout)
                .await
                .map_err(|e| e.context(format!("starting SFTP on {}", self.label)))?;
        Ok(Some(SftpSession::new(channel, Box::new(child))))
    }

    async fn close(&self) {
        let c = self.conn.lock().await.take();
        if let Some(Conn { keepalive, session }) = c {
            // First the keep-alive (it holds a reference, and a master asked to stop
            // waits for its channels), then the master: it stops listening and exits
            // as soon as the host has acknowledged the closed channels. A session an
            // SFTP carrier still holds closes when that carrier lets go of it.
            drop(keepalive);
            if let Ok(s) = Arc::try_unwrap(session) {
                let _ = s.close().await;
            }
        }
    }
}

/// Whether a failed command may mean that the master is no longer there: it idled
/// out, was killed, or is exiting. With native mux that shows as `Disconnected`
/// (the control socket is gone or refuses connections), `RemoteProcessTerminated`
/// (the session ended without an exit status) or `SshMux` (the control connection
/// broke mid-request: EOF, reset, a half-read answer). The caller asks `check()`
/// before reconnecting, so a live master never gets a second command.
fn master_may_be_gone(e: &openssh::Error) -> bool {
    matches!(
        e,
        openssh::Error::Disconnected
            | openssh::Error::RemoteProcessTerminated
            | openssh::Error::SshMux(_)
    )
}

fn full_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out.replace(['\r', '\n'], " ").trim().to_string()
}

/// Maps a failure to open the master connection onto an error kind.
fn connect_error(label: &str, e: openssh::Error) -> Error {
    let text = full_chain(&e);
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("host key verification failed")
        || lower.contains("host key is known")
        || lower.contains("remote host identification has changed")
        || lower.contains("host key for")
    {
        return Error::permission(format!(
            "cannot connect to {label}: host key not trusted ({text}); add the host's key to known_hosts (strict host-key checking)"
        ));
    } else if lower.contains("permission denied") {
        ErrorKind::Permission
    } else if lower.contains("could not resolve hostname") {
        ErrorKind::NotFound
    } else if lower.contains("bad configuration")
        || lower.contains("no such file")
        || lower.contains("bad port")
    {
        ErrorKind::InvalidConfig
    } else {
        ErrorKind::Temporary
    };
    Error::new(kind, format!("cannot connect to {label}: {text}"))
}

/// Maps a failure to run a command over an open connection.
fn command_error(label: &str, prog: &str, e: openssh::Error) -> Error {
    let text = full_chain(&e);
    let kind = match &e {
        openssh::Error::Remote(io) if io.kind() == std::io::ErrorKind::NotFound => {
            return Error::unsupported(format!("{prog} is not installed on {label}"));
        }
        openssh::Error::Disconnected
        | openssh::Error::RemoteProcessTerminated
        | openssh::Error::Master(_)
        | openssh::Error::Connect(_) => ErrorKind::Temporary,
        _ => ErrorKind::Failed,
    };
    Error::new(kind, format!("running {prog} on {label}: {text}"))
}
