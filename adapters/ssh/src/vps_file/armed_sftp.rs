//! Activation as one SFTP `posix-rename@openssh.com` per host, with nothing
//! started inside the window: preflight opens the session and the directory, stage
//! arms it for the file it wrote, and activation only sends the rename (the
//! directory's fsync in the same message, its answer read after T1).
//!
//! Whatever goes wrong here the caller finishes with the scripts, which read the
//! host's state; so every path out of an uncertain state disarms.

use crate::sftp::{FSYNC, POSIX_RENAME};
use crate::shell::{RemoteShell, SftpSession};
use std::time::Duration;
use vsync_orchestrate_api::{Error, Result};

/// What one host holds for a fast activation: an SFTP session opened in
/// preflight, the directory's handle, and which staged file it is armed for.
#[derive(Default)]
pub(super) struct Armed {
    remote: Option<SftpSession>,
    /// The handle of the file's directory, fsync'ed right after the rename.
    dir: Option<Vec<u8>>,
    /// `(run, fingerprint)` of the staged file the rename is for.
    ready: Option<(String, String)>,
    /// The fsync sent with the rename, whose answer is read after T1.
    fsync: Option<u32>,
    /// A request is on the wire: a caller gave up on it (a timeout dropped its
    /// future), so the channel's next bytes are not ours to read.
    busy: bool,
    /// Why there is no session, for the preflight warning.
    why_not: Option<String>,
}

/// Starts the SFTP server on `h` and opens `dir`: everything the rename needs,
/// before the window. `None`: the host has no SFTP to offer.
pub(super) async fn open(
    h: &dyn RemoteShell,
    sudo: bool,
    timeout: Duration,
    dir: &str,
) -> Result<Option<(SftpSession, Vec<u8>)>> {
    let Some(mut remote) = h.sftp(sudo, timeout).await? else {
        return Ok(None);
    };
    if !remote.channel.supports(POSIX_RENAME) {
        return Err(Error::unsupported(format!(
            "the SFTP server does not offer {POSIX_RENAME}"
        )));
    }
    if !remote.channel.supports(FSYNC) {
        return Err(Error::unsupported(format!(
            "the SFTP server does not offer {FSYNC}"
        )));
    }
    let dir = remote.channel.open_read(dir).await?;
    Ok(Some((remote, dir)))
}

impl Armed {
    pub(super) async fn disarm(&mut self) {
        self.ready = None;
        self.dir = None;
        self.fsync = None;
        if let Some(r) = self.remote.take() {
            if !self.busy {
                r.channel.shutdown().await;
            }
        }
        self.busy = false;
    }

    /// Preflight's session replaces any earlier one; without one, `why_not` says
    /// why activation will fall back to the script.
    pub(super) async fn rearm(&mut self, opened: Result<Option<(SftpSession, Vec<u8>)>>) {
        self.disarm().await;
        match opened {
            Ok(Some((remote, dir))) => {
                self.remote = Some(remote);
                self.dir = Some(dir);
                self.why_not = None;
            }
            Ok(None) => self.why_not = Some("no SFTP here".into()),
            Err(e) => self.why_not = Some(e.chain()),
        }
    }

    pub(super) fn why_not(&self) -> Option<&str> {
        self.why_not.as_deref()
    }

    /// Stage wrote (or found) the file with fingerprint `fp` for run `run`: the
    /// rename now waits on the open session.
    pub(super) fn ready_for(&mut self, run: String, fp: String) {
        if self.remote.is_some() && !self.busy {
            self.ready = Some((run, fp));
        }
    }

    /// The armed rename of `<path>.new` over `path` on `label`. `None`: not armed
    /// for this staged file (use the script); `Some(Err)`: the rename failed or its
    /// answer was lost.
    pub(super) async fn rename(
        &mut self,
        label: &str,
        path: &str,
        run: String,
        fp: &str,
    ) -> Option<Result<()>> {
        let want = (run, fp.to_string());
        if self.busy || self.remote.is_none() || self.ready.as_ref() != Some(&want) {
            return None;
        }
        let dir = self.dir.clone();
        self.busy = true;
        let new = format!("{path}.new");
        let remote = self.remote.as_mut()?;
        let res = async {
            let (rename, sync) = remote
                .channel
                .send_rename(&new, path, dir.as_deref())
                .await?;
            let st = remote.channel.status(rename).await?;
            Ok::<_, Error>((st, sync))
        }
        .await;
        self.busy = false;
        self.ready = None;
        match res {
            Ok((st, sync)) if st.ok() => {
                self.fsync = sync;
                Some(Ok(()))
            }
            Ok((st, _)) => {
                self.disarm().await;
                Some(Err(
                    st.error(&format!("renaming {new} over {path} on {label}"))
                ))
            }
            Err(e) => {
                self.remote = None;
                self.disarm().await;
                Some(Err(e))
            }
        }
    }

    /// After T1: the fsync's answer, the handle closed, the kept link `keep` moved
    /// to `<path>.prev`, the session ended. `None`: no session left (use the
    /// script).
    pub(super) async fn tidy(&mut self, label: &str, path: &str, keep: &str) -> Option<Result<()>> {
        if self.busy || self.remote.is_none() {
            return None;
        }
        let sync = self.fsync.take();
        let dir = self.dir.take();
        let prev = format!("{path}.prev");
        let remote = self.remote.as_mut()?;
        let res = async {
            if let Some(id) = sync {
                let st = remote.channel.status(id).await?;
                if !st.ok() {
                    return Err(st.error(&format!("fsync of {path}'s directory on {label}")));
                }
            }
            if let Some(h) = &dir {
                remote.channel.close_handle(h).await?;
            }
            let (id, _) = remote.channel.send_rename(keep, &prev, None).await?;
            let st = remote.channel.status(id).await?;
            if !st.ok() && st.code != 2 {
                return Err(st.error(&format!("moving the kept file to {prev} on {label}")));
            }
            Ok(())
        }
        .await;
        self.disarm().await;
        Some(res)
    }
}
