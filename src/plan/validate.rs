//! Static checks: fast, no network, for `validate` in CI on plan repositories.

use super::model::*;
use super::nearest::nearest;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vsync_orchestrate_api::{Finding, Severity as AdapterSeverity};

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

/// At most this many bytes of one message: values are quoted in messages, and a plan
/// may hold a value of a megabyte.
pub const MAX_MESSAGE: usize = 1000;
/// At most this many problems per plan; the rest are counted in one last line.
pub const MAX_PROBLEMS: usize = 40;

impl Problem {
    pub fn error(file: &Path, at: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            file: file.to_owned(),
            at,
            message: bounded(message.into()),
        }
    }
}

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
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

pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Turns serde's messages into ones that say how to fix the plan.
pub(super) fn from_toml_error(file: &Path, source: &str, e: &toml::de::Error) -> Problem {
    // One line per problem: toml puts what it expected on a line of its own.
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    // toml gives no message for some errors (`key =` at the end of the file).
    let msg = if msg.is_empty() {
        "invalid TOML here: a value is missing or the document ends too early".to_owned()
    } else {
        msg
    };
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
    // A whole-document error (a missing top-level key) has no span: the document
    // starts at 1:1.
    let mut at = at.or(Some((1, 1)));
    if msg.starts_with("unknown variant") && !backticked.is_empty() {
        // A type this tree knows but this build leaves out names its feature; any
        // other is a typo of one of every known type.
        if let Some(why) = crate::adapters::not_built(backticked[0]) {
            out = why;
        } else {
            let known: Vec<&str> = crate::adapters::known().map(|(t, _, _)| t).collect();
            if let Some(s) = nearest(backticked[0], known) {
                out = format!("{msg}; did you mean `{s}`?");
            }
        }
    } else if msg.starts_with("unknown field") && backticked.len() > 1 {
        if let Some(s) = nearest(backticked[0], backticked[1..].iter().copied()) {
            out = format!("{msg}; did you mean `{s}`?");
        }
    } else if msg.contains("untagged enum RawSource") {
        // A source that is neither a string nor a table: say which source it is.
        let key = e
            .span()
            .and_then(|s| key_before(source, s.start))
            .unwrap_or("");
        out = match key {
            "old" => OLD_SOURCE.to_owned(),
            "new" => NEW_SOURCE.to_owned(),
            _ => VALUE_SOURCE.to_owned(),
        };
    } else if msg.contains("untagged enum OldSource") {
        out = OLD_SOURCE.into();
    } else if msg.contains("untagged enum NewSource") {
        out = NEW_SOURCE.into();
    } else if msg.contains("untagged enum ValueSource") {
        out = VALUE_SOURCE.into();
    } else if msg.contains("untagged enum HostEntry") {
        out = "a host is \"name\" or { host = \"name\", port = 22, user = \"…\", identity_file = \"…\", known_hosts_file = \"…\" }".into();
    } else if let (Some(value), Some(span)) = (quoted_value(&msg), e.span()) {
        // A value a type refused (a duration, a mode, a number given as a string):
        // serde names the value, not the key, and tagged tables report the whole
        // table; find the key that holds the value, on its line or in the table.
        if let Some((key, offset)) = find_value_key(source, span.start, span.end, value) {
            at = Some(line_col(source, offset));
            out = if msg.contains("expected a duration") {
                format!("{key}: {value:?} is not a duration like \"90s\", \"5m\" or \"80d\"")
            } else if msg.starts_with(&key) {
                msg.clone()
            } else {
                format!("{key}: {msg}")
            };
            if is_passphrase_key(&key) {
                out = super::model::redact_strings(&out);
            }
        }
    }
    if msg.contains("PassphraseSection") || msg.contains("struct Generate") {
        // `passphrase = "…"`, `generate = "…"`: the string may be the passphrase.
        out = super::model::redact_strings(&out);
    }
    Problem::error(file, at, out)
}

const OLD_SOURCE: &str = "passphrase.old must be \"store\", \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }";
const NEW_SOURCE: &str = "passphrase.new must be { generate = { length = N } }, \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }";
const VALUE_SOURCE: &str = "expected a string, { env = \"VAR\" } or { file = \"path\" }";

