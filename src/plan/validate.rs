//! Static checks: fast, no network, for `validate` in CI on plan repositories.

use super::model::*;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line and column.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl Problem {
    pub fn error(file: &Path, at: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            file: file.to_owned(),
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.at {
            Some((l, c)) => write!(
                f,
                "{}:{l}:{c}: {what}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {what}: {}", self.file.display(), self.message),
        }
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + (ca != *cb) as usize)
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Turns serde's messages into ones that say how to fix the plan.
pub(super) fn from_toml_error(file: &Path, source: &str, e: &toml::de::Error) -> Problem {
    let msg = e.message().trim().to_owned();
    let backticked: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    // Tagged tables are buffered before they are read, so serde reports the table,
    // not the key: point at the offending key's own line when it is there.
    let at = e.span().map(|s| {
        let key_line = (msg.starts_with("unknown field") && !backticked.is_empty())
            .then(|| find_key_line(source, s.start, backticked[0]))
            .flatten();
        line_col(source, key_line.unwrap_or(s.start))
    });
    let mut out = msg.clone();
    if (msg.starts_with("unknown field") || msg.starts_with("unknown variant"))
        && backticked.len() > 1
    {
        if let Some(s) = nearest(backticked[0], backticked[1..].iter().copied()) {
            out = format!("{msg}; did you mean `{s}`?");
        }
    } else if msg.contains("untagged enum OldSource") {
        out = "passphrase.old must be \"store\", \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }".into();
    } else if msg.contains("untagged enum NewSource") {
        out = "passphrase.new must be { generate = { length = N } }, \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }".into();
    } else if msg.contains("untagged enum ValueSource") {
        out = "expected a string, { env = \"VAR\" } or { file = \"path\" }".into();
    } else if msg.contains("untagged enum HostEntry") {
        out = "a host is \"name\" or { host = \"name\", port = 22, user = \"…\", identity_file = \"…\", known_hosts_file = \"…\" }".into();
    }
    Problem::error(file, at, out)
}

/// Byte offset of the first line at or after `from` that assigns `key`.
fn find_key_line(source: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = source[..from.min(source.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    for line in source[offset..].split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// Where `key = ` first appears after the header `[section]` (best effort).
fn locate(source: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    if key.starts_with('[') {
        return source.find(key).map(|i| line_col(source, i));
    }
    let start = if section.is_empty() {
        0
    } else {
        source.find(&format!("[{section}]")).unwrap_or(0)
    };
    let rest = &source[start..];
    let mut offset = start;
    for line in rest.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return Some(line_col(source, offset + (line.len() - t.len())));
        }
        offset += line.len();
    }
    None
}

/// Finds the n-th `[[name]]` table header.
fn locate_table(source: &str, name: &str, n: usize) -> Option<(usize, usize)> {
    let header = format!("[[{name}]]");
    let mut from = 0;
    for _ in 0..=n {
        let i = source[from..].find(&header)? + from;
        from = i + header.len();
        if from > source.len() {
            return None;
        }
    }
    Some(line_col(source, from - header.len()))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like \"90s\", \"5m\" or \"80d\": {e}"))
}

struct Checker<'a> {
    file: &'a Path,

    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn err(&mut self, at: Option<(usize, usize)>, msg: impl Into<String>) {
        self.problems.push(Problem::error(self.file, at, msg));
    }
    fn warn(&mut self, at: Option<(usize, usize)>, msg: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            file: self.file.to_owned(),
            at,
            message: msg.into(),
        });
    }
    fn duration(&mut self, at: Option<(usize, usize)>, what: &str, v: &Option<String>) {
        if let Some(s) = v {
            if let Err(e) = parse_duration(s) {
                self.err(at, format!("{what}: {e}"));
            }
        }
    }
    fn mode(&mut self, at: Option<(usize, usize)>, v: &Option<String>) {
        if let Some(m) = v {
            match u32::from_str_radix(m, 8) {
                Ok(bits) if bits & 0o007 != 0 => self.err(
                    at,
                    format!(
                        "mode {m} gives others access to the passphrase; use \"0600\" or \"0640\""
                    ),
                ),
                Ok(bits) if bits <= 0o777 => {}
                _ => self.err(
                    at,
                    format!("mode {m:?} is not an octal file mode like \"0600\""),
                ),
            }
        }
    }
}

