//! Just enough SFTP (protocol version 3, draft-ietf-secsh-filexfer-02, plus two
//! OpenSSH extensions) to make activation one message per host.
//!
//! Why SFTP: a remote script starts a shell and a handful of programs inside the
//! window, and each command over the multiplexed master starts a local `ssh` client
//! too. An SFTP server (`internal-sftp` inside sshd, or `sftp-server`) is a process
//! that is *already running* when the window opens, and it performs
//! `posix-rename@openssh.com` as one `rename(2)`. The channel is opened and the
//! directory handle taken before T0; at T0 the rename and the directory's fsync are
//! written as one message, and only the rename's answer is waited on inside the
//! window (the fsync's answer is collected after T1).
//!
//! Generic over the byte streams so the same code is tested against a real
//! `sftp-server` on pipes and used over an SSH channel.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vsync_orchestrate_api::{Error, ErrorKind, Result};

const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const EXTENDED: u8 = 200;

const FXF_READ: u32 = 0x1;

pub(crate) const POSIX_RENAME: &str = "posix-rename@openssh.com";
pub(crate) const FSYNC: &str = "fsync@openssh.com";

/// The most a reply may claim to be: these replies are a status or a handle.
const MAX_PACKET: usize = 256 * 1024;

/// `SSH_FXP_STATUS` codes that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub code: u32,
    pub message: String,
}

impl Status {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// The status as an error of the matching kind.
    pub fn error(&self, what: &str) -> Error {
        let kind = match self.code {
            2 => ErrorKind::NotFound,
            3 => ErrorKind::Permission,
            8 => ErrorKind::Unsupported,
            6 | 7 => ErrorKind::Temporary,
            _ => ErrorKind::Failed,
        };
        let msg = if self.message.is_empty() {
            format!("SFTP status {}", self.code)
        } else {
            format!("{} (SFTP status {})", self.message, self.code)
        };
        Error::new(kind, format!("{what}: {msg}"))
    }
}

