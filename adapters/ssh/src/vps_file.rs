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
    Error, ErrorKind, Passphrase, Preflight, Result, RunId, SecretStore, Staged, Target,
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
for c in mktemp sha256sum stat sync mv cp cat chmod chown dirname basename rm; do
  command -v "$c" >/dev/null 2>&1 || { echo "required command $c is missing" >&2; exit 6; }
done
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
[ -w "$d" ] && [ -x "$d" ] || { echo "directory $d is not writable by $(id -un)" >&2; exit 4; }
if [ -f "$p" ]; then
  [ -r "$p" ] || { echo "$p is not readable by $(id -un)" >&2; exit 4; }
  h=$(sha256sum <"$p") || exit 1
  echo "current ${h%% *}"
elif [ -e "$p" ]; then
  echo "$p is not a regular file" >&2; exit 6
else
  echo "current -"
fi
if [ -e "$p.new" ]; then echo "staged present"; else echo "staged -"; fi
"#;

/// stdin: the value's SHA-256 (hex) on the first line, then the value itself.
const STAGE: &str = r#"set -eu
p=$1; mode=$2; owner=$3; group=$4; spec=$5
n="$p.new"; d=$(dirname -- "$p"); b=$(basename -- "$p")
IFS= read -r want
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 3; }
if [ -f "$n" ] && [ ! -L "$n" ]; then
  have=$(sha256sum <"$n"); have=${have%% *}
  if [ "$have" = "$want" ] && [ "$(stat -c %a -- "$n")" = "$mode" ] &&
     { [ -z "$owner" ] || [ "$(stat -c %U -- "$n")" = "$owner" ] || [ "$(stat -c %u -- "$n")" = "$owner" ]; } &&
     { [ -z "$group" ] || [ "$(stat -c %G -- "$n")" = "$group" ] || [ "$(stat -c %g -- "$n")" = "$group" ]; }; then
    cat >/dev/null
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

/// args: path, the fingerprint of the staged file or "" when unknown.
const DISCARD: &str = r#"set -eu
p=$1; want=$2; n="$p.new"
[ -e "$n" ] || { echo absent; exit 0; }
if [ -n "$want" ] && [ "$(stat -c '%d:%i:%y' -- "$n")" != "$want" ]; then
  echo "$n is not the file this run staged (staged again since); left in place" >&2
  exit 5
fi
rm -f -- "$n"
d=$(dirname -- "$p"); sync "$d" 2>/dev/null || true
echo removed
"#;

/// A passphrase file on one or more hosts (or on this host).
///
/// * `stage` writes `<path>.new` on every host: a temp file in the same directory
///   (mktemp, umask 077), the value from stdin, its SHA-256 checked before anything
///   is renamed, chmod (default 0600), chown, sync, `mv` to `.new`. Re-staging the
///   same value is a no-op.
/// * `activate` copies `<path>` to `<path>.prev` and renames `.new` over `<path>`,
///   on all hosts concurrently; hosts where it failed are named in the error.
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
        Ok(VpsFileStore {
            path: cfg.path,
            mode: format!("{mode:o}"),
            owner,
            group,
            chown,
            sudo: cfg.sudo,
            hosts,
            local: None,
        })
    }

    /// The hosts, as named in messages (`host`, `host:port` or `localhost`).
    pub fn hosts(&self) -> Vec<String> {
        if self.local.is_some() {
            return vec![vps_local::LABEL.to_owned()];
        }
        self.hosts.iter().map(|h| h.label().to_string()).collect()
    }

    /// Closes the master connections (they are also closed on drop).
    pub async fn close(&self) {
        join_all(self.hosts.iter().map(|h| h.close())).await;
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
        let results = self
            .each(|h| async move {
                let out = self.script(h, PREFLIGHT, &[&self.path], None).await?;
                if !out.success() {
                    return Err(status_error(h.label(), "preflight", &out));
                }
                Ok(out.stdout_text())
            })
            .await;
        let mut errs = Vec::new();
        let mut missing = Vec::new();
        let mut leftovers = Vec::new();
        let mut by_hash: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut good = 0;
        for (label, r) in results {
            match r {
                Ok(text) => {
                    good += 1;
                    for line in text.lines() {
                        match line.split_once(' ') {
                            Some(("current", "-")) => missing.push(label.clone()),
                            Some(("current", h)) => by_hash
                                .entry(h.to_string())
                                .or_default()
                                .push(label.clone()),
                            Some(("staged", "present")) => leftovers.push(label.clone()),
                            _ => {}
                        }
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
        if by_hash.len() > 1 {
            let groups: Vec<String> = by_hash
                .values()
                .map(|v| format!("[{}]", v.join(", ")))
                .collect();
            warnings.push(format!(
                "{} differs between hosts: {}",
                self.path,
                groups.join(" vs ")
            ));
        }
        let n = self.hosts.len();
        let detail = format!(
            "{} on {n} host{}: present on {}{}",
            self.path,
            if n == 1 { "" } else { "s" },
            n - missing.len(),
            if self.sudo { " (sudo -n)" } else { "" }
        );
        Ok(Preflight { detail, warnings })
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
        let args = [
            self.path.as_str(),
            self.mode.as_str(),
            self.owner.as_str(),
            self.group.as_str(),
            self.chown.as_str(),
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
                let out = self.script(h, DISCARD, &[&self.path, &fp], None).await?;
                if !out.success() {
                    return Err(status_error(
                        h.label(),
                        &format!("removing {}.new", self.path),
                        &out,
                    ));
                }
                Ok(())
            })
            .await;
        let total = results.len();
        let errs: Vec<_> = results
            .into_iter()
            .filter_map(|(l, r)| r.err().map(|e| (l, e)))
            .collect();
        if !errs.is_empty() {
            let n = total - errs.len();
            return Err(combine_errors(
                &format!("discarding {}.new", self.path),
                errs,
                n,
            ));
        }
        Ok(())
    }

    /// A kill while keeping `.prev` can leave a temp copy behind on this host; the
    /// scripts over SSH clean theirs up with a trap.
    async fn tidy(&self, _staged: &Staged) -> Result<()> {
        if let Some(l) = &self.local {
            l.tidy();
        }
        Ok(())
    }

    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        self.local.as_ref().map(LocalFile::activate_hint)
    }
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
