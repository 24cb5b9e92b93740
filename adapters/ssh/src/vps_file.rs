//! The `vps_file` secret store: the passphrase as a file (default mode 0600) on one or
//! more hosts, staged as `<path>.new` and switched with one rename per host.

use crate::config::{Transport, VpsFileConfig};
use crate::shell::{self, sudo_refused, with_sudo, Output, RemoteShell};
use crate::vps_local::{self, LocalFile};
use futures_util::future::join_all;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use vsync_orchestrate_api::{
    shell_quote, Error, ErrorKind, Passphrase, Preflight, Result, RunId, SecretStore, Staged,
    Target,
};
// What a passphrase file can hold and give back unchanged: one rule for the `file`
// store and both transports of this one.
use vsync_orchestrate_local::staged_file::check_value;
use zeroize::Zeroizing;

/// The plan's `type` tag.
pub const KIND: &str = "vps_file";

// The fixed scripts. They run as `/bin/sh -c SCRIPT vsync-orchestrate ARGS...`
// (behind `sudo -n` when configured); arguments are paths, modes and owners, never a
// secret. Exit codes: 3 not found, 4 permission, 5 conflict, 6 unsupported, 7 the
// value arrived damaged. A file's fingerprint is `device:inode:mtime` (`stat -c`),
// which rename(2) keeps: it identifies the very file a stage wrote without
// recording anything derived from the value.

const PREFLIGHT: &str = r#"set -u
p=$1; d=$(dirname -- "$p")
for c in mktemp sha256sum stat sync mv cp cat chmod chown dirname basename rm ln; do
  command -v "$c" >/dev/null 2>&1 || { echo "required command $c is missing" >&2; exit 6; }
done
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
[ -w "$d" ] && [ -x "$d" ] || { echo "directory $d is not writable by $(id -un)" >&2; exit 4; }
[ -d "$p.new" ] && [ ! -L "$p.new" ] && { echo "$p.new is a directory, where stage writes the staged file; remove it first" >&2; exit 6; }
if [ -e "$p.new" ]; then echo "staged present"; else echo "staged -"; fi
if [ -f "$p" ]; then
  [ -r "$p" ] || { echo "$p is not readable by $(id -un)" >&2; exit 4; }
  echo "current"
  exec cat -- "$p"
elif [ -e "$p" ]; then
  echo "$p is not a regular file" >&2; exit 6
fi
echo "current -"
"#;

/// stdin: the value's SHA-256 (hex) on the first line, then the value itself.
/// Also keeps the current file as `$6` (`.<name>.prev.<run>`, see `keep_name`; a
/// hard link: the same inode, nothing copied), so activation is the rename alone
/// and `tidy` moves the link to `<path>.prev` after T1.
const STAGE: &str = r#"set -eu
p=$1; mode=$2; owner=$3; group=$4; spec=$5; k=$6
n="$p.new"; d=$(dirname -- "$p"); b=$(basename -- "$p")
keep() {
  [ -f "$p" ] || return 0
  ln -f -- "$p" "$k" 2>/dev/null || cp -p -- "$p" "$k"
}
IFS= read -r want
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
if [ -f "$n" ] && [ ! -L "$n" ]; then
  have=$(sha256sum <"$n"); have=${have%% *}
  if [ "$have" = "$want" ] && [ "$(stat -c %a -- "$n")" = "$mode" ] &&
     { [ -z "$owner" ] || [ "$(stat -c %U -- "$n")" = "$owner" ] || [ "$(stat -c %u -- "$n")" = "$owner" ]; } &&
     { [ -z "$group" ] || [ "$(stat -c %G -- "$n")" = "$group" ] || [ "$(stat -c %g -- "$n")" = "$group" ]; }; then
    cat >/dev/null
    keep
    echo "unchanged $(stat -c '%d:%i:%y' -- "$n")"
    exit 0
  fi