pub(super) fn check(file: &Path, source: &str, plan: &Plan) -> Vec<Problem> {
    let mut c = Checker {
        file,
        problems: Vec::new(),
    };
    let env_ok = plan
        .env
        .chars()
        .next()
        .is_some_and(|ch| ch.is_ascii_lowercase())
        && plan
            .env
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
    if !env_ok {
        c.err(
            locate(source, "", "env"),
            format!(
                "env {:?} must match ^[a-z][a-z0-9_-]*$ (as vsync requires)",
                plan.env
            ),
        );
    }

    let v = &plan.vault;
    let vat = |k| locate(source, "vault", k);
    match (&v.bucket, &v.dir) {
        (Some(_), Some(_)) => c.err(
            vat("dir"),
            "set either vault.bucket (S3) or vault.dir (local directory), not both",
        ),
        (None, None) => c.err(
            locate(source, "", "[vault]"),
            "vault needs bucket = \"…\" (S3) or dir = \"…\" (local directory)",
        ),
        _ => {}
    }
    if !v.prefix.is_empty() && !v.prefix.ends_with('/') {
        c.err(
            vat("prefix"),
            format!(
                "vault.prefix {:?} must end with \"/\" (try \"{}/\")",
                v.prefix, v.prefix
            ),
        );
    }
    let salt_sources = [v.salt.is_some(), v.config.is_some(), v.cli_config.is_some()];
    match salt_sources.iter().filter(|b| **b).count() {
        0 => c.err(
            locate(source, "", "[vault]"),
            "the vault's salt is needed to re-encrypt: set vault.salt = { env = \"VSYNC_SALT\" }, vault.config = { env = \"VSYNC_CONFIG\" } or vault.cli_config = \"~/.config/vsync/<repo>/env_<env>\"",
        ),
        1 => {}
        _ => c.err(vat("salt"), "set only one of vault.salt, vault.config and vault.cli_config"),
    }
    c.duration(vat("timeout"), "vault.timeout", &v.timeout);
    if v.iterations == Some(0) {
        c.err(
            vat("iterations"),
            "vault.iterations must be positive (vsync uses 600000)",
        );
    }
    if v.endpoint.is_some() && v.bucket.is_none() {
        c.err(
            vat("endpoint"),
            "vault.endpoint only applies to S3 vaults (vault.bucket)",
        );
    }
    if v.audit && v.repo.is_none() {
        let first = v.prefix.split('/').next().unwrap_or("");
        if first.is_empty() {
            c.err(
                vat("audit"),
                "audit rows go to <repo>/<env>/audit.csv: set vault.repo, or audit = false",
            );
        } else if v.prefix != format!("{first}/{}/", plan.env) {
            c.warn(
                vat("prefix"),
                format!(
                    "prefix {:?} is not <repo>/<env>/ ({first}/{}/): upstream push/pull read a different place; audit rows go to {first}/{}/audit.csv (set vault.repo to change)",
                    v.prefix, plan.env, plan.env
                ),
            );
        }
    }

    let p = &plan.passphrase;
    let pat = |k| locate(source, "passphrase", k);
    if let OldSource::Keyword(k) = &p.old {
        if !["store", "prompt", "stdin"].contains(&k.as_str()) {
            c.err(pat("old"), "passphrase.old is not \"store\", \"prompt\" or \"stdin\": a plan never contains a passphrase; use { env = \"VAR\" }, { file = \"path\" } or { command = [...] }");
        }
    }
    if let OldSource::Command { command } = &p.old {
        if command.is_empty() {
            c.err(pat("old"), "passphrase.old command is empty");
        }
    }
    match &p.new {
        NewSource::Keyword(k) if !["prompt", "stdin"].contains(&k.as_str()) => c.err(
            pat("new"),
            "passphrase.new is not \"prompt\" or \"stdin\": a plan never contains a passphrase; use { generate = { length = 32 } }, { env = \"VAR\" } or { file = \"path\" }",
        ),
        NewSource::Generate { generate } if generate.length < 12 => {
            c.err(pat("new"), format!("a generated passphrase of {} characters is too short: the minimum is 12, use 32", generate.length))
        }
        NewSource::Generate { generate } if generate.length < 20 => c.warn(
            pat("new"),
            format!("{} characters passes rotate, but the vsync CLI refuses keys under 20 characters", generate.length),
        ),
        NewSource::Generate { generate } if generate.length > 256 => {
            c.err(pat("new"), "generate.length above 256 is not useful")
        }
        NewSource::Command { command } if command.is_empty() => c.err(pat("new"), "passphrase.new command is empty"),
        _ => {}
    }
    if p.note.as_ref().is_some_and(|n| n.len() > 1024) {
        c.err(
            pat("note"),
            "passphrase.note is longer than 1024 characters",
        );
    }
    let mut meta: Vec<(String, String)> =
        p.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(n) = &p.note {
        meta.insert(0, ("note".into(), n.clone()));
    }
    if crate::vault::audit::user_meta_len(&meta) > crate::vault::audit::META_CAP {
        c.err(
            pat("meta"),
            "note and meta together exceed the audit log's 2048-byte meta cap",
        );
    }

    if plan.stores.is_empty() {
        c.err(None, "no [[store]]: at least one secret store must receive the new passphrase, or apps cannot boot after rotation");
    }
    for (i, s) in plan.stores.iter().enumerate() {
        let at = locate_table(source, "store", i);
        match s {
            StoreSpec::File(f) => {
                c.mode(at, &f.mode);
                if !f.path.is_absolute() {
                    c.warn(
                        at,
                        format!(
                            "file store path {} is relative to the working directory",
                            f.path.display()
                        ),
                    );
                }
            }
            StoreSpec::VpsFile(f) => {
                c.mode(at, &f.mode);
                if f.hosts.is_empty() {
                    c.err(at, "vps_file needs at least one host");
                }
                if !f.path.starts_with('/') {
                    c.err(at, format!("vps_file path {:?} must be absolute", f.path));
                }
            }
            StoreSpec::GcpSecretManager(g) => {
                if g.alias.as_deref() == Some("latest") {
                    c.err(at, "alias \"latest\" cannot be staged: apps must read an alias such as \"current\"");
                }
            }
            StoreSpec::AwsSecretsManager(a) => c.duration(at, "timeout", &a.timeout),
            StoreSpec::Vercel(_) => {}
        }
    }
    for (i, r) in plan.restarts.iter().enumerate() {
        let at = locate_table(source, "restart", i);
        match r {
            RestartSpec::Command(cmd) => {
                c.duration(at, "timeout", &cmd.timeout);
                if cmd.targets.is_empty() {
                    c.err(at, "a command restarter needs at least one target");
                }
                let mut names = std::collections::BTreeSet::new();
                for t in &cmd.targets {
                    if t.argv.is_empty() {
                        c.err(at, format!("target {:?} has an empty argv", t.name));
                    }
                    if !names.insert(&t.name) {
                        c.err(at, format!("target name {:?} appears twice", t.name));
                    }
                }
            }
            RestartSpec::Systemd(s) => {
                c.duration(at, "timeout", &s.timeout);
                c.duration(at, "pause", &s.pause);
                c.duration(at, "settle", &s.settle);
                if s.hosts.is_empty() != s.local {
                    c.err(
                        at,
                        "systemd needs hosts = [...] or local = true (one of them)",
                    );
                }
                if s.units.is_empty() {
                    c.err(at, "systemd needs at least one unit");
                }
                if s.batch_size == Some(0) {
                    c.err(at, "batch_size must be at least 1");
                }
            }
            RestartSpec::Kubernetes(k) => c.duration(at, "timeout", &k.timeout),
            RestartSpec::Ecs(e) => c.duration(at, "timeout", &e.timeout),
            RestartSpec::CloudRun(r) => c.duration(at, "timeout", &r.timeout),
            RestartSpec::Fly(f) => c.duration(at, "timeout", &f.timeout),
            RestartSpec::Vercel(v) => c.duration(at, "timeout", &v.timeout),
        }
    }
    let vt = |k| locate(source, "verify", k);
    c.duration(vt("timeout"), "verify.timeout", &plan.verify.timeout);
    c.duration(vt("interval"), "verify.interval", &plan.verify.interval);
    for u in &plan.verify.health {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            c.err(
                vt("health"),
                format!("health URL {u:?} must start with http:// or https://"),
            );
        }
    }
    if plan.verify.samples == Some(0) {
        c.err(vt("samples"), "verify.samples must be at least 1");
    }
    if let Some(s) = &plan.schedule {
        if let Err(e) = parse_duration(&s.min_age) {
            c.err(
                locate(source, "schedule", "min_age"),
                format!("schedule.min_age: {e}"),
            );
        }
    }
    if plan.restarts.is_empty() {
        c.warn(None, "no [[restart]]: apps keep running with the passphrase in memory and pick up the new one only when they next boot");
    }
    c.problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_typos_only() {
        let keys = ["secret_id", "region", "endpoint", "profile", "json_key"];
        assert_eq!(nearest("secretid", keys), Some("secret_id"));
        assert_eq!(nearest("regoin", keys), Some("region"));
        assert_eq!(nearest("totally_else", keys), None);
    }
}