/// The key assigned just before `offset` on its line (`old = ` → `old`, also in an
/// inline table or after a dotted key).
fn key_before(source: &str, offset: usize) -> Option<&str> {
    let offset = (0..=offset.min(source.len()))
        .rev()
        .find(|i| source.is_char_boundary(*i))?;
    let line_start = source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before = source[line_start..offset].trim_end().strip_suffix('=')?;
    let key = before
        .trim_end()
        .rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace())
        .next()?;
    Some(
        key.rsplit('.')
            .next()
            .unwrap_or(key)
            .trim_matches(|c| c == '"' || c == '\''),
    )
}

/// Keys whose string value may be a passphrase written into the plan by mistake.
fn is_passphrase_key(key: &str) -> bool {
    let key = key.rsplit('.').next().unwrap_or(key).trim_matches('"');
    ["passphrase", "old", "new", "generate"].contains(&key)
}

/// The first `"…"`-quoted value in a serde message.
fn quoted_value(msg: &str) -> Option<&str> {
    let start = msg.find('"')? + 1;
    let len = msg[start..].find('"')?;
    Some(&msg[start..start + len])
}

/// The key (and its line's offset) whose value is the string `value`, between
/// `from` and `to`.
fn find_value_key(source: &str, from: usize, to: usize, value: &str) -> Option<(String, usize)> {
    let mut offset = source[..from.min(source.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let quoted = format!("\"{value}\"");
    for line in source[offset..to.max(from).min(source.len())].split_inclusive('\n') {
        let t = line.trim_start();
        if let Some((k, v)) = t.split_once('=') {
            if v.contains(&quoted) {
                return Some((k.trim().to_owned(), offset + (line.len() - t.len())));
            }
        }
        offset += line.len();
    }
    None
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

/// Where `key = ` first appears after the header `[section]` (best effort); when
/// it is not there (an inline table, a dotted key), where the section is.
fn locate(source: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    locate_key(source, section, key).or_else(|| locate_section(source, section))
}

/// Byte offsets of the lines that start (after blanks) with `header`, in order: a
/// table header, not the same text in a comment or a string.
fn headers<'a>(source: &'a str, header: &'a str) -> impl Iterator<Item = usize> + 'a {
    let mut offset = 0;
    source.split_inclusive('\n').filter_map(move |line| {
        let start = offset;
        offset += line.len();
        let t = line.trim_start();
        t.starts_with(header)
            .then(|| start + (line.len() - t.len()))
    })
}

/// `[section]`, or the line that assigns `section = { … }` or `section.key = …`.
fn locate_section(source: &str, section: &str) -> Option<(usize, usize)> {
    let name = section.trim_matches(|c| c == '[' || c == ']');
    if name.is_empty() {
        return None;
    }
    if let Some(i) = headers(source, &format!("[{name}]")).next() {
        return Some(line_col(source, i));
    }
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with(name)
            && matches!(t[name.len()..].trim_start().chars().next(), Some('=' | '.'))
        {
            return Some(line_col(source, offset + (line.len() - t.len())));
        }
        offset += line.len();
    }
    None
}

fn locate_key(source: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    if key.starts_with('[') {
        return headers(source, key).next().map(|i| line_col(source, i));
    }
    let start = if section.is_empty() {
        0
    } else {
        headers(source, &format!("[{section}]")).next().unwrap_or(0)
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

/// Where `key = ` appears inside the n-th `[[name]]` table.
fn locate_in_table(source: &str, name: &str, n: usize, key: &str) -> Option<(usize, usize)> {
    let (line, _) = locate_table(source, name, n)?;
    let start: usize = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let mut offset = start;
    for (i, l) in source[start..].split_inclusive('\n').enumerate() {
        let t = l.trim_start();
        if i > 0 && t.starts_with('[') {
            return None;
        }
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return Some(line_col(source, offset + (l.len() - t.len())));
        }
        offset += l.len();
    }
    None
}

/// Finds the n-th `[[name]]` table header.
fn locate_table(source: &str, name: &str, n: usize) -> Option<(usize, usize)> {
    let header = format!("[[{name}]]");
    let found = headers(source, &header).nth(n);
    found.map(|i| line_col(source, i))
}

fn too_long(what: &str, given: &str, max: &str) -> String {
    format!("{what}: {given} is absurdly long: at most {max}")
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like \"90s\", \"5m\" or \"80d\": {e}"))
}

/// Longer than this is not a timeout or a polling interval but a hang.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
const MAX_WAIT_SHOWN: &str = "\"24h\"";
/// A rotation due less often than every ten years would never be due.
pub const MAX_MIN_AGE: Duration = Duration::from_secs(3650 * 24 * 3600);
const MAX_MIN_AGE_SHOWN: &str = "\"3650d\"";
/// PBKDF2 iterations: vsync uses 600000; far more makes every derivation take minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Consecutive fresh answers per health URL.
pub const MAX_SAMPLES: u32 = 1000;

struct Checker<'a> {
    file: &'a Path,

    problems: Vec<Problem>,
    /// Problems past `MAX_PROBLEMS`: counted, not kept (nor located).
    more_errors: usize,
    more_warnings: usize,
}