fi
umask 077
t=$(mktemp -- "$d/.$b.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
got=$(sha256sum <"$t"); got=${got%% *}
[ "$got" = "$want" ] || { echo "the value arrived incomplete or damaged" >&2; exit 7; }
chmod "$mode" "$t"
[ -z "$spec" ] || chown "$spec" "$t"
sync "$t"
mv -fT -- "$t" "$n"
trap - EXIT
keep
sync "$d" 2>/dev/null || sync
echo "written $(stat -c '%d:%i:%y' -- "$n")"
"#;

const READ_CURRENT: &str = r#"set -u
p=$1
[ -e "$p" ] || { echo "$p does not exist" >&2; exit 3; }
exec cat -- "$p"
"#;

/// Prints `new FP` or `cur FP` on the first line, then the content.
const READ_STAGED: &str = r#"set -u
p=$1; n="$p.new"
if [ -f "$n" ]; then
  fp=$(stat -c '%d:%i:%y' -- "$n") || exit 1
  echo "new $fp"; exec cat -- "$n"
fi
if [ -f "$p" ]; then
  fp=$(stat -c '%d:%i:%y' -- "$p") || exit 1
  echo "cur $fp"; exec cat -- "$p"
fi
echo "neither $n nor $p exists" >&2
exit 3
"#;

/// args: path, the fingerprint of the staged file.
const ACTIVATE: &str = r#"set -eu
p=$1; want=$2; n="$p.new"; d=$(dirname -- "$p"); b=$(basename -- "$p")
if [ -f "$n" ]; then
  fp=$(stat -c '%d:%i:%y' -- "$n")
  [ "$fp" = "$want" ] || { echo "$n is not the file this run staged (replaced since)" >&2; exit 5; }
  if [ -f "$p" ]; then
    t=$(mktemp -- "$d/.$b.prev.XXXXXX")
    trap 'rm -f -- "$t"' EXIT
    cp -p -- "$p" "$t"
    mv -fT -- "$t" "$p.prev"
    trap - EXIT
  fi
  mv -fT -- "$n" "$p"
  sync "$d" 2>/dev/null || sync
  echo activated
  exit 0
fi
if [ -f "$p" ] && [ "$(stat -c '%d:%i:%y' -- "$p")" = "$want" ]; then
  echo already
  exit 0
fi
echo "nothing staged: $n does not exist and $p is not the staged file" >&2
exit 3
"#;

/// After T1: the link stage kept becomes `<path>.prev`. args: path, the kept link.
const TIDY: &str = r#"set -eu
p=$1; k=$2; d=$(dirname -- "$p")
if [ -e "$k" ]; then mv -fT -- "$k" "$p.prev"; fi
sync "$d" 2>/dev/null || sync
"#;

/// args: path, the fingerprint of the staged file or "" when unknown, the kept link.
const DISCARD: &str = r#"set -eu
p=$1; want=$2; n="$p.new"
rm -f -- "$3"
[ -e "$n" ] || { echo absent; exit 0; }
if [ -n "$want" ] && [ "$(stat -c '%d:%i:%y' -- "$n")" != "$want" ]; then
  echo "$n is not the file this run staged (staged again since); left in place" >&2
  exit 5
fi
rm -f -- "$n"
d=$(dirname -- "$p"); sync "$d" 2>/dev/null || true
echo removed
"#;

/// What one host holds for a fast activation: an SFTP session opened in
/// preflight, the directory's handle, and which staged file it is armed for.
#[derive(Default)]
struct Armed {
    remote: Option<shell::SftpSession>,
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

impl Armed {
    async fn disarm(&mut self) {
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
}

/// A passphrase file on one or more hosts (or on this host).
///
/// * `stage` writes `<path>.new` on every host: a temp file in the same directory
///   (mktemp, umask 077), the value from stdin, its SHA-256 checked before anything
///   is renamed, chmod (default 0600), chown, sync, `mv` to `.new`. Re-staging the
///   same value is a no-op.
/// * `activate` is one SFTP `posix-rename@openssh.com` per host, sent to an SFTP
///   server that preflight started and stage armed, on all hosts concurrently: no
///   process starts, locally or remotely, inside the window. The directory's fsync
///   travels in the same message; its answer is read after T1. Where SFTP is not
///   available (no subsystem, an instance that did not preflight, a channel that
///   failed) a fixed script checks the fingerprint and renames; either way hosts
///   where it failed are named in the error.
/// * The old file is kept as `<path>.prev`: stage hard-links it under a run-specific
///   name, `tidy` moves that link into place after T1.
/// * Reads strip trailing CR, LF, TAB and space, as the vsync runtimes do for `_FILE`.
///
/// The value only ever travels on stdin and stdout; [`Staged::extra`] holds each
/// host's fingerprint of the staged file (`device:inode:mtime`), never a value or a hash.
pub struct VpsFileStore {
    path: String,
    mode: String,
    owner: String,
    group: String,
    chown: String,
    sudo: bool,
    hosts: Vec<Arc<dyn RemoteShell>>,
    /// The local transport: the file is handled in this process by the staged-file
    /// core the `file` store uses, not by the scripts (`hosts` is then empty).
    local: Option<LocalFile>,
    /// Per host (by label), the armed SFTP activation; one lock per host so the
    /// hosts' renames go out concurrently.
    armed: BTreeMap<String, Arc<tokio::sync::Mutex<Armed>>>,
    /// How long an SFTP request may wait for its answer.
    sftp_timeout: std::time::Duration,
}

impl VpsFileStore {
    /// Validates `cfg` and prepares (does not open) the connections.
    ///
    /// With [`Transport::Local`], `sudo = true` is an `InvalidConfig` error unless
    /// this process is root: the file is written from here, not by `sudo`.
    pub fn new(cfg: VpsFileConfig) -> Result<Self> {
        if cfg.transport == Transport::Local {
            let mut store = Self::with_shells(cfg.clone(), Vec::new())?;
            store.local = Some(LocalFile::new(
                &cfg.path,
                cfg.mode.unwrap_or(0o600),
                cfg.owner.as_deref(),
                cfg.group.as_deref(),
                cfg.sudo,
            )?);
            return Ok(store);
        }
        let shells = shell::shells(&cfg.transport, &cfg.ssh)?;
        Self::with_shells(cfg, shells)
    }

    pub(crate) fn with_shells(
        cfg: VpsFileConfig,
        hosts: Vec<Arc<dyn RemoteShell>>,
    ) -> Result<Self> {
        validate_path(&cfg.path)?;
        let mode = cfg.mode.unwrap_or(0o600);
        if mode > 0o7777 {
            return Err(Error::invalid_config(format!(
                "mode {mode:o} is not a file mode"
            )));
        }
        for (what, v) in [("owner", &cfg.owner), ("group", &cfg.group)] {
            if let Some(v) = v {
                if !valid_account(v) {
                    return Err(Error::invalid_config(format!("invalid {what} {v:?}")));
                }
            }
        }
        let owner = cfg.owner.clone().unwrap_or_default();
        let group = cfg.group.clone().unwrap_or_default();
        let chown = match (cfg.owner.as_deref(), cfg.group.as_deref()) {
            (Some(o), Some(g)) => format!("{o}:{g}"),
            (Some(o), None) => o.to_string(),
            (None, Some(g)) => format!(":{g}"),
            (None, None) => String::new(),
        };
        let armed = hosts
            .iter()
            .map(|h| (h.label().to_string(), Arc::default()))
            .collect();
        Ok(VpsFileStore {
            path: cfg.path,
            mode: format!("{mode:o}"),
            owner,
            group,
            chown,
            sudo: cfg.sudo,
            hosts,
            local: None,
            armed,
            sftp_timeout: cfg
                .ssh
                .command_timeout
                .min(std::time::Duration::from_secs(10)),
        })
    }

    /// The hosts, as named in messages (`host`, `host:port` or `localhost`).
    pub fn hosts(&self) -> Vec<String> {
        if self.local.is_some() {
            return vec![vps_local::LABEL.to_owned()];
        }
        self.hosts.iter().map(|h| h.label().to_string()).collect()
    }

    /// Ends the SFTP sessions, then closes the master connections, every host at
    /// once (dropping a session closes its master synchronously, one after another).
    pub async fn close(&self) {
        join_all(self.armed.values().map(|a| async move {
            a.lock().await.disarm().await;
        }))
        .await;
        join_all(self.hosts.iter().map(|h| h.close())).await;
    }

    /// The directory of the file, as the SFTP server is asked to open it.
    fn dir(&self) -> &str {
        match self.path.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &self.path[..i],
        }
    }

    /// The run-specific name stage keeps the old file under.
    fn keep_name(&self, run: &RunId) -> String {
        let name = self.path.rsplit('/').next().unwrap_or("");
        let dir = self.dir().trim_end_matches('/');
        format!("{dir}/.{name}.prev.{}", run_tag(run))
    }

    /// Starts the SFTP server on `h` and opens the directory: everything the rename
    /// needs, before the window.
    async fn open_sftp(
        &self,
        h: &dyn RemoteShell,
    ) -> Result<Option<(shell::SftpSession, Vec<u8>)>> {
        let Some(mut remote) = h.sftp(self.sudo, self.sftp_timeout).await? else {
            return Ok(None);
        };
        if !remote.channel.supports(crate::sftp::POSIX_RENAME) {
            return Err(Error::unsupported(format!(
                "the SFTP server does not offer {}",
                crate::sftp::POSIX_RENAME
            )));
        }
        if !remote.channel.supports(crate::sftp::FSYNC) {
            return Err(Error::unsupported(format!(
                "the SFTP server does not offer {}",
                crate::sftp::FSYNC
            )));
        }
        let dir = remote.channel.open_read(self.dir()).await?;
        Ok(Some((remote, dir)))
    }

    /// The armed rename on one host. `None`: not armed for this staged file (use
    /// the script); `Some(Err)`: the rename failed or its answer was lost.
    async fn sftp_activate(&self, label: &str, run: &RunId, fp: &str) -> Option<Result<()>> {
        let slot = self.armed.get(label)?;
        let mut a = slot.lock().await;
        let want = (run_tag(run), fp.to_string());
        if a.busy || a.remote.is_none() || a.ready.as_ref() != Some(&want) {
            return None;
        }
        let dir = a.dir.clone();
        a.busy = true;
        let new = format!("{}.new", self.path);
        let remote = a.remote.as_mut()?;
        let res = async {
            let (rename, sync) = remote
                .channel
                .send_rename(&new, &self.path, dir.as_deref())
                .await?;
            let st = remote.channel.status(rename).await?;
            Ok::<_, Error>((st, sync))
        }
        .await;
        a.busy = false;
        a.ready = None;
        match res {
            Ok((st, sync)) if st.ok() => {
                a.fsync = sync;
                Some(Ok(()))
            }
            Ok((st, _)) => {
                a.disarm().await;
                Some(Err(st.error(&format!(
                    "renaming {new} over {} on {label}",
                    self.path
                ))))
            }
            Err(e) => {
                a.remote = None;
                a.disarm().await;
                Some(Err(e))
            }
        }
    }

    /// After T1 over the armed session: the fsync's answer, the handle closed, the
    /// kept link moved to `.prev`. `None`: no session left (use the script).
    async fn sftp_tidy(&self, label: &str, keep: &str) -> Option<Result<()>> {
        let slot = self.armed.get(label)?;
        let mut a = slot.lock().await;
        if a.busy || a.remote.is_none() {
            return None;
        }
        let sync = a.fsync.take();
        let dir = a.dir.take();
        let prev = format!("{}.prev", self.path);
        let remote = a.remote.as_mut()?;
        let res = async {
            if let Some(id) = sync {
                let st = remote.channel.status(id).await?;
                if !st.ok() {
                    return Err(st.error(&format!("fsync of {}'s directory on {label}", self.path)));
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
        a.disarm().await;
        Some(res)
    }

    async fn script(
        &self,
        h: &dyn RemoteShell,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        let mut argv = vec!["/bin/sh", "-c", script, "vsync-orchestrate"];
        argv.extend_from_slice(args);
        let argv = with_sudo(self.sudo, &argv);
        let out = h.exec(&argv, stdin).await?;
        if self.sudo && !out.success() && sudo_refused(&out.stderr) {
            return Err(Error::permission(format!(
                "sudo -n refused on {}: {} (the login user needs a NOPASSWD sudoers rule for /bin/sh)",
                h.label(),
                out.stderr_line()
            )));
        }
        Ok(out)
    }

    /// [`Self::script`], with a non-zero exit turned into an error that says `what`
    /// failed on which host.
    async fn script_ok(
        &self,
        h: &dyn RemoteShell,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        what: &str,
    ) -> Result<Output> {
        let out = self.script(h, script, args, stdin).await?;
        if !out.success() {
            return Err(status_error(h.label(), what, &out));
        }
        Ok(out)
    }

    /// Runs `f` on every host concurrently, keeping each host's result.
    async fn each<'a, T, F, Fut>(&'a self, f: F) -> Vec<(String, Result<T>)>
    where
        F: Fn(&'a dyn RemoteShell) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        let futs = self.hosts.iter().map(|h| {
            let label = h.label().to_string();
            let fut = f(h.as_ref());
            async move { (label, fut.await) }
        });
        join_all(futs).await
    }

    async fn read_value(&self, h: &dyn RemoteShell) -> Result<Passphrase> {
        let out = self.script(h, READ_CURRENT, &[&self.path], None).await?;
        if !out.success() {
            return Err(status_error(
                h.label(),
                &format!("reading {}", self.path),
                &out,
            ));
        }
        to_passphrase(&out.stdout, h.label())
    }

    /// Reads what each host holds for `staged`: `(is_new, fingerprint, value)`.
    async fn read_staged_on(&self, h: &dyn RemoteShell) -> Result<(bool, String, Passphrase)> {
        let out = self.script(h, READ_STAGED, &[&self.path], None).await?;
        if !out.success() {
            return Err(status_error(
                h.label(),
                &format!("reading {}.new", self.path),
                &out,
            ));
        }
        let pos = out.stdout.iter().position(|b| *b == b'\n').ok_or_else(|| {
            Error::failed(format!(
                "unexpected output reading {}.new on {}",
                self.path,
                h.label()
            ))
        })?;
        let header = String::from_utf8_lossy(&out.stdout[..pos]).into_owned();
        let (which, fp) = header.split_once(' ').unwrap_or((header.as_str(), ""));
        let value = to_passphrase(&out.stdout[pos + 1..], h.label())?;
        Ok((which == "new", fp.to_string(), value))
    }

    /// The staged value as every host holds it, checked against the fingerprints
    /// recorded at stage time (where known), plus each host's fingerprint.
    async fn staged_everywhere(
        &self,
        staged: &Staged,
    ) -> Result<(Passphrase, BTreeMap<String, String>)> {
        let results = self.each(|h| self.read_staged_on(h)).await;
        let mut ok = Vec::new();
        let mut errs = Vec::new();
        for (label, r) in results {
            let known = fingerprint(staged, &label);
            match r {
                Ok((is_new, fp, value)) => match (is_new, known) {
                    (true, Some(k)) if k != fp => errs.push((
                        label,
                        Error::conflict(format!(
                            "{}.new was replaced since this run staged it",
                            self.path
                        )),
                    )),
                    (true, _) => ok.push((label, fp, value)),
                    (false, Some(k)) if k == fp => ok.push((label, fp, value)),
                    (false, _) => errs.push((
                        label,
                        Error::not_found(format!(
                            "nothing staged: {}.new does not exist",
                            self.path
                        )),
                    )),
                },
                Err(e) => errs.push((label, e)),
            }
        }
        if !errs.is_empty() {
            return Err(combine_errors("reading the staged value", errs, ok.len()));
        }
        let value = agree(
            "the staged value",
            ok.iter().map(|(l, _, v)| (l.clone(), v.clone())).collect(),
        )?;
        Ok((value, ok.into_iter().map(|(l, fp, _)| (l, fp)).collect()))
    }
}

#[async_trait::async_trait]
impl SecretStore for VpsFileStore {
    /// The file is read back over the same connection (`cat`, on stdout).
    fn capabilities(&self) -> vsync_orchestrate_api::StoreCapabilities {
        vsync_orchestrate_api::StoreCapabilities::ALL
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!("{} on {}", self.path, self.hosts().join(", ")),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        if let Some(l) = &self.local {
            return l.preflight();
        }
        // Open every master connection first, concurrently: later steps reuse them.
        let connected = self.each(|h| h.connect()).await;
        let failed: Vec<_> = connected
            .into_iter()
            .filter_map(|(l, r)| r.err().map(|e| (l, e)))
            .collect();
        if !failed.is_empty() {
            let n = self.hosts.len() - failed.len();
            return Err(combine_errors("connecting", failed, n));
        }
        // The checks and the SFTP session activation will use, on every host at once.
        let results = self
            .each(|h| async move {
                let check = async {
                    let out = self
                        .script_ok(h, PREFLIGHT, &[&self.path], None, "preflight")
                        .await?;
                    parse_preflight(&out.stdout, h.label())
                };
                let (check, sftp) = tokio::join!(check, self.open_sftp(h));
                let mut a = self.armed[h.label()].lock().await;
                a.disarm().await;
                match sftp {
                    Ok(Some((remote, dir))) => {
                        a.remote = Some(remote);
                        a.dir = Some(dir);
                        a.why_not = None;
                    }
                    Ok(None) => a.why_not = Some("no SFTP here".into()),
                    Err(e) => a.why_not = Some(e.chain()),
                }
                check
            })
            .await;
        let mut errs = Vec::new();
        let mut missing = Vec::new();
        let mut leftovers = Vec::new();
        let mut values: Vec<(String, Passphrase)> = Vec::new();
        let mut good = 0;
        for (label, r) in results {
            match r {
                Ok((staged, current)) => {
                    good += 1;
                    if staged {
                        leftovers.push(label.clone());
                    }
                    match current {
                        Some(v) => values.push((label, v)),
                        None => missing.push(label),
                    }
                }
                Err(e) => errs.push((label, e)),
            }
        }
        if !errs.is_empty() {
            return Err(combine_errors("preflight", errs, good));
        }
        let mut warnings = Vec::new();
        if !missing.is_empty() {
            warnings.push(format!(
                "{} does not exist yet on {} (activate will create it)",
                self.path,
                missing.join(", ")
            ));
        }
        if !leftovers.is_empty() {
            warnings.push(format!(
                "{}.new already exists on {} (left by an earlier run?); stage will replace it",
                self.path,
                leftovers.join(", ")
            ));
        }
        // Read once: the engine takes the current value from here when every host
        // holds the same one, and asks `read_current` (which names the odd hosts out)
        // otherwise.
        let current = if missing.is_empty() {
            match agree("the current value", values) {
                Ok(v) => Some(v),
                Err(e) => {
                    warnings.push(format!("{}: {}", self.path, e.message()));
                    None
                }
            }
        } else {
            None
        };
        let mut scripted = Vec::new();
        for (label, a) in &self.armed {
            if let Some(why) = &a.lock().await.why_not {
                scripted.push(label.clone());
                warnings.push(format!(
                    "{label}: activation falls back to a remote script, which starts processes inside the window ({why})"
                ));
            }
        }
        let n = self.hosts.len();
        let detail = format!(
            "{} on {n} host{}: present on {}{}; activation: {}",
            self.path,
            if n == 1 { "" } else { "s" },
            n - missing.len(),
            if self.sudo { " (sudo -n)" } else { "" },
            if scripted.is_empty() {
                "one SFTP rename per host".to_string()
            } else {
                format!("a remote script on {} of {n}", scripted.len())
            }
        );
        Ok(Preflight {
            detail,
            warnings,
            current,
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        if let Some(l) = &self.local {
            return l.read_current().map(Some);
        }
        let results = self.each(|h| self.read_value(h)).await;
        let mut ok = Vec::new();
        let mut errs = Vec::new();
        for (label, r) in results {
            match r {
                Ok(v) => ok.push((label, v)),
                Err(e) => errs.push((label, e)),
            }
        }
        if !errs.is_empty() {
            return Err(combine_errors(
                &format!("reading {}", self.path),
                errs,
                ok.len(),
            ));
        }
        agree("the current value", ok).map(Some)
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        check_value(new)?;
        if let Some(l) = &self.local {
            return l.stage(new, run, self.describe());
        }
        let mut input = Zeroizing::new(Vec::with_capacity(66 + new.expose().len()));
        input.extend_from_slice(new.sha256_hex().as_bytes());
        input.push(b'\n');
        input.extend_from_slice(new.expose().as_bytes());
        let input: &[u8] = &input;
        let keep = self.keep_name(run);
        let args = [
            self.path.as_str(),
            self.mode.as_str(),
            self.owner.as_str(),
            self.group.as_str(),
            self.chown.as_str(),
            keep.as_str(),
        ];
        let results = self
            .each(|h| async move {
                let out = self.script(h, STAGE, &args, Some(input)).await?;
                if !out.success() {
                    return Err(status_error(
                        h.label(),
                        &format!("writing {}.new", self.path),
                        &out,
                    ));
                }
                let text = out.stdout_text();
                let line = text.lines().last().unwrap_or("");
                match line.split_once(' ') {
                    Some((result @ ("written" | "unchanged"), fp)) => {
                        // Armed: the rename now waits on the open SFTP session.
                        let mut a = self.armed[h.label()].lock().await;
                        if a.remote.is_some() && !a.busy {
                            a.ready = Some((run_tag(run), fp.to_string()));
                        }
                        Ok((result.to_string(), fp.to_string()))
                    }
                    _ => Err(Error::failed(format!(
                        "unexpected output staging on {}",
                        h.label()
                    ))),
                }
            })
            .await;
        let mut hosts = serde_json::Map::new();
        let mut errs = Vec::new();
        for (label, r) in results {
            match r {
                Ok((result, fp)) => {
                    hosts.insert(label, json!({ "result": result, "fingerprint": fp }));
                }
                Err(e) => errs.push((label, e)),
            }
        }
        if !errs.is_empty() {
            // Hosts that did get the file keep an invisible `.new`: harmless, and the
            // next stage replaces it. The engine discards on a failed stage.
            return Err(combine_errors(
                &format!("staging {}.new", self.path),
                errs,
                hosts.len(),
            ));
        }
        Ok(Staged {
            target: self.describe(),
            run: run.clone(),
            version: format!("{}.new", self.path),
            previous: None,
            extra: json!({ "path": self.path, "hosts": hosts }),
        })
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        if let Some(l) = &self.local {
            return l.read_staged(staged);
        }
        self.staged_everywhere(staged).await.map(|(v, _)| v)
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        if let Some(l) = &self.local {
            return l.activate(staged);
        }
        // Normally one round: each host renames the file whose fingerprint stage
        // recorded. Without recorded fingerprints (a hand-made Staged, a host added
        // since), first read `.new` everywhere and insist every host holds the same.
        let mut fps: BTreeMap<String, String> = BTreeMap::new();
        let complete = self
            .hosts
            .iter()
            .all(|h| fingerprint(staged, h.label()).is_some());
        if complete {
            for h in &self.hosts {
                fps.insert(
                    h.label().to_string(),
                    fingerprint(staged, h.label()).unwrap_or_default(),
                );
            }
        } else {
            fps = self.staged_everywhere(staged).await?.1;
        }
        let fps = &fps;
        let results = self
            .each(|h| async move {
                let fp = fps.get(h.label()).map(String::as_str).unwrap_or_default();
                // The armed rename; if it failed or its answer was lost, the script
                // below reads the host's state and finishes or reports it.
                if let Some(Ok(())) = self.sftp_activate(h.label(), &staged.run, fp).await {
                    return Ok("activated".to_string());
                }
                let out = self.script(h, ACTIVATE, &[&self.path, fp], None).await?;
                if !out.success() {
                    return Err(status_error(
                        h.label(),
                        &format!("activating {}", self.path),
                        &out,
                    ));
                }
                Ok(out.stdout_text().trim().to_string())
            })
            .await;
        let mut done = Vec::new();
        let mut errs = Vec::new();
        for (label, r) in results {
            match r {
                Ok(_) => done.push(label),
                Err(e) => errs.push((label, e)),
            }
        }
        if !errs.is_empty() {
            let mut e = combine_errors(&format!("activating {}", self.path), errs, done.len());
            if !done.is_empty() {
                e = Error::new(
                    e.kind(),
                    format!("{}; active on {}", e.message(), done.join(", ")),
                );
            }
            return Err(e);
        }
        Ok(())
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        if let Some(l) = &self.local {
            return l.discard(staged);
        }
        let results = self
            .each(|h| async move {
                let fp = fingerprint(staged, h.label()).unwrap_or_default();
                if let Some(a) = self.armed.get(h.label()) {
                    a.lock().await.disarm().await;
                }
                let keep = self.keep_name(&staged.run);
                let what = format!("removing {}.new", self.path);
                self.script_ok(h, DISCARD, &[&self.path, &fp, &keep], None, &what)
                    .await
                    .map(drop)
            })
            .await;
        all_hosts(&format!("discarding {}.new", self.path), results)
    }

    /// The kept link becomes `<path>.prev`, the directory's fsync is confirmed and
    /// the SFTP sessions end. On this host: a kill while keeping `.prev` can leave
    /// a temp copy behind, removed here.
    async fn tidy(&self, staged: &Staged) -> Result<()> {
        if let Some(l) = &self.local {
            l.tidy();
            return Ok(());
        }
        let keep = self.keep_name(&staged.run);
        let keep = &keep;
        let results = self
            .each(|h| async move {
                if let Some(r) = self.sftp_tidy(h.label(), keep).await {
                    return r;
                }
                let what = format!("keeping {}.prev", self.path);
                self.script_ok(h, TIDY, &[&self.path, keep], None, &what)
                    .await
                    .map(drop)
            })
            .await;
        all_hosts("tidying after activation", results)
    }

    async fn close(&self) {
        VpsFileStore::close(self).await;
    }

    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        if let Some(local) = &self.local {
            return Some(local.activate_hint());
        }
        // The rename activation makes, by hand; idempotent, so one line serves
        // every host whichever of them already switched.
        let (new, path) = (format!("{}.new", self.path), &self.path);
        let remote = format!(
            "{}[ ! -e {new} ] || mv -f -- {new} {path}",
            if self.sudo { "sudo -n " } else { "" },
            new = shell_quote(&new),
            path = shell_quote(path),
        );
        let lines: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                let label = h.label();
                let (host, port) = match label.rsplit_once(':') {
                    Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p)),
                    _ => (label, None),
                };
                format!(
                    "ssh {}{} {}",
                    port.map(|p| format!("-p {p} ")).unwrap_or_default(),
                    shell_quote(host),
                    shell_quote(&remote)
                )
            })
            .collect();
        Some(lines.join("; "))
    }
}

