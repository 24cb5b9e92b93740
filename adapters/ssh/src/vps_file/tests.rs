//! The store against this machine as a host: a shell that records what it was given,
//! and a real `sftp-server` on pipes whose channel can be cut or muted.

use super::*;
use crate::config::Transport;
use crate::shell::{LocalShell, Output};
use std::sync::Mutex;
use std::time::Duration;
use vsync_orchestrate_api::ErrorKind;

/// Runs locally but records every argv and stdin.
struct Recording {
    inner: LocalShell,
    seen: Mutex<Vec<(Vec<String>, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl RemoteShell for Recording {
    fn label(&self) -> &str {
        "recorded"
    }
    async fn connect(&self) -> Result<()> {
        Ok(())
    }
    async fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        self.seen.lock().unwrap().push((
            argv.iter().map(|s| s.to_string()).collect(),
            stdin.map(<[u8]>::to_vec).unwrap_or_default(),
        ));
        self.inner.exec(argv, stdin).await
    }
    async fn close(&self) {}
}

#[tokio::test]
async fn the_value_travels_on_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase");
    std::fs::write(&path, "old-value-1234567890").unwrap();
    let rec = Arc::new(Recording {
        inner: LocalShell::new(Duration::from_secs(30)),
        seen: Mutex::new(Vec::new()),
    });
    let cfg = VpsFileConfig::new(Transport::Local, path.to_str().unwrap());
    let store = VpsFileStore::with_shells(cfg, vec![rec.clone() as Arc<dyn RemoteShell>]).unwrap();
    let p = Passphrase::from("the-secret-value-QmT7s9");
    let staged = store.stage(&p, &RunId("r1".into())).await.unwrap();
    store.activate(&staged).await.unwrap();
    assert!(store.read_current().await.unwrap().unwrap().same_as(&p));

    let staged_json = serde_json::to_string(&staged).unwrap();
    assert!(!staged_json.contains(p.expose()));
    assert!(
        !staged_json.contains(&p.sha256_hex()),
        "Staged must not hold the value's hash"
    );

    let seen = rec.seen.lock().unwrap();
    assert!(seen.len() >= 3);
    let mut on_stdin = false;
    for (argv, stdin) in seen.iter() {
        for a in argv {
            assert!(!a.contains(p.expose()), "value in argv");
            assert!(!a.contains(&p.sha256_hex()), "hash in argv");
        }
        if String::from_utf8_lossy(stdin).contains(p.expose()) {
            on_stdin = true;
        }
    }
    assert!(on_stdin);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), p.expose());
}

/// This machine as a host whose SFTP server is Debian's real `sftp-server` on
/// pipes (no SSH in between). It counts the commands it runs, and can cut the
/// channel before a request reaches the server (`cut`) or let the server act
/// and lose its answer (`mute`).
struct PipedSftp {
    inner: LocalShell,
    execs: std::sync::atomic::AtomicUsize,
    cut: Arc<std::sync::atomic::AtomicBool>,
    mute: Arc<std::sync::atomic::AtomicBool>,
}

struct Gate<T> {
    inner: T,
    shut: Arc<std::sync::atomic::AtomicBool>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Gate<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            // The answer is lost on the way: it never arrives.
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Gate<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl RemoteShell for PipedSftp {
    fn label(&self) -> &str {
        "piped"
    }
    async fn connect(&self) -> Result<()> {
        Ok(())
    }
    async fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        self.execs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.exec(argv, stdin).await
    }
    async fn sftp(&self, _sudo: bool, timeout: Duration) -> Result<Option<shell::SftpSession>> {
        let path = "/usr/lib/openssh/sftp-server";
        if !std::path::Path::new(path).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{path} is missing (Debian package openssh-sftp-server)"
            );
            return Ok(None);
        }
        let mut child = tokio::process::Command::new(path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let w = Gate {
            inner: child.stdin.take().unwrap(),
            shut: self.cut.clone(),
        };
        let r = Gate {
            inner: child.stdout.take().unwrap(),
            shut: self.mute.clone(),
        };
        let ch = crate::sftp::Channel::open(
            Box::new(w) as shell::BoxWrite,
            Box::new(r) as shell::BoxRead,
            timeout,
        )
        .await?;
        Ok(Some(shell::SftpSession::new(ch, Box::new(child))))
    }
    async fn close(&self) {}
}