/// One SFTP session on a pair of byte streams.
pub(crate) struct Channel<W, R> {
    w: W,
    r: R,
    next_id: u32,
    extensions: Vec<String>,
    timeout: Duration,
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

fn packet(kind: u8, id: Option<u32>, body: &[u8]) -> Vec<u8> {
    let len = 1 + id.map_or(0, |_| 4) + body.len();
    let mut p = Vec::with_capacity(4 + len);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.push(kind);
    if let Some(id) = id {
        p.extend_from_slice(&id.to_be_bytes());
    }
    p.extend_from_slice(body);
    p
}

/// A cursor over a reply's body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32> {
        if self.0.len() < 4 {
            return Err(malformed("a short field"));
        }
        let (h, t) = self.0.split_at(4);
        self.0 = t;
        Ok(u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if self.0.len() < n {
            return Err(malformed("a string longer than its packet"));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
}

/// A `STATUS` body: the code, then a message and a language tag, which version 3
/// servers send but which are tolerated when absent.
fn parse_status(body: &[u8]) -> Result<Status> {
    let mut rd = Reader(body);
    let code = rd.u32()?;
    let message = rd
        .bytes()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Ok(Status { code, message })
}

fn malformed(what: &str) -> Error {
    Error::failed(format!("malformed SFTP reply: {what}"))
}

impl<W, R> Channel<W, R>
where
    W: AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin + Send,
{
    /// Sends `SSH_FXP_INIT` and reads the server's version and extensions. Every
    /// later read is bounded by `timeout`.
    pub async fn open(w: W, r: R, timeout: Duration) -> Result<Self> {
        let mut ch = Channel {
            w,
            r,
            next_id: 1,
            extensions: Vec::new(),
            timeout,
        };
        ch.send(&packet(INIT, None, &3u32.to_be_bytes())).await?;
        let (kind, body) = ch.recv().await?;
        if kind != VERSION {
            return Err(malformed(&format!("expected VERSION, got type {kind}")));
        }
        let mut rd = Reader(&body);
        let version = rd.u32()?;
        if version < 3 {
            return Err(Error::unsupported(format!(
                "the SFTP server speaks version {version}; 3 is needed"
            )));
        }
        while !rd.0.is_empty() {
            let name = rd.bytes()?;
            let _data = rd.bytes()?;
            ch.extensions
                .push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(ch)
    }

    /// Whether the server announced `name` (e.g. [`POSIX_RENAME`]).
    pub fn supports(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let io = async {
            self.w.write_all(bytes).await?;
            self.w.flush().await
        };
        match tokio::time::timeout(self.timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::temporary("writing to the SFTP channel").with_source(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> Error {
        Error::temporary(format!(
            "the SFTP server did not answer within {}s",
            self.timeout.as_secs_f64()
        ))
    }

    async fn recv(&mut self) -> Result<(u8, Vec<u8>)> {
        let io = async {
            let mut len = [0u8; 4];
            self.r.read_exact(&mut len).await?;
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 || len > MAX_PACKET {
                return Ok(Err(malformed(&format!("a packet of {len} bytes"))));
            }
            let mut body = vec![0u8; len];
            self.r.read_exact(&mut body).await?;
            let kind = body[0];
            body.remove(0);
            Ok::<_, std::io::Error>(Ok((kind, body)))
        };
        match tokio::time::timeout(self.timeout, io).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(Error::temporary("the SFTP channel closed").with_source(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Reads the reply to request `id`: the body after the id.
    async fn reply(&mut self, id: u32) -> Result<(u8, Vec<u8>)> {
        let (kind, body) = self.recv().await?;
        let mut rd = Reader(&body);
        let got = rd.u32()?;
        if got != id {
            return Err(malformed(&format!(
                "the answer to request {got}, expected {id}"
            )));
        }
        Ok((kind, rd.0.to_vec()))
    }

    /// Reads a `STATUS` reply to request `id`.
    pub async fn status(&mut self, id: u32) -> Result<Status> {
        let (kind, body) = self.reply(id).await?;
        if kind != STATUS {
            return Err(malformed(&format!("expected STATUS, got type {kind}")));
        }
        parse_status(&body)
    }

    /// Opens `path` (a directory, here) for reading; the handle lets the directory
    /// be fsync'ed after a rename without a process.
    pub async fn open_read(&mut self, path: &str) -> Result<Vec<u8>> {
        let id = self.id();
        let mut body = Vec::new();
        put_str(&mut body, path.as_bytes());
        body.extend_from_slice(&FXF_READ.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes()); // no attributes
        self.send(&packet(OPEN, Some(id), &body)).await?;
        let (kind, body) = self.reply(id).await?;
        match kind {
            HANDLE => Ok(Reader(&body).bytes()?.to_vec()),
            STATUS => Err(parse_status(&body)?.error(&format!("opening {path}"))),
            k => Err(malformed(&format!("expected HANDLE, got type {k}"))),
        }
    }

    /// Writes `posix-rename(from, to)` and, when `fsync` is given, the fsync of that
    /// handle, as one write. Returns the two request ids; read their statuses with
    /// [`Channel::status`] in order.
    pub async fn send_rename(
        &mut self,
        from: &str,
        to: &str,
        fsync: Option<&[u8]>,
    ) -> Result<(u32, Option<u32>)> {
        let rename = self.id();
        let mut body = Vec::new();
        put_str(&mut body, POSIX_RENAME.as_bytes());
        put_str(&mut body, from.as_bytes());
        put_str(&mut body, to.as_bytes());
        let mut msg = packet(EXTENDED, Some(rename), &body);
        let mut sync = None;
        if let Some(h) = fsync {
            let id = self.id();
            let mut body = Vec::new();
            put_str(&mut body, FSYNC.as_bytes());
            put_str(&mut body, h);
            msg.extend_from_slice(&packet(EXTENDED, Some(id), &body));
            sync = Some(id);
        }
        self.send(&msg).await?;
        Ok((rename, sync))
    }

    /// Closes a handle and waits for the answer.
    pub async fn close_handle(&mut self, handle: &[u8]) -> Result<()> {
        let id = self.id();
        let mut body = Vec::new();
        put_str(&mut body, handle);
        self.send(&packet(CLOSE, Some(id), &body)).await?;
        let st = self.status(id).await?;
        if st.ok() {
            Ok(())
        } else {
            Err(st.error("closing a handle"))
        }
    }

    /// Ends the session: the server exits when its input closes.
    pub async fn shutdown(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.w.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    /// Debian's `sftp-server` (package openssh-sftp-server), the program sshd runs
    /// for the `sftp` subsystem, on pipes: the real protocol, no SSH in between.
    fn server() -> Option<tokio::process::Child> {
        let path = [
            "/usr/lib/openssh/sftp-server",
            "/usr/libexec/openssh/sftp-server",
            "/usr/lib/ssh/sftp-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(path) = path else {
            if std::env::var_os("CI").is_some() {
                panic!("sftp-server is not installed (Debian package openssh-sftp-server)");
            }
            eprintln!("sftp-server not installed: skipped");
            return None;
        };
        Some(
            tokio::process::Command::new(path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn rename_and_directory_fsync_against_a_real_sftp_server() {
        let Some(mut child) = server() else { return };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        std::fs::write(dir.path().join("p"), "old").unwrap();
        std::fs::write(dir.path().join("p.new"), "new").unwrap();
        let (w, r) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut ch = Channel::open(w, r, Duration::from_secs(10)).await.unwrap();
        assert!(ch.supports(POSIX_RENAME) && ch.supports(FSYNC));
        let h = ch.open_read(&d).await.unwrap();
        let (rn, sync) = ch
            .send_rename(&format!("{d}/p.new"), &format!("{d}/p"), Some(&h))
            .await
            .unwrap();
        assert!(ch.status(rn).await.unwrap().ok());
        assert!(ch.status(sync.unwrap()).await.unwrap().ok());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p")).unwrap(),
            "new"
        );
        assert!(!dir.path().join("p.new").exists());

        // Renaming again: the source is gone, and the status says so by kind.
        let (rn, _) = ch
            .send_rename(&format!("{d}/p.new"), &format!("{d}/p"), None)
            .await
            .unwrap();
        let st = ch.status(rn).await.unwrap();
        assert!(!st.ok());
        assert_eq!(st.error("renaming").kind(), ErrorKind::NotFound);
        ch.close_handle(&h).await.unwrap();
        let e = ch.open_read(&format!("{d}/missing")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        ch.shutdown().await;
        assert!(child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_not_a_hang() {
        // `cat` never answers INIT with VERSION; it echoes INIT back, which is no
        // VERSION either; `sleep` says nothing at all.
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (w, r) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let t = std::time::Instant::now();
        let e = Channel::open(w, r, Duration::from_millis(300))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