/// The run id as it appears in a file name: only `[A-Za-z0-9._-]`, at most 64.
fn run_tag(run: &RunId) -> String {
    run.0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The preflight script's answer: whether `.new` exists, and the current value.
fn parse_preflight(stdout: &[u8], label: &str) -> Result<(bool, Option<Passphrase>)> {
    let mut staged = false;
    let mut rest = stdout;
    while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
        let line = &rest[..pos];
        let after = &rest[pos + 1..];
        match line {
            b"staged present" => staged = true,
            b"staged -" => {}
            b"current -" => return Ok((staged, None)),
            b"current" => return Ok((staged, Some(to_passphrase(after, label)?))),
            _ => break,
        }
        rest = after;
    }
    Err(Error::failed(format!(
        "unexpected preflight output on {label}"
    )))
}

fn fingerprint(staged: &Staged, label: &str) -> Option<String> {
    staged
        .extra
        .get("hosts")?
        .get(label)?
        .get("fingerprint")?
        .as_str()
        .map(str::to_string)
}

pub(crate) fn validate_path(p: &str) -> Result<()> {
    let name = p.rsplit('/').next().unwrap_or("");
    if !p.starts_with('/')
        || p.ends_with('/')
        || name.is_empty()
        || name == "."
        || name == ".."
        || p.len() > 1024
        || p.chars().any(|c| c.is_control())
    {
        return Err(Error::invalid_config(format!(
            "path {p:?} must be an absolute file path without control characters"
        )));
    }
    Ok(())
}

