//! The store on hosts reached through a shell (SSH, or this machine's `/bin/sh` in
//! tests): every step is one of the fixed [`scripts`](super::scripts) on all hosts
//! at once, except the rename, which goes over the [`armed_sftp`] session where a
//! host has one.
//! Values travel on stdin and stdout only; per-host results are combined so an
//! error names every host where a step failed.

use super::armed_sftp::{self, Armed};
use super::scripts::{ACTIVATE, DISCARD, PREFLIGHT, READ_CURRENT, READ_STAGED, STAGE, TIDY};
use crate::config::VpsFileConfig;
use crate::fanout::{all_hosts, combine_errors, each};
use crate::shell::{sudo_refused, with_sudo, Output, RemoteShell};
use futures_util::future::join_all;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    shell_quote, Error, ErrorKind, Passphrase, Preflight, Result, RunId, Staged, Target,
};
use zeroize::Zeroizing;

pub(super) struct Remote {
    path: String,
    mode: String,
    owner: String,
    group: String,
    chown: String,
    sudo: bool,
    hosts: Vec<Arc<dyn RemoteShell>>,
    /// Per host (by label), the armed SFTP activation; one lock per host so the
    /// hosts' renames go out concurrently.
    armed: BTreeMap<String, Arc<tokio::sync::Mutex<Armed>>>,
    /// How long an SFTP request may wait for its answer.
    pub(super) sftp_timeout: Duration,
}

impl Remote {
    /// `cfg` and `mode` are already validated.
    pub(super) fn new(cfg: VpsFileConfig, mode: u32, hosts: Vec<Arc<dyn RemoteShell>>) -> Self {
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
        Remote {
            path: cfg.path,
            mode: format!("{mode:o}"),
            owner,
            group,
            chown,
            sudo: cfg.sudo,
            hosts,
            armed,
            sftp_timeout: cfg.ssh.command_timeout.min(Duration::from_secs(10)),
        }
    }

    pub(super) fn labels(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.label().to_string()).collect()
    }

    /// Ends the SFTP sessions, then closes the master connections, every host at
    /// once (dropping a session closes its master synchronously, one after another).
    pub(super) async fn close(&self) {
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

    /// The armed rename on one host. `None`: not armed for this staged file (use
    /// the script); `Some(Err)`: the rename failed or its answer was lost.
    async fn sftp_activate(&self, label: &str, run: &RunId, fp: &str) -> Option<Result<()>> {
        let slot = self.armed.get(label)?;
        let mut a = slot.lock().await;
        a.rename(label, &self.path, run_tag(run), fp).await
    }

    /// After T1 over the armed session. `None`: no session left (use the script).
    async fn sftp_tidy(&self, label: &str, keep: &str) -> Option<Result<()>> {
        let slot = self.armed.get(label)?;
        let mut a = slot.lock().await;
        a.tidy(label, &self.path, keep).await
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
        let results = each(&self.hosts, |h| self.read_staged_on(h)).await;
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

    pub(super) async fn preflight(&self) -> Result<Preflight> {
        // Open every master connection first, concurrently: later steps reuse them.
        let connected = each(&self.hosts, |h| h.connect()).await;
        let failed: Vec<_> = connected
            .into_iter()
            .filter_map(|(l, r)| r.err().map(|e| (l, e)))
            .collect();
        if !failed.is_empty() {
            let n = self.hosts.len() - failed.len();
            return Err(combine_errors("connecting", failed, n));
        }
        // The checks and the SFTP session activation will use, on every host at once.
        let results = each(&self.hosts, |h| async move {
            let check = async {
                let out = self
                    .script_ok(h, PREFLIGHT, &[&self.path], None, "preflight")
                    .await?;
                parse_preflight(&out.stdout, h.label())
            };
            let sftp = armed_sftp::open(h, self.sudo, self.sftp_timeout, self.dir());
            let (check, sftp) = tokio::join!(check, sftp);
            self.armed[h.label()].lock().await.rearm(sftp).await;
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
            if let Some(why) = a.lock().await.why_not() {
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

    pub(super) async fn read_current(&self) -> Result<Passphrase> {
        let results = each(&self.hosts, |h| self.read_value(h)).await;
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
        agree("the current value", ok)
    }

    /// `new` has passed `check_value`; `target` is the store's description.
    pub(super) async fn stage(
        &self,
        new: &Passphrase,
        run: &RunId,
        target: Target,
    ) -> Result<Staged> {
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
        let results = each(&self.hosts, |h| async move {
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
                    self.armed[h.label()]
                        .lock()
                        .await
                        .ready_for(run_tag(run), fp.to_string());
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
            target,
            run: run.clone(),
            version: format!("{}.new", self.path),
            previous: None,
            extra: json!({ "path": self.path, "hosts": hosts }),
        })
    }

    pub(super) async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        self.staged_everywhere(staged).await.map(|(v, _)| v)
    }

    pub(super) async fn activate(&self, staged: &Staged) -> Result<()> {
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
        let results = each(&self.hosts, |h| async move {
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

    pub(super) async fn discard(&self, staged: &Staged) -> Result<()> {
        let results = each(&self.hosts, |h| async move {
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

    pub(super) async fn tidy(&self, staged: &Staged) -> Result<()> {
        let keep = self.keep_name(&staged.run);
        let keep = &keep;
        let results = each(&self.hosts, |h| async move {
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

    /// The rename activation makes, by hand; idempotent, so one line serves
    /// every host whichever of them already switched.
    pub(super) fn activate_hint(&self) -> String {
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
        lines.join("; ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_stripped_like_the_runtimes() {
        let p = to_passphrase(b"abc def\r\n\t \n", "h").unwrap();
        assert_eq!(p.expose(), "abc def");
        assert!(to_passphrase(b"\n\n", "h").is_err());
        assert!(to_passphrase(&[0xff, 0xfe], "h").is_err());
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