impl Checker<'_> {
    fn full(&self) -> bool {
        self.problems.len() >= MAX_PROBLEMS
    }
    fn err(&mut self, at: Option<(usize, usize)>, msg: impl Into<String>) {
        if self.full() {
            self.more_errors += 1;
        } else {
            self.problems.push(Problem::error(self.file, at, msg));
        }
    }
    fn warn(&mut self, at: Option<(usize, usize)>, msg: impl Into<String>) {
        if self.full() {
            self.more_warnings += 1;
            return;
        }
        self.problems.push(Problem {
            severity: Severity::Warning,
            file: self.file.to_owned(),
            at,
            message: bounded(msg.into()),
        });
    }
    /// A duration that parses, is positive and is at most `max`.
    fn duration(&mut self, at: Option<(usize, usize)>, what: &str, v: &Option<String>) {
        let max = MAX_WAIT;
        if let Some(s) = v {
            match parse_duration(s) {
                Err(e) => self.err(at, format!("{what}: {e}")),
                Ok(d) if d.is_zero() => self.err(at, format!("{what} must be positive")),
                Ok(d) if d > max => self.err(at, too_long(what, &format!("{s:?}"), MAX_WAIT_SHOWN)),
                Ok(_) => {}
            }
        }
    }
}

pub(super) fn check(file: &Path, source: &str, plan: &Plan) -> Vec<Problem> {
    let mut c = Checker {
        file,
        problems: Vec::new(),
        more_errors: 0,
        more_warnings: 0,
    };
    if let Some(d) = plan.state_dir.as_ref().filter(|d| !d.is_absolute()) {
        c.err(
            locate(source, "", "state_dir"),
            format!("state_dir {} is relative (and `~` is not expanded): write an absolute path, so `resume` from another directory finds the journal", d.display()),
        );
    }
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
    if let Some(n) = v.iterations.filter(|n| *n > MAX_ITERATIONS) {
        c.err(
            vat("iterations"),
            format!("vault.iterations {n} is absurd: every key derivation would take minutes (vsync uses 600000; at most {MAX_ITERATIONS})"),
        );
    }
    if let Some(d) = v.dir.as_ref().filter(|d| !d.is_absolute()) {
        c.err(
            vat("dir"),
            format!("vault.dir {} is relative: write an absolute path, so `resume` from another directory finds the same vault", d.display()),
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
        c.err(Some((1, 1)), "no [[store]]: at least one secret store must receive the new passphrase, or apps cannot boot after rotation");
    }
    // Target → the table that names it first.
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut adapter =
        |c: &mut Checker, table: &str, i: usize, findings: Vec<Finding>, targets: Vec<String>| {
            // Located only when there is something to say, and while it is still shown:
            // finding the n-th table reads the source again.
            let at = || locate_table(source, table, i);
            for f in findings {
                let where_ = if c.full() {
                    None
                } else {
                    f.key
                        .as_deref()
                        .and_then(|k| locate_in_table(source, table, i, k))
                        .or_else(at)
                };
                match f.severity {
                    AdapterSeverity::Error => c.err(where_, f.message),
                    _ => c.warn(where_, f.message),
                }
            }
            let me = format!("[[{table}]] #{}", i + 1);
            for t in targets {
                if let Some(first) = seen.get(&t) {
                    let msg = format!(
                    "{t} is already written by {first}: two tables must not name the same target"
                );
                    let where_ = if c.full() { None } else { at() };
                    c.err(where_, msg);
                } else {
                    seen.insert(t, me.clone());
                }
            }
        };
    for (i, s) in plan.stores.iter().enumerate() {
        let cfg = s.config();
        adapter(&mut c, "store", i, cfg.check(), cfg.targets());
    }
    for (i, r) in plan.restarts.iter().enumerate() {
        let cfg = r.config();
        let mut findings = cfg.check();
        if r.timeout() > MAX_WAIT {
            let given = humantime::format_duration(r.timeout()).to_string();
            findings.push(Finding::error(
                Some("timeout"),
                too_long("timeout", &given, MAX_WAIT_SHOWN),
            ));
        }
        adapter(&mut c, "restart", i, findings, cfg.targets());
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
    if let Some(e) = &plan.escrow {
        let at = locate(source, "escrow", "age_recipients");
        if e.age_recipients.is_empty() {
            c.err(at, "escrow.age_recipients is empty: name at least one age1… public key, or remove [escrow]");
        }
        for r in &e.age_recipients {
            if let Err(why) = super::escrow_key::parse_recipient(r) {
                c.err(at, format!("escrow.age_recipients: {why}"));
            }
        }
    }
    if let Some(n) = &plan.notify {
        if n.command.is_empty() && n.slack.is_none() && n.webhook.is_none() {
            c.warn(
                locate(source, "", "[notify]"),
                "[notify] names no command, slack or webhook: nothing will be sent",
            );
        }
        if n.on.is_empty() {
            c.warn(
                locate(source, "notify", "on"),
                "notify.on is empty: nothing will be sent (default: start, success, failure, window_open)",
            );
        }
        if n.timeout
            .is_some_and(|t| t.is_zero() || t > std::time::Duration::from_secs(300))
        {
            c.err(
                locate(source, "notify", "timeout"),
                "notify.timeout must be between 1ms and 5m: a notification never holds a rotation up for long",
            );
        }
    }
    if let Some(n) = plan.verify.samples.filter(|n| *n > MAX_SAMPLES) {
        c.err(
            vt("samples"),
            format!("verify.samples {n} is absurd: at most {MAX_SAMPLES}"),
        );
    }
    if let Some(s) = &plan.schedule {
        let at = locate(source, "schedule", "min_age");
        match parse_duration(&s.min_age) {
            Err(e) => c.err(at, format!("schedule.min_age: {e}")),
            Ok(d) if d > MAX_MIN_AGE => c.err(
                at,
                too_long(
                    "schedule.min_age",
                    &format!("{:?}", s.min_age),
                    MAX_MIN_AGE_SHOWN,
                ),
            ),
            Ok(_) => {}
        }
    }
    if plan.restarts.is_empty() {
        c.warn(None, "no [[restart]]: apps keep running with the passphrase in memory and pick up the new one only when they next boot");
    }
    if c.more_errors + c.more_warnings > 0 {
        let msg = format!(
            "{} more error(s) and {} more warning(s) not shown (at most {MAX_PROBLEMS} per plan)",
            c.more_errors, c.more_warnings
        );
        let severity = if c.more_errors > 0 {
            Severity::Error
        } else {
            Severity::Warning
        };
        c.problems.push(Problem {
            severity,
            file: file.to_owned(),
            at: None,
            message: msg,
        });
    }
    // Every problem has a place: one this best-effort search could not find is
    // reported at the top of the file rather than nowhere.
    for p in &mut c.problems {
        p.at.get_or_insert((1, 1));
    }
    c.problems
}