pub(crate) fn valid_account(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('-')
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'))
}

/// File content to a passphrase: trailing CR, LF, TAB and space are stripped, as the
/// vsync runtime libraries do for `VSYNC_PASSPHRASE_FILE`.
fn to_passphrase(bytes: &[u8], label: &str) -> Result<Passphrase> {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b'\t' | b' '))
        .map_or(0, |i| i + 1);
    match std::str::from_utf8(&bytes[..end]) {
        Ok(s) if !s.is_empty() => Ok(Passphrase::new(s.to_owned())),
        Ok(_) => Err(Error::failed(format!(
            "the passphrase file on {label} is empty"
        ))),
        Err(_) => Err(Error::failed(format!(
            "the passphrase file on {label} is not UTF-8"
        ))),
    }
}

/// All hosts must hold the same value; the error names the groups, never a value.
fn agree(what: &str, values: Vec<(String, Passphrase)>) -> Result<Passphrase> {
    let mut groups: Vec<(Passphrase, Vec<String>)> = Vec::new();
    for (label, v) in values {
        match groups.iter_mut().find(|(g, _)| g.same_as(&v)) {
            Some((_, labels)) => labels.push(label),
            None => groups.push((v, vec![label])),
        }
    }
    match groups.len() {
        0 => Err(Error::not_found(format!("no host holds {what}"))),
        1 => Ok(groups.remove(0).0),
        _ => {
            let shown: Vec<String> = groups
                .iter()
                .map(|(_, l)| format!("[{}]", l.join(", ")))
                .collect();
            Err(Error::conflict(format!(
                "hosts disagree on {what}: {}",
                shown.join(" vs ")
            )))
        }
    }
}