fn piped(dir: &std::path::Path) -> (VpsFileStore, Arc<PipedSftp>) {
    let shell = Arc::new(PipedSftp {
        inner: LocalShell::new(Duration::from_secs(30)),
        execs: Default::default(),
        cut: Default::default(),
        mute: Default::default(),
    });
    let path = dir.join("passphrase");
    std::fs::write(&path, "old-value-1234567890").unwrap();
    let cfg = VpsFileConfig::new(Transport::Local, path.to_str().unwrap());
    let mut store =
        VpsFileStore::with_shells(cfg, vec![shell.clone() as Arc<dyn RemoteShell>]).unwrap();
    let Via::Remote(remote) = &mut store.via else {
        unreachable!("with_shells makes the scripted transport")
    };
    remote.sftp_timeout = Duration::from_millis(500);
    (store, shell)
}

fn dot_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn an_armed_activation_runs_no_command_and_tidy_keeps_prev() {
    let dir = tempfile::tempdir().unwrap();
    let (store, shell) = piped(dir.path());
    let pre = store.preflight().await.unwrap();
    if !pre.detail.contains("one SFTP rename per host") {
        assert!(std::env::var_os("CI").is_none(), "{}", pre.detail);
        return;
    }
    assert_eq!(
        pre.current.as_ref().map(|p| p.expose().to_string()),
        Some("old-value-1234567890".into()),
        "preflight read the current value once"
    );
    let new = Passphrase::from("armed-new-value-Zq81");
    let staged = store.stage(&new, &RunId("r-armed".into())).await.unwrap();
    let before = shell.execs.load(std::sync::atomic::Ordering::SeqCst);
    store.activate(&staged).await.unwrap();
    assert_eq!(
        shell.execs.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "activation started no process: one SFTP rename"
    );
    let p = dir.path().join("passphrase");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), new.expose());
    assert!(!dir.path().join("passphrase.new").exists());
    // The old file waits under the run's name until tidy moves it to `.prev`.
    assert_eq!(
        dot_files(dir.path()),
        vec![".passphrase.prev.r-armed".to_string()]
    );
    store.tidy(&staged).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase.prev")).unwrap(),
        "old-value-1234567890"
    );
    assert!(dot_files(dir.path()).is_empty());
    // A second activation (a retry, a resume) is a success that changes nothing.
    store.activate(&staged).await.unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), new.expose());
    store.close().await;
}

/// A fault before the rename reaches the server (the channel is cut) and after
/// the server applied it (its answer never arrives): either way the script
/// reads the host's state and finishes, and `.prev` is kept.
#[tokio::test]
async fn a_fault_before_or_after_the_rename_is_finished_by_the_script() {
    for applied in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (store, shell) = piped(dir.path());
        if !store.preflight().await.unwrap().detail.contains("SFTP") {
            return;
        }
        let new = Passphrase::from("faulted-value-Xp20Kw55");
        let staged = store.stage(&new, &RunId("r-fault".into())).await.unwrap();
        let gate = if applied { &shell.mute } else { &shell.cut };
        gate.store(true, std::sync::atomic::Ordering::SeqCst);
        let t = std::time::Instant::now();
        store.activate(&staged).await.unwrap();
        if applied {
            assert!(
                t.elapsed() >= Duration::from_millis(500),
                "waited for the answer"
            );
        }
        let p = dir.path().join("passphrase");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), new.expose());
        store.tidy(&staged).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("passphrase.prev")).unwrap(),
            "old-value-1234567890"
        );
        assert!(dot_files(dir.path()).is_empty());
    }
}

#[tokio::test]
async fn discard_removes_the_kept_link_and_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _shell) = piped(dir.path());
    store.preflight().await.unwrap();
    let staged = store
        .stage(
            &Passphrase::from("discarded-value-Lm12"),
            &RunId("r-d".into()),
        )
        .await
        .unwrap();
    assert_eq!(dot_files(dir.path()).len(), 1);
    store.discard(&staged).await.unwrap();
    assert!(dot_files(dir.path()).is_empty());
    assert!(!dir.path().join("passphrase.new").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("passphrase")).unwrap(),
        "old-value-1234567890"
    );
}

#[test]
fn config_is_validated() {
    let mk = |path: &str| VpsFileStore::new(VpsFileConfig::new(Transport::Local, path));
    assert!(mk("relative/passphrase").is_err());
    assert!(mk("/etc/vsync/").is_err());
    assert!(mk("/etc/vsync/pass\nphrase").is_err());
    assert!(mk("/etc/vsync/passphrase").is_ok());
    let mut cfg = VpsFileConfig::new(Transport::Local, "/etc/vsync/passphrase");
    cfg.owner = Some("-rf".into());
    assert_eq!(
        VpsFileStore::new(cfg).err().unwrap().kind(),
        ErrorKind::InvalidConfig
    );
    let cfg = VpsFileConfig::new(Transport::Ssh(vec![]), "/etc/vsync/passphrase");
    assert!(VpsFileStore::new(cfg).is_err());
}