/// A non-zero exit of one of the scripts, as an error of the right kind.
fn status_error(label: &str, what: &str, out: &Output) -> Error {
    let msg = out.stderr_line();
    let kind = match out.code {
        Some(3) => ErrorKind::NotFound,
        Some(4) => ErrorKind::Permission,
        Some(5) => ErrorKind::Conflict,
        Some(6) => ErrorKind::Unsupported,
        Some(7) => ErrorKind::Temporary,
        _ if msg.contains("Permission denied") || msg.contains("Operation not permitted") => {
            ErrorKind::Permission
        }
        _ if msg.contains("No such file or directory") => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    };
    Error::new(kind, format!("{what} on {label}: {msg}"))
}

/// `Ok` when the step succeeded on every host; otherwise one error naming each
/// host where it failed.
fn all_hosts(what: &str, results: Vec<(String, Result<()>)>) -> Result<()> {
    let total = results.len();
    let errs: Vec<_> = results
        .into_iter()
        .filter_map(|(l, r)| r.err().map(|e| (l, e)))
        .collect();
    if errs.is_empty() {
        return Ok(());
    }
    let n = total - errs.len();
    Err(combine_errors(what, errs, n))
}

/// One error for a step that failed on some hosts, naming each of them.
pub(crate) fn combine_errors(what: &str, errs: Vec<(String, Error)>, succeeded: usize) -> Error {
    let total = errs.len() + succeeded;
    let kind = errs
        .iter()
        .map(|(_, e)| e.kind())
        .find(|k| *k != ErrorKind::Temporary)
        .unwrap_or(ErrorKind::Temporary);
    let names: Vec<&str> = errs.iter().map(|(l, _)| l.as_str()).collect();
    let details: Vec<String> = errs
        .iter()
        .map(|(l, e)| {
            let c = e.chain();
            let prefix = format!("{}: ", e.kind());
            let m = c.strip_prefix(&prefix).unwrap_or(&c).to_string();
            if m.contains(l.as_str()) {
                m
            } else {
                format!("{l}: {m}")
            }
        })
        .collect();
    Error::new(
        kind,
        format!(
            "{what} failed on {} of {total} host{} ({}): {}",
            errs.len(),
            if total == 1 { "" } else { "s" },
            names.join(", "),
            details.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::shell::LocalShell;
    use std::sync::Mutex;
    use std::time::Duration;

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
        let store =
            VpsFileStore::with_shells(cfg, vec![rec.clone() as Arc<dyn RemoteShell>]).unwrap();
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
        store.sftp_timeout = Duration::from_millis(500);
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
    fn trailing_whitespace_is_stripped_like_the_runtimes() {
        let p = to_passphrase(b"abc def\r\n\t \n", "h").unwrap();
        assert_eq!(p.expose(), "abc def");
        assert!(to_passphrase(b"\n\n", "h").is_err());
        assert!(to_passphrase(&[0xff, 0xfe], "h").is_err());
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

    #[test]
    fn disagreeing_hosts_are_named_without_values() {
        let e = agree(
            "the current value",
            vec![
                ("a".into(), Passphrase::from("value-one-xyz")),
                ("b".into(), Passphrase::from("value-two-xyz")),
                ("c".into(), Passphrase::from("value-one-xyz")),
            ],
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("[a, c] vs [b]"), "{}", e.message());
        assert!(!e.message().contains("value-"));
    }
}
